//! A user's own producer code in a simulated run (madsim build only): the
//! [`Handler`] a user writes, the [`HandlerCtx`] it is handed for each
//! message, and the producer that runs it in place of the workload's own.
//!
//! The handler gets the message's key and a context whose cache calls are
//! [`FencedCache`]'s, over the run's fault-injecting store, each recorded as
//! an operation of the history (as the workload's producers' are, through
//! `world/fenced.rs`); its side effects (the charge, the e-mail) it reports
//! with [`HandlerCtx::effect`], which the history records as a delivery.
//! The checker then judges the user's code by A1 (`docs/spec.md`,
//! "Invariants") and the engine by S1-S7 and A2, as in any run.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use atmostonce::fenced::{Claim, ClaimToken, FencedCache, KeyStatus};
use atmostonce::{DurabilityError, ProcessingReceipt};
use atmostonce_verify::oracle::fenced::{FencedOp, FencedResponse};

use super::env::SimWorld;
use super::rng::{sim_rng, sleep_ms};
use crate::config::Draw;
use crate::history::{Event, KeyId, NO_CLAIM, OpId, claim_answer, lookup_answer, token_of};
use crate::world::actors::Who;
use crate::world::fenced::{begin_producer, done, renewed, traced};

/// The future a [`Handler`] returns for one message.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A user's producer code: what it does with one message.
///
/// Each simulated producer hands every message it takes to
/// [`handle`](Handler::handle), with a fresh [`HandlerCtx`]; one handler
/// value serves every producer of every seed, so it keeps no state of its
/// own between messages (the store is the state). Everything it does that
/// takes time or chance goes through the context (its clock, its sleep, its
/// random numbers), so that a seed replays the same run.
pub trait Handler: Send + Sync + 'static {
    /// Processes the message with idempotency key `key`.
    fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, key: &'a str) -> HandlerFuture<'a>;
}

/// What the producers of a run execute: the workload's own, or a user's
/// handler.
#[derive(Clone, Default)]
pub(crate) enum Workload {
    /// The simulator's workload (`world/actors.rs`, `world/fenced.rs`).
    #[default]
    Standard,
    /// A user's handler, on the fenced API.
    Handler(Arc<dyn Handler>),
}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Standard => f.write_str("Standard"),
            Workload::Handler(_) => f.write_str("Handler"),
        }
    }
}

/// One message's surroundings: the simulated producer's cache over the
/// run's store, its clock, sleep and random numbers, and the handle that
/// reports side effects.
///
/// The cache calls are [`FencedCache`]'s, on the message's key; each is an
/// operation of the run's history. Receipts go to the store tagged with the
/// key (`key|` before the handler's bytes, so the checker can tell whose a
/// receipt is, S3 and S6) and come back to the handler without the tag: a
/// receipt may be that many bytes shorter than the engine's limit.
pub struct HandlerCtx {
    world: Arc<SimWorld>,
    who: Who,
    cache: FencedCache,
    key: KeyId,
    name: String,
    /// Granted tokens (renewals included) and the claim each belongs to.
    grants: Vec<(ClaimToken, OpId)>,
    /// The last claim operation of this message, granted or not.
    last_claim: Option<OpId>,
    /// Cache calls made for this message.
    calls: u32,
}

impl fmt::Debug for HandlerCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerCtx")
            .field("process", &self.who.process)
            .field("key", &self.name)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl HandlerCtx {
    /// The message's idempotency key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.name
    }

    /// Which simulated producer runs this message (0-based).
    #[must_use]
    pub fn producer(&self) -> u16 {
        self.who.process_index()
    }

    /// What this producer's clock reads, in milliseconds since the epoch
    /// (simulated time, with this node's clock skew): the `now_millis` to
    /// pass to the cache.
    #[must_use]
    pub fn now_millis(&self) -> u64 {
        self.world.clock_ms(self.who.process)
    }

    /// Sleeps `ms` simulated milliseconds (a downstream call's latency, a
    /// timeout, a back-off).
    pub async fn sleep_ms(&self, ms: u64) {
        sleep_ms(ms).await;
    }

    /// A random number in `low..=high`, drawn from the seed.
    pub fn random_range(&mut self, low: u64, high: u64) -> u64 {
        sim_rng().range(low, high)
    }

    /// True with probability `per_mille` / 1000, drawn from the seed.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        sim_rng().chance(per_mille)
    }

    /// Reports that this message's side effect happened (the charge went
    /// through, the e-mail left): a delivery of the key in the history. It
    /// is attributed to the last claim of this message that was granted,
    /// else to its last claim (which granted nothing), else to no claim at
    /// all; A1 judges it.
    pub fn effect(&mut self) {
        let claim = self
            .grants
            .last()
            .map(|(_, claim)| *claim)
            .or(self.last_claim)
            .unwrap_or(NO_CLAIM);
        let at_us = self.world.now_us();
        self.world.history().event(Event::Delivery {
            process: self.who.process,
            key: self.key,
            claim,
            ok: true,
            at_us,
        });
    }

    /// [`FencedCache::claim`] of the message's key.
    pub async fn claim(&mut self, now_millis: u64) -> Result<Claim, DurabilityError> {
        self.claim_with(None, now_millis).await
    }

    /// [`FencedCache::claim_with_fingerprint`] of the message's key.
    pub async fn claim_with_fingerprint(
        &mut self,
        fingerprint: &[u8],
        now_millis: u64,
    ) -> Result<Claim, DurabilityError> {
        self.claim_with(Some(fingerprint), now_millis).await
    }

    async fn claim_with(
        &mut self,
        fingerprint: Option<&[u8]>,
        now_millis: u64,
    ) -> Result<Claim, DurabilityError> {
        self.spend();
        let op = FencedOp::Claim {
            now_millis,
            fingerprint: fingerprint.map(<[u8]>::to_vec),
        };
        let (id, result) = match fingerprint {
            Some(print) => {
                let call = self
                    .cache
                    .claim_with_fingerprint(&self.name, print, now_millis);
                self.record(op, None, call, claim_answer).await
            }
            None => {
                let call = self.cache.claim(&self.name, now_millis);
                self.record(op, None, call, claim_answer).await
            }
        };
        self.last_claim = Some(id);
        match result {
            Ok(Claim::Granted(token)) => {
                self.grants.push((token.clone(), id));
                self.world.set_holding(self.who.process_index(), true);
                Ok(Claim::Granted(token))
            }
            Ok(Claim::Completed(receipt)) => Ok(Claim::Completed(self.untag(receipt))),
            other => other,
        }
    }

    /// [`FencedCache::complete`] with the token of a claim of this message.
    pub async fn complete(
        &mut self,
        token: &ClaimToken,
        receipt: &ProcessingReceipt,
        now_millis: u64,
    ) -> Result<(), DurabilityError> {
        self.spend();
        let tagged = self.tag(receipt);
        let op = FencedOp::Complete {
            token: token_of(token),
            receipt: tagged.clone(),
            now_millis,
        };
        let call = self.cache.complete(token, &tagged, now_millis);
        let claim = self.claim_of(token);
        let (_, result) = self.record(op, claim, call, done).await;
        self.ended(&result);
        result
    }

    /// [`FencedCache::release`] with the token of a claim of this message.
    pub async fn release(
        &mut self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<(), DurabilityError> {
        self.spend();
        let op = FencedOp::Release {
            token: token_of(token),
            now_millis,
        };
        let call = self.cache.release(token, now_millis);
        let claim = self.claim_of(token);
        let (_, result) = self.record(op, claim, call, done).await;
        self.ended(&result);
        result
    }

    /// [`FencedCache::renew`] with the token of a claim of this message.
    pub async fn renew(
        &mut self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<ClaimToken, DurabilityError> {
        self.spend();
        let op = FencedOp::Renew {
            token: token_of(token),
            now_millis,
        };
        let call = self.cache.renew(token, now_millis);
        let claim = self.claim_of(token);
        let (_, result) = self.record(op, claim, call, renewed).await;
        if let (Ok(renewal), Some(claim)) = (&result, claim) {
            self.grants.push((renewal.clone(), claim));
        }
        result
    }

    /// [`FencedCache::lookup`] of the message's key.
    pub async fn lookup(&mut self, now_millis: u64) -> Result<Option<KeyStatus>, DurabilityError> {
        self.spend();
        let op = FencedOp::Lookup { now_millis };
        let call = self.cache.lookup(&self.name, now_millis);
        let (_, result) = self.record(op, None, call, lookup_answer).await;
        match result {
            Ok(Some(KeyStatus::Completed(receipt))) => {
                Ok(Some(KeyStatus::Completed(self.untag(receipt))))
            }
            other => other,
        }
    }

    /// Runs `call` as an operation of the history (the workload's
    /// producers' `traced`), on the message's key.
    async fn record<T>(
        &self,
        op: FencedOp,
        claim: Option<OpId>,
        call: impl Future<Output = Result<T, DurabilityError>>,
        answer: fn(&T) -> FencedResponse,
    ) -> (OpId, Result<T, DurabilityError>) {
        traced(&self.world, self.who, self.key, op, claim, call, answer).await
    }

    /// Every cache call spends one operation of the producer's budget.
    fn spend(&mut self) {
        self.calls += 1;
        self.world.spend(self.who.process_index());
    }

    /// The claim operation `token` was granted by (or renewed from).
    fn claim_of(&self, token: &ClaimToken) -> Option<OpId> {
        self.grants
            .iter()
            .find(|(granted, _)| granted == token)
            .map(|(_, claim)| *claim)
    }

    /// A completion or release answered: the producer no longer holds the
    /// claim (unless the answer leaves that open).
    fn ended(&self, result: &Result<(), DurabilityError>) {
        if result.is_ok() || matches!(result, Err(DurabilityError::StaleClaim { .. })) {
            self.world.set_holding(self.who.process_index(), false);
        }
    }

    fn tag(&self, receipt: &ProcessingReceipt) -> ProcessingReceipt {
        let mut bytes = format!("{}|", self.name).into_bytes();
        bytes.extend_from_slice(receipt.as_bytes());
        ProcessingReceipt::new(bytes)
    }

    /// The handler's own bytes of a receipt [`tag`](Self::tag) stored; a
    /// receipt without this key's tag (another key's: S6 reports it) is
    /// passed on as it is.
    fn untag(&self, receipt: ProcessingReceipt) -> ProcessingReceipt {
        let tag = format!("{}|", self.name);
        match receipt.as_bytes().strip_prefix(tag.as_bytes()) {
            Some(own) => ProcessingReceipt::new(own.to_vec()),
            None => receipt,
        }
    }
}

/// One producer incarnation running `handler`: a message (a key picked as
/// the workload picks them) at a time until the budget is spent.
pub(crate) async fn producer(world: Arc<SimWorld>, index: u16, handler: Arc<dyn Handler>) {
    let Some((who, cache)) = begin_producer(&world, index) else {
        return;
    };
    let mut rng = sim_rng();
    while world.has_budget(index) {
        sleep_ms(rng.range(0, world.config.think_max_ms)).await;
        let (key, _) = world.next_key(&mut rng);
        let name = world.keys[usize::from(key)].clone();
        let mut ctx = HandlerCtx {
            world: world.clone(),
            who,
            cache: cache.clone(),
            key,
            name: name.clone(),
            grants: Vec::new(),
            last_claim: None,
            calls: 0,
        };
        handler.handle(&mut ctx, &name).await;
        // A message the handler made no cache call for still spends one
        // operation, so that every producer's budget runs out.
        if ctx.calls == 0 {
            world.spend(index);
        }
        world.set_holding(index, false);
    }
    world.finish(index);
}
