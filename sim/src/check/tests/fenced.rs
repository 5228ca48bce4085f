//! The fenced A1 rules for deliveries no grant authorised, on histories
//! written by hand (what a user's handler under `crate::madsim::harness`
//! can record).

use crate::check::{CheckOptions, Invariant, Verdict, check};
use crate::history::{History, NO_CLAIM, OpId, Process};
use atmostonce_verify::catalogue::KnownCause;
use atmostonce_verify::oracle::fenced::{FencedAnswer, FencedOp, FencedParams, Token};
use atmostonce_verify::oracle::record::{CLAIM_ID_BYTES, ClaimId};

const LEASE_MS: u64 = 1_000;

/// A fenced history of one key ("k0").
struct Fenced {
    history: History,
}

impl Fenced {
    fn new() -> Fenced {
        let mut history = History::new(vec!["k0".into()], vec!["ns:0".into()]);
        history.fenced = Some(FencedParams {
            lease_ms: LEASE_MS,
            receipt_ttl_ms: LEASE_MS,
        });
        history.dedup_window_us = Some(LEASE_MS * 1000);
        Fenced { history }
    }

    fn claim(&mut self, process: u16, span_us: (u64, u64), answer: FencedAnswer) -> OpId {
        let op = FencedOp::Claim {
            now_millis: span_us.0 / 1000,
            fingerprint: None,
        };
        let id = self
            .history
            .invoke_fenced(Process::Producer(process), 0, 0, op, None, span_us.0);
        self.history.respond_fenced(id, Ok(Ok(answer)), span_us.1);
        id
    }

    /// The sweeper expires the key's record at `now_millis`, writing at
    /// `sequence`.
    fn expire(&mut self, span_us: (u64, u64), now_millis: u64, sequence: u64) -> OpId {
        let op = FencedOp::Expire { now_millis };
        let id = self
            .history
            .invoke_fenced(Process::Sweeper, 0, 0, op, None, span_us.0);
        self.history
            .respond_fenced(id, Ok(Ok(FencedAnswer::Done)), span_us.1);
        self.history.applied(id, ("ns:0".into(), sequence));
        id
    }

    fn deliver(&mut self, process: u16, claim: OpId, at_us: u64) {
        self.history.event(super::delivery(process, claim, at_us));
    }

    fn verdict(&self) -> Verdict {
        check(&self.history, CheckOptions::default())
    }
}

fn granted(holder: u8) -> FencedAnswer {
    FencedAnswer::Granted(Token {
        claim_id: ClaimId([holder; CLAIM_ID_BYTES]),
        fence: 0,
        lease_expires_millis: LEASE_MS,
    })
}

fn in_flight() -> FencedAnswer {
    FencedAnswer::InFlight {
        lease_expires_millis: LEASE_MS,
    }
}

/// p0 is granted the key and delivers once.
fn one_holder() -> Fenced {
    let mut script = Fenced::new();
    let claim = script.claim(0, (0, 10), granted(1));
    script.deliver(0, claim, 15);
    script
}

#[test]
fn one_delivery_under_a_grant_passes() {
    let verdict = one_holder().verdict();
    assert!(verdict.passed(), "{verdict:?}");
}

#[test]
fn a_delivery_after_a_claim_answered_in_flight_violates_a1() {
    let mut script = one_holder();
    let refused = script.claim(1, (20, 30), in_flight());
    script.deliver(1, refused, 40);
    let verdict = script.verdict();
    assert_eq!(verdict.invariants(), vec![Invariant::A1], "{verdict:?}");
    let violation = verdict.first().expect("a violation");
    assert_eq!(violation.ops, vec![refused]);
    assert!(
        violation.message.contains("granted nothing"),
        "{violation:?}"
    );
}

#[test]
fn a_delivery_with_no_claim_violates_a1() {
    let mut script = one_holder();
    script.deliver(1, NO_CLAIM, 40);
    let verdict = script.verdict();
    assert_eq!(verdict.invariants(), vec![Invariant::A1], "{verdict:?}");
    let violation = verdict.first().expect("a violation");
    assert!(violation.message.contains("never claimed"), "{violation:?}");
}

#[test]
fn two_deliveries_under_one_grant_violate_a1() {
    let mut script = one_holder();
    script.deliver(0, 0, 20);
    let verdict = script.verdict();
    assert_eq!(verdict.invariants(), vec![Invariant::A1], "{verdict:?}");
    assert!(
        verdict
            .first()
            .is_some_and(|v| v.message.contains("delivered twice")),
        "{verdict:?}"
    );
}

/// p1 is granted the key at `at_ms` as the second holder and
/// delivers too; when `at_ms` is past p0's lease, the sweeper expires p0's
/// claim first.
fn second_holder_at(at_ms: u64) -> (Fenced, OpId) {
    let mut script = one_holder();
    let at_us = at_ms * 1000 + 20;
    if at_ms > LEASE_MS {
        script.expire((at_us - 10, at_us - 5), at_ms, 1);
    }
    let second = script.claim(
        1,
        (at_us, at_us + 10),
        FencedAnswer::Granted(Token {
            claim_id: ClaimId([2; CLAIM_ID_BYTES]),
            // The claim's record's sequence: after p0's claim, and the
            // sweeper's tombstone when there is one.
            fence: if at_ms > LEASE_MS { 2 } else { 1 },
            lease_expires_millis: at_ms + LEASE_MS,
        }),
    );
    script.deliver(1, second, at_us + 20);
    (script, second)
}

#[test]
fn a_second_delivery_while_the_first_lease_holds_violates_a1_and_is_not_excused() {
    let (script, second) = second_holder_at(0);
    let verdict = script.verdict();
    let a1 = verdict
        .violations
        .iter()
        .find(|violation| violation.invariant == Invariant::A1)
        .unwrap_or_else(|| panic!("no A1 violation: {verdict:?}"));
    assert_eq!(a1.ops, vec![0, second]);
    assert!(a1.message.contains("still held"), "{a1:?}");
    assert!(verdict.excused.is_empty(), "{verdict:?}");
}

#[test]
fn a_second_delivery_after_the_first_lease_ended_is_excused_by_that_cause() {
    // Past the lease and the oracle's clock-skew grace (1 s).
    let (script, second) = second_holder_at(LEASE_MS + 1_500);
    let verdict = script.verdict();
    assert!(verdict.passed(), "{verdict:?}");
    let excused: Vec<_> = verdict
        .excused
        .iter()
        .map(|excused| {
            (
                excused.cause,
                excused.violation.invariant,
                excused.violation.ops.clone(),
            )
        })
        .collect();
    assert_eq!(
        excused,
        vec![(
            KnownCause::LeaseEndedBeforeCompletion,
            Invariant::A1,
            vec![0, second]
        )]
    );
    assert!(verdict.violations.is_empty(), "{verdict:?}");
    assert_eq!(crate::check::a1_excused(&verdict), 1);
}
