//! [`DedupCache`]: the async, seed-compatible face of the engine.

use std::sync::Arc;

use crate::DurabilityError;
use crate::clock::wall_clock_millis;
use crate::codec::ProcessingReceipt;
use crate::core::{AppendDurability, DedupDecision, Protocol};
use crate::driver::drive_watched;
use crate::hash::{KeyHash, key_hash};
use crate::limits::DEFAULT_READ_BATCH;
use crate::store::DurableStore;
use crate::telemetry::{Api, OpKind, Watch};

/// Tuning for a [`DedupCache`]. The defaults are right for production.
///
/// ```
/// use atmostonce::DedupOptions;
///
/// let options = DedupOptions::default().with_read_batch(64);
/// assert_eq!(options.read_batch, 64);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupOptions {
    /// Records fetched per store read (1..=[`MAX_READ_BATCH`](crate::limits::MAX_READ_BATCH)),
    /// kept for the seed system's configurations: operations now read only
    /// the key's head and the sweep scans in one call, so no call reads in
    /// batches (`docs/spec.md`, "Seed API").
    pub read_batch: usize,
    /// Bits of the key hash kept in stream names (1..=64); only the harness
    /// narrows it (feature `testing`), to make keys collide on purpose.
    pub(crate) hash_bits: u8,
    /// How keys name their streams (default FNV-1a 64, the seed's).
    pub(crate) key_hash: KeyHash,
    /// Whether operation spans carry the raw key (default: only its
    /// stream's name).
    pub(crate) raw_keys_in_traces: bool,
}

impl Default for DedupOptions {
    fn default() -> Self {
        DedupOptions {
            read_batch: DEFAULT_READ_BATCH,
            hash_bits: 64,
            key_hash: KeyHash::Fnv1a64,
            raw_keys_in_traces: false,
        }
    }
}

impl DedupOptions {
    /// Sets the read batch.
    #[must_use]
    pub fn with_read_batch(mut self, read_batch: usize) -> Self {
        self.read_batch = read_batch;
        self
    }

    /// Names the namespace's streams with `key_hash` (see [`KeyHash`] for
    /// which to use). Every cache and sweeper of the namespace needs the same
    /// one: under another, every key is looked for in another stream.
    #[must_use]
    pub fn with_key_hash(mut self, key_hash: KeyHash) -> Self {
        self.key_hash = key_hash;
        self
    }

    /// How keys name their streams.
    #[must_use]
    pub fn key_hash(&self) -> KeyHash {
        self.key_hash
    }

    /// Puts the raw idempotency key in every operation's tracing span (field
    /// `key`). Off by default: spans carry the key's stream name only, since
    /// keys can be personal data (`docs/metrics.md`).
    #[must_use]
    pub fn with_raw_keys_in_traces(mut self, raw_keys_in_traces: bool) -> Self {
        self.raw_keys_in_traces = raw_keys_in_traces;
        self
    }

    /// Keeps only the low `hash_bits` bits of the key hash in stream names
    /// (1..=64), so that distinct keys share streams on purpose: a test of
    /// collision handling, never for production. Feature `testing`.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn with_hash_bits(mut self, hash_bits: u8) -> Self {
        self.hash_bits = hash_bits;
        self
    }

    /// The bits of the key hash kept in stream names. Feature `testing`.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn hash_bits(&self) -> u8 {
        self.hash_bits
    }
}

/// Something a [`DedupCache`] can be built on: an `Arc` of any store, or an
/// `Arc<dyn DurableStore>`.
pub trait IntoStore {
    /// The store as a trait object.
    fn into_store(self) -> Arc<dyn DurableStore>;
}

impl IntoStore for Arc<dyn DurableStore> {
    fn into_store(self) -> Arc<dyn DurableStore> {
        self
    }
}

impl<S: DurableStore + 'static> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn DurableStore> {
        self
    }
}

/// An idempotency-key dedup cache over a [`DurableStore`].
///
/// Each key lives in its own stream, `"{namespace}:{key_hash(key)}"` (or
/// its keyed hash, [`DedupOptions::with_key_hash`]); the
/// stream's last record is the key's state. Cloning is cheap and clones share
/// the store.
#[derive(Clone)]
pub struct DedupCache {
    store: Arc<dyn DurableStore>,
    namespace: Arc<str>,
    /// The validated protocol, or why the namespace or options were refused
    /// (reported by every operation: [`DedupCache::new`] cannot fail).
    protocol: Arc<Result<Protocol, DurabilityError>>,
    /// Whether spans carry raw keys.
    raw_keys_in_traces: bool,
}

impl std::fmt::Debug for DedupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupCache")
            .field("namespace", &self.namespace)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl DedupCache {
    /// A cache named `namespace` over `store`, with default options: the
    /// seed's signature, which cannot fail. A namespace that is empty,
    /// contains `:` or is longer than
    /// [`MAX_NAMESPACE_BYTES`](crate::limits::MAX_NAMESPACE_BYTES) makes every
    /// operation fail with the error [`DedupCache::try_new`] would have
    /// returned, before anything is read or written.
    pub fn new(store: impl IntoStore, namespace: impl Into<String>) -> DedupCache {
        DedupCache::build(
            store.into_store(),
            namespace.into(),
            DedupOptions::default(),
        )
    }

    /// [`DedupCache::new`] that validates up front: fails with
    /// [`DurabilityError::ConfigError`] when the namespace is empty or
    /// contains `:`, and with [`DurabilityError::LimitExceeded`] when it is
    /// longer than [`MAX_NAMESPACE_BYTES`](crate::limits::MAX_NAMESPACE_BYTES).
    pub fn try_new(
        store: impl IntoStore,
        namespace: impl Into<String>,
    ) -> Result<DedupCache, DurabilityError> {
        DedupCache::with_options(store, namespace, DedupOptions::default())
    }

    /// A cache with explicit [`DedupOptions`], validated up front as by
    /// [`DedupCache::try_new`] (and `read_batch` out of range is a
    /// [`DurabilityError::ConfigError`]).
    pub fn with_options(
        store: impl IntoStore,
        namespace: impl Into<String>,
        options: DedupOptions,
    ) -> Result<DedupCache, DurabilityError> {
        let cache = DedupCache::build(store.into_store(), namespace.into(), options);
        cache.protocol()?;
        Ok(cache)
    }

    fn build(store: Arc<dyn DurableStore>, namespace: String, options: DedupOptions) -> Self {
        let durability = AppendDurability::of(&*store);
        let protocol = Protocol::new(namespace.as_str(), options, durability);
        DedupCache {
            store,
            namespace: namespace.into(),
            protocol: Arc::new(protocol),
            raw_keys_in_traces: options.raw_keys_in_traces,
        }
    }

    /// A watch of `operation` on `key` (`None`: a sweep of the namespace).
    pub(crate) fn watch(&self, operation: OpKind, key: Option<&str>) -> Watch {
        Watch::new(
            Api::Seed,
            operation,
            &self.namespace,
            key,
            self.raw_keys_in_traces,
            || {
                key.map_or_else(
                    || format!("{}:", self.namespace),
                    |key| self.stream_key_for(key),
                )
            },
        )
    }

    /// The namespace, as given (even one every operation refuses).
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The stream that holds `key`: `"{namespace}:{key_hash(key)}"`, or the
    /// keyed name when the options chose [`KeyHash::SipHash24`].
    #[must_use]
    pub fn stream_key_for(&self, key: &str) -> String {
        match &*self.protocol {
            Ok(protocol) => protocol.stream_key_for(key),
            Err(_) => format!("{}:{}", self.namespace, key_hash(key)),
        }
    }

    /// The protocol (namespace, hashing, I/O policy) whose operations this
    /// cache drives (the model checker and fuzzer drive the same ones), or
    /// the configuration error every operation of this cache fails with.
    pub fn protocol(&self) -> Result<&Protocol, DurabilityError> {
        self.protocol.as_ref().as_ref().map_err(Clone::clone)
    }

    /// The store under the cache.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn DurableStore> {
        &self.store
    }

    /// The key's state, read without writing: `None` when absent (never
    /// claimed, released or expired), else `InFlight` or `Completed`.
    pub async fn lookup(&self, key: &str) -> Result<Option<DedupDecision>, DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Lookup, Some(key)), || {
            self.protocol()?.lookup(key)
        })
        .await
    }

    /// Claims `key` if it is absent (`Claimed`: deliver now), or reports who
    /// has it (`InFlight`: defer; `Completed(receipt)`: answer with the
    /// receipt, do not deliver). `now_millis` anchors the claim's TTL.
    pub async fn claim_or_get(
        &self,
        key: &str,
        now_millis: u64,
    ) -> Result<DedupDecision, DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Claim, Some(key)), || {
            self.protocol()?.claim(key, now_millis)
        })
        .await
    }

    /// [`complete_receipt_at`](DedupCache::complete_receipt_at) stamped with
    /// the system clock; takes the receipt by value, as the seed's did.
    pub async fn complete_receipt(
        &self,
        key: &str,
        receipt: ProcessingReceipt,
    ) -> Result<(), DurabilityError> {
        self.complete_receipt_at(key, &receipt, wall_clock_millis())
            .await
    }

    /// Stores `receipt` for the in-flight `key`; `timestamp_millis` anchors
    /// the completed entry's TTL. Completing again with the same receipt is
    /// `Ok` and writes nothing; with another receipt, or for a key that is
    /// not claimed, it is [`DurabilityError::DedupCollision`].
    pub async fn complete_receipt_at(
        &self,
        key: &str,
        receipt: &ProcessingReceipt,
        timestamp_millis: u64,
    ) -> Result<(), DurabilityError> {
        drive_watched(
            &*self.store,
            self.watch(OpKind::Complete, Some(key)),
            || self.protocol()?.complete(key, receipt, timestamp_millis),
        )
        .await
    }

    /// [`release_claim_at`](DedupCache::release_claim_at) stamped with the
    /// system clock.
    pub async fn release_claim(&self, key: &str) -> Result<(), DurabilityError> {
        self.release_claim_at(key, wall_clock_millis()).await
    }

    /// Gives up an in-flight claim after a failed delivery, so the key can be
    /// claimed again. Never clobbers a receipt: absent, completed and
    /// released keys are left as they are. If a fresh claim by someone else
    /// won a race against this release, it is left alone and the race is
    /// reported as [`DurabilityError::SequenceConflict`].
    pub async fn release_claim_at(
        &self,
        key: &str,
        timestamp_millis: u64,
    ) -> Result<(), DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Release, Some(key)), || {
            self.protocol()?.release(key, timestamp_millis)
        })
        .await
    }
}
