//! Named `cache_ops_fenced` programs: each fault the fenced API must
//! survive, in its smallest form, judged by the same check the fuzz target
//! runs, with the summary showing the run really went where its name says.

use atmostonce_fuzz_check::fenced::{
    ClaimIdChoice, Damage, FencedAction, FencedConfig, FencedOpKind, FencedProgram, FencedSummary,
    check_fenced_program,
};
use atmostonce_fuzz_check::program::{Fault, HashWidth, KeyChoice};

/// Lease 16 ms, receipt TTL 32 ms, reads of 4 records, a store whose
/// acknowledged appends are durable.
const PLAIN: FencedConfig = FencedConfig {
    hash: HashWidth::Full,
    sweep_page: 3,
    flush_appends: false,
    lease_steps: 0,
    receipt_ttl_steps: 1,
};

/// The same on a store that must be flushed (and may crash).
const FLUSHING: FencedConfig = FencedConfig {
    flush_appends: true,
    ..PLAIN
};

/// Steps that finish any operation on a short stream without faults.
const STEPS_TO_FINISH: usize = 8;
/// Past the lease (16 ms) and receipt TTL (32 ms) plus the 1 000 ms grace.
const PAST_LEASE_AND_TTL: FencedAction = FencedAction::Advance { millis: 1_100 };

fn program(config: FencedConfig, actions: Vec<FencedAction>) -> FencedProgram {
    FencedProgram {
        config,
        keys: [
            KeyChoice::Preset(0),
            KeyChoice::Preset(1),
            KeyChoice::Preset(2),
        ],
        actions,
    }
}

fn start(slot: u8, op: FencedOpKind) -> FencedAction {
    FencedAction::Start { slot, key: 0, op }
}

fn step(slot: u8, fault: Fault) -> FencedAction {
    FencedAction::Step { slot, fault }
}

/// `op` in `slot`, run to its end without faults.
fn done(slot: u8, op: FencedOpKind) -> Vec<FencedAction> {
    let mut actions = vec![start(slot, op)];
    actions.extend((0..STEPS_TO_FINISH).map(|_| step(slot, Fault::None)));
    actions
}

fn claim(id: ClaimIdChoice, fingerprint: u8) -> FencedOpKind {
    FencedOpKind::Claim { id, fingerprint }
}

const FRESH: FencedOpKind = FencedOpKind::Claim {
    id: ClaimIdChoice::Fresh,
    fingerprint: 0,
};

/// The newest token's completion with receipt 1.
const COMPLETE: FencedOpKind = FencedOpKind::Complete {
    token: 0,
    receipt: 1,
};

fn run(config: FencedConfig, parts: Vec<Vec<FencedAction>>) -> FencedSummary {
    check_fenced_program(&program(config, parts.concat()))
}

#[test]
fn a_claim_its_completion_and_a_duplicate_are_judged_clean() {
    let summary = run(
        PLAIN,
        vec![done(0, FRESH), done(1, COMPLETE), done(2, FRESH)],
    );
    assert_eq!(summary.grants, 1);
    assert_eq!(summary.duplicates_answered, 1);
}

#[test]
fn a_zombie_holders_complete_release_and_renew_are_refused_with_stale_claim() {
    // A's lease runs out, B takes the key over; A's token (index 1, the
    // older one) is refused everywhere and writes nothing.
    let summary = run(
        PLAIN,
        vec![
            done(0, FRESH),
            vec![PAST_LEASE_AND_TTL],
            done(1, FRESH),
            done(
                2,
                FencedOpKind::Complete {
                    token: 1,
                    receipt: 0,
                },
            ),
            done(2, FencedOpKind::Release { token: 1 }),
            done(2, FencedOpKind::Renew { token: 1 }),
            done(3, COMPLETE),
        ],
    );
    assert_eq!((summary.grants, summary.stale_refusals), (2, 3));
}

#[test]
fn a_release_after_ones_own_completion_is_stale_and_the_receipt_stays() {
    let summary = run(
        PLAIN,
        vec![
            done(0, FRESH),
            done(1, COMPLETE),
            done(2, FencedOpKind::Release { token: 0 }),
            done(3, FRESH),
        ],
    );
    assert_eq!(
        (summary.stale_refusals, summary.duplicates_answered),
        (1, 1)
    );
}

#[test]
fn a_lost_claim_append_is_resolved_by_claim_id_against_a_near_identical_id() {
    // A and B both guess the key is new: A's grant at sequence 0 is lost,
    // B's (whose id differs from A's in one byte) lands there in the same
    // millisecond; A reads the head and must not take B's claim for its own.
    let near = claim(ClaimIdChoice::NearCopyOf { claim: 0, byte: 15 }, 0);
    let mut a_resolves = vec![
        start(0, FRESH),
        start(1, near),
        step(0, Fault::Indeterminate { applied: false }),
        step(1, Fault::None),
    ];
    a_resolves.extend((0..STEPS_TO_FINISH).map(|_| step(0, Fault::None)));
    let summary = run(PLAIN, vec![a_resolves]);
    assert_eq!(summary.grants, 1);
}

#[test]
fn an_indeterminate_claim_append_that_landed_is_the_claimers_grant() {
    let summary = run(
        FLUSHING,
        vec![
            // The grant at sequence 0 lands, its answer is lost.
            vec![
                start(0, FRESH),
                step(0, Fault::Indeterminate { applied: true }),
            ],
            (0..STEPS_TO_FINISH).map(|_| step(0, Fault::None)).collect(),
            done(1, claim(ClaimIdChoice::CopyOf(0), 0)),
        ],
    );
    assert_eq!(summary.grants, 1);
}

#[test]
fn a_duplicate_with_another_fingerprint_gets_fingerprint_mismatch() {
    let summary = run(
        PLAIN,
        vec![
            done(0, claim(ClaimIdChoice::Fresh, 1)),
            done(1, claim(ClaimIdChoice::Fresh, 2)),
            done(2, COMPLETE),
            done(3, claim(ClaimIdChoice::Fresh, 2)),
            done(3, claim(ClaimIdChoice::Fresh, 0)),
        ],
    );
    assert_eq!(summary.fingerprint_mismatches, 2);
    assert_eq!(summary.duplicates_answered, 1);
}

#[test]
fn a_flipped_bit_is_an_error_for_the_key_and_the_sweep_goes_on() {
    // Key 0's receipt is damaged; key 1's expired claim is still swept.
    let other_key = FencedAction::Start {
        slot: 1,
        key: 1,
        op: FRESH,
    };
    let mut claim_other = vec![other_key];
    claim_other.extend((0..STEPS_TO_FINISH).map(|_| step(1, Fault::None)));
    let summary = run(
        PLAIN,
        vec![
            done(0, FRESH),
            done(0, COMPLETE),
            claim_other,
            vec![FencedAction::Corrupt {
                key: 0,
                sequence: 1,
                damage: Damage::BitFlip { byte: 40, bit: 3 },
            }],
            done(2, FencedOpKind::Lookup),
            vec![PAST_LEASE_AND_TTL],
            done(3, FencedOpKind::Sweep),
            done(2, FRESH),
        ],
    );
    assert_eq!(summary.corrupt_refusals, 2);
    assert_eq!(summary.expiries, 1);
}

#[test]
fn an_acknowledged_grant_survives_a_store_crash() {
    let summary = run(
        FLUSHING,
        vec![
            done(0, FRESH),
            vec![FencedAction::Crash],
            done(1, FRESH),
            done(2, COMPLETE),
        ],
    );
    assert_eq!((summary.crashes, summary.grants), (1, 1));
}

#[test]
fn an_unflushed_claim_dropped_by_a_crash_is_never_acknowledged() {
    // A's claim (its first call: the grant at sequence 0) is appended but
    // not yet flushed when the store crashes: its flush then fails, and B
    // may have the key.
    let summary = run(
        FLUSHING,
        vec![
            vec![start(0, FRESH), step(0, Fault::None)],
            vec![FencedAction::Crash],
            done(0, FRESH),
            done(1, FRESH),
        ],
    );
    assert_eq!((summary.crashes, summary.grants), (1, 1));
}

#[test]
fn a_sweep_ends_an_expired_claim_and_an_expired_receipt() {
    let summary = run(
        PLAIN,
        vec![
            done(0, FRESH),
            done(0, COMPLETE),
            vec![PAST_LEASE_AND_TTL],
            done(1, FencedOpKind::Sweep),
            done(2, FRESH),
            vec![PAST_LEASE_AND_TTL],
            done(1, FencedOpKind::Sweep),
            done(3, FencedOpKind::Renew { token: 0 }),
        ],
    );
    assert_eq!(
        (summary.expiries, summary.grants, summary.stale_refusals),
        (2, 2, 1)
    );
    // Each expiry went with everything below it (the claim and completion,
    // then the first expiry and the second claim), and the judge still read
    // the whole history.
    assert_eq!(summary.compacted_records, 4, "{summary:?}");
}

/// The key is claimed; then `op` is served a read that misses the claim's
/// record, then runs on without faults.
fn claimed_then_stale(op: FencedOpKind) -> Vec<Vec<FencedAction>> {
    vec![
        done(0, FRESH),
        vec![start(1, op), step(1, Fault::Stale { lag: 0 })],
        done(1, op),
    ]
}

#[test]
fn a_stale_read_never_refuses_the_holders_own_completion() {
    // The completion's first call is its append right after the token's
    // claim, which reads nothing: no stale snapshot can refuse it.
    let summary = run(PLAIN, claimed_then_stale(COMPLETE));
    assert_eq!(
        (summary.stale_refusals, summary.stale_reads_excused),
        (0, 0)
    );
}

#[test]
fn a_stale_read_never_refuses_the_holders_own_release_or_renewal() {
    for op in [
        FencedOpKind::Release { token: 0 },
        FencedOpKind::Renew { token: 0 },
    ] {
        let summary = run(PLAIN, claimed_then_stale(op));
        assert_eq!(
            (summary.stale_refusals, summary.stale_reads_excused),
            (0, 0),
            "{op:?}"
        );
    }
}

#[test]
fn a_lookup_served_a_stale_read_is_the_one_excused_weakness() {
    // The lookup answers Absent from a snapshot without the acknowledged
    // claim: not linearizable, and not knowable from the snapshot alone.
    let summary = run(PLAIN, claimed_then_stale(FencedOpKind::Lookup));
    assert_eq!(summary.stale_reads_excused, 1);
}
