//! The fenced API's operations as pure state machines: claim (with a claim
//! id the caller draws), complete, release, renew, lookup, and one sweep.
//!
//! They read and write the records of `docs/record-format.md` (version 2,
//! and version 1 for reading a namespace the seed API wrote). Like every
//! machine of [`core`](crate::core) they perform no I/O and draw no random
//! numbers: the async [`FencedCache`](crate::fenced::FencedCache) draws the
//! claim id and feeds the machine from a store; the model and the fuzzer
//! feed the same machines from theirs.

mod op;
mod rules;
mod sweep;
mod token;

use super::{AppendDurability, Protocol, Target};
use crate::codec::{ClaimId, FencedRecord, ProcessingReceipt};
use crate::limits::{
    CLOCK_SKEW_GRACE_MS, DEFAULT_READ_BATCH, MAX_FINGERPRINT_BYTES, MAX_LEASE_MS,
    MAX_RECEIPT_BYTES, SWEEP_PAGE_STREAMS,
};
use crate::{DedupOptions, DurabilityError, KeyHash};

pub use op::FencedOp;
pub use rules::{
    FencedClaimRule, FencedCompleteRule, FencedLookupRule, FencedPlan, FencedReleaseRule,
    FencedRenewRule, FencedRule,
};
pub use sweep::{FencedSweepOp, FencedSweepReport, SkipReason, SkippedKey};
pub use token::{ClaimToken, TokenError};

/// `claim` / `claim_with_fingerprint` as a state machine.
pub type FencedClaimOp = FencedOp<FencedClaimRule>;
/// `complete` as a state machine.
pub type FencedCompleteOp = FencedOp<FencedCompleteRule>;
/// `release` as a state machine.
pub type FencedReleaseOp = FencedOp<FencedReleaseRule>;
/// `renew` as a state machine.
pub type FencedRenewOp = FencedOp<FencedRenewRule>;
/// `lookup` as a state machine.
pub type FencedLookupOp = FencedOp<FencedLookupRule>;

/// Tuning for a [`FencedCache`](crate::fenced::FencedCache).
///
/// ```
/// use atmostonce::fenced::FencedOptions;
///
/// let options = FencedOptions::default().with_lease_ms(10_000).with_receipt_ttl_ms(3_600_000);
/// assert_eq!(options.lease_ms, 10_000);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FencedOptions {
    /// How long a holder may work before the key may be taken over, in ms
    /// (1..=[`MAX_LEASE_MS`]). Default 30 000.
    pub lease_ms: u64,
    /// How long duplicates are answered with a receipt, in ms (at least 1).
    /// Default 86 400 000 (one day).
    pub receipt_ttl_ms: u64,
    /// Streams per page of a sweep (1..=[`SWEEP_PAGE_STREAMS`], the
    /// default): the most stream heads a sweep holds in memory at once, and
    /// one store call per page.
    pub sweep_page_streams: usize,
    /// Bits of the key hash in stream names (1..=64); only the harness
    /// narrows it (feature `testing`), to make keys collide on purpose.
    pub(crate) hash_bits: u8,
    /// How keys name their streams, as in [`DedupOptions::with_key_hash`].
    pub(crate) key_hash: KeyHash,
    /// Whether operation spans carry the raw key, as in
    /// [`DedupOptions::with_raw_keys_in_traces`].
    pub(crate) raw_keys_in_traces: bool,
}

impl Default for FencedOptions {
    fn default() -> Self {
        FencedOptions {
            lease_ms: 30_000,
            receipt_ttl_ms: 86_400_000,
            sweep_page_streams: SWEEP_PAGE_STREAMS,
            hash_bits: 64,
            key_hash: KeyHash::Fnv1a64,
            raw_keys_in_traces: false,
        }
    }
}

impl FencedOptions {
    /// Sets the claim lease.
    #[must_use]
    pub fn with_lease_ms(mut self, lease_ms: u64) -> Self {
        self.lease_ms = lease_ms;
        self
    }

    /// Sets the receipt TTL.
    #[must_use]
    pub fn with_receipt_ttl_ms(mut self, receipt_ttl_ms: u64) -> Self {
        self.receipt_ttl_ms = receipt_ttl_ms;
        self
    }

    /// Sets the streams per sweep page.
    #[must_use]
    pub fn with_sweep_page_streams(mut self, sweep_page_streams: usize) -> Self {
        self.sweep_page_streams = sweep_page_streams;
        self
    }

    /// Names the namespace's streams with `key_hash`, as
    /// [`DedupOptions::with_key_hash`] does (both APIs name a namespace's
    /// streams alike under the same choice).
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

    /// Puts the raw idempotency key in every operation's tracing span, as
    /// [`DedupOptions::with_raw_keys_in_traces`] does. Off by default.
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

/// The answer to a fenced claim.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Claim {
    /// The caller holds the key: deliver, passing `token.fence()` along.
    Granted(ClaimToken),
    /// Someone else holds the key: defer and try again after the lease.
    #[non_exhaustive]
    InFlight {
        /// When the holder's lease ends.
        lease_expires_millis: u64,
    },
    /// The key was processed: answer with this receipt, do not deliver.
    Completed(ProcessingReceipt),
}

/// What a fenced lookup finds.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// A claim is held until `lease_expires_millis`.
    #[non_exhaustive]
    InFlight {
        /// When the holder's lease ends.
        lease_expires_millis: u64,
    },
    /// The key was processed with this receipt.
    Completed(ProcessingReceipt),
}

/// The lease and receipt TTL every decision on time uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Times {
    /// The claim lease, for new claims and version-1 claims.
    pub lease_ms: u64,
    /// The receipt TTL.
    pub receipt_ttl_ms: u64,
}

/// A key's state at a time, by its stream's last record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FencedState {
    /// No record, or a release.
    Absent,
    /// A claim within its lease plus grace (`claim_id` `None`: a version-1 claim).
    Held {
        /// The holder's claim id.
        claim_id: Option<ClaimId>,
        /// When its lease ends.
        lease_expires_millis: u64,
        /// The claim's fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A claim whose lease plus grace has passed.
    ExpiredClaim,
    /// A receipt within its TTL plus grace.
    Completed {
        /// The receipt.
        receipt: ProcessingReceipt,
        /// The completed claim's fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A receipt whose TTL plus grace has passed.
    ExpiredReceipt,
}

impl FencedState {
    /// The state a stream whose last record is `head` is in at `now_millis`.
    #[must_use]
    pub fn at(head: Option<&FencedRecord>, now_millis: u64, times: Times) -> FencedState {
        let within = |anchor: u64, span: u64| {
            now_millis
                <= anchor
                    .saturating_add(span)
                    .saturating_add(CLOCK_SKEW_GRACE_MS)
        };
        match head {
            None | Some(FencedRecord::Tombstone(_) | FencedRecord::Release(_)) => {
                FencedState::Absent
            }
            Some(FencedRecord::Entry(entry)) => match entry.receipt() {
                None if within(entry.timestamp_millis(), times.lease_ms) => FencedState::Held {
                    claim_id: None,
                    lease_expires_millis: entry.timestamp_millis().saturating_add(times.lease_ms),
                    fingerprint: None,
                },
                None => FencedState::ExpiredClaim,
                Some(receipt) if within(entry.timestamp_millis(), times.receipt_ttl_ms) => {
                    FencedState::Completed {
                        receipt: ProcessingReceipt::new(receipt.to_vec()),
                        fingerprint: None,
                    }
                }
                Some(_) => FencedState::ExpiredReceipt,
            },
            Some(FencedRecord::Claim(claim)) if within(claim.lease_expires_millis(), 0) => {
                FencedState::Held {
                    claim_id: Some(claim.claim_id()),
                    lease_expires_millis: claim.lease_expires_millis(),
                    fingerprint: claim.fingerprint().map(<[u8]>::to_vec),
                }
            }
            Some(FencedRecord::Claim(_)) => FencedState::ExpiredClaim,
            Some(FencedRecord::Completion(completion))
                if within(completion.completed_at_millis(), times.receipt_ttl_ms) =>
            {
                FencedState::Completed {
                    receipt: completion.receipt().clone(),
                    fingerprint: completion.fingerprint().map(<[u8]>::to_vec),
                }
            }
            Some(FencedRecord::Completion(_)) => FencedState::ExpiredReceipt,
        }
    }

    /// What a lookup answers for this state.
    #[must_use]
    pub fn status(&self) -> Option<KeyStatus> {
        match self {
            FencedState::Absent | FencedState::ExpiredClaim | FencedState::ExpiredReceipt => None,
            FencedState::Held {
                lease_expires_millis,
                ..
            } => Some(KeyStatus::InFlight {
                lease_expires_millis: *lease_expires_millis,
            }),
            FencedState::Completed { receipt, .. } => Some(KeyStatus::Completed(receipt.clone())),
        }
    }
}

/// The parameters of one fenced cache (namespace, naming, I/O policy,
/// times) and the constructors of its operations, which validate every
/// input first. Streams are named as the seed [`Protocol`] names them, so
/// both APIs serve the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedProtocol {
    base: Protocol,
    times: Times,
    sweep_page_streams: usize,
}

impl FencedProtocol {
    /// Validates the namespace and options; `durability` as in
    /// [`Protocol::new`].
    pub fn new(
        namespace: impl Into<String>,
        options: FencedOptions,
        durability: AppendDurability,
    ) -> Result<FencedProtocol, DurabilityError> {
        if options.lease_ms == 0 || options.lease_ms > MAX_LEASE_MS {
            return Err(DurabilityError::ConfigError(format!(
                "lease_ms is {}; it must be between 1 and {MAX_LEASE_MS} (renew a claim that \
                 needs longer)",
                options.lease_ms
            )));
        }
        if options.receipt_ttl_ms == 0 {
            return Err(DurabilityError::ConfigError(
                "receipt_ttl_ms is 0; duplicates must be answered with the receipt for at \
                 least 1 ms"
                    .into(),
            ));
        }
        if options.sweep_page_streams == 0 || options.sweep_page_streams > SWEEP_PAGE_STREAMS {
            return Err(DurabilityError::ConfigError(format!(
                "sweep_page_streams is {}; it must be between 1 and {SWEEP_PAGE_STREAMS}",
                options.sweep_page_streams
            )));
        }
        let seed_options = DedupOptions {
            read_batch: DEFAULT_READ_BATCH,
            hash_bits: options.hash_bits,
            key_hash: options.key_hash,
            raw_keys_in_traces: options.raw_keys_in_traces,
        };
        Ok(FencedProtocol {
            base: Protocol::new(namespace, seed_options, durability)?,
            times: Times {
                lease_ms: options.lease_ms,
                receipt_ttl_ms: options.receipt_ttl_ms,
            },
            sweep_page_streams: options.sweep_page_streams,
        })
    }

    /// The seed protocol whose naming and I/O policy this one shares.
    #[must_use]
    pub fn base(&self) -> &Protocol {
        &self.base
    }

    /// The lease and receipt TTL.
    #[must_use]
    pub fn times(&self) -> Times {
        self.times
    }

    fn token_target(&self, token: &ClaimToken) -> Result<Target, DurabilityError> {
        self.base.target(&token.key)
    }

    /// A claim of `key` at `now_millis` that, if granted, carries `claim_id`
    /// and `fingerprint`.
    pub fn claim(
        &self,
        key: &str,
        claim_id: ClaimId,
        fingerprint: Option<&[u8]>,
        now_millis: u64,
    ) -> Result<FencedClaimOp, DurabilityError> {
        let target = self.base.target(key)?;
        if let Some(fingerprint) = fingerprint
            && fingerprint.len() > MAX_FINGERPRINT_BYTES
        {
            return Err(DurabilityError::LimitExceeded {
                what: "fingerprint",
                max_bytes: MAX_FINGERPRINT_BYTES,
                actual_bytes: fingerprint.len(),
            });
        }
        let rule = FencedClaimRule {
            claim_id,
            fingerprint: fingerprint.map(<[u8]>::to_vec),
            now_millis,
            times: self.times,
        };
        Ok(FencedOp::new(target, self.base.io(), rule))
    }

    /// The completion of `token`'s claim with `receipt` at `now_millis`.
    pub fn complete(
        &self,
        token: &ClaimToken,
        receipt: &ProcessingReceipt,
        now_millis: u64,
    ) -> Result<FencedCompleteOp, DurabilityError> {
        let target = self.token_target(token)?;
        if receipt.as_bytes().len() > MAX_RECEIPT_BYTES {
            return Err(DurabilityError::LimitExceeded {
                what: "receipt",
                max_bytes: MAX_RECEIPT_BYTES,
                actual_bytes: receipt.as_bytes().len(),
            });
        }
        let rule = FencedCompleteRule {
            token: token.clone(),
            receipt: receipt.clone(),
            now_millis,
        };
        Ok(FencedOp::new(target, self.base.io(), rule))
    }

    /// The release of `token`'s claim at `now_millis`.
    pub fn release(
        &self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<FencedReleaseOp, DurabilityError> {
        let rule = FencedReleaseRule {
            token: token.clone(),
            now_millis,
        };
        Ok(FencedOp::new(
            self.token_target(token)?,
            self.base.io(),
            rule,
        ))
    }

    /// The renewal of `token`'s lease from `now_millis`.
    pub fn renew(
        &self,
        token: &ClaimToken,
        now_millis: u64,
    ) -> Result<FencedRenewOp, DurabilityError> {
        let rule = FencedRenewRule {
            token: token.clone(),
            now_millis,
            lease_ms: self.times.lease_ms,
        };
        Ok(FencedOp::new(
            self.token_target(token)?,
            self.base.io(),
            rule,
        ))
    }

    /// A lookup of `key` at `now_millis`.
    pub fn lookup(&self, key: &str, now_millis: u64) -> Result<FencedLookupOp, DurabilityError> {
        let rule = FencedLookupRule {
            now_millis,
            times: self.times,
        };
        Ok(FencedOp::new(self.base.target(key)?, self.base.io(), rule))
    }

    /// One sweep of the namespace at `now_millis`, with no memory of an
    /// earlier one (it compacts every head with history below it).
    #[must_use]
    pub fn sweep(&self, now_millis: u64) -> FencedSweepOp {
        self.sweep_after(now_millis, None)
    }

    /// One sweep at `now_millis` after a sweep that started at
    /// `previous_sweep_millis` and ended cleanly: heads that sweep already
    /// compacted cost no compaction (`docs/spec.md`, "Sweep").
    #[must_use]
    pub fn sweep_after(
        &self,
        now_millis: u64,
        previous_sweep_millis: Option<u64>,
    ) -> FencedSweepOp {
        FencedSweepOp::new(
            self.base.clone(),
            self.times,
            self.sweep_page_streams,
            now_millis,
            previous_sweep_millis,
        )
    }
}
