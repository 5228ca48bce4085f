//! The fenced API's producers, sweeper and probe (`--api fenced`), the same
//! code for the simulation and live mode.
//!
//! A producer claims (half the time with the message's fingerprint, now and
//! then with another message's), delivers on `Granted` to the fenced
//! downstream ([`super::Sink`]) with the token's fence, sometimes works long
//! and renews first, completes with the token, or releases it when the
//! delivery failed or the downstream refused the fence. After a completion
//! it sometimes sends a duplicate notification (a late release, or a
//! completion with other receipt bytes), which the engine must refuse. The
//! sweeper is `FencedSweeper`; the probe looks every key up.

use std::future::Future;
use std::sync::Arc;

use atmostonce::fenced::{Claim, ClaimToken, FencedCache, FencedSweeper};
use atmostonce::{DurabilityError, ProcessingReceipt};
use atmostonce_verify::oracle::fenced::{FencedAnswer, FencedError, FencedOp, FencedResponse};

use super::actors::{Who, in_operation};
use super::{Delivered, Env, World, fenced_cache};
use crate::config::Draw;
use crate::history::{
    Event, KeyId, OpId, Process, claim_answer, classify, echo_receipt_for, lookup_answer,
    receipt_for, token_of,
};
use crate::workload::{
    BACKOFF_MS, DELIVERY_MS, FINGERPRINT_PM, LONG_WORK_MS, MAX_CLAIM_ATTEMPTS, MAX_FINISH_ATTEMPTS,
    MISMATCH_PM, RENEW_PM,
};

/// Runs one fenced engine call as a history operation (the workload's
/// producers and a user's handler, `crate::madsim::handler`, alike).
pub(crate) async fn traced<E, T, F>(
    world: &World<E>,
    who: Who,
    key: KeyId,
    op: FencedOp,
    claim: Option<OpId>,
    call: F,
    answer: fn(&T) -> FencedResponse,
) -> (OpId, Result<T, DurabilityError>)
where
    E: Env,
    F: Future<Output = Result<T, DurabilityError>>,
{
    let id =
        world
            .history()
            .invoke_fenced(who.process, who.incarnation, key, op, claim, world.now_us());
    let result = in_operation(world, who.process, id, call).await;
    let observed = result.as_ref().map(answer).map_err(Clone::clone);
    world.history().respond_fenced(id, observed, world.now_us());
    (id, result)
}

pub(crate) fn done(_: &()) -> FencedResponse {
    Ok(FencedAnswer::Done)
}

pub(crate) fn renewed(token: &ClaimToken) -> FencedResponse {
    Ok(FencedAnswer::Renewed(token_of(token)))
}

/// A message's fingerprint: the key's own message, or another one.
fn fingerprint(name: &str, other: Option<u64>) -> Vec<u8> {
    match other {
        None => format!("fp|{name}").into_bytes(),
        Some(nonce) => format!("fp|{name}|other{nonce}").into_bytes(),
    }
}

/// What a producer holds after its claim attempts.
struct Grant {
    claim: OpId,
    token: ClaimToken,
}

/// One fenced producer incarnation: process messages until the budget is
/// spent.
pub(crate) async fn producer<E: Env>(world: Arc<World<E>>, index: u16) {
    let Some((who, cache)) = begin_producer(&world, index) else {
        return;
    };
    let process = who.process;
    let config = world.config.clone();
    let mut rng = world.env.rng();
    while world.has_budget(index) {
        world.env.sleep_ms(rng.range(0, config.think_max_ms)).await;
        let (key, fresh) = world.next_key(&mut rng);
        let name = world.keys[usize::from(key)].clone();
        if rng.chance(config.lookup_pm) {
            world.spend(index);
            lookup(&world, who, &cache, key, &name).await;
        }
        let print = rng.chance(FINGERPRINT_PM).then(|| {
            let other = rng.chance(MISMATCH_PM).then(|| rng.next_u64());
            fingerprint(&name, other)
        });
        let Some(Grant { claim, mut token }) =
            claim(&world, who, &cache, key, &name, print, &mut rng).await
        else {
            continue;
        };
        world.set_holding(index, true);
        world
            .env
            .sleep_ms(rng.range(DELIVERY_MS.0, DELIVERY_MS.1))
            .await;
        if rng.chance(RENEW_PM) {
            world
                .env
                .sleep_ms(rng.range(LONG_WORK_MS.0, LONG_WORK_MS.1))
                .await;
            world.spend(index);
            let now_millis = world.clock_ms(process);
            let op = FencedOp::Renew {
                token: token_of(&token),
                now_millis,
            };
            let call = cache.renew(&token, now_millis);
            if let (_, Ok(renewal)) = traced(&world, who, key, op, Some(claim), call, renewed).await
            {
                token = renewal;
            }
        }
        let failed = rng.chance(config.delivery_failure_pm);
        // A failed delivery never reaches the downstream; a delivered one
        // is applied only if its fence is not stale there.
        let delivered =
            !failed && world.deliver_fenced(key, token.fence(), claim) == Delivered::Applied;
        let at_us = world.now_us();
        world.history().event(Event::Delivery {
            process,
            key,
            claim,
            ok: delivered,
            at_us,
        });
        let receipt = ProcessingReceipt::new(receipt_for(&name, process, claim));
        let completed = finish(
            &world,
            who,
            &cache,
            key,
            claim,
            &token,
            delivered.then_some(&receipt),
            &mut rng,
        )
        .await;
        world.set_holding(index, false);
        // A fresh key is never seen again, not even as a duplicate.
        if completed && !fresh && rng.chance(config.echo_pm) {
            echo(&world, who, &cache, key, &name, claim, &token, &mut rng).await;
        }
    }
    world.finish(index);
}

/// A fenced producer incarnation begins (the workload's, or one running
/// a user's handler): who it is, and its cache; `None` when the cache
/// cannot be built, and then the producer is finished.
pub(crate) fn begin_producer<E: Env>(
    world: &Arc<World<E>>,
    index: u16,
) -> Option<(Who, FencedCache)> {
    let process = Process::Producer(index);
    let incarnation = world.begin_incarnation(index);
    let who = Who {
        process,
        incarnation,
    };
    let Ok(cache) = fenced_cache(world, process) else {
        world.finish(index);
        return None;
    };
    Some((who, cache))
}

/// Claims `key` until granted, completed, refused for its fingerprint, or
/// out of attempts.
async fn claim<E: Env>(
    world: &World<E>,
    who: Who,
    cache: &FencedCache,
    key: KeyId,
    name: &str,
    print: Option<Vec<u8>>,
    rng: &mut impl Draw,
) -> Option<Grant> {
    let index = who.process_index();
    for attempt in 0..MAX_CLAIM_ATTEMPTS {
        if attempt > 0 && !world.has_budget(index) {
            break;
        }
        world.spend(index);
        let now_millis = world.clock_ms(who.process);
        let op = FencedOp::Claim {
            now_millis,
            fingerprint: print.clone(),
        };
        let (id, result) = match &print {
            Some(print) => {
                let call = cache.claim_with_fingerprint(name, print, now_millis);
                traced(world, who, key, op, None, call, claim_answer).await
            }
            None => {
                let call = cache.claim(name, now_millis);
                traced(world, who, key, op, None, call, claim_answer).await
            }
        };
        match result {
            Ok(Claim::Granted(token)) => return Some(Grant { claim: id, token }),
            Err(DurabilityError::FingerprintMismatch { .. }) => return None,
            Ok(Claim::Completed(_)) => return None,
            _ => {
                world
                    .env
                    .sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1))
                    .await;
            }
        }
    }
    None
}

/// Completes the claim with `receipt` (or releases it when there is none),
/// retrying only what may not have taken effect. True when a completion
/// was acknowledged.
#[allow(clippy::too_many_arguments)]
async fn finish<E: Env>(
    world: &World<E>,
    who: Who,
    cache: &FencedCache,
    key: KeyId,
    claim: OpId,
    token: &ClaimToken,
    receipt: Option<&ProcessingReceipt>,
    rng: &mut impl Draw,
) -> bool {
    for _ in 0..MAX_FINISH_ATTEMPTS {
        world.spend(who.process_index());
        let now_millis = world.clock_ms(who.process);
        let result = match receipt {
            Some(receipt) => {
                let op = FencedOp::Complete {
                    token: token_of(token),
                    receipt: receipt.clone(),
                    now_millis,
                };
                let call = cache.complete(token, receipt, now_millis);
                traced(world, who, key, op, Some(claim), call, done).await.1
            }
            None => {
                let op = FencedOp::Release {
                    token: token_of(token),
                    now_millis,
                };
                let call = cache.release(token, now_millis);
                traced(world, who, key, op, Some(claim), call, done).await.1
            }
        };
        match result.as_ref().map_err(classify) {
            Ok(()) => return receipt.is_some(),
            Err(FencedError::Indeterminate) => {
                world
                    .env
                    .sleep_ms(rng.range(BACKOFF_MS.0, BACKOFF_MS.1))
                    .await;
            }
            Err(_) => return false,
        }
    }
    false
}

/// A duplicate notification for a message just completed: a late release
/// (refused with `StaleClaim`, the receipt stays) or a completion with
/// other receipt bytes (refused with `DedupCollision`).
#[allow(clippy::too_many_arguments)]
async fn echo<E: Env>(
    world: &World<E>,
    who: Who,
    cache: &FencedCache,
    key: KeyId,
    name: &str,
    claim: OpId,
    token: &ClaimToken,
    rng: &mut impl Draw,
) {
    world.spend(who.process_index());
    let now_millis = world.clock_ms(who.process);
    // The answers are only recorded: the checker judges them.
    if rng.chance(500) {
        let op = FencedOp::Release {
            token: token_of(token),
            now_millis,
        };
        let call = cache.release(token, now_millis);
        let _ = traced(world, who, key, op, Some(claim), call, done).await;
    } else {
        let other = ProcessingReceipt::new(echo_receipt_for(name, who.process, claim));
        let op = FencedOp::Complete {
            token: token_of(token),
            receipt: other.clone(),
            now_millis,
        };
        let call = cache.complete(token, &other, now_millis);
        let _ = traced(world, who, key, op, Some(claim), call, done).await;
    }
}

async fn lookup<E: Env>(world: &World<E>, who: Who, cache: &FencedCache, key: KeyId, name: &str) {
    let now_millis = world.clock_ms(who.process);
    let op = FencedOp::Lookup { now_millis };
    // The answer is only recorded: a lookup steers nothing here.
    let _ = traced(
        world,
        who,
        key,
        op,
        None,
        cache.lookup(name, now_millis),
        lookup_answer,
    )
    .await;
}

/// The fenced sweeper: one pass every interval until the run stops. Its
/// releases are the history's expiries, attributed by the store.
pub(crate) async fn sweeper<E: Env>(world: Arc<World<E>>) {
    let Ok(cache) = fenced_cache(&world, Process::Sweeper) else {
        return;
    };
    let sweeper = FencedSweeper::new(&cache);
    let interval_ms = world.config.sweep_interval_ms;
    while !world.stopped() {
        world.env.sleep_ms(interval_ms).await;
        let now_millis = world.clock_ms(Process::Sweeper);
        world.begin_sweep(now_millis);
        // A failed scan or flush is normal under faults; the expiries it
        // made are in the history either way.
        let _ = sweeper.sweep_once(now_millis).await;
    }
}

/// The probe after the quiet phase: looks every key up (A2).
pub(crate) async fn probe<E: Env>(world: &Arc<World<E>>) -> Result<(), String> {
    let probe =
        fenced_cache(world, Process::Probe).map_err(|error| format!("probe cache: {error}"))?;
    let who = Who {
        process: Process::Probe,
        incarnation: 0,
    };
    let in_use = world.keys_in_use();
    for (index, name) in world.keys.clone().iter().enumerate().take(in_use) {
        let key = KeyId::try_from(index).map_err(|_| "too many keys".to_owned())?;
        lookup(world, who, &probe, key, name).await;
    }
    Ok(())
}
