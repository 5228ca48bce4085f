//! The fake payment API and the two handlers (madsim build only).

use atmostonce::ProcessingReceipt;
use atmostonce::fenced::{Claim, ClaimToken};
use atmostonce_sim::harness::{Handler, HandlerCtx, HandlerFuture};

/// How long the payment API takes to answer, in milliseconds.
const PAYMENT_LATENCY_MS: (u64, u64) = (5, 80);

/// Per mille of charges the payment API declines (nothing is charged).
const DECLINE_PM: u32 = 100;

/// How long [`ChargesAfterTimeout`] waits for a holder before it gives up
/// on it: far below the simulator's shortest lease (2 s), so a holder that
/// is merely slow still holds the key when the handler charges.
const STUCK_TIMEOUT_MS: u64 = 300;

/// Completions tried before the claim is left to expire: a few retries
/// ride out the store's indeterminate errors.
const COMPLETE_ATTEMPTS: u32 = 4;

/// Back-off between completion attempts, in milliseconds.
const BACKOFF_MS: (u64, u64) = (5, 50);

/// The fake payment API: charges the message's customer, after a latency,
/// or declines. A charge that went through is the side effect at most once
/// is about, so it is reported to the simulator ([`HandlerCtx::effect`]).
/// Returns the charge's id, or `None` when declined.
pub async fn charge(ctx: &mut HandlerCtx) -> Option<String> {
    let latency_ms = ctx.random_range(PAYMENT_LATENCY_MS.0, PAYMENT_LATENCY_MS.1);
    ctx.sleep_ms(latency_ms).await;
    if ctx.chance(DECLINE_PM) {
        return None;
    }
    ctx.effect();
    Some(format!("ch_{:016x}", ctx.random_range(0, u64::MAX)))
}

/// Charges under `token` and stores the charge's id as the receipt (or
/// gives the claim up when the charge was declined).
async fn charge_and_complete(ctx: &mut HandlerCtx, token: &ClaimToken) {
    let Some(charge_id) = charge(ctx).await else {
        // Nothing was charged: let the next delivery of the message try.
        let now_millis = ctx.now_millis();
        let _ = ctx.release(token, now_millis).await;
        return;
    };
    let receipt = ProcessingReceipt::new(charge_id.into_bytes());
    for _ in 0..COMPLETE_ATTEMPTS {
        let now_millis = ctx.now_millis();
        match ctx.complete(token, &receipt, now_millis).await {
            // An indeterminate error may not have stored the receipt: the
            // same completion again is safe (the same receipt is `Ok`).
            Err(error) if error.is_indeterminate() => {
                let backoff_ms = ctx.random_range(BACKOFF_MS.0, BACKOFF_MS.1);
                ctx.sleep_ms(backoff_ms).await;
            }
            // Stored, or the claim is no longer ours (`StaleClaim`: the
            // lease ran out and someone took over). Either way the charge
            // is done and must not be made again.
            _ => return,
        }
    }
}

/// The correct handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Correct;

impl Handler for Correct {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now_millis = ctx.now_millis();
            // Anything but a grant: another producer holds the key (it is
            // charging), or the customer was charged already (answer with
            // the receipt), or the claim failed (nothing claimed; the
            // broker redelivers the message). No charge in any of them.
            if let Ok(Claim::Granted(token)) = ctx.claim(now_millis).await {
                charge_and_complete(ctx, &token).await;
            }
        })
    }
}

/// The subtly wrong handler: charges on `InFlight` after a timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChargesAfterTimeout;

impl Handler for ChargesAfterTimeout {
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now_millis = ctx.now_millis();
            match ctx.claim(now_millis).await {
                Ok(Claim::Granted(token)) => charge_and_complete(ctx, &token).await,
                Ok(Claim::InFlight { .. }) => {
                    ctx.sleep_ms(STUCK_TIMEOUT_MS).await;
                    let now_millis = ctx.now_millis();
                    match ctx.claim(now_millis).await {
                        Ok(Claim::Granted(token)) => charge_and_complete(ctx, &token).await,
                        // The mistake: "still in flight after the timeout,
                        // so the holder must be stuck": it charges without
                        // holding the key.
                        Ok(Claim::InFlight { .. }) => {
                            let _ = charge(ctx).await;
                        }
                        Ok(_) | Err(_) => {}
                    }
                }
                Ok(_) | Err(_) => {}
            }
        })
    }
}
