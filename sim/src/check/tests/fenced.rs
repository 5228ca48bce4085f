//! The fenced A1 rules for deliveries no grant authorised, on histories
//! written by hand (what a user's handler under `crate::madsim::harness`
//! can record).

use crate::check::{CheckOptions, Invariant, Verdict, check};
use crate::history::{History, NO_CLAIM, OpId, Process};
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
