use super::*;
use crate::report::{FailingSeed, InvariantCount, SeedRange};

fn identity(shard: Shard, range: std::ops::Range<u64>) -> SweepIdentity {
    SweepIdentity {
        range: SeedRange::from(&range),
        shard: shard.to_string(),
        shard_seeds: SeedRange::from(&shard.part(&range)),
        api: "seed".into(),
        faults: "swarm".into(),
        producers: 8,
        keys: 16,
        ops: 400,
        strict_reads: false,
        check_determinism: false,
    }
}

/// A shard's summary with the given failing seeds (each violating S1).
fn shard(index: u32, count: u32, failing: &[u64]) -> SummaryRecord {
    let shard = Shard { index, count };
    let sweep = identity(shard, 0..100);
    let seeds = sweep.shard_seeds.len();
    let mut violations = BTreeMap::new();
    if let Some(smallest) = failing.iter().min() {
        violations.insert(
            "S1".to_owned(),
            InvariantCount {
                seeds: failing.len() as u64,
                smallest_seed: *smallest,
            },
        );
    }
    SummaryRecord {
        seeds,
        failures: failing.len() as u64,
        internal_errors: 0,
        nondeterministic: Vec::new(),
        violations,
        seeds_per_second: seeds as f64,
        simulated_to_real: 1000.0,
        checker_share: 0.1,
        elapsed_s: 1.0 + f64::from(index),
        exempt_stale_answers: 3,
        exempt_dirty_answers: 1,
        strict_reads_s7_seeds: 0,
        a1_excused: 2,
        exit: i32::from(!failing.is_empty()),
        sweep: Some(sweep),
        failing_seeds: failing
            .iter()
            .map(|seed| FailingSeed {
                seed: *seed,
                invariants: vec!["S1".into()],
                reproduce: format!("cargo sim -- --seed {seed}"),
            })
            .collect(),
        internal_error_seeds: Vec::new(),
    }
}

fn named(records: Vec<SummaryRecord>) -> Vec<(PathBuf, SummaryRecord)> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| (PathBuf::from(format!("shard-{}.json", index + 1)), record))
        .collect()
}

#[test]
fn merged_shards_give_the_totals_failures_and_verdict_of_the_whole_range() {
    let merged = merge(&named(vec![
        shard(3, 3, &[90, 70]),
        shard(1, 3, &[]),
        shard(2, 3, &[40]),
    ]))
    .unwrap();
    assert_eq!(merged.seeds, 100);
    assert_eq!(merged.failures, 3);
    assert_eq!(merged.exit, 1);
    let seeds: Vec<u64> = merged.failing_seeds.iter().map(|f| f.seed).collect();
    assert_eq!(seeds, vec![40, 70, 90]);
    assert_eq!(
        merged.violations.get("S1"),
        Some(&InvariantCount {
            seeds: 3,
            smallest_seed: 40
        })
    );
    assert_eq!((merged.exempt_stale_answers, merged.a1_excused), (9, 6));
    assert_eq!(merged.elapsed_s, 4.0, "the slowest shard's time");
    let sweep = merged.sweep.as_ref().unwrap();
    assert_eq!(
        (sweep.shard.as_str(), sweep.shard_seeds.range()),
        ("1/1", 0..100)
    );
    // The merged summary is a whole-range summary: it merges again.
    assert_eq!(merge(&named(vec![merged.clone()])).unwrap(), merged);
    let words = text(&merged, 3);
    assert!(words.contains("seed 40: FAIL S1") && words.ends_with("verdict: FAIL\n"));
}

#[test]
fn a_passing_sweep_merges_to_a_pass_and_an_internal_error_to_exit_2() {
    let passed = merge(&named(vec![shard(1, 2, &[]), shard(2, 2, &[])])).unwrap();
    assert_eq!((passed.failures, passed.exit), (0, 0));
    assert!(text(&passed, 2).ends_with("verdict: PASS\n"));
    let mut broken = shard(2, 2, &[]);
    broken.internal_errors = 1;
    broken.internal_error_seeds = vec![77];
    let merged = merge(&named(vec![shard(1, 2, &[3]), broken])).unwrap();
    assert_eq!(merged.exit, 2);
    assert_eq!(merged.internal_error_seeds, vec![77]);
}

#[test]
fn summaries_of_different_sweeps_are_refused_naming_what_differs() {
    let mut other_faults = shard(2, 2, &[]);
    if let Some(sweep) = other_faults.sweep.as_mut() {
        sweep.faults = "swarm,-corruption".into();
    }
    let refused = merge(&named(vec![shard(1, 2, &[]), other_faults])).unwrap_err();
    assert!(
        refused.contains("--faults is swarm,-corruption in shard-2.json but swarm in shard-1.json"),
        "{refused}"
    );
    let mut other_range = shard(2, 2, &[]);
    other_range.sweep = Some(identity(Shard { index: 2, count: 2 }, 0..200));
    other_range.seeds = 100;
    let refused = merge(&named(vec![shard(1, 2, &[]), other_range])).unwrap_err();
    assert!(refused.contains("--seeds is 0..200"), "{refused}");
    let refused = merge(&named(vec![shard(1, 2, &[]), shard(1, 3, &[])])).unwrap_err();
    assert!(refused.contains("the shard count is 3"), "{refused}");
}

#[test]
fn a_shard_twice_or_missing_is_refused() {
    let twice = merge(&named(vec![shard(1, 2, &[]), shard(1, 2, &[])])).unwrap_err();
    assert!(twice.contains("shard 1/2 is given twice"), "{twice}");
    let missing = merge(&named(vec![shard(1, 3, &[]), shard(3, 3, &[])])).unwrap_err();
    assert!(missing.contains("shards missing: 2/3"), "{missing}");
    let mut short = shard(2, 2, &[]);
    short.seeds -= 1;
    let short = merge(&named(vec![shard(1, 2, &[]), short])).unwrap_err();
    assert!(short.contains("is seeds 50..100"), "{short}");
}

#[test]
fn a_summary_is_found_in_a_whole_json_output_and_nothing_else_is_taken_for_one() {
    let record = shard(1, 1, &[5]);
    let output = format!(
        "{{\"seed\": 5, \"verdict\": \"fail\"}}\n{}\n",
        record.json()
    );
    let path = Path::new("out.json");
    assert_eq!(read_summary(&output, path).unwrap(), record);
    assert!(
        read_summary("{\"seed\": 5}\n", path)
            .unwrap_err()
            .contains("holds no {\"summary\": ...} object")
    );
    assert!(
        read_summary("5 seeds, 0 failed\n", path)
            .unwrap_err()
            .contains("line 1: not JSON")
    );
    let mut old = record.json();
    if let Some(summary) = old.get_mut("summary").and_then(Value::as_object_mut) {
        summary.remove("sweep");
    }
    let old = read_summary(&old.to_string(), path).unwrap();
    let refused = merge(&[(path.to_path_buf(), old)]).unwrap_err();
    assert!(refused.contains("does not say which sweep"), "{refused}");
}
