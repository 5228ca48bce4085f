//! `merge FILE...`: the JSON summaries of a sharded sweep (`--seeds A..B
//! --shard K/N --json`, one per runner) as one verdict. The shards must be
//! of one sweep (same range, shard count and configuration), each once and
//! all of them; the merged record is itself a summary of the whole range
//! (shard `1/1`), so it merges again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use crate::outcome::Summary;
use crate::report::{SummaryRecord, SweepIdentity};
use crate::shard::Shard;

/// Most failing seeds the text report lists one by one (the JSON lists all).
const LISTED_FAILURES: usize = 20;

/// Reads the summary in `text`: the `{"summary": ...}` object of a
/// `--json` output (its other lines, one per failing seed, are skipped).
pub fn read_summary(text: &str, path: &Path) -> Result<SummaryRecord, String> {
    let mut found = None;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|error| {
            format!(
                "{} line {}: not JSON ({error}); give the --json output of a sweep",
                path.display(),
                number + 1
            )
        })?;
        if let Some(summary) = value.get("summary") {
            let record = SummaryRecord::deserialize(summary).map_err(|error| {
                format!(
                    "{} line {}: not a sweep summary: {error}",
                    path.display(),
                    number + 1
                )
            })?;
            if found.replace(record).is_some() {
                return Err(format!(
                    "{} holds two summaries; give one sweep's --json output per file",
                    path.display()
                ));
            }
        }
    }
    found.ok_or_else(|| {
        format!(
            "{} holds no {{\"summary\": ...}} object; give the --json output of `--seeds A..B \
             --shard K/N --json`",
            path.display()
        )
    })
}

/// The fields two shards of one sweep must agree on, with their values in
/// `sweep`.
fn agreement(sweep: &SweepIdentity) -> [(&'static str, String); 8] {
    let shard_count = sweep
        .shard
        .split_once('/')
        .map_or_else(|| sweep.shard.clone(), |(_, count)| count.to_owned());
    [
        (
            "--seeds",
            format!("{}..{}", sweep.range.start, sweep.range.end),
        ),
        ("the shard count", shard_count),
        ("--api", sweep.api.clone()),
        ("--faults", sweep.faults.clone()),
        ("--producers", sweep.producers.to_string()),
        ("--keys", sweep.keys.to_string()),
        ("--ops", sweep.ops.to_string()),
        (
            "--strict-reads / --check-determinism",
            format!("{} / {}", sweep.strict_reads, sweep.check_determinism),
        ),
    ]
}

/// Merges the shards' summaries, each with the file it came from (named in
/// messages). Refuses
/// summaries of different sweeps, a shard given twice, a shard missing, or
/// a shard whose seeds are not its part of the range.
pub fn merge(shards: &[(PathBuf, SummaryRecord)]) -> Result<SummaryRecord, String> {
    let Some((first_path, first)) = shards.first() else {
        return Err("merge needs at least one summary".into());
    };
    let identity = |path: &Path, record: &SummaryRecord| {
        record.sweep.clone().ok_or_else(|| {
            format!(
                "{}: the summary does not say which sweep it is (range, shard, configuration); \
                 it was not written by `--seeds A..B --json` of this version",
                path.display()
            )
        })
    };
    let base = identity(first_path, first)?;
    let base_fields = agreement(&base);
    let mut by_index: BTreeMap<u32, &Path> = BTreeMap::new();
    let mut count = 0;
    for (path, record) in shards {
        let sweep = identity(path, record)?;
        for ((name, ours), (_, theirs)) in agreement(&sweep).iter().zip(&base_fields) {
            if ours != theirs {
                return Err(format!(
                    "{} and {} are not shards of one sweep: {name} is {ours} in {} but {theirs} \
                     in {}",
                    path.display(),
                    first_path.display(),
                    path.display(),
                    first_path.display()
                ));
            }
        }
        let shard = Shard::parse(&sweep.shard)
            .map_err(|error| format!("{}: its shard is not K/N: {error}", path.display()))?;
        count = shard.count;
        if let Some(other) = by_index.insert(shard.index, path) {
            return Err(format!(
                "shard {shard} is given twice: {} and {}",
                other.display(),
                path.display()
            ));
        }
        let expected = shard.part(&sweep.range.range());
        if sweep.shard_seeds.range() != expected || record.seeds != sweep.shard_seeds.len() {
            return Err(format!(
                "{}: shard {shard} of {}..{} is seeds {}..{}, but the summary covers {}..{} \
                 with {} seeds run",
                path.display(),
                sweep.range.start,
                sweep.range.end,
                expected.start,
                expected.end,
                sweep.shard_seeds.start,
                sweep.shard_seeds.end,
                record.seeds
            ));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|index| !by_index.contains_key(index))
        .map(|index| format!("{index}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shards missing: {} (the verdict must cover the whole range {}..{})",
            missing.join(", "),
            base.range.start,
            base.range.end
        ));
    }
    Ok(combine(shards.iter().map(|(_, record)| record), base))
}

/// The totals of `records`, as a summary of the whole range.
fn combine<'a>(
    records: impl Iterator<Item = &'a SummaryRecord>,
    mut sweep: SweepIdentity,
) -> SummaryRecord {
    let records: Vec<&SummaryRecord> = records.collect();
    let sum = |field: fn(&SummaryRecord) -> u64| records.iter().map(|r| field(r)).sum::<u64>();
    let seeds = sum(|r| r.seeds);
    // The shards ran side by side: the sweep took as long as the slowest.
    let elapsed_s = records.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    let simulated_s: f64 = records
        .iter()
        .map(|r| r.simulated_to_real * r.elapsed_s)
        .sum();
    let checker_weighted: f64 = records
        .iter()
        .map(|r| r.checker_share * r.seeds as f64)
        .sum();
    let mut nondeterministic: Vec<u64> = records
        .iter()
        .flat_map(|r| r.nondeterministic.iter().copied())
        .collect();
    nondeterministic.sort_unstable();
    let mut violations = BTreeMap::new();
    for (invariant, count) in records.iter().flat_map(|r| &r.violations) {
        violations
            .entry(invariant.clone())
            .and_modify(|merged: &mut crate::report::InvariantCount| {
                merged.seeds += count.seeds;
                merged.smallest_seed = merged.smallest_seed.min(count.smallest_seed);
            })
            .or_insert(*count);
    }
    let mut failing_seeds: Vec<_> = records
        .iter()
        .flat_map(|r| r.failing_seeds.iter().cloned())
        .collect();
    failing_seeds.sort_by_key(|failing| failing.seed);
    let mut internal_error_seeds: Vec<u64> = records
        .iter()
        .flat_map(|r| r.internal_error_seeds.iter().copied())
        .collect();
    internal_error_seeds.sort_unstable();
    let (failures, internal_errors) = (sum(|r| r.failures), sum(|r| r.internal_errors));
    // The exit status by the sweep's own rule.
    let exit = Summary {
        failures,
        internal_errors,
        nondeterministic: nondeterministic.clone(),
        ..Summary::default()
    }
    .exit_code();
    sweep.shard = Shard::WHOLE.to_string();
    sweep.shard_seeds = sweep.range;
    SummaryRecord {
        seeds,
        failures,
        internal_errors,
        nondeterministic,
        violations,
        seeds_per_second: seeds as f64 / elapsed_s.max(1e-9),
        simulated_to_real: simulated_s / elapsed_s.max(1e-9),
        checker_share: checker_weighted / (seeds as f64).max(1.0),
        elapsed_s,
        exempt_stale_answers: sum(|r| r.exempt_stale_answers),
        exempt_dirty_answers: sum(|r| r.exempt_dirty_answers),
        strict_reads_s7_seeds: sum(|r| r.strict_reads_s7_seeds),
        a1_excused: sum(|r| r.a1_excused),
        exit,
        sweep: Some(sweep),
        failing_seeds,
        internal_error_seeds,
    }
}

/// The merged report in words: what was merged, the totals, the failing
/// seeds (the first [`LISTED_FAILURES`]) and the verdict.
#[must_use]
pub fn text(merged: &SummaryRecord, shards: usize) -> String {
    let mut text = String::new();
    if let Some(sweep) = &merged.sweep {
        text.push_str(&format!(
            "merged {shards} shard(s) of seeds {}..{} (--api {} --faults {}, {} producers, {} \
             keys, {} ops)\n",
            sweep.range.start,
            sweep.range.end,
            sweep.api,
            sweep.faults,
            sweep.producers,
            sweep.keys,
            sweep.ops
        ));
    }
    text.push_str(&merged.line());
    text.push('\n');
    for failing in merged.failing_seeds.iter().take(LISTED_FAILURES) {
        text.push_str(&format!(
            "seed {}: FAIL {}\n  reproduce: {}\n",
            failing.seed,
            failing.invariants.join(","),
            failing.reproduce
        ));
    }
    if merged.failing_seeds.len() > LISTED_FAILURES {
        text.push_str(&format!(
            "... and {} more failing seeds (--json lists them all)\n",
            merged.failing_seeds.len() - LISTED_FAILURES
        ));
    }
    if !merged.internal_error_seeds.is_empty() {
        text.push_str(&format!(
            "internal errors on seeds {:?}\n",
            merged.internal_error_seeds
        ));
    }
    text.push_str(match merged.exit {
        0 => "verdict: PASS\n",
        1 => "verdict: FAIL\n",
        _ => "verdict: ERROR (internal errors or nondeterminism)\n",
    });
    text
}

/// `merge FILE...`: reads, merges and prints; returns the exit status.
pub fn run(files: &[PathBuf], json: bool) -> i32 {
    let shards: Result<Vec<(PathBuf, SummaryRecord)>, String> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            Ok((path.clone(), read_summary(&text, path)?))
        })
        .collect();
    match shards.and_then(|shards| merge(&shards)) {
        Ok(merged) => {
            if json {
                println!("{}", merged.json());
            } else {
                print!("{}", text(&merged, files.len()));
            }
            merged.exit
        }
        Err(error) => {
            eprintln!("atmostonce-sim: merge: {error}");
            2
        }
    }
}

#[cfg(test)]
mod tests;
