use super::*;
use crate::oracle::linear::{Linearization, linearize_checked};

const NOW: u64 = 1_000;

fn params() -> FencedParams {
    FencedParams::default()
}

fn id(byte: u8) -> ClaimId {
    ClaimId([byte; 16])
}

fn token(byte: u8, fence: u64, lease_expires_millis: u64) -> Token {
    Token {
        claim_id: id(byte),
        fence,
        lease_expires_millis,
    }
}

fn receipt(bytes: &[u8]) -> ProcessingReceipt {
    ProcessingReceipt::new(bytes.to_vec())
}

fn claim(now_millis: u64) -> FencedOp {
    FencedOp::Claim {
        now_millis,
        fingerprint: None,
    }
}

fn held_by(byte: u8) -> FencedState {
    FencedState {
        current: Current::Claim {
            holder: Some(id(byte)),
            fence: 0,
            lease_expires_millis: NOW + DEFAULT_LEASE_MS,
            fingerprint: Some(b"fp".to_vec()),
        },
        next_sequence: 1,
        ..FencedState::default()
    }
}

fn admissible(state: &FencedState, op: &FencedOp, observed: FencedResponse) -> bool {
    matches!(
        state.judge(op, &observed, &params(), false),
        Judgement::Admissible(_)
    )
}

#[test]
fn a_claim_of_an_absent_key_is_granted_with_the_next_sequence_as_its_fence() {
    let granted = Ok(FencedAnswer::Granted(token(7, 0, NOW + DEFAULT_LEASE_MS)));
    assert!(admissible(&FencedState::default(), &claim(NOW), granted));
    let wrong_fence = Ok(FencedAnswer::Granted(token(7, 1, NOW + DEFAULT_LEASE_MS)));
    assert!(!admissible(
        &FencedState::default(),
        &claim(NOW),
        wrong_fence
    ));
    let zero_id = Ok(FencedAnswer::Granted(Token {
        claim_id: ClaimId::ZERO,
        fence: 0,
        lease_expires_millis: NOW + DEFAULT_LEASE_MS,
    }));
    assert!(!admissible(&FencedState::default(), &claim(NOW), zero_id));
}

#[test]
fn a_held_key_answers_in_flight_until_its_lease_plus_grace_has_passed() {
    let state = held_by(1);
    let lease_end = NOW + DEFAULT_LEASE_MS;
    let in_flight = Ok(FencedAnswer::InFlight {
        lease_expires_millis: lease_end,
    });
    let at_boundary = claim(lease_end + crate::oracle::expiry::CLOCK_SKEW_GRACE_MS);
    assert!(admissible(&state, &at_boundary, in_flight));
    let after = claim(lease_end + crate::oracle::expiry::CLOCK_SKEW_GRACE_MS + 1);
    let (next, answer) = state.apply(&after, &params(), Some(id(2)));
    assert!(matches!(answer, Ok(FencedAnswer::Granted(t)) if t.fence == 1));
    assert_eq!(next.next_sequence, 2);
}

#[test]
fn a_duplicate_with_another_fingerprint_is_refused_never_answered() {
    let state = held_by(1);
    let other = FencedOp::Claim {
        now_millis: NOW,
        fingerprint: Some(b"other".to_vec()),
    };
    assert!(admissible(
        &state,
        &other,
        Err(FencedError::FingerprintMismatch)
    ));
    let none = FencedOp::Claim {
        now_millis: NOW,
        fingerprint: None,
    };
    assert!(!admissible(
        &state,
        &none,
        Err(FencedError::FingerprintMismatch)
    ));
}

#[test]
fn a_stale_token_never_completes_and_is_refused_with_stale_claim() {
    let state = held_by(2);
    let zombie = FencedOp::Complete {
        token: token(1, 0, NOW),
        receipt: receipt(b"r"),
        now_millis: NOW,
    };
    assert!(!admissible(&state, &zombie, Ok(FencedAnswer::Done)));
    assert!(admissible(&state, &zombie, Err(FencedError::StaleClaim)));
}

#[test]
fn a_retried_completion_is_ok_and_another_receipt_collides() {
    let op = |bytes: &[u8]| FencedOp::Complete {
        token: token(1, 0, NOW),
        receipt: receipt(bytes),
        now_millis: NOW,
    };
    let (completed, answer) = held_by(1).apply(&op(b"r"), &params(), None);
    assert_eq!(answer, Ok(FencedAnswer::Done));
    assert_eq!(
        completed.apply(&op(b"r"), &params(), None),
        (completed.clone(), Ok(FencedAnswer::Done))
    );
    assert_eq!(
        completed.apply(&op(b"x"), &params(), None).1,
        Err(FencedError::Collision)
    );
}

#[test]
fn a_completion_retried_after_the_key_moved_on_may_be_ok_only_with_its_own_receipt() {
    let op = |bytes: &[u8]| FencedOp::Complete {
        token: token(1, 0, NOW),
        receipt: receipt(bytes),
        now_millis: NOW,
    };
    let (completed, _) = held_by(1).apply(&op(b"r"), &params(), None);
    // The receipt expires and the sweeper ends it: the key has moved on.
    let later = NOW + DEFAULT_RECEIPT_TTL_MS + 2 * crate::oracle::expiry::CLOCK_SKEW_GRACE_MS;
    let (expired, _) = completed.apply(&FencedOp::Expire { now_millis: later }, &params(), None);
    assert!(matches!(expired.current, Current::Release { .. }));
    assert!(admissible(&expired, &op(b"r"), Ok(FencedAnswer::Done)));
    assert!(admissible(
        &expired,
        &op(b"r"),
        Err(FencedError::StaleClaim)
    ));
    // Another receipt was never stored under this claim: StaleClaim, or the
    // collision its own completion would answer; never Ok.
    assert!(!admissible(&expired, &op(b"x"), Ok(FencedAnswer::Done)));
    assert!(admissible(
        &expired,
        &op(b"x"),
        Err(FencedError::StaleClaim)
    ));
    assert!(admissible(&expired, &op(b"x"), Err(FencedError::Collision)));
    // A claim that never completed gets neither.
    let other = FencedOp::Complete {
        token: token(2, 0, NOW),
        receipt: receipt(b"r"),
        now_millis: later,
    };
    assert!(!admissible(&expired, &other, Ok(FencedAnswer::Done)));
    assert!(!admissible(&expired, &other, Err(FencedError::Collision)));
}

#[test]
fn releasing_after_ones_own_completion_is_stale_and_the_receipt_stays() {
    let complete = FencedOp::Complete {
        token: token(1, 0, NOW),
        receipt: receipt(b"r"),
        now_millis: NOW,
    };
    let (completed, _) = held_by(1).apply(&complete, &params(), None);
    let release = FencedOp::Release {
        token: token(1, 0, NOW),
        now_millis: NOW,
    };
    assert_eq!(
        completed.apply(&release, &params(), None),
        (completed.clone(), Err(FencedError::StaleClaim))
    );
}

#[test]
fn a_renewal_keeps_the_fence_and_moves_the_lease() {
    let renew = FencedOp::Renew {
        token: token(1, 0, NOW),
        now_millis: NOW + 5,
    };
    let (next, answer) = held_by(1).apply(&renew, &params(), None);
    assert_eq!(
        answer,
        Ok(FencedAnswer::Renewed(token(
            1,
            0,
            NOW + 5 + DEFAULT_LEASE_MS
        )))
    );
    assert_eq!(next.next_sequence, 2);
}

#[test]
fn the_sweeper_may_expire_only_what_has_expired_at_its_clock() {
    let state = held_by(1);
    let early = FencedOp::Expire { now_millis: NOW };
    assert!(!admissible(&state, &early, Ok(FencedAnswer::Done)));
    let late = FencedOp::Expire {
        now_millis: u64::MAX,
    };
    assert!(admissible(&state, &late, Ok(FencedAnswer::Done)));
}

#[test]
fn an_unclassified_error_is_unexplained_never_judged() {
    let judgement = held_by(1).judge(
        &claim(NOW),
        &Err(FencedError::Unclassified),
        &params(),
        false,
    );
    assert!(matches!(judgement, Judgement::Unexplained { .. }));
}

#[test]
fn a_version_one_claim_is_held_by_no_token_for_one_lease() {
    let record = Record::V1Entry {
        key: "k".into(),
        receipt: None,
        timestamp_millis: NOW,
    };
    let state = FencedState::after(&record, 4, &params());
    assert_eq!(state.next_sequence, 5);
    let release = FencedOp::Release {
        token: token(1, 4, NOW),
        now_millis: NOW,
    };
    assert_eq!(
        state.apply(&release, &params(), None).1,
        Err(FencedError::StaleClaim)
    );
}

fn history<'a>(
    span: (u64, u64),
    op: &'a FencedOp,
    answer: &'a FencedResponse,
) -> FencedHistoryOp<'a> {
    FencedHistoryOp {
        op,
        invoked_at: span.0,
        answered_at: Some(span.1),
        answer: Some(answer),
        stream_shared: false,
        params: params(),
    }
}

#[test]
fn two_overlapping_claims_linearize_when_one_is_told_in_flight() {
    let (a, b) = (claim(NOW), claim(NOW));
    let granted = Ok(FencedAnswer::Granted(token(1, 0, NOW + DEFAULT_LEASE_MS)));
    let in_flight = Ok(FencedAnswer::InFlight {
        lease_expires_millis: NOW + DEFAULT_LEASE_MS,
    });
    let ops = [
        history((0, 10), &a, &granted),
        history((1, 5), &b, &in_flight),
    ];
    assert_eq!(
        linearize_checked(&ops, FencedState::default()),
        Ok(Linearization::Linearizable)
    );
}

#[test]
fn two_grants_with_the_same_fence_are_not_linearizable() {
    let (a, b) = (claim(NOW), claim(NOW));
    let first = Ok(FencedAnswer::Granted(token(1, 0, NOW + DEFAULT_LEASE_MS)));
    let second = Ok(FencedAnswer::Granted(token(2, 0, NOW + DEFAULT_LEASE_MS)));
    let ops = [history((0, 10), &a, &first), history((1, 5), &b, &second)];
    assert!(matches!(
        linearize_checked(&ops, FencedState::default()),
        Ok(Linearization::NotLinearizable { .. })
    ));
}

#[test]
fn a_zombie_completion_after_a_takeover_must_be_refused() {
    let lease_end = NOW + DEFAULT_LEASE_MS;
    let later = lease_end + crate::oracle::expiry::CLOCK_SKEW_GRACE_MS + 1;
    let (a, b) = (claim(NOW), claim(later));
    let zombie = FencedOp::Complete {
        token: token(1, 0, lease_end),
        receipt: receipt(b"r"),
        now_millis: later + 1,
    };
    let granted_a = Ok(FencedAnswer::Granted(token(1, 0, lease_end)));
    let granted_b = Ok(FencedAnswer::Granted(token(2, 1, later + DEFAULT_LEASE_MS)));
    let accepted = Ok(FencedAnswer::Done);
    let refused = Err(FencedError::StaleClaim);
    let run = |answer| {
        let ops = [
            history((0, 1), &a, &granted_a),
            history((2, 3), &b, &granted_b),
            history((4, 5), &zombie, answer),
        ];
        linearize_checked(&ops, FencedState::default())
    };
    assert!(matches!(
        run(&accepted),
        Ok(Linearization::NotLinearizable { blocked: 2, .. })
    ));
    assert_eq!(run(&refused), Ok(Linearization::Linearizable));
}

#[test]
fn an_indeterminate_claim_may_have_granted_a_claim_nobody_holds() {
    let (a, b) = (claim(NOW), claim(NOW + 1));
    let failed = Err(FencedError::Indeterminate);
    let in_flight = Ok(FencedAnswer::InFlight {
        lease_expires_millis: NOW + DEFAULT_LEASE_MS,
    });
    let ops = [
        history((0, 1), &a, &failed),
        history((2, 3), &b, &in_flight),
    ];
    assert_eq!(
        linearize_checked(&ops, FencedState::default()),
        Ok(Linearization::Linearizable)
    );
}
