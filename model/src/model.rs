//! [`DedupModel`]: the stateright model. Producers and the sweeper run the
//! engine's own operation state machines; the model chooses how their store
//! calls interleave and which faults strike.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use atmostonce::core::{
    ClaimOp, CompleteOp, DedupDecision, Operation, Protocol, ReleaseOp, Step, StoreReply,
    StoreRequest, SweepOp,
};
use atmostonce::{DedupOptions, DedupRecord, DurabilityError, ProcessingReceipt, key_hash_bits};
use atmostonce_verify::oracle::{Judgement, SpecAnswer, SpecOp, SpecResponse, SpecState};

use crate::config::{Config, Fault, TICK_MS, TTL_MS};
use crate::fresh::{Fresh, MAX_RECEIPT_NUMBER, receipt_bytes};
use crate::hashed::{Hashed, Internable};
use crate::memo;
use crate::properties::Discovered;
use crate::state::{Budget, Grant, Invariant, KeyGhost, Outcome, Phase, Producer, State, Sweeper};
use crate::store::{ModelStore, RecordKind, RecordSummary, Session};

/// The namespace of the model's cache.
pub const NAMESPACE: &str = "model";

/// Hash bits of the collision configuration: with one bit, keys are easy
/// to find that share a stream.
const COLLISION_HASH_BITS: u8 = 1;

/// How a store call of an actor is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// As the store does it.
    Normal,
    /// The call is an append; it is applied but answered with an error.
    AppendFailsApplied,
    /// The call is an append; it is answered with an error, not applied.
    AppendFailsNotApplied,
}

/// What a producer does in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProducerAction {
    /// Its next store call (starting a claim first when it has none).
    Call(Call),
    /// It delivers the message it holds the claim for.
    Deliver,
    /// Its delivery fails; it starts releasing the claim.
    FailDelivery,
    /// It crashes and restarts with no memory.
    Crash,
}

/// One step of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Producer `i` acts.
    Producer(u8, ProducerAction),
    /// The sweeper's next store call (starting a pass first when idle).
    Sweeper(Call),
    /// The clock advances one tick.
    Tick,
    /// The store crashes and restarts, dropping unflushed appends.
    StoreCrash,
}

/// The model of one configuration.
#[derive(Debug, Clone)]
pub struct DedupModel {
    /// Tells this model's memoized answers from another's (see
    /// [`crate::memo`]); clones share it.
    id: u64,
    config: Config,
    options: DedupOptions,
    protocol: Protocol,
    key_names: Vec<String>,
    key_stream: Vec<usize>,
    stream_names: Vec<String>,
    /// The operations a step can start, built once.
    fresh: Arc<Fresh>,
    /// In a search, the properties that already have a discovery.
    discovered: Option<Arc<Discovered>>,
}

/// Collects the words of a step when a person will read them; costs
/// nothing while the checker explores.
pub(crate) struct Narration {
    lines: Option<Vec<String>>,
    /// The `Debug` text of the result of an operation that ended in the
    /// step, if one did (the replay compares it with the engine's).
    pub(crate) result: Option<String>,
}

impl Narration {
    pub(crate) fn silent() -> Narration {
        Narration {
            lines: None,
            result: None,
        }
    }
    pub(crate) fn spoken() -> Narration {
        Narration {
            lines: Some(Vec::new()),
            result: None,
        }
    }
    /// True when nobody will read the words.
    pub(crate) fn is_silent(&self) -> bool {
        self.lines.is_none()
    }
    fn say(&mut self, words: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.lines {
            lines.push(words());
        }
    }
    fn ended<T: fmt::Debug>(&mut self, result: &Result<T, DurabilityError>) {
        if self.lines.is_some() {
            self.result = Some(format!("{result:?}"));
        }
    }
    pub(crate) fn into_text(self) -> String {
        self.lines.unwrap_or_default().join("; ")
    }
}

/// What one store call of an operation gave: the fed operation, its
/// result if it ended, and the sequence it appended at if it appended.
type Called<O> = (
    Hashed<O>,
    Option<Result<<O as Operation>::Output, DurabilityError>>,
    Made,
);

/// The kind of store call a step made, as far as S7 needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    /// A read: an operation ending here answers from what it read.
    Read,
    /// An append at `seq`, applied or not.
    Append { seq: u64, applied: bool },
    /// A flush or a scan.
    Other,
}

/// Who performs a store call.
#[derive(Clone, Copy)]
enum Actor {
    Producer(usize),
    Sweeper,
}

impl Actor {
    /// Whether the actor is the sweeper (what an answer depends on: the
    /// store tells expiries from releases by who appends them).
    fn kind(self) -> memo::ActorKind {
        match self {
            Actor::Producer(_) => memo::ActorKind::Producer,
            Actor::Sweeper => memo::ActorKind::Sweeper,
        }
    }
}

/// What one store call of an operation gives, as far as it depends on the
/// operation, the store, the call and the caller's session only (see
/// [`DedupModel::answer`]).
#[derive(Debug, Clone)]
pub(crate) struct Answer<O: Operation + 'static> {
    /// The operation, fed the store's reply.
    op: Hashed<O>,
    /// Its result, if it ended.
    result: Option<Result<O::Output, DurabilityError>>,
    /// The kind of call it made.
    made: Made,
    /// What the call did to the store.
    effect: Effect,
}

/// What a store call did to the store.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// Nothing (a read, a scan, an append that did not land).
    Nothing,
    /// An append landed.
    Appended {
        index: usize,
        expected_seq: u64,
        summary: RecordSummary,
        store: Hashed<ModelStore>,
    },
    /// A flush made every append durable.
    Flushed { store: Hashed<ModelStore> },
    /// A flush failed: a crash had dropped the caller's appends.
    FlushFailed,
}

/// An engine operation the model drives: its values are interned and its
/// answers memoized per thread.
pub(crate) trait Machine: Operation + Internable {
    /// Runs `f` on this thread's memo of this operation's answers.
    fn with_memo<R>(f: impl FnOnce(&mut memo::Memo<Option<Answer<Self>>>) -> R) -> R;
}

crate::memo::memoized!(ClaimOp, CompleteOp, ReleaseOp, SweepOp);

impl DedupModel {
    /// The model of `config` (which must be valid).
    pub fn new(config: Config) -> Result<DedupModel, String> {
        config.validate()?;
        let collide = config.faults.contains(Fault::Collision);
        let options = DedupOptions {
            hash_bits: if collide { COLLISION_HASH_BITS } else { 64 },
            ..DedupOptions::default()
        };
        // The model's store is not durable on acknowledgement, so the
        // engine flushes after appending, as DedupCache does on such stores.
        let protocol = Protocol::new(NAMESPACE, options, true).map_err(|e| e.to_string())?;
        debug_assert!(protocol.io().flush_appends);
        let key_names = key_names(config.keys, collide);
        let mut stream_names: Vec<String> = key_names
            .iter()
            .map(|k| protocol.stream_key_for(k))
            .collect();
        stream_names.sort();
        stream_names.dedup();
        let key_stream = key_names
            .iter()
            .map(|k| {
                let name = protocol.stream_key_for(k);
                stream_names.iter().position(|s| *s == name).unwrap_or(0)
            })
            .collect();
        let fresh = Arc::new(Fresh::new(&protocol, &key_names, config.bounds.max_tick));
        Ok(DedupModel {
            id: memo::new_model_id(),
            config,
            options,
            protocol,
            fresh,
            key_names,
            key_stream,
            stream_names,
            discovered: None,
        })
    }

    /// This model for one exhaustive search: its properties report only
    /// their first discovery (see [`Discovered`]). The Explorer and
    /// single-state checks use the model itself, whose properties are
    /// evaluated in full everywhere.
    pub(crate) fn for_search(&self) -> DedupModel {
        DedupModel {
            discovered: Some(Arc::default()),
            ..self.clone()
        }
    }

    pub(crate) fn discovered(&self) -> Option<&Discovered> {
        self.discovered.as_deref()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The protocol (namespace, hashing) the operations are built with.
    #[must_use]
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The cache options (hash bits) the model's caches use.
    #[must_use]
    pub fn options(&self) -> DedupOptions {
        self.options
    }

    /// The idempotency key of index `key`.
    #[must_use]
    pub fn key_name(&self, key: u8) -> &str {
        &self.key_names[usize::from(key)]
    }

    /// The names of the keys.
    #[must_use]
    pub fn key_names(&self) -> &[String] {
        &self.key_names
    }

    /// The names of the streams, in the store's order.
    #[must_use]
    pub fn stream_names(&self) -> &[String] {
        &self.stream_names
    }

    /// The stream index of key `key`.
    #[must_use]
    pub fn stream_of(&self, key: u8) -> usize {
        self.key_stream[usize::from(key)]
    }

    fn key_index(&self, name: &str) -> Option<u8> {
        self.key_names
            .iter()
            .position(|k| k == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    fn stream_index(&self, name: &str) -> Option<usize> {
        self.stream_names.iter().position(|s| s == name)
    }

    /// Key `key`'s receipt number `number`.
    fn receipt(&self, key: u8, number: u8) -> ProcessingReceipt {
        self.fresh
            .receipt(key, number)
            .cloned()
            .unwrap_or_else(|| receipt_bytes(self.key_name(key), number))
    }

    /// Parses a receipt the model made: `(key index, number)`.
    #[must_use]
    pub fn parse_receipt(&self, receipt: &[u8]) -> Option<(u8, u8)> {
        let text = std::str::from_utf8(receipt).ok()?;
        let (key, number) = text.rsplit_once('#')?;
        Some((self.key_index(key)?, number.parse().ok()?))
    }

    /// The initial state.
    #[must_use]
    pub fn initial_state(&self) -> State {
        State {
            tick: 0,
            store: Hashed::new(ModelStore::new(self.stream_names.len())),
            sweeper: Sweeper {
                op: None,
                session: Session::default(),
            },
            producers: vec![
                Producer {
                    key: 0,
                    phase: Phase::Idle,
                    session: Session::default(),
                    outcomes: 0,
                };
                self.config.producers
            ],
            keys: [KeyGhost::default(); crate::config::MAX_KEYS],
            budget: Budget {
                crashes: self.config.budget(Fault::Crash),
                store_crashes: self.config.budget(Fault::StoreCrash),
                indeterminate: self.config.budget(Fault::Indeterminate),
                delivery_failures: self.config.budget(Fault::DeliveryFailure),
            },
            violations: 0,
        }
    }

    /// The actions enabled in `state` (every other one is a no-op).
    pub fn enabled_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let faults_left = state.budget.indeterminate > 0;
        for (index, producer) in state.producers.iter().enumerate() {
            let Ok(i) = u8::try_from(index) else { continue };
            let act = |a| Action::Producer(i, a);
            match &producer.phase {
                Phase::Done(_) => continue,
                Phase::Delivering { .. } => {
                    actions.push(act(ProducerAction::Deliver));
                    if state.budget.delivery_failures > 0 {
                        actions.push(act(ProducerAction::FailDelivery));
                    }
                }
                phase => {
                    actions.push(act(ProducerAction::Call(Call::Normal)));
                    if faults_left && phase_name(phase) == Some("appending") {
                        // `perform` refuses "applied" when it would conflict.
                        actions.push(act(ProducerAction::Call(Call::AppendFailsApplied)));
                        actions.push(act(ProducerAction::Call(Call::AppendFailsNotApplied)));
                    }
                }
            }
            if state.budget.crashes > 0 && producer.phase.is_busy() {
                actions.push(act(ProducerAction::Crash));
            }
        }
        match &state.sweeper.op {
            Some(_) => {
                actions.push(Action::Sweeper(Call::Normal));
                if faults_left {
                    // Refused by `perform` unless the next call is an append.
                    actions.push(Action::Sweeper(Call::AppendFailsApplied));
                    actions.push(Action::Sweeper(Call::AppendFailsNotApplied));
                }
            }
            // A pass that finds nothing expired changes nothing: start one
            // only when some key's latest entry has expired.
            None if self.something_expired(state) => actions.push(Action::Sweeper(Call::Normal)),
            None => {}
        }
        if self.may_tick(state) {
            actions.push(Action::Tick);
        }
        if state.budget.store_crashes > 0 && state.store.has_unflushed() {
            actions.push(Action::StoreCrash);
        }
    }

    /// The clock may advance unless it reaches its bound or, under A1's
    /// timing assumption, the next tick would expire a claim that a live
    /// producer is acquiring or holds ("processing time + clock skew < TTL").
    fn may_tick(&self, state: &State) -> bool {
        if state.tick >= self.config.bounds.max_tick {
            return false;
        }
        if !self.config.timing_assumption() {
            return true;
        }
        let next = state.tick + 1;
        !state
            .producers
            .iter()
            .filter_map(|p| p.phase.live_claim_stamp())
            .any(|stamp| Config::expired_at(stamp, next))
    }

    /// True when some stream's latest record is active and expired now.
    fn something_expired(&self, state: &State) -> bool {
        state.store.streams.iter().any(|meta| {
            meta.records.last().is_some_and(|r| {
                matches!(r.kind, RecordKind::Claim | RecordKind::Complete)
                    && Config::expired_at(u64::from(r.tick) * TICK_MS, state.tick)
            })
        })
    }

    fn now_ms(state: &State) -> u64 {
        u64::from(state.tick) * TICK_MS
    }

    /// Performs `action` on `state`: the next state, or `None` when the
    /// action is not enabled.
    pub(crate) fn perform(
        &self,
        state: &State,
        action: Action,
        words: &mut Narration,
    ) -> Option<State> {
        let mut next = state.clone();
        match action {
            Action::Tick => {
                if !self.may_tick(state) {
                    return None;
                }
                next.tick += 1;
                words.say(|| {
                    format!(
                        "the clock advances to tick {} ({} ms)",
                        next.tick,
                        Self::now_ms(&next)
                    )
                });
            }
            Action::StoreCrash => {
                if next.budget.store_crashes == 0 || !next.store.has_unflushed() {
                    return None;
                }
                next.budget.store_crashes -= 1;
                next.store = next.store.with(|s| s.crash(&self.stream_names));
                next.sweeper.session.crashed();
                for producer in &mut next.producers {
                    producer.session.crashed();
                }
                words.say(|| {
                    "the store crashes and restarts, dropping every append not yet flushed".into()
                });
                self.check_acked(&mut next);
            }
            Action::Sweeper(call) => self.sweeper_step(&mut next, call, words)?,
            Action::Producer(index, action) => {
                let index = usize::from(index);
                if index >= next.producers.len() {
                    return None;
                }
                self.producer_step(&mut next, index, action, words)?;
            }
        }
        Some(next)
    }

    fn producer_step(
        &self,
        s: &mut State,
        p: usize,
        action: ProducerAction,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        let now = Self::now_ms(s);
        match (action, s.producers[p].phase) {
            (ProducerAction::Crash, phase) => {
                if s.budget.crashes == 0 || !phase.is_busy() {
                    return None;
                }
                s.budget.crashes -= 1;
                s.producers[p].phase = Phase::Idle;
                s.producers[p].session = Session::default();
                words.say(|| format!("producer {p} crashes and restarts with no memory; it will handle {key_name} again"));
            }
            (ProducerAction::Deliver, Phase::Delivering { grant }) => {
                let ghost = &mut s.keys[usize::from(key)];
                ghost.deliveries = ghost.deliveries.saturating_add(1);
                let receipt = ghost.deliveries.min(MAX_RECEIPT_NUMBER);
                ghost.window_deliveries = (ghost.window_deliveries + 1).min(2);
                ghost.attempted |= 1 << receipt;
                if ghost.window_deliveries > 1 && self.config.timing_assumption() {
                    s.flag(Invariant::A1);
                }
                let op = self.fresh.complete(key, receipt, s.tick)?;
                s.producers[p].phase = Phase::Completing { grant, receipt, op };
                words.say(|| format!("producer {p} delivers the message of {key_name} (delivery #{receipt}; its receipt will be {key_name}#{receipt})"));
            }
            (ProducerAction::FailDelivery, Phase::Delivering { grant }) => {
                if s.budget.delivery_failures == 0 {
                    return None;
                }
                s.budget.delivery_failures -= 1;
                let op = self.fresh.release(key, s.tick)?;
                s.producers[p].phase = Phase::Releasing { grant, op };
                words.say(|| {
                    format!(
                        "producer {p}'s delivery of {key_name} fails; it will release its claim"
                    )
                });
            }
            (ProducerAction::Call(call), Phase::Idle | Phase::Deferred) => {
                let op = self.fresh.claim(key, s.tick)?;
                words.say(|| format!("producer {p} calls claim_or_get({key_name}, {now} ms)"));
                self.claim_call(s, p, op, (0, false), call, words)?;
            }
            (
                ProducerAction::Call(call),
                Phase::Claiming {
                    op,
                    append_seq,
                    landed,
                },
            ) => {
                self.claim_call(s, p, op, (append_seq, landed), call, words)?;
            }
            (ProducerAction::Call(call), Phase::Completing { grant, receipt, op }) => {
                let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
                match result {
                    None => s.producers[p].phase = Phase::Completing { grant, receipt, op },
                    Some(result) => {
                        let rule = op.rule();
                        let spec_op = SpecOp::Complete {
                            receipt: rule.receipt.clone(),
                            timestamp_millis: rule.timestamp_millis,
                        };
                        // Acknowledged after a flush: its own receipt (they
                        // are unique) must have landed.
                        let landed = self.stream_records(s, key).iter().any(|r| {
                            r.kind == RecordKind::Complete && r.key == key && r.receipt == receipt
                        });
                        let observed = result.clone().map(|()| SpecAnswer::Done);
                        self.check_linearizable(s, key, &spec_op, &observed, made, landed);
                        self.completed(s, p, grant, receipt, result, words)?;
                    }
                }
            }
            (ProducerAction::Call(call), Phase::Releasing { grant, op }) => {
                let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
                match result {
                    None => s.producers[p].phase = Phase::Releasing { grant, op },
                    Some(result) => {
                        // Releases are not unique records: an acknowledged
                        // release is not checked for having landed.
                        let observed = result.clone().map(|()| SpecAnswer::Done);
                        self.check_linearizable(s, key, &SpecOp::Release, &observed, made, true);
                        words.say(|| format!("release_claim({key_name}) returns {result:?}"));
                        match result {
                            Err(DurabilityError::DedupCollision { .. }) => {
                                self.finish_key(s, p, Outcome::GaveUp);
                            }
                            _ => s.producers[p].phase = Phase::Idle,
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }

    fn claim_call(
        &self,
        s: &mut State,
        p: usize,
        op: Hashed<ClaimOp>,
        (mut append_seq, mut landed): (u64, bool),
        call: Call,
        words: &mut Narration,
    ) -> Option<()> {
        let (op, result, made) = self.call(s, Actor::Producer(p), &op, call, words)?;
        if let Made::Append { seq, applied } = made {
            append_seq = seq;
            landed |= applied;
        }
        let Some(result) = result else {
            s.producers[p].phase = Phase::Claiming {
                op,
                append_seq,
                landed,
            };
            return Some(());
        };
        let key = s.producers[p].key;
        let spec_op = SpecOp::Claim {
            now_millis: op.rule().now_millis,
        };
        let observed = result.clone().map(SpecAnswer::Decision);
        self.check_linearizable(s, key, &spec_op, &observed, made, landed);
        let key_name = self.key_name(key);
        words.say(|| format!("claim_or_get({key_name}) returns {}", show_result(&result)));
        match result {
            Ok(DedupDecision::Claimed) => {
                self.check_answer_from_own_key(s, key);
                // The window of the grant's record: tombstones of the key
                // before it. Windows are bounded far below 32 by the clock
                // and the fault bounds.
                let records = &s.store.streams[self.stream_of(key)].records;
                let before = usize::try_from(append_seq)
                    .unwrap_or(usize::MAX)
                    .min(records.len());
                let window = records[..before]
                    .iter()
                    .filter(|r| {
                        r.key == key && matches!(r.kind, RecordKind::Release | RecordKind::Expire)
                    })
                    .count()
                    .min(31);
                let ghost = &mut s.keys[usize::from(key)];
                let again = ghost.granted_windows & (1 << window) != 0;
                ghost.granted_windows |= 1 << window;
                if again {
                    s.flag(Invariant::S1);
                }
                s.producers[p].phase = Phase::Delivering {
                    grant: Grant {
                        stamp_ms: op.rule().now_millis,
                        seq: append_seq,
                    },
                };
            }
            Ok(DedupDecision::InFlight) => {
                self.check_answer_from_own_key(s, key);
                s.producers[p].phase = Phase::Deferred;
            }
            Ok(DedupDecision::Completed(receipt)) => {
                self.check_receipt_answer(s, key, &receipt);
                self.finish_key(s, p, Outcome::Duplicate);
            }
            Err(DurabilityError::DedupCollision { .. }) => self.finish_key(s, p, Outcome::GaveUp),
            Err(_) => s.producers[p].phase = Phase::Idle,
        }
        Some(())
    }

    fn completed(
        &self,
        s: &mut State,
        p: usize,
        grant: Grant,
        receipt: u8,
        result: Result<(), DurabilityError>,
        words: &mut Narration,
    ) -> Option<()> {
        let key = s.producers[p].key;
        let key_name = self.key_name(key);
        words.say(|| {
            format!("complete_receipt({key_name}, {key_name}#{receipt}) returns {result:?}")
        });
        match result {
            Ok(()) => {
                self.acknowledge(s, key, receipt);
                self.finish_key(s, p, Outcome::Completed);
            }
            Err(DurabilityError::DedupCollision { .. }) => self.finish_key(s, p, Outcome::GaveUp),
            Err(_) => {
                // The outcome is unknown or the race was lost: try again
                // with the same receipt (completing twice is a no-op).
                let op = self.fresh.complete(key, receipt, s.tick)?;
                s.producers[p].phase = Phase::Completing { grant, receipt, op };
            }
        }
        Some(())
    }

    fn finish_key(&self, s: &mut State, p: usize, outcome: Outcome) {
        let producer = &mut s.producers[p];
        producer.outcomes |= 1 << (outcome as u8);
        if usize::from(producer.key) + 1 < self.config.keys {
            producer.key += 1;
            producer.phase = Phase::Idle;
        } else {
            producer.phase = Phase::Done(outcome);
        }
    }

    fn sweeper_step(&self, s: &mut State, call: Call, words: &mut Narration) -> Option<()> {
        let op = match &s.sweeper.op {
            Some(op) => *op,
            None => {
                let now = Self::now_ms(s);
                words.say(|| {
                    format!(
                        "the sweeper starts a pass at {now} ms (ttl {TTL_MS} ms + 1000 ms grace)"
                    )
                });
                self.fresh.sweep(s.tick)?
            }
        };
        let (op, result, _) = self.call(s, Actor::Sweeper, &op, call, words)?;
        s.sweeper.op = match result {
            None => Some(op),
            Some(result) => {
                words.say(|| format!("the sweep ends: {result:?}"));
                None
            }
        };
        Some(())
    }

    /// Performs `op`'s next store call as `call` says, feeds the answer, and
    /// returns the operation and, if it ended, its result.
    ///
    /// What the call gives depends only on the operation, the store, the
    /// call and the caller's session ([`Answer`], computed by
    /// [`DedupModel::answer`]); what depends on the rest of the state (the
    /// fault budget, the checks and ghost variables an append updates) is
    /// done here. While the checker explores (no narration), answers are
    /// memoized: see [`crate::memo`].
    fn call<O: Machine>(
        &self,
        s: &mut State,
        actor: Actor,
        op: &Hashed<O>,
        call: Call,
        words: &mut Narration,
    ) -> Option<Called<O>> {
        let lost = Self::session(s, actor).lost;
        let store = s.store;
        let answer = if words.is_silent() {
            let key = memo::Key::new(self.id, op.id(), store.id(), call as u8, lost, actor.kind());
            memo::remember(key, || {
                self.answer(op, store, actor, call, lost, &mut Narration::silent())
            })
        } else {
            self.answer(op, store, actor, call, lost, words)
        }?;
        if call != Call::Normal {
            if s.budget.indeterminate == 0 {
                return None;
            }
            s.budget.indeterminate -= 1;
        }
        match answer.effect {
            Effect::Nothing => {}
            Effect::Appended {
                index,
                expected_seq,
                summary,
                store,
            } => self.appended(s, actor, index, expected_seq, summary, store),
            Effect::Flushed { store } => {
                s.store = store;
                s.all_flushed();
            }
            Effect::FlushFailed => {
                let failed = Self::session(s, actor).flush();
                debug_assert!(failed.is_err(), "the session had lost appends");
            }
        }
        Some((answer.op, answer.result, answer.made))
    }

    fn session(s: &mut State, actor: Actor) -> &mut Session {
        match actor {
            Actor::Producer(p) => &mut s.producers[p].session,
            Actor::Sweeper => &mut s.sweeper.session,
        }
    }

    /// What `op`'s next store call, made by `actor` as `call` says against
    /// `store`, gives (`lost`: a crash dropped the caller's unflushed
    /// appends): the operation fed the store's reply, its result if it
    /// ended, and what the call did to the store. `None` when the call is
    /// not enabled. It reads nothing else of the state, so it can be
    /// memoized.
    fn answer<O: Operation + Internable>(
        &self,
        op: &Hashed<O>,
        store: Hashed<ModelStore>,
        actor: Actor,
        call: Call,
        lost: bool,
        words: &mut Narration,
    ) -> Option<Answer<O>> {
        let Step::Request(request) = op.poll() else {
            return None;
        };
        let who = || match actor {
            Actor::Producer(p) => format!("producer {p}"),
            Actor::Sweeper => "the sweeper".to_owned(),
        };
        let (reply, made, effect) = match &request {
            StoreRequest::Read {
                stream,
                offset,
                limit,
            } => {
                if call != Call::Normal {
                    return None;
                }
                let entries = store.read(stream, *offset, *limit);
                words.say(|| {
                    format!(
                        "{} reads {} from {offset} ({} entries)",
                        who(),
                        stream,
                        entries.len()
                    )
                });
                (StoreReply::Read(Ok(entries)), Made::Read, Effect::Nothing)
            }
            StoreRequest::Scan { prefix } => {
                if call != Call::Normal {
                    return None;
                }
                words.say(|| format!("{} scans {prefix:?}", who()));
                let reply = StoreReply::Scan(Ok(store.scan(prefix)));
                (reply, Made::Other, Effect::Nothing)
            }
            StoreRequest::Flush => {
                if call != Call::Normal {
                    return None;
                }
                let mut session = Session {
                    unflushed: false,
                    lost,
                };
                let result = session.flush();
                let effect = match result {
                    Ok(()) => Effect::Flushed {
                        store: store.with(ModelStore::make_durable),
                    },
                    Err(_) => Effect::FlushFailed,
                };
                words.say(|| format!("{} flushes: {result:?}", who()));
                (StoreReply::Flush(result), Made::Other, effect)
            }
            StoreRequest::Append {
                stream,
                payload,
                expected_seq,
            } => {
                let index = self.stream_index(stream)?;
                let apply = match call {
                    Call::Normal => true,
                    Call::AppendFailsApplied => store.would_apply(stream, *expected_seq),
                    Call::AppendFailsNotApplied => false,
                };
                if call == Call::AppendFailsApplied && !apply {
                    return None;
                }
                let (result, effect) = if apply {
                    self.append_to(store, actor, index, stream, payload, *expected_seq)
                } else {
                    (Ok(*expected_seq), Effect::Nothing)
                };
                let made = Made::Append {
                    seq: *expected_seq,
                    applied: matches!(effect, Effect::Appended { .. }),
                };
                let summary = || {
                    DedupRecord::decode(payload)
                        .map_or_else(|_| "garbage".to_owned(), |r| show_record(&r))
                };
                let reply = match (call, result) {
                    (Call::Normal, result) => {
                        words.say(|| {
                            format!(
                                "{} appends {} at seq {expected_seq}: {result:?}",
                                who(),
                                summary()
                            )
                        });
                        result
                    }
                    (Call::AppendFailsApplied, _) => {
                        words.say(|| format!("{} appends {} at seq {expected_seq}: applied, but answered with an error", who(), summary()));
                        Err(injected_error())
                    }
                    (Call::AppendFailsNotApplied, _) => {
                        words.say(|| format!("{} appends {} at seq {expected_seq}: not applied, answered with an error", who(), summary()));
                        Err(injected_error())
                    }
                };
                (StoreReply::Append(reply), made, effect)
            }
        };
        let op = op.with(|op| op.feed(reply));
        // `is_done` first: `poll` builds the next request, which is wanted
        // only at the next step.
        let result = match op.is_done().then(|| op.poll()) {
            Some(Step::Done(result)) => {
                words.ended(&result);
                Some(result)
            }
            Some(Step::Request(_)) | None => None,
        };
        Some(Answer {
            op,
            result,
            made,
            effect,
        })
    }

    /// `append` on `store`: the store's answer, and the store after it and
    /// the record's summary if it landed.
    fn append_to(
        &self,
        store: Hashed<ModelStore>,
        actor: Actor,
        index: usize,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
    ) -> (Result<u64, DurabilityError>, Effect) {
        if !store.would_apply(stream, expected_seq) {
            let conflict = DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual: store.table.len(stream),
            };
            return (Err(conflict), Effect::Nothing);
        }
        let Ok(record) = DedupRecord::decode(payload) else {
            // The engine only appends records it encoded; a garbage append
            // is a broken engine, which the store refuses loudly.
            let refused = DurabilityError::StoreError("model store: undecodable append".into());
            return (Err(refused), Effect::Nothing);
        };
        let key = self.key_index(record.idempotency_key()).unwrap_or(0);
        let tick = u8::try_from(record.timestamp_millis() / TICK_MS).unwrap_or(u8::MAX);
        let (kind, receipt) = match (&record, actor) {
            (DedupRecord::Active(entry), _) => {
                match entry.receipt().and_then(|r| self.parse_receipt(r)) {
                    Some((_, number)) => (RecordKind::Complete, number),
                    None => (RecordKind::Claim, 0),
                }
            }
            (DedupRecord::Tombstone(_), Actor::Sweeper) => (RecordKind::Expire, 0),
            (DedupRecord::Tombstone(_), Actor::Producer(_)) => (RecordKind::Release, 0),
        };
        let summary = RecordSummary {
            kind,
            key,
            receipt,
            tick,
        };
        let mut result = Ok(expected_seq);
        let after = store.with(|store| {
            result = store.append(index, stream, payload, expected_seq, summary);
        });
        match result {
            Ok(_) => {
                let effect = Effect::Appended {
                    index,
                    expected_seq,
                    summary,
                    store: after,
                };
                (result, effect)
            }
            Err(_) => (result, Effect::Nothing),
        }
    }

    /// An append landed on stream `index` at `expected_seq`, leaving
    /// `after`: checks it and updates the ghost variables it affects.
    fn appended(
        &self,
        s: &mut State,
        actor: Actor,
        index: usize,
        expected_seq: u64,
        summary: RecordSummary,
        after: Hashed<ModelStore>,
    ) {
        let previous = s.store.streams[index].records.last().copied();
        // S2: after a stored receipt, only an expiry may follow.
        if previous.is_some_and(|r| r.kind == RecordKind::Complete)
            && summary.kind != RecordKind::Expire
        {
            s.flag(Invariant::S2);
        }
        // S5 (seed API: no tokens): a completion or release appends only
        // directly over the appending producer's own claim.
        if let Actor::Producer(p) = actor {
            let grant = match &s.producers[p].phase {
                Phase::Completing { grant, .. } | Phase::Releasing { grant, .. } => Some(*grant),
                _ => None,
            };
            if grant.is_some_and(|g| g.seq + 1 != expected_seq) {
                s.flag(Invariant::S5);
            }
        }
        s.store = after;
        Self::session(s, actor).applied();
        self.check_append_is_a_spec_step(s, index, summary);
        if matches!(summary.kind, RecordKind::Release | RecordKind::Expire) {
            let ghost = &mut s.keys[usize::from(summary.key)];
            ghost.window_deliveries = 0;
            if summary.kind == RecordKind::Expire {
                ghost.acked = None;
            }
        }
        self.check_acked(s);
    }

    fn stream_records<'a>(&self, s: &'a State, key: u8) -> &'a [RecordSummary] {
        &s.store.streams[self.stream_of(key)].records
    }

    /// The key's state in the sequential specification, by its stream's
    /// latest record (another key's record counts as absent: S6's matter).
    fn spec_state(&self, records: &[RecordSummary], key: u8) -> SpecState {
        match records.last() {
            Some(r) if r.key == key => match r.kind {
                RecordKind::Claim => SpecState::InFlight {
                    timestamp_millis: u64::from(r.tick) * TICK_MS,
                },
                RecordKind::Complete => SpecState::Completed {
                    receipt: self.receipt(key, r.receipt),
                    timestamp_millis: u64::from(r.tick) * TICK_MS,
                },
                RecordKind::Release | RecordKind::Expire => SpecState::Absent,
            },
            _ => SpecState::Absent,
        }
    }

    /// S7 on an operation's answer. The seed engine's linearization points:
    /// an answer decided by a read linearizes at that read (this step); an
    /// answer acknowledged after a flush linearizes where its own append
    /// landed (checked against the spec when it landed), so it must have
    /// landed. Errors are judged by their class (indeterminate, no effect).
    fn check_linearizable(
        &self,
        s: &mut State,
        key: u8,
        op: &SpecOp,
        observed: &Result<SpecAnswer, DurabilityError>,
        made: Made,
        landed: bool,
    ) {
        let records = self.stream_records(s, key);
        let fine = match (made, observed) {
            (Made::Read, _) | (_, Err(_)) => {
                let shared = records.iter().any(|r| r.key != key);
                matches!(
                    self.spec_state(records, key).judge(op, observed, shared),
                    Judgement::Admissible(_)
                )
            }
            (_, Ok(_)) => landed,
        };
        if !fine {
            s.flag(Invariant::S7);
        }
    }

    /// S7 on an append as it lands: it must be a step the specification
    /// takes from the key's current state, to the state the record says.
    fn check_append_is_a_spec_step(&self, s: &mut State, index: usize, summary: RecordSummary) {
        let records = &s.store.streams[index].records;
        let (before, after) = records.split_at(records.len().saturating_sub(1));
        let key = summary.key;
        let stamp = u64::from(summary.tick) * TICK_MS;
        let op = match summary.kind {
            RecordKind::Claim => SpecOp::Claim { now_millis: stamp },
            RecordKind::Complete => SpecOp::Complete {
                receipt: self.receipt(key, summary.receipt),
                timestamp_millis: stamp,
            },
            RecordKind::Release => SpecOp::Release,
            RecordKind::Expire => SpecOp::Expire,
        };
        let (next, response) = self.spec_state(before, key).apply(&op);
        if matches!(response, SpecResponse::Collision) || next != self.spec_state(after, key) {
            s.flag(Invariant::S7);
        }
    }

    /// S4: an acknowledged completion is the key's latest record.
    fn check_acked(&self, s: &mut State) {
        for (key, ghost) in s.keys.iter().enumerate() {
            let Some(receipt) = ghost.acked else { continue };
            let head = s.store.streams[self.key_stream[key]].records.last();
            let visible = head.is_some_and(|r| {
                r.kind == RecordKind::Complete && usize::from(r.key) == key && r.receipt == receipt
            });
            if !visible {
                s.violations |= Invariant::S4.bit();
            }
        }
    }

    /// A completion with receipt `receipt` was acknowledged.
    fn acknowledge(&self, s: &mut State, key: u8, receipt: u8) {
        let records = &s.store.streams[self.stream_of(key)].records;
        let is_receipt = |r: &RecordSummary| {
            r.kind == RecordKind::Complete && r.key == key && r.receipt == receipt
        };
        if records.last().is_some_and(is_receipt) {
            s.keys[usize::from(key)].acked = Some(receipt);
        } else {
            // Acceptable only if the completion landed and has expired since.
            let expired_since = records
                .iter()
                .position(is_receipt)
                .is_some_and(|at| records[at..].iter().any(|r| r.kind == RecordKind::Expire));
            if !expired_since {
                s.flag(Invariant::S4);
            }
        }
    }

    /// S6: an `InFlight` or `Claimed` answer for `key` comes from a stream
    /// holding only records of `key`.
    fn check_answer_from_own_key(&self, s: &mut State, key: u8) {
        let records = &s.store.streams[self.stream_of(key)].records;
        if records.iter().any(|r| r.key != key) {
            s.flag(Invariant::S6);
        }
    }

    /// S2, S3, S6 on a `Completed(receipt)` answer for `key`.
    fn check_receipt_answer(&self, s: &mut State, key: u8, receipt: &ProcessingReceipt) {
        match self.parse_receipt(receipt.as_bytes()) {
            Some((owner, number)) if owner == key => {
                let ghost = s.keys[usize::from(key)];
                if ghost.attempted & (1 << number) == 0 {
                    s.flag(Invariant::S3);
                }
                if ghost.acked.is_some_and(|acked| acked != number) {
                    s.flag(Invariant::S2);
                }
            }
            Some(_) => s.flag(Invariant::S6),
            None => s.flag(Invariant::S3),
        }
    }

    /// The store's contents in words: each stream's records, durable ones
    /// first, `|` marking where the durable prefix ends.
    #[must_use]
    pub fn describe_store(&self, state: &State) -> String {
        let mut text = String::new();
        for (index, name) in self.stream_names.iter().enumerate() {
            let meta = &state.store.streams[index];
            let _ = write!(text, "{name} [");
            let durable = usize::try_from(meta.durable).unwrap_or(usize::MAX);
            for (seq, record) in meta.records.iter().enumerate() {
                if seq == durable {
                    text.push_str(if seq == 0 { "| " } else { " | " });
                } else if seq > 0 {
                    text.push(' ');
                }
                let key = self.key_name(record.key);
                let tick = record.tick;
                let _ = match record.kind {
                    RecordKind::Claim => write!(text, "{seq}:claim({key}, t{tick})"),
                    RecordKind::Complete => {
                        write!(text, "{seq}:receipt({key}#{}, t{tick})", record.receipt)
                    }
                    RecordKind::Release => write!(text, "{seq}:release-tombstone({key}, t{tick})"),
                    RecordKind::Expire => write!(text, "{seq}:expiry-tombstone({key}, t{tick})"),
                };
            }
            text.push(']');
        }
        text
    }
}

/// The phase name of a producer's engine operation, if it runs one.
fn phase_name(phase: &Phase) -> Option<&'static str> {
    match phase {
        Phase::Claiming { op, .. } => Some(op.phase_name()),
        Phase::Completing { op, .. } => Some(op.phase_name()),
        Phase::Releasing { op, .. } => Some(op.phase_name()),
        _ => None,
    }
}

/// The error an injected indeterminate append answers with.
pub fn injected_error() -> DurabilityError {
    DurabilityError::StoreError("injected: the append's outcome is unknown".into())
}

fn show_record(record: &DedupRecord) -> String {
    match record {
        DedupRecord::Active(entry) => match entry.receipt() {
            None => format!(
                "claim({}, {} ms)",
                entry.idempotency_key(),
                entry.timestamp_millis()
            ),
            Some(r) => format!(
                "receipt({}, {}, {} ms)",
                entry.idempotency_key(),
                String::from_utf8_lossy(r),
                entry.timestamp_millis()
            ),
        },
        DedupRecord::Tombstone(t) => format!(
            "tombstone({}, {} ms)",
            t.idempotency_key(),
            t.timestamp_millis()
        ),
    }
}

fn show_result(result: &Result<DedupDecision, DurabilityError>) -> String {
    match result {
        Ok(DedupDecision::Completed(r)) => {
            format!("Completed({})", String::from_utf8_lossy(r.as_bytes()))
        }
        Ok(decision) => format!("{decision:?}"),
        Err(error) => format!("Err({error:?})"),
    }
}

/// `keys` key names; with `collide`, names that all share one stream.
fn key_names(keys: usize, collide: bool) -> Vec<String> {
    if !collide {
        return (0..keys).map(|i| format!("k{i}")).collect();
    }
    let bucket = key_hash_bits("k0", COLLISION_HASH_BITS);
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|name| key_hash_bits(name, COLLISION_HASH_BITS) == bucket)
        .take(keys)
        .collect()
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Producer(p, ProducerAction::Call(Call::Normal)) => {
                write!(f, "producer {p}: next store call")
            }
            Action::Producer(p, ProducerAction::Call(Call::AppendFailsApplied)) => {
                write!(f, "producer {p}: append applied, answered with an error")
            }
            Action::Producer(p, ProducerAction::Call(Call::AppendFailsNotApplied)) => write!(
                f,
                "producer {p}: append not applied, answered with an error"
            ),
            Action::Producer(p, ProducerAction::Deliver) => write!(f, "producer {p}: deliver"),
            Action::Producer(p, ProducerAction::FailDelivery) => {
                write!(f, "producer {p}: delivery fails")
            }
            Action::Producer(p, ProducerAction::Crash) => {
                write!(f, "producer {p}: crash and restart")
            }
            Action::Sweeper(Call::Normal) => write!(f, "sweeper: next store call"),
            Action::Sweeper(Call::AppendFailsApplied) => {
                write!(f, "sweeper: append applied, answered with an error")
            }
            Action::Sweeper(Call::AppendFailsNotApplied) => {
                write!(f, "sweeper: append not applied, answered with an error")
            }
            Action::Tick => write!(f, "clock tick"),
            Action::StoreCrash => write!(f, "store crash"),
        }
    }
}

impl stateright::Model for DedupModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let next = self.perform(state, action, &mut Narration::silent())?;
        // A step that changes nothing (an idle sweep that finds nothing to
        // expire) is not a transition.
        (next != *state).then_some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn format_step(&self, last_state: &State, action: Action) -> Option<String> {
        let mut words = Narration::spoken();
        let next = self.perform(last_state, action, &mut words)?;
        Some(format!(
            "{}\nstore: {}",
            words.into_text(),
            self.describe_store(&next)
        ))
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::properties(&self.config, self.discovered())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step of a long pseudo-random walk through the standard
    /// configuration (every action enabled in each state visited, the walk
    /// restarting at dead ends), taken twice: silently, which the checker
    /// does and which serves memoized answers from the second time on, and
    /// narrated, which computes every answer afresh.
    #[test]
    fn memoized_steps_equal_steps_computed_afresh() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let mut state = model.initial_state();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut actions = Vec::new();
        let mut steps = 0;
        for _ in 0..3_000 {
            actions.clear();
            model.enabled_actions(&state, &mut actions);
            let mut next_states = Vec::new();
            for action in &actions {
                for _ in 0..2 {
                    let silent = model.perform(&state, *action, &mut Narration::silent());
                    let spoken = model.perform(&state, *action, &mut Narration::spoken());
                    assert_eq!(silent, spoken, "{action} from {state:?}");
                    steps += 1;
                }
                next_states.extend(model.perform(&state, *action, &mut Narration::silent()));
            }
            // xorshift64: the walk is the same in every run.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            state = if next_states.is_empty() {
                model.initial_state()
            } else {
                let pick = usize::try_from(seed % next_states.len() as u64).unwrap();
                next_states.swap_remove(pick)
            };
        }
        assert!(steps > 10_000, "the walk took {steps} steps");
    }
}
