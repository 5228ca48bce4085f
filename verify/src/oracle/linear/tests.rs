use super::*;
use atmostonce::ProcessingReceipt;

type Answer = Result<SpecAnswer, DurabilityError>;

fn claim(now_millis: u64) -> SpecOp {
    SpecOp::Claim { now_millis }
}

fn complete(receipt: &ProcessingReceipt, timestamp_millis: u64) -> SpecOp {
    SpecOp::Complete {
        receipt: receipt.clone(),
        timestamp_millis,
    }
}

fn receipt(bytes: &[u8]) -> ProcessingReceipt {
    ProcessingReceipt::new(bytes.to_vec())
}

fn decision(decision: DedupDecision) -> Answer {
    Ok(SpecAnswer::Decision(decision))
}

fn looked_up(decision: Option<DedupDecision>) -> Answer {
    Ok(SpecAnswer::Lookup(decision))
}

fn done() -> Answer {
    Ok(SpecAnswer::Done)
}

fn timed_out() -> Answer {
    Err(DurabilityError::StoreError("timeout".into()))
}

fn refused() -> Answer {
    Err(DurabilityError::DedupCollision { key: "k".into() })
}

/// The operation a search that fails cannot place; `None` when it passes.
fn blocked(ops: &[HistoryOp<'_>]) -> Option<usize> {
    match linearize(ops) {
        Linearization::NotLinearizable { blocked, .. } => Some(blocked),
        Linearization::Linearizable | Linearization::GaveUp => None,
    }
}

fn op<'a>(span: (u64, u64), op: &'a SpecOp, answer: &'a Answer) -> HistoryOp<'a> {
    HistoryOp::answered(op, span.0, span.1, answer)
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(linearize(&[]), Linearization::Linearizable);
}

#[test]
fn overlapping_claims_linearize_when_the_one_told_in_flight_answers_first() {
    let (c1, c2) = (claim(1), claim(2));
    let (granted, in_flight) = (
        decision(DedupDecision::Claimed),
        decision(DedupDecision::InFlight),
    );
    // The InFlight answer comes first, yet the grant may be placed before
    // it because the two overlap.
    let ops = [op((0, 10), &c1, &granted), op((1, 5), &c2, &in_flight)];
    assert_eq!(linearize(&ops), Linearization::Linearizable);
}

#[test]
fn two_granted_claims_without_a_release_between_are_rejected() {
    let (c1, c2) = (claim(1), claim(2));
    let granted = decision(DedupDecision::Claimed);
    let ops = [op((0, 10), &c1, &granted), op((20, 30), &c2, &granted)];
    assert_eq!(blocked(&ops), Some(1));
}

#[test]
fn real_time_order_is_respected() {
    // Had the lookup been concurrent with the claim it could go first and
    // see `None`; the claim answered before the lookup was invoked, so it
    // may not.
    let (c1, lookup) = (claim(1), SpecOp::Lookup);
    let (granted, nothing) = (decision(DedupDecision::Claimed), looked_up(None));
    let sequential = [op((0, 10), &c1, &granted), op((20, 30), &lookup, &nothing)];
    assert!(matches!(
        linearize(&sequential),
        Linearization::NotLinearizable {
            blocked: 1,
            state: SpecState::InFlight { .. },
            ..
        }
    ));
    let overlapping = [op((0, 10), &c1, &granted), op((5, 30), &lookup, &nothing)];
    assert_eq!(linearize(&overlapping), Linearization::Linearizable);
}

#[test]
fn a_non_linearizable_history_with_a_stale_completed_answer_is_rejected() {
    let r = receipt(b"r");
    let (c1, finish, lookup) = (claim(1), complete(&r, 2), SpecOp::Lookup);
    let (granted, ok, stale) = (
        decision(DedupDecision::Claimed),
        done(),
        looked_up(Some(DedupDecision::Completed(r.clone()))),
    );
    let expire = SpecOp::Expire;
    let ops = [
        op((0, 10), &c1, &granted),
        op((11, 20), &finish, &ok),
        op((21, 30), &expire, &ok),
        op((31, 40), &lookup, &stale),
    ];
    assert!(matches!(
        linearize(&ops),
        Linearization::NotLinearizable {
            blocked: 3,
            state: SpecState::Absent,
            ..
        }
    ));
    // The same answer while the entry is still there is fine.
    assert_eq!(linearize(&ops[..2]), Linearization::Linearizable);
    let before_expiry = [ops[0], ops[1], op((21, 30), &lookup, &stale)];
    assert_eq!(linearize(&before_expiry), Linearization::Linearizable);
}

#[test]
fn a_receipt_that_changes_without_expiry_is_rejected() {
    let (r1, r2) = (receipt(b"one"), receipt(b"two"));
    let (c1, finish, lookup) = (claim(1), complete(&r1, 2), SpecOp::Lookup);
    let (granted, ok) = (decision(DedupDecision::Claimed), done());
    let saw_one = looked_up(Some(DedupDecision::Completed(r1)));
    let saw_two = looked_up(Some(DedupDecision::Completed(r2)));
    let ops = [
        op((0, 10), &c1, &granted),
        op((11, 20), &finish, &ok),
        op((21, 30), &lookup, &saw_one),
        op((31, 40), &lookup, &saw_two),
    ];
    assert_eq!(blocked(&ops), Some(3));
}

#[test]
fn an_indeterminate_append_may_or_may_not_have_taken_effect() {
    let (c1, c2, lookup) = (claim(1), claim(2), SpecOp::Lookup);
    let failed = timed_out();
    let (in_flight, granted, saw_claim, nothing) = (
        decision(DedupDecision::InFlight),
        decision(DedupDecision::Claimed),
        in_flight_lookup(),
        looked_up(None),
    );
    // Someone saw the failed claim's record ...
    let took_effect = [op((0, 10), &c1, &failed), op((20, 30), &c2, &in_flight)];
    assert_eq!(linearize(&took_effect), Linearization::Linearizable);
    // ... or it never landed and another claim wins ...
    let did_not = [op((0, 10), &c1, &failed), op((20, 30), &c2, &granted)];
    assert_eq!(linearize(&did_not), Linearization::Linearizable);
    // ... but not both: nothing removed the record one lookup saw.
    let both = [
        op((0, 10), &c1, &failed),
        op((20, 30), &lookup, &saw_claim),
        op((40, 50), &lookup, &nothing),
    ];
    assert_eq!(blocked(&both), Some(2));
}

fn in_flight_lookup() -> Answer {
    looked_up(Some(DedupDecision::InFlight))
}

#[test]
fn a_never_answered_op_may_take_effect_late_or_never() {
    let (c1, c2, release, lookup) = (claim(1), claim(2), SpecOp::Release, SpecOp::Lookup);
    let granted = decision(DedupDecision::Claimed);
    let in_flight = in_flight_lookup();
    // The release (its process crashed) had not taken effect when the
    // lookup saw the claim, and had when the second claim was granted.
    let ops = [
        op((0, 10), &c1, &granted),
        HistoryOp::unanswered(&release, 12),
        op((15, 18), &lookup, &in_flight),
        op((20, 30), &c2, &granted),
    ];
    assert_eq!(linearize(&ops), Linearization::Linearizable);
    // ... or never: a lookup long after still sees the claim.
    let never = [ops[0], ops[1], op((100, 110), &lookup, &in_flight)];
    assert_eq!(linearize(&never), Linearization::Linearizable);
}

#[test]
fn a_never_answered_op_takes_no_effect_before_its_invocation() {
    let (c1, c2, release) = (claim(1), claim(2), SpecOp::Release);
    let granted = decision(DedupDecision::Claimed);
    let ops = [
        op((0, 10), &c1, &granted),
        op((20, 30), &c2, &granted),
        HistoryOp::unanswered(&release, 40),
    ];
    assert_eq!(blocked(&ops), Some(1));
}

#[test]
fn an_op_with_an_unknown_answer_may_or_may_not_take_effect_within_its_window() {
    let (c1, c2, release, lookup) = (claim(1), claim(2), SpecOp::Release, SpecOp::Lookup);
    let (granted, in_flight) = (decision(DedupDecision::Claimed), in_flight_lookup());
    let cut_off = HistoryOp {
        answered_at: Some(15),
        ..HistoryOp::unanswered(&release, 12)
    };
    let in_time = [
        op((0, 10), &c1, &granted),
        cut_off,
        op((20, 30), &c2, &granted),
    ];
    assert_eq!(linearize(&in_time), Linearization::Linearizable);
    let no_effect = [
        op((0, 10), &c1, &granted),
        cut_off,
        op((20, 30), &lookup, &in_flight),
    ];
    assert_eq!(linearize(&no_effect), Linearization::Linearizable);
    let too_late = [
        op((0, 10), &c1, &granted),
        HistoryOp {
            invoked_at: 35,
            answered_at: Some(40),
            ..cut_off
        },
        op((20, 30), &c2, &granted),
    ];
    assert_eq!(blocked(&too_late), Some(2));
}

#[test]
fn a_release_that_may_have_been_a_no_op_is_still_tried_where_it_takes_effect() {
    // One producer released (applied), another claimed, the first one's
    // retried release then tombstoned that claim, so its completion was
    // refused.
    let (claim_a, claim_b, release) = (claim(1), claim(2), SpecOp::Release);
    let finish = complete(&receipt(b"r"), 3);
    let (granted, ok, collision) = (decision(DedupDecision::Claimed), done(), refused());
    let ops = [
        op((48, 78), &claim_a, &granted),
        op((80, 118), &release, &ok),
        op((137, 182), &claim_b, &granted),
        op((140, 149), &release, &ok),
        op((187, 192), &finish, &collision),
    ];
    assert_eq!(linearize(&ops), Linearization::Linearizable);
}

#[test]
fn a_collision_refusal_is_admissible_only_on_a_shared_stream() {
    let lookup = SpecOp::Lookup;
    let collision = refused();
    let own = [op((0, 10), &lookup, &collision)];
    assert_eq!(blocked(&own), Some(0));
    let shared = [HistoryOp {
        stream_shared: true,
        ..own[0]
    }];
    assert_eq!(linearize(&shared), Linearization::Linearizable);
}

#[test]
fn an_expiry_takes_effect_only_once_the_entry_has_expired_at_the_sweeps_clock() {
    let (c1, expire, lookup) = (claim(1_000), SpecOp::Expire, SpecOp::Lookup);
    let (granted, ok, nothing) = (decision(DedupDecision::Claimed), done(), looked_up(None));
    let ttl_ms = 100;
    let swept = |now_millis| HistoryOp {
        expiry_clock: Some(ExpiryClock { now_millis, ttl_ms }),
        ..op((20, 30), &expire, &ok)
    };
    let grace = crate::oracle::expiry::CLOCK_SKEW_GRACE_MS;
    let late = [
        op((0, 10), &c1, &granted),
        swept(1_000 + ttl_ms + grace + 1),
        op((40, 50), &lookup, &nothing),
    ];
    assert_eq!(linearize(&late), Linearization::Linearizable);
    let early = [late[0], swept(1_000 + ttl_ms + grace), late[2]];
    assert_eq!(blocked(&early), Some(1));
    // An early expiry that failed took no effect: the claim is still there.
    let failed = timed_out();
    let failed_early = [
        late[0],
        HistoryOp {
            answer: Some(&failed),
            ..early[1]
        },
        op((40, 50), &lookup, &nothing),
    ];
    assert_eq!(blocked(&failed_early), Some(2));
}

#[test]
fn a_violation_names_operations_by_their_index_in_the_callers_order() {
    let (c1, c2, lookup) = (claim(1), claim(2), SpecOp::Lookup);
    let (granted, nothing) = (decision(DedupDecision::Claimed), looked_up(None));
    // Given out of order: the late granted claim (index 0) cannot be
    // placed, and the lookup overlapping it (index 1) is named with it.
    let ops = [
        op((20, 30), &c2, &granted),
        op((25, 40), &lookup, &nothing),
        op((0, 10), &c1, &granted),
    ];
    assert_eq!(
        linearize(&ops),
        Linearization::NotLinearizable {
            blocked: 0,
            concurrent: vec![1],
            state: SpecState::InFlight {
                timestamp_millis: 1
            },
        }
    );
}

#[test]
fn a_search_beyond_its_step_budget_gives_up_rather_than_pass() {
    // 2^24 subsets of overlapping indeterminate claims, each with two
    // states, before the final lookup, which no order explains.
    let claims: Vec<SpecOp> = (0..24).map(claim).collect();
    let failed = timed_out();
    let (lookup, phantom) = (
        SpecOp::Lookup,
        looked_up(Some(DedupDecision::Completed(receipt(b"r")))),
    );
    let mut ops: Vec<HistoryOp<'_>> = claims.iter().map(|c| op((0, 10), c, &failed)).collect();
    ops.push(op((20, 30), &lookup, &phantom));
    assert_eq!(linearize(&ops), Linearization::GaveUp);
}

#[test]
fn an_answer_before_its_invocation_is_reported_not_repaired() {
    let (c, answer) = (claim(1), decision(DedupDecision::Claimed));
    let history = [op((5, 4), &c, &answer)];
    assert_eq!(
        linearize_checked(&history, SpecState::Absent).map_err(|e| e.op),
        Err(Some(0))
    );
    assert_eq!(linearize(&history), Linearization::GaveUp);
}

/// A long history whose claims and releases overlap pairwise: every
/// configuration the search keeps (its memo and, at the end, its deepest)
/// holds a window of a few words, not the whole history's bits, so the
/// checker's memory follows the history's concurrency, not its length.
#[test]
fn a_long_history_is_searched_in_configurations_of_a_few_words() {
    let (c, release) = (claim(1), SpecOp::Release);
    let (granted, in_flight, ok) = (
        decision(DedupDecision::Claimed),
        decision(DedupDecision::InFlight),
        done(),
    );
    let rounds: u64 = 20_000;
    let mut ops = Vec::new();
    for round in 0..rounds {
        let t = round * 10;
        // A winner and a loser overlapping it, then the winner's release
        // overlapping the loser's answer.
        ops.push(op((t, t + 4), &c, &granted));
        ops.push(op((t + 1, t + 6), &c, &in_flight));
        ops.push(op((t + 5, t + 8), &release, &ok));
    }
    let mut search = Search::over(&ops).expect("every operation answers after its invocation");
    assert_eq!(
        search.run(SpecState::Absent),
        Ok(Linearization::Linearizable)
    );
    assert!(
        search.seen.len() as u64 >= rounds,
        "every round was explored"
    );
    let widest = search
        .seen
        .iter()
        .map(|(bits, _)| bits.held_words())
        .max()
        .unwrap_or(0);
    assert!(widest <= 2, "a configuration held {widest} words");
}
