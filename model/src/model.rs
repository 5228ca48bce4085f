//! [`DedupModel`]: the stateright model of one configuration, what it is
//! built from, and its initial state. Producers and the sweeper run the
//! engine's own operation state machines; the model chooses how their store
//! calls interleave and which faults strike. The steps are in
//! [`crate::transitions`] (which actions are enabled, performing one),
//! [`crate::actors`] (what a producer or the sweeper does),
//! [`crate::calls`] (one store call of an engine operation), and
//! [`crate::checks`] (the invariants a step checks); the words of a step in
//! [`crate::narration`].

use std::sync::Arc;

use atmostonce::core::fenced::FencedProtocol;
use atmostonce::core::{AppendDurability, Protocol};
use atmostonce::fenced::FencedOptions;
use atmostonce::{DedupOptions, ProcessingReceipt};
use atmostonce_verify::oracle::naming;

use crate::config::{Api, Config, Fault, LEASE_MS, TICK_MS, TTL_MS};
use crate::discovered::Discovered;
use crate::fresh::{Fresh, FreshFenced, receipt_bytes};
use crate::hashed::Hashed;
use crate::memo;
use crate::state::{Budget, KeyGhost, Phase, Producer, State, Sweeper};
use crate::store::{ModelStore, Session};

/// The namespace of the model's cache.
pub const NAMESPACE: &str = "model";

/// Hash bits of the collision configuration: with one bit, keys are easy
/// to find that share a stream.
const COLLISION_HASH_BITS: u8 = 1;

/// The model of one configuration.
#[derive(Debug, Clone)]
pub struct DedupModel {
    /// Tells this model's memoized answers from another's (see
    /// [`crate::memo`]); clones share it.
    pub(crate) id: u64,
    pub(crate) config: Config,
    options: DedupOptions,
    protocol: Protocol,
    key_names: Vec<String>,
    pub(crate) key_stream: Vec<usize>,
    pub(crate) stream_names: Vec<String>,
    /// The operations a step can start, built once.
    pub(crate) fresh: Arc<Fresh>,
    /// The fenced API's protocol and fresh operations (`--api fenced`).
    fenced: Option<(FencedProtocol, Arc<FreshFenced>)>,
    /// In a search, the properties that already have a discovery.
    discovered: Option<Arc<Discovered>>,
}

/// Who performs a store call.
#[derive(Clone, Copy)]
pub(crate) enum Actor {
    Producer(usize),
    Sweeper,
}

impl Actor {
    /// Whether the actor is the sweeper (what an answer depends on: the
    /// store tells expiries from releases by who appends them).
    pub(crate) fn kind(self) -> memo::ActorKind {
        match self {
            Actor::Producer(_) => memo::ActorKind::Producer,
            Actor::Sweeper => memo::ActorKind::Sweeper,
        }
    }
}

impl DedupModel {
    /// The model of `config` (which must be valid).
    pub fn new(config: Config) -> Result<DedupModel, String> {
        config.validate()?;
        let collide = config.faults.contains(Fault::Collision);
        let options =
            DedupOptions::default().with_hash_bits(if collide { COLLISION_HASH_BITS } else { 64 });
        // The model's store is not durable on acknowledgement, so the
        // engine flushes after appending, as DedupCache does on such stores.
        let protocol = Protocol::new(NAMESPACE, options, AppendDurability::NeedsFlush)
            .map_err(|e| e.to_string())?;
        let key_names = key_names(config.keys, collide);
        // Which stream holds each key is the specification's naming, not
        // the engine's: an engine that appends elsewhere is caught (its
        // append is to a stream the model does not know).
        let mut stream_names: Vec<String> = key_names
            .iter()
            .map(|k| spec_stream_name(k, options.hash_bits()))
            .collect();
        stream_names.sort();
        stream_names.dedup();
        let key_stream = key_names
            .iter()
            .map(|k| {
                stream_names
                    .binary_search(&spec_stream_name(k, options.hash_bits()))
                    .map_err(|_| format!("internal: key {k:?} has no stream"))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let fresh = Arc::new(Fresh::new(&protocol, &key_names, config.bounds.max_tick));
        let fenced = match config.api {
            Api::Seed => None,
            Api::Fenced => {
                let options = FencedOptions::default()
                    .with_lease_ms(LEASE_MS)
                    .with_receipt_ttl_ms(TTL_MS)
                    .with_hash_bits(options.hash_bits());
                // Flushing as on the seed side: the model's store is not
                // durable on acknowledgement.
                let protocol =
                    FencedProtocol::new(NAMESPACE, options, AppendDurability::NeedsFlush)
                        .map_err(|e| e.to_string())?;
                let fresh = FreshFenced::new(
                    &protocol,
                    &key_names,
                    config.bounds.max_tick,
                    config.skew_ms,
                );
                Some((protocol, Arc::new(fresh)))
            }
        };
        Ok(DedupModel {
            fenced,
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

    /// The fenced protocol (`--api fenced` only).
    #[must_use]
    pub fn fenced(&self) -> Option<&FencedProtocol> {
        self.fenced.as_ref().map(|(protocol, _)| protocol)
    }

    pub(crate) fn fresh_fenced(&self) -> Option<&FreshFenced> {
        self.fenced.as_ref().map(|(_, fresh)| &**fresh)
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

    pub(crate) fn key_index(&self, name: &str) -> Option<u8> {
        self.key_names
            .iter()
            .position(|k| k == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub(crate) fn stream_index(&self, name: &str) -> Option<usize> {
        self.stream_names.iter().position(|s| s == name)
    }

    /// Key `key`'s receipt number `number`.
    pub(crate) fn receipt(&self, key: u8, number: u8) -> ProcessingReceipt {
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
                pauses: self.config.budget(Fault::Pause),
                skews: self.config.budget(Fault::ClockSkew),
                stale_reads: self.config.budget(Fault::StaleReads),
                compactions: self.config.budget(Fault::Compaction),
                corruptions: self.config.budget(Fault::Corruption),
                total: self.config.bounds.total_faults.unwrap_or(u8::MAX),
            },
            violations: 0,
            events: 0,
        }
    }

    pub(crate) fn now_ms(state: &State) -> u64 {
        u64::from(state.tick) * TICK_MS
    }

    pub(crate) fn session(s: &mut State, actor: Actor) -> &mut Session {
        match actor {
            Actor::Producer(p) => &mut s.producers[p].session,
            Actor::Sweeper => &mut s.sweeper.session,
        }
    }
}

/// `keys` key names; with `collide`, names that all share one stream.
fn key_names(keys: usize, collide: bool) -> Vec<String> {
    if !collide {
        return (0..keys).map(|i| format!("k{i}")).collect();
    }
    let bucket = spec_stream_name("k0", COLLISION_HASH_BITS);
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|name| spec_stream_name(name, COLLISION_HASH_BITS) == bucket)
        .take(keys)
        .collect()
}

/// The stream of `key` by the specification (`docs/spec.md`, "Streams":
/// the namespace, a colon, FNV-1a 64 as 16 hex digits), with the engine's
/// collision-testing knob: only the low `hash_bits` bits of the hash kept.
fn spec_stream_name(key: &str, hash_bits: u8) -> String {
    if hash_bits >= 64 {
        return naming::stream_name(NAMESPACE, key);
    }
    let mask = (1u64 << hash_bits) - 1;
    format!(
        "{NAMESPACE}:{:016x}",
        naming::fnv1a_64(key.as_bytes()) & mask
    )
}
