//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`)
//! through the checks the fuzz targets run, on the stable toolchain, and
//! holds the named regression tests of what the fuzzers found.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use atmostonce_fuzz_check::alloc::{CountingAllocator, is_counting, measure};
use atmostonce_fuzz_check::codec::{check_decode, roundtrip_from_bytes};
use atmostonce_fuzz_check::fenced::{FencedSummary, check_fenced_bytes};
use atmostonce_fuzz_check::history::{Exemption, Invariant, Verdict, excused_causes};
use atmostonce_fuzz_check::program::{
    Action, Config, Fault, HashWidth, KeyChoice, OpKind, Program, check_bytes, check_program,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Prefix of hand-written `record_decode` inputs that must be rejected; the
/// rest of the name starts with the `EnvelopeError` variant expected.
const REJECT_PREFIX: &str = "reject-";

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable corpus file");
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus {} is empty: nothing would be replayed",
        dir.display()
    );
    files
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `check` on every file of `target`'s corpus and fails naming every
/// file whose check panicked.
fn replay<T>(target: &str, mut check: impl FnMut(&Path, &[u8]) -> T) -> Vec<T> {
    let mut failed = Vec::new();
    let mut results = Vec::new();
    for (path, bytes) in corpus(target) {
        match catch_unwind(AssertUnwindSafe(|| check(&path, &bytes))) {
            Ok(result) => results.push(result),
            Err(_) => failed.push(name(&path)),
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: the check failed on {failed:?} (the panic messages are above)"
    );
    results
}

#[test]
fn the_counting_allocator_is_installed_so_the_allocation_bound_is_checked() {
    assert!(is_counting());
    let (_, allocated) = measure(|| vec![0u8; 100]);
    assert!(allocated.bytes >= 100);
}

#[test]
fn every_record_decode_corpus_file_passes_the_decode_check() {
    replay("record_decode", |_, bytes| {
        let _ = check_decode(bytes);
    });
}

#[test]
fn every_hand_written_rejection_input_is_rejected_for_its_named_reason() {
    let rejections = replay("record_decode", |path, bytes| {
        let name = name(path);
        let Some(expected) = name.strip_prefix(REJECT_PREFIX) else {
            return 0;
        };
        let error = match check_decode(bytes) {
            Ok(record) => panic!("{name} decoded to {record:?}"),
            Err(error) => format!("{error:?}"),
        };
        let variant = error.split([' ', '{']).next().unwrap_or_default();
        assert!(
            expected.starts_with(&format!("{variant}-")),
            "{name} was rejected as {error}"
        );
        1
    });
    // One file per rejection case of docs/record-format.md (version 1), at
    // least.
    assert!(rejections.iter().sum::<usize>() >= 12);
}

#[test]
fn every_record_roundtrip_corpus_file_passes_the_roundtrip_check() {
    replay("record_roundtrip", |_, bytes| roundtrip_from_bytes(bytes));
}

#[test]
fn every_cache_ops_corpus_file_runs_without_an_unexplained_violation() {
    let verdicts = replay("cache_ops", |_, bytes| check_bytes(bytes));
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for verdict in &verdicts {
        let outcome = match verdict {
            None => "no program".to_owned(),
            Some(verdict) if verdict.excused.is_empty() => "clean".to_owned(),
            Some(verdict) => format!(
                "known {:?} ({:?})",
                excused_causes(verdict),
                verdict.excused[0].violation.invariant
            ),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    eprintln!("cache_ops corpus outcomes: {outcomes:?}");
    assert!(outcomes.get("clean").is_some_and(|n| *n > 0));
}

#[test]
fn every_cache_ops_fenced_corpus_file_passes_and_together_they_reach_every_fenced_answer() {
    let summaries = replay("cache_ops_fenced", |_, bytes| check_fenced_bytes(bytes));
    let mut total = FencedSummary::default();
    for summary in summaries.iter().flatten() {
        total.grants += summary.grants;
        total.renewals += summary.renewals;
        total.stale_refusals += summary.stale_refusals;
        total.fingerprint_mismatches += summary.fingerprint_mismatches;
        total.duplicates_answered += summary.duplicates_answered;
        total.corrupt_refusals += summary.corrupt_refusals;
        total.expiries += summary.expiries;
        total.crashes += summary.crashes;
    }
    eprintln!("cache_ops_fenced corpus, all files together: {total:?}");
    // The committed corpus exercises each of the fenced API's answers and
    // faults at least once, so replaying it is a real regression test.
    for (what, count) in [
        ("grants", total.grants),
        ("renewals", total.renewals),
        ("stale-token refusals", total.stale_refusals),
        ("fingerprint mismatches", total.fingerprint_mismatches),
        (
            "duplicates answered with the receipt",
            total.duplicates_answered,
        ),
        ("refusals naming a corrupt record", total.corrupt_refusals),
        ("expiries", total.expiries),
        ("store crashes", total.crashes),
    ] {
        assert!(
            count > 0,
            "no committed cache_ops_fenced input reaches {what}"
        );
    }
}

/// The outcome a `cache_ops` corpus file's name promises: `clean-*`, or
/// `known-<Exemption>[+<Exemption>]-*`; `None` for a fuzzer-named file.
fn promised_outcome(name: &str) -> Option<String> {
    if name.starts_with("clean-") {
        return Some("Clean".to_owned());
    }
    let causes = name.strip_prefix("known-")?.split('-').next()?;
    Some(format!("Known [{}]", causes.replace('+', ", ")))
}

#[test]
fn every_named_cache_ops_input_ends_in_the_outcome_its_name_gives() {
    let named = replay("cache_ops", |path, bytes| {
        let name = name(path);
        let Some(promised) = promised_outcome(&name) else {
            return 0;
        };
        let outcome = match check_bytes(bytes) {
            Some(verdict) if verdict.excused.is_empty() => "Clean".to_owned(),
            Some(verdict) => format!("Known {:?}", excused_causes(&verdict)),
            None => "no program".to_owned(),
        };
        assert_eq!(outcome, promised, "{name}");
        1
    });
    // A clean run and each documented known outcome, at least.
    assert!(named.iter().sum::<usize>() >= 4);
}

fn program(config: Config, actions: Vec<Action>) -> Program {
    Program {
        config,
        keys: [
            KeyChoice::Preset(0),
            KeyChoice::Preset(1),
            KeyChoice::Preset(2),
        ],
        actions,
    }
}

const PLAIN: Config = Config {
    hash: HashWidth::Full,
    read_batch: 3,
    flush_appends: false,
    ttl_16ms_steps: 0,
};

fn start(slot: u8, op: OpKind) -> Action {
    Action::Start { slot, key: 0, op }
}

fn step(slot: u8, fault: Fault) -> Action {
    Action::Step { slot, fault }
}

fn known(verdict: &Verdict) -> (Vec<Exemption>, Invariant) {
    match verdict.excused.first() {
        Some(excused) => (excused_causes(verdict), excused.violation.invariant),
        None => panic!("expected a known outcome, the run was clean"),
    }
}

#[test]
fn claim_complete_and_a_duplicate_claim_are_judged_clean() {
    let verdict = check_program(&program(
        PLAIN,
        vec![
            start(0, OpKind::Claim),
            start(1, OpKind::Lookup),
            step(1, Fault::None),
            start(2, OpKind::Complete { receipt: 1 }),
            Action::Advance { millis: 7 },
            start(3, OpKind::Claim),
        ],
    ));
    assert_eq!(verdict, Verdict::default());
}

/// Claims A and B, `gap_ms` apart, read the empty stream and both append
/// at 0; A's append fails without landing, B's lands, then A re-reads.
fn claim_race_with_a_lost_append(gap_ms: u16) -> Vec<Action> {
    vec![
        start(0, OpKind::Claim),
        Action::Advance { millis: gap_ms },
        start(1, OpKind::Claim),
        step(0, Fault::None),
        step(1, Fault::None),
        step(0, Fault::Indeterminate { applied: false }),
        step(1, Fault::None),
        step(0, Fault::None),
    ]
}

#[test]
fn two_same_millisecond_claims_are_both_granted_when_an_indeterminate_append_is_misresolved() {
    // A and B read the empty stream and both append the same bytes at 0.
    // A's append fails without landing; B's lands; A's re-read finds bytes
    // identical to its own at 0 and takes them for its own: two winners.
    let verdict = check_program(&program(PLAIN, claim_race_with_a_lost_append(0)));
    let (causes, invariant) = known(&verdict);
    assert_eq!(causes, vec![Exemption::MisresolvedAppend]);
    assert!(matches!(invariant, Invariant::S1 | Invariant::S7));
}

#[test]
fn the_same_race_a_millisecond_apart_is_resolved_correctly() {
    let verdict = check_program(&program(PLAIN, claim_race_with_a_lost_append(1)));
    assert_eq!(verdict, Verdict::default());
}

/// The key is claimed; then `op` is served a read that misses the claim;
/// then `after`.
fn claimed_then_stale(op: OpKind, after: Vec<Action>) -> Vec<Action> {
    let mut actions = vec![
        start(0, OpKind::Claim),
        step(0, Fault::None),
        step(0, Fault::None),
        start(1, op),
        step(1, Fault::Stale { lag: 0 }),
    ];
    actions.extend(after);
    actions
}

#[test]
fn a_lookup_served_a_stale_read_answers_a_state_the_key_had_left() {
    let verdict = check_program(&program(PLAIN, claimed_then_stale(OpKind::Lookup, vec![])));
    assert_eq!(known(&verdict), (vec![Exemption::StaleRead], Invariant::S7));
}

#[test]
fn a_release_served_a_stale_read_leaves_the_claim_in_place_and_later_answers_look_wrong() {
    // The release sees the key absent and answers Ok without writing; the
    // specification has the key released, but the next claim finds it in
    // flight. Only the stale release is to blame.
    let next_claim = vec![start(2, OpKind::Claim), step(2, Fault::None)];
    let verdict = check_program(&program(
        PLAIN,
        claimed_then_stale(OpKind::Release, next_claim),
    ));
    assert_eq!(known(&verdict), (vec![Exemption::StaleRead], Invariant::S7));
}

#[test]
fn an_indeterminate_claim_append_that_landed_is_resolved_as_granted() {
    let verdict = check_program(&program(
        Config {
            flush_appends: true,
            ..PLAIN
        },
        vec![
            start(0, OpKind::Claim),
            step(0, Fault::None),
            step(0, Fault::Indeterminate { applied: true }),
            start(1, OpKind::Claim),
        ],
    ));
    assert_eq!(verdict, Verdict::default());
}

#[test]
fn colliding_keys_are_refused_and_their_records_never_mixed() {
    // With one bit of key hash, "a" and "order-17" share a stream.
    let one_bit = Config {
        hash: HashWidth::OneBit,
        ..PLAIN
    };
    let colliding = program(
        one_bit,
        vec![
            start(0, OpKind::Claim),
            step(0, Fault::None),
            step(0, Fault::None),
            Action::Start {
                slot: 1,
                key: 1,
                op: OpKind::Claim,
            },
            Action::Start {
                slot: 2,
                key: 1,
                op: OpKind::Complete { receipt: 0 },
            },
            start(3, OpKind::Complete { receipt: 0 }),
        ],
    );
    assert_eq!(
        atmostonce::key_hash_bits("a", 1),
        atmostonce::key_hash_bits("order-17", 1)
    );
    assert_eq!(check_program(&colliding), Verdict::default());
}

#[test]
fn a_sweep_exactly_at_ttl_plus_grace_expires_nothing() {
    // TTL 0: the claim expires strictly after its anchor + 1 000 ms of
    // grace (docs/spec.md, "Expiry"); a sweep at exactly that instant must
    // leave it, and a sweep one millisecond later may end it.
    let at_boundary = |extra_ms: u16| {
        program(
            PLAIN,
            vec![
                start(0, OpKind::Claim),
                step(0, Fault::None),
                step(0, Fault::None),
                Action::Advance {
                    millis: 1_000 + extra_ms,
                },
                start(1, OpKind::Sweep),
                step(1, Fault::None),
                step(1, Fault::None),
                start(2, OpKind::Claim),
            ],
        )
    };
    assert_eq!(check_program(&at_boundary(0)), Verdict::default());
    assert_eq!(check_program(&at_boundary(1)), Verdict::default());
}
