mod fenced;

use super::*;
use crate::history::receipt_for;
use crate::history::{Event, FaultEvent, OpId, Process};
use atmostonce::{DedupDecision, DurabilityError, ProcessingReceipt};
use atmostonce_verify::catalogue::KnownCause;
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

/// A successful delivery of key 0 by producer `process` under `claim`.
fn delivery(process: u16, claim: OpId, at_us: u64) -> Event {
    Event::Delivery {
        process: Process::Producer(process),
        key: 0,
        claim,
        ok: true,
        at_us,
    }
}

/// A history of one key ("k0") written by hand, one op at a time.
struct Script {
    history: History,
}

impl Script {
    fn new() -> Script {
        Script {
            history: History::new(vec!["k0".into()], vec!["ns:0".into()]),
        }
    }

    fn op(
        &mut self,
        process: Process,
        op: SpecOp,
        span_us: (u64, u64),
        result: Result<SpecAnswer, DurabilityError>,
    ) -> OpId {
        let id = self.history.invoke(process, 0, 0, op, None, span_us.0);
        self.history.respond(id, result, span_us.1);
        id
    }

    fn claim(&mut self, process: u16, span_us: (u64, u64), decision: DedupDecision) -> OpId {
        let id = self.op(
            Process::Producer(process),
            SpecOp::Claim {
                now_millis: span_us.0 / 1000,
            },
            span_us,
            Ok(SpecAnswer::Decision(decision)),
        );
        if self.history.ops[id as usize].granted() {
            self.history.applied(id, ("ns:0".into(), u64::from(id)));
        }
        id
    }

    fn complete(&mut self, process: u16, claim: OpId, span_us: (u64, u64)) -> OpId {
        let receipt = self.receipt(process, claim);
        let id = self.history.invoke(
            Process::Producer(process),
            0,
            0,
            SpecOp::Complete {
                receipt,
                timestamp_millis: span_us.0 / 1000,
            },
            Some(claim),
            span_us.0,
        );
        self.history.respond(id, Ok(SpecAnswer::Done), span_us.1);
        self.history.applied(id, ("ns:0".into(), u64::from(id)));
        id
    }

    fn receipt(&self, process: u16, claim: OpId) -> ProcessingReceipt {
        ProcessingReceipt::new(receipt_for("k0", Process::Producer(process), claim))
    }

    fn lookup(&mut self, span_us: (u64, u64), answer: Option<DedupDecision>) -> OpId {
        self.op(
            Process::Producer(9),
            SpecOp::Lookup,
            span_us,
            Ok(SpecAnswer::Lookup(answer)),
        )
    }

    fn expire(&mut self, span_us: (u64, u64)) -> OpId {
        let id = self.op(
            Process::Sweeper,
            SpecOp::Expire,
            span_us,
            Ok(SpecAnswer::Done),
        );
        self.history.applied(id, ("ns:0".into(), u64::from(id)));
        id
    }

    fn deliver(&mut self, process: u16, claim: OpId, at_us: u64) {
        self.history.event(delivery(process, claim, at_us));
    }

    fn verdict(&self) -> Verdict {
        check(&self.history, CheckOptions::default())
    }

    fn strict_verdict(&self) -> Verdict {
        check(&self.history, CheckOptions { strict_reads: true })
    }
}

#[test]
fn a_claim_completed_and_then_answered_from_its_receipt_passes() {
    let mut script = Script::new();
    let claim = script.claim(0, (0, 10), DedupDecision::Claimed);
    script.deliver(0, claim, 12);
    script.complete(0, claim, (15, 20));
    let receipt = script.receipt(0, claim);
    script.claim(1, (30, 40), DedupDecision::Completed(receipt.clone()));
    script.lookup((50, 60), Some(DedupDecision::Completed(receipt)));
    let verdict = script.verdict();
    assert!(verdict.passed(), "{verdict:?}");
}

#[test]
fn two_grants_with_no_terminal_between_violate_one_winner() {
    let mut script = Script::new();
    script.claim(0, (0, 10), DedupDecision::Claimed);
    script.claim(1, (20, 30), DedupDecision::Claimed);
    let verdict = script.verdict();
    assert!(verdict.invariants().contains(&Invariant::S1), "{verdict:?}");
    assert!(verdict.invariants().contains(&Invariant::S7), "{verdict:?}");
}

#[test]
fn two_grants_separated_by_an_expiry_pass() {
    let mut script = Script::new();
    script.claim(0, (0, 10), DedupDecision::Claimed);
    script.expire((15, 18));
    script.claim(1, (20, 30), DedupDecision::Claimed);
    assert!(script.verdict().passed());
}

#[test]
fn a_receipt_nobody_stored_is_a_phantom() {
    let mut script = Script::new();
    let claim = script.claim(0, (0, 10), DedupDecision::Claimed);
    let never_stored = script.receipt(0, claim);
    script.lookup((20, 30), Some(DedupDecision::Completed(never_stored)));
    assert!(script.verdict().invariants().contains(&Invariant::S3));
}

#[test]
fn a_receipt_of_another_key_violates_collision_safety() {
    let mut script = Script::new();
    let foreign = ProcessingReceipt::new(receipt_for("k9", Process::Producer(0), 0));
    script.lookup((20, 30), Some(DedupDecision::Completed(foreign)));
    assert!(script.verdict().invariants().contains(&Invariant::S6));
}

#[test]
fn an_acknowledged_receipt_that_vanishes_violates_s4_and_one_replaced_violates_s2() {
    let mut vanished = Script::new();
    let claim = vanished.claim(0, (0, 10), DedupDecision::Claimed);
    vanished.complete(0, claim, (15, 20));
    vanished.lookup((30, 40), None);
    assert!(vanished.verdict().invariants().contains(&Invariant::S4));

    let mut replaced = Script::new();
    let first = replaced.claim(0, (0, 10), DedupDecision::Claimed);
    replaced.complete(0, first, (15, 20));
    let other = replaced.receipt(1, first);
    replaced.history.invoke(
        Process::Producer(1),
        0,
        0,
        SpecOp::Complete {
            receipt: other.clone(),
            timestamp_millis: 0,
        },
        None,
        1,
    );
    replaced.lookup((30, 40), Some(DedupDecision::Completed(other)));
    assert!(replaced.verdict().invariants().contains(&Invariant::S2));
}

#[test]
fn a_stale_lookup_is_exempt_counted_and_reported_under_strict_reads() {
    let mut script = Script::new();
    let claim = script.claim(0, (0, 10), DedupDecision::Claimed);
    script.complete(0, claim, (15, 20));
    let stale = script.lookup((30, 40), Some(DedupDecision::InFlight));
    script.history.flag_stale(stale);
    let verdict = script.verdict();
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.notes.stale_answers, 1);
    assert_eq!(verdict.notes.strict_s7_keys, vec![0]);
    assert!(
        script
            .strict_verdict()
            .invariants()
            .contains(&Invariant::S7)
    );
}

#[test]
fn a_stale_read_never_excuses_a_grant() {
    let mut script = Script::new();
    script.claim(0, (0, 10), DedupDecision::Claimed);
    let second = script.claim(1, (20, 30), DedupDecision::Claimed);
    script.history.flag_stale(second);
    assert!(script.verdict().invariants().contains(&Invariant::S1));
}

#[test]
fn a_second_delivery_while_the_first_holder_is_still_processing_violates_a1() {
    let mut script = Script::new();
    let first = script.claim(0, (0, 10), DedupDecision::Claimed);
    script.expire((20, 25));
    let second = script.claim(1, (30, 40), DedupDecision::Claimed);
    script.deliver(1, second, 45);
    script.deliver(0, first, 50);
    script.complete(0, first, (60, 70));
    let verdict = script.verdict();
    assert_eq!(verdict.invariants(), vec![Invariant::A1], "{verdict:?}");
}

#[test]
fn a_second_delivery_after_the_first_holder_crashed_is_excused_and_counted() {
    let mut script = Script::new();
    let first = script.claim(0, (0, 10), DedupDecision::Claimed);
    script.deliver(0, first, 12);
    script.history.event(Event::Fault {
        at_us: 13,
        fault: FaultEvent::ProducerCrash(Process::Producer(0)),
    });
    script.expire((20, 25));
    let second = script.claim(1, (30, 40), DedupDecision::Claimed);
    script.deliver(1, second, 45);
    let verdict = script.verdict();
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(
        verdict
            .excused
            .iter()
            .map(|excused| (excused.cause, excused.violation.invariant))
            .collect::<Vec<_>>(),
        vec![(KnownCause::HolderCrashedAfterDelivery, Invariant::A1)]
    );
}

#[test]
fn a_key_still_in_flight_after_the_quiet_phase_violates_progress() {
    let mut script = Script::new();
    script.claim(0, (0, 10), DedupDecision::Claimed);
    script.history.event(Event::Fault {
        at_us: 20,
        fault: FaultEvent::QuietPhase,
    });
    script.op(
        Process::Probe,
        SpecOp::Lookup,
        (100, 110),
        Ok(SpecAnswer::Lookup(Some(DedupDecision::InFlight))),
    );
    assert_eq!(script.verdict().invariants(), vec![Invariant::A2]);
}

#[test]
fn a_grant_that_answers_late_may_precede_an_expiry_and_another_grant() {
    // A paused holder's claim lands early and answers late; meanwhile it
    // expires and another claim is granted.
    let mut script = Script::new();
    script.claim(0, (0, 5_000), DedupDecision::Claimed);
    script.expire((2_000, 2_010));
    script.claim(1, (3_000, 3_010), DedupDecision::Claimed);
    let verdict = script.verdict();
    assert!(
        !verdict.invariants().contains(&Invariant::S1),
        "{verdict:?}"
    );
    assert!(
        !verdict.invariants().contains(&Invariant::S7),
        "{verdict:?}"
    );
}

#[test]
fn a_redelivery_inside_the_dedup_window_violates_a1_even_after_an_expiry() {
    let mut script = Script::new();
    script.history.dedup_window_us = Some(1_000_000);
    let first = script.claim(0, (0, 10), DedupDecision::Claimed);
    script.deliver(0, first, 12);
    script.complete(0, first, (15, 20));
    script.expire((200_000, 200_010));
    let second = script.claim(1, (300_000, 300_010), DedupDecision::Claimed);
    script.deliver(1, second, 300_020);
    assert_eq!(script.verdict().invariants(), vec![Invariant::A1]);
    // The same redelivery after the window is a new window: fine.
    script.history.dedup_window_us = Some(100_000);
    assert!(script.verdict().passed());
}

#[test]
fn an_operation_on_a_key_the_history_does_not_have_is_an_internal_error_not_a_pass() {
    let mut history = History::new(vec!["k0".into()], vec!["ns:0".into()]);
    let op = history.invoke(
        Process::Producer(0),
        0,
        7,
        SpecOp::Claim { now_millis: 1 },
        None,
        10,
    );
    history.respond(op, Ok(SpecAnswer::Decision(DedupDecision::Claimed)), 20);
    let verdict = check(&history, CheckOptions::default());
    assert_eq!(
        verdict.invariants(),
        vec![Invariant::Internal],
        "{verdict:?}"
    );
}
