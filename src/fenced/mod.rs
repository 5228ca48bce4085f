//! The fenced API: claims with tokens, leases and claim ids over
//! checksummed version-2 records (`docs/record-format.md`).
//!
//! Use it instead of the seed-compatible [`DedupCache`](crate::DedupCache)
//! whenever the store can fail in ways whose outcome is unknown, crash, or
//! return stale data, or whenever a holder can pause: every write of a
//! holder names its claim ([`ClaimToken`]), so a stale holder's completion
//! or release is refused with [`DurabilityError::StaleClaim`] instead of
//! touching someone else's claim, and [`ClaimToken::fence`] lets the
//! downstream system refuse a stale holder's side effects too.
//!
//! ```
//! use std::sync::Arc;
//! use atmostonce::fenced::{Claim, FencedCache, FencedOptions};
//! use atmostonce::{MemoryStore, ProcessingReceipt};
//!
//! # futures::executor::block_on(async {
//! let cache = FencedCache::new(Arc::new(MemoryStore::new()), "orders", FencedOptions::default())?;
//! let now_millis = 1_700_000_000_000;
//! let Claim::Granted(token) = cache.claim("order-17", now_millis).await? else {
//!     panic!("a fresh key is granted");
//! };
//! // Deliver, passing `token.fence()` along; the downstream keeps the highest
//! // fence it accepted per key and refuses lower ones.
//! let receipt = ProcessingReceipt::new(b"charged 12.00 EUR".to_vec());
//! cache.complete(&token, &receipt, now_millis + 3).await?;
//! assert_eq!(cache.claim("order-17", now_millis + 5).await?, Claim::Completed(receipt));
//! # Ok::<(), atmostonce::DurabilityError>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::DurabilityError;
use crate::cache::IntoStore;
use crate::codec::{ClaimId, ProcessingReceipt};
use crate::core::AppendDurability;
use crate::core::fenced::FencedProtocol;
use crate::driver::drive_watched;
use crate::limits::MAX_CLAIM_ID_DRAWS;
use crate::store::DurableStore;
use crate::telemetry::{Api, OpKind, Watch};

pub use crate::core::fenced::{
    Claim, ClaimToken, FencedOptions, FencedSweepReport, KeyStatus, SkipReason, SkippedKey,
    TokenError,
};

/// A fenced idempotency-key cache over a [`DurableStore`].
///
/// Streams are named as [`DedupCache`](crate::DedupCache) names them, so a
/// namespace the seed API wrote is served as it is: its in-flight claims are
/// [`Claim::InFlight`] until `timestamp + lease_ms` (plus the clock-skew
/// grace) and may be taken over after, and its receipts are
/// [`Claim::Completed`]. Cloning is cheap and clones share the store.
#[derive(Clone)]
pub struct FencedCache {
    store: Arc<dyn DurableStore>,
    protocol: Arc<FencedProtocol>,
    /// Whether spans carry raw keys.
    raw_keys_in_traces: bool,
}

impl std::fmt::Debug for FencedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedCache")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// Sixteen random bytes, never all zero.
fn fresh_claim_id() -> Result<ClaimId, DurabilityError> {
    for _ in 0..MAX_CLAIM_ID_DRAWS {
        let mut bytes = [0u8; crate::codec::CLAIM_ID_LEN];
        getrandom::fill(&mut bytes).map_err(|error| {
            DurabilityError::StoreError(format!(
                "no claim id could be drawn (the system's random source failed: {error}); \
                 nothing was written"
            ))
        })?;
        if let Some(id) = ClaimId::new(bytes) {
            return Ok(id);
        }
    }
    Err(DurabilityError::StoreError(
        "the system's random source returned all-zero claim ids; nothing was written".into(),
    ))
}

impl FencedCache {
    /// A cache named `namespace` over `store`.
    ///
    /// Fails with [`DurabilityError::ConfigError`] for an empty namespace,
    /// one containing `:`, or options out of range, and with
    /// [`DurabilityError::LimitExceeded`] for a namespace over
    /// [`MAX_NAMESPACE_BYTES`](crate::limits::MAX_NAMESPACE_BYTES).
    pub fn new(
        store: impl IntoStore,
        namespace: impl Into<String>,
        options: FencedOptions,
    ) -> Result<FencedCache, DurabilityError> {
        let store = store.into_store();
        let durability = AppendDurability::of(&*store);
        let protocol = FencedProtocol::new(namespace, options, durability)?;
        Ok(FencedCache {
            store,
            protocol: Arc::new(protocol),
            raw_keys_in_traces: options.raw_keys_in_traces,
        })
    }

    /// A watch of `operation` on `key` (`None`: a sweep of the namespace).
    fn watch(&self, operation: OpKind, key: Option<&str>) -> Watch {
        let base = self.protocol.base();
        Watch::new(
            Api::Fenced,
            operation,
            base.namespace(),
            key,
            self.raw_keys_in_traces,
            || key.map_or_else(|| base.stream_prefix(), |key| base.stream_key_for(key)),
        )
    }

    /// The protocol whose operations this cache drives; the model and the
    /// fuzzer drive the same ones.
    #[must_use]
    pub fn protocol(&self) -> &FencedProtocol {
        &self.protocol
    }

    /// The store under the cache.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn DurableStore> {
        &self.store
    }

    /// The stream that holds `key`.
    #[must_use]
    pub fn stream_key_for(&self, key: &str) -> String {
        self.protocol.base().stream_key_for(key)
    }

    /// Claims `key` at `now_millis`: [`Claim::Granted`] (deliver, then
    /// complete or release with the token), [`Claim::InFlight`] (someone
    /// holds it: defer) or [`Claim::Completed`] (answer with the receipt).
    pub async fn claim(&self, key: &str, now_millis: u64) -> Result<Claim, DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Claim, Some(key)), || {
            self.protocol
                .claim(key, fresh_claim_id()?, None, now_millis)
        })
        .await
    }

    /// [`claim`](FencedCache::claim) for a message with digest
    /// `fingerprint`: a key held or completed with another fingerprint is
    /// [`DurabilityError::FingerprintMismatch`].
    pub async fn claim_with_fingerprint(
        &self,
        key: &str,
        fingerprint: &[u8],
        now_millis: u64,
    ) -> Result<Claim, DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Claim, Some(key)), || {
            self.protocol
                .claim(key, fresh_claim_id()?, Some(fingerprint), now_millis)
        })
        .await
    }

    /// Stores `receipt` for the token's claim. Again with the same receipt
    /// is `Ok`; with another, [`DurabilityError::DedupCollision`]; when the
    /// claim is no longer the key's current record,
    /// [`DurabilityError::StaleClaim`] and nothing is written.
    pub async fn complete(
        &self,
        token: &ClaimToken,
        receipt: &ProcessingReceipt,
        now_millis: u64,
    ) -> Result<(), DurabilityError> {
        drive_watched(
            &*self.store,
            self.watch(OpKind::Complete, Some(token.key())),
            || self.protocol.complete(token, receipt, now_millis),
        )
        .await
    }

    /// Gives the token's claim up (delivery failed) so the key can be
    /// claimed again; [`DurabilityError::StaleClaim`] when it is no longer
    /// the key's current claim (a completed key keeps its receipt).
    pub async fn release(
        &self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<(), DurabilityError> {
        drive_watched(
            &*self.store,
            self.watch(OpKind::Release, Some(token.key())),
            || self.protocol.release(token, now_millis),
        )
        .await
    }

    /// Extends the token's lease to `now_millis + lease_ms` and returns the
    /// new token (same fence); [`DurabilityError::StaleClaim`] when the claim
    /// is no longer the key's current claim.
    pub async fn renew(
        &self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<ClaimToken, DurabilityError> {
        drive_watched(
            &*self.store,
            self.watch(OpKind::Renew, Some(token.key())),
            || self.protocol.renew(token, now_millis),
        )
        .await
    }

    /// The key's state at `now_millis`, read without writing: `None` when
    /// absent or expired.
    pub async fn lookup(
        &self,
        key: &str,
        now_millis: u64,
    ) -> Result<Option<KeyStatus>, DurabilityError> {
        drive_watched(&*self.store, self.watch(OpKind::Lookup, Some(key)), || {
            self.protocol.lookup(key, now_millis)
        })
        .await
    }
}

/// Ends claims whose lease and receipts whose TTL (each plus the clock-skew
/// grace) have passed, and compacts the history below stream heads. Call
/// [`sweep_once`](FencedSweeper::sweep_once) periodically from your runtime;
/// it owns no timer. It remembers when its last clean sweep started (one
/// number), so that a key nobody wrote since costs no compaction.
#[derive(Debug, Clone)]
pub struct FencedSweeper {
    cache: FencedCache,
    /// The start of the last sweep that ended cleanly ([`NO_SWEEP`]: none),
    /// shared by the clones of this sweeper.
    previous_sweep_millis: Arc<AtomicU64>,
}

/// [`FencedSweeper::previous_sweep_millis`] before any clean sweep.
const NO_SWEEP: u64 = u64::MAX;

impl FencedSweeper {
    /// A sweeper for `cache`'s namespace, with its lease and receipt TTL.
    #[must_use]
    pub fn new(cache: &FencedCache) -> FencedSweeper {
        FencedSweeper {
            cache: cache.clone(),
            previous_sweep_millis: Arc::new(AtomicU64::new(NO_SWEEP)),
        }
    }

    /// One sweep at `now_millis`. A contended, corrupt or collided key is
    /// listed in [`FencedSweepReport::skipped`] and the sweep goes on; only a
    /// failed page read or a failed flush is an error.
    pub async fn sweep_once(&self, now_millis: u64) -> Result<FencedSweepReport, DurabilityError> {
        let previous = match self.previous_sweep_millis.load(Ordering::Acquire) {
            NO_SWEEP => None,
            millis => Some(millis),
        };
        let watch = self.cache.watch(OpKind::Sweep, None);
        let report = drive_watched(&**self.cache.store(), watch, || {
            Ok(self.cache.protocol.sweep_after(now_millis, previous))
        })
        .await?;
        // A failed compaction is retried by the next sweep: keep the older
        // time, so that sweep sees the head as not compacted yet.
        if report.failed_compactions == 0 && now_millis != NO_SWEEP {
            self.previous_sweep_millis
                .store(now_millis, Ordering::Release);
        }
        Ok(report)
    }
}
