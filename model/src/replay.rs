//! From counterexample to test: replays a model path against the real async
//! engine (`DedupCache` and `DedupSweeper` over the harness's fault table).
//!
//! Each producer and the sweeper get their own [`ScriptedStore`]: a caller
//! of the harness's one fault-injecting table ([`FaultTable`]) that lets a
//! call through only when the script says it is that caller's turn, and
//! has the table answer it as the model's step says (normally, or as an
//! indeterminate append, applied or not). The engine's futures are polled
//! by hand, one store call per model step, so the interleaving is exactly
//! the model's. A store crash is the table's: every stream drops back to
//! its durable prefix, and a caller whose appends were dropped hears of it
//! at its next flush.
//!
//! The replay checks, step by step, that the engine ends each operation with
//! the very result the model's step computed; any difference is an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{DedupCache, DedupSweeper, DurabilityError};
use atmostonce_verify::served::{ServeRequest, Served};
use atmostonce_verify::table::{self, CallFault, FaultTable};
use parking_lot::{Mutex, MutexGuard};

use crate::action::{Action, Call, ProducerAction};
use crate::check::replay_actions;
use crate::config::{TICK_MS, TTL_MS};
use crate::fresh::receipt_bytes;
use crate::model::DedupModel;
use crate::narration::Narration;
use crate::state::{Phase, State};

/// The shared side of the scripted stores.
struct Control {
    table: FaultTable,
    /// Each actor's caller id with the table: a restarted producer opens a
    /// new session, so it gets a new id.
    callers: Vec<u32>,
    /// The next unused caller id.
    next_caller: u32,
    /// The one call allowed next: which actor, answered how.
    turn: Option<(usize, Call)>,
}

/// A store that performs an actor's calls only on its turn.
pub struct ScriptedCaller {
    control: Arc<Mutex<Control>>,
    actor: usize,
}

/// A [`ScriptedCaller`] as the engine's store.
pub type ScriptedStore = Served<ScriptedCaller>;

fn lock(control: &Mutex<Control>) -> MutexGuard<'_, Control> {
    control.lock()
}

impl ServeRequest for ScriptedCaller {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        std::future::poll_fn(move |_| {
            let mut control = lock(&self.control);
            match control.turn {
                Some((actor, call)) if actor == self.actor => {
                    control.turn = None;
                    // The model injects its faults into appends only.
                    let fault = match (&request, call) {
                        (StoreRequest::Append { .. }, Call::AppendFailsApplied) => {
                            CallFault::ErrorApplied
                        }
                        (StoreRequest::Append { .. }, Call::AppendFailsNotApplied) => {
                            CallFault::ErrorLost
                        }
                        _ => CallFault::None,
                    };
                    let caller = table::Call::new(control.callers[actor], None);
                    Poll::Ready(Ok(control.table.serve_with(caller, &request, fault)))
                }
                _ => Poll::Pending,
            }
        })
    }

    /// Like the model's store: appends are durable only once flushed, so
    /// the engine flushes after appending.
    fn acknowledged_appends_are_durable(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "the replay's scripted store"
    }
}

type Running = Pin<Box<dyn Future<Output = String>>>;

/// One operation the engine ended during a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineAnswer {
    /// The 1-based step that ended it.
    pub step: usize,
    /// Who called it: `producer N` or `sweeper`.
    pub caller: String,
    /// The operation, e.g. `claim_or_get(k0, 0)`.
    pub operation: String,
    /// The engine's result, as `Debug` text.
    pub result: String,
}

/// What a replay saw.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// Every operation the engine ended, in order.
    pub answers: Vec<EngineAnswer>,
    /// The model's state after the last step.
    pub final_state: State,
}

impl ReplayReport {
    /// How many `claim_or_get` calls the engine answered `Claimed`.
    #[must_use]
    pub fn claims_granted(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| a.operation.starts_with("claim_or_get") && a.result == "Ok(Claimed)")
            .count()
    }
}

/// Replays `actions` (a path of `model`) against `DedupCache` over
/// the scripted fault table. Fails at the first step where the engine does something
/// the model did not (another store call, or another result).
pub fn replay(model: &DedupModel, actions: &[Action]) -> Result<ReplayReport, String> {
    let states = replay_actions(model, actions)?;
    let producers = model.config().producers;
    let sweeper_id = producers;
    let actors = u32::try_from(producers + 1).map_err(|_| "too many producers".to_owned())?;
    let mut table = FaultTable::new();
    table.record_calls(false);
    let control = Arc::new(Mutex::new(Control {
        table,
        callers: (0..actors).collect(),
        next_caller: actors,
        turn: None,
    }));
    let cache_for = |actor: usize| -> Result<DedupCache, String> {
        let store = Arc::new(Served(ScriptedCaller {
            control: Arc::clone(&control),
            actor,
        }));
        DedupCache::with_options(store, model.protocol().namespace(), model.options())
            .map_err(|e| e.to_string())
    };
    let caches: Vec<DedupCache> = (0..producers).map(cache_for).collect::<Result<_, _>>()?;
    let sweeper = DedupSweeper::new(
        cache_for(sweeper_id)?,
        Duration::from_millis(TTL_MS),
        Duration::from_millis(TICK_MS),
    );
    let mut running: Vec<Option<(String, Running)>> = (0..=producers).map(|_| None).collect();
    let mut answers = Vec::new();

    for (index, action) in actions.iter().enumerate() {
        let step = index + 1;
        let before = &states[index];
        let now = u64::from(before.tick) * TICK_MS;
        let (caller, call) = match *action {
            Action::Tick => continue,
            Action::StoreCrash => {
                lock(&control).table.crash();
                continue;
            }
            Action::Compact { stream, below } => {
                let name = model
                    .stream_names()
                    .get(usize::from(stream))
                    .ok_or_else(|| format!("step {step}: no stream {stream}"))?;
                let request = StoreRequest::Compact {
                    stream: name.clone(),
                    below_seq: u64::from(below),
                };
                lock(&control).table.serve(&request);
                continue;
            }
            Action::Corrupt {
                stream,
                sequence,
                damage,
            } => {
                let index = usize::from(stream);
                let (name, corruption) = model
                    .stream_names()
                    .get(index)
                    .zip(model.corruption(before, index, u64::from(sequence), damage))
                    .ok_or_else(|| format!("step {step}: {action} is not enabled"))?;
                lock(&control)
                    .table
                    .corrupt(name, u64::from(sequence), &corruption);
                continue;
            }
            Action::Producer(p, ProducerAction::Crash) => {
                // A crash at an await point: the future is dropped, and the
                // restarted producer opens a new session with the store.
                running[usize::from(p)] = None;
                let mut control = lock(&control);
                control.callers[usize::from(p)] = control.next_caller;
                control.next_caller += 1;
                continue;
            }
            Action::Producer(_, ProducerAction::Deliver | ProducerAction::FailDelivery) => continue,
            Action::Producer(p, ProducerAction::Call(call)) => (usize::from(p), call),
            Action::Sweeper(call) => (sweeper_id, call),
            // The seed API has no `clock-skew`; a fenced path is not
            // replayed here.
            Action::SkewedSweep(_) => {
                return Err(format!(
                    "step {step}: a skewed sweep is fenced only; the replay drives the seed API"
                ));
            }
        };
        if running[caller].is_none() {
            running[caller] = Some(if caller == sweeper_id {
                let sweeper = sweeper.clone();
                (
                    format!("sweep_once({now})"),
                    Box::pin(async move { format!("{:?}", sweeper.sweep_once(now).await) })
                        as Running,
                )
            } else {
                start(model, &caches[caller], before, caller, now)?
            });
        }
        let mut words = Narration::spoken();
        model
            .perform(before, *action, &mut words)
            .ok_or_else(|| format!("step {step}: {action} is not enabled"))?;
        lock(&control).turn = Some((caller, call));
        let Some((operation, future)) = running[caller].as_mut() else {
            return Err(format!("step {step}: nothing runs for caller {caller}"));
        };
        let polled = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        if lock(&control).turn.take().is_some() {
            return Err(format!(
                "step {step} ({action}): the engine made no store call where the model made one"
            ));
        }
        let who = if caller == sweeper_id {
            "sweeper".to_owned()
        } else {
            format!("producer {caller}")
        };
        match (polled, words.result) {
            (Poll::Pending, None) => {}
            (Poll::Ready(result), Some(expected)) => {
                if result != expected {
                    return Err(format!(
                        "step {step} ({action}): {operation} returned {result} in the engine but {expected} in the model"
                    ));
                }
                answers.push(EngineAnswer {
                    step,
                    caller: who,
                    operation: operation.clone(),
                    result,
                });
                running[caller] = None;
            }
            (Poll::Ready(result), None) => {
                return Err(format!(
                    "step {step} ({action}): {operation} ended with {result} in the engine but goes on in the model"
                ));
            }
            (Poll::Pending, Some(expected)) => {
                return Err(format!(
                    "step {step} ({action}): {operation} ended with {expected} in the model but goes on in the engine"
                ));
            }
        }
    }
    let final_state = states
        .last()
        .cloned()
        .unwrap_or_else(|| model.initial_state());
    Ok(ReplayReport {
        answers,
        final_state,
    })
}

/// Starts, on the real cache, the operation the model's producer starts next.
fn start(
    model: &DedupModel,
    cache: &DedupCache,
    before: &State,
    p: usize,
    now: u64,
) -> Result<(String, Running), String> {
    let producer = &before.producers[p];
    let key = model.key_name(producer.key).to_owned();
    let cache = cache.clone();
    Ok(match &producer.phase {
        Phase::Idle | Phase::Deferred => (
            format!("claim_or_get({key}, {now})"),
            Box::pin(async move { format!("{:?}", cache.claim_or_get(&key, now).await) }),
        ),
        Phase::Completing { receipt, op, .. } => {
            let receipt = receipt_bytes(&key, *receipt);
            let at = op.rule().timestamp_millis;
            (
                format!(
                    "complete_receipt_at({key}, {}, {at})",
                    String::from_utf8_lossy(receipt.as_bytes())
                ),
                Box::pin(async move {
                    format!("{:?}", cache.complete_receipt_at(&key, &receipt, at).await)
                }),
            )
        }
        Phase::Releasing { op, .. } => {
            let at = op.rule().timestamp_millis;
            (
                format!("release_claim_at({key}, {at})"),
                Box::pin(async move { format!("{:?}", cache.release_claim_at(&key, at).await) }),
            )
        }
        other => {
            return Err(format!(
                "producer {p} makes a store call in phase {other:?}"
            ));
        }
    })
}
