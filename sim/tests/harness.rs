//! `atmostonce_sim::harness`, a user's handler under the simulator
//! (madsim build only: `cargo sim-test`). The first handler is the
//! README's ("Gate your own consumer in CI"), word for word.
#![cfg(madsim)]

use atmostonce::{ProcessingReceipt, fenced::Claim};
use atmostonce_sim::harness::{Handler, HandlerCtx, HandlerFuture, Invariant, Sweep};

struct Charge;

impl Handler for Charge {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now = ctx.now_millis();
            if let Ok(Claim::Granted(token)) = ctx.claim(now).await {
                ctx.sleep_ms(20).await; // your payment API's call
                ctx.effect(); // ... which charged the customer
                let receipt = ProcessingReceipt::new(b"ch_123".to_vec());
                let _ = ctx.complete(&token, &receipt, ctx.now_millis()).await;
            }
        })
    }
}

/// Charges without claiming the key.
struct NeverClaims;

impl Handler for NeverClaims {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            ctx.sleep_ms(20).await;
            ctx.effect();
        })
    }
}

/// Charges twice under one grant (a retry of the charge itself).
struct ChargesTwice;

impl Handler for ChargesTwice {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now = ctx.now_millis();
            if let Ok(Claim::Granted(token)) = ctx.claim(now).await {
                ctx.effect();
                ctx.effect();
                let receipt = ProcessingReceipt::new(b"ch_1".to_vec());
                let _ = ctx.complete(&token, &receipt, ctx.now_millis()).await;
            }
        })
    }
}

/// Completes, then claims again and checks the receipt comes back as it
/// was stored (the harness tags receipts with their key in the store).
struct ReadsItsReceipt;

impl Handler for ReadsItsReceipt {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            let receipt = ProcessingReceipt::new(format!("receipt of {key}").into_bytes());
            let now = ctx.now_millis();
            match ctx.claim(now).await {
                Ok(Claim::Granted(token)) => {
                    ctx.effect();
                    let _ = ctx.complete(&token, &receipt, ctx.now_millis()).await;
                }
                Ok(Claim::Completed(stored)) => assert_eq!(stored, receipt),
                _ => {}
            }
        })
    }
}

fn quick(handler: impl Handler) -> Sweep {
    Sweep::new(handler)
        .seeds(0..40)
        .jobs(2)
        .shrink_runs(0)
        .out_dir(std::env::temp_dir().join("atmostonce-sim-harness-tests"))
}

#[test]
fn the_readme_handler_passes_with_every_fault_on() {
    let report = quick(Charge)
        .faults("all,pause")
        .run()
        .expect("valid settings");
    report.assert_passed();
    assert_eq!(report.summary.seeds, 40);
}

#[test]
fn an_effect_without_a_claim_fails_a1() {
    let report = quick(NeverClaims)
        .faults("none")
        .run()
        .expect("valid settings");
    let failure = report.failure.as_ref().expect("caught");
    assert_eq!(failure.invariants(), vec![Invariant::A1], "{report}");
    assert!(failure.report.contains("never claimed it"), "{report}");
    assert_eq!(report.summary.failures, 40, "{report}");
}

#[test]
fn two_effects_under_one_grant_fail_a1() {
    let report = quick(ChargesTwice)
        .faults("none")
        .run()
        .expect("valid settings");
    let failure = report.failure.as_ref().expect("caught");
    assert_eq!(failure.invariants(), vec![Invariant::A1], "{report}");
    assert!(failure.report.contains("delivered twice"), "{report}");
}

#[test]
fn a_handler_reads_back_its_own_receipt_bytes() {
    // A mismatch would panic inside the simulation: an internal error.
    let report = quick(ReadsItsReceipt)
        .faults("none")
        .run()
        .expect("valid settings");
    report.assert_passed();
}

#[test]
fn settings_that_cannot_run_are_errors_naming_the_setting() {
    let error = quick(Charge).producers(0).run().expect_err("no producers");
    assert!(error.to_string().contains("producers must be"), "{error}");
    let error = quick(Charge)
        .faults("typhoon")
        .run()
        .expect_err("no such fault");
    assert!(error.to_string().contains("typhoon"), "{error}");
}
