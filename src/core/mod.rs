//! The pure core: every engine operation as a deterministic state machine.
//!
//! An operation never performs I/O. It says what it needs from the store
//! ([`Operation::poll`] returns [`Step::Request`]), is fed the store's answer
//! ([`Operation::feed`]), and eventually ends with its result
//! ([`Step::Done`]). The async [`DedupCache`](crate::DedupCache) and
//! [`DedupSweeper`](crate::DedupSweeper) are loops that feed these machines
//! from a [`DurableStore`](crate::DurableStore); the stateright model and the
//! `cache_ops` fuzz target feed the very same machines from their own
//! simulated stores and choose how concurrent machines interleave.
//!
//! Every machine is `Clone + Eq + Hash + Debug`, so a model checker can keep
//! it in its state.
//!
//! ```
//! use atmostonce::core::{AppendDurability, Operation, Protocol, Step, StoreReply, StoreRequest};
//! use atmostonce::{DedupDecision, DedupOptions, StreamTable};
//!
//! let protocol = Protocol::new("orders", DedupOptions::default(), AppendDurability::Durable).unwrap();
//! let mut table = StreamTable::new();
//! let mut claim = protocol.claim("order-17", 1_000).unwrap();
//! let decision = loop {
//!     match claim.poll() {
//!         Step::Done(result) => break result.unwrap(),
//!         Step::Request(StoreRequest::ReadHead { stream }) => {
//!             claim.feed(StoreReply::Head(Ok(table.head(&stream))))
//!         }
//!         Step::Request(StoreRequest::Append { stream, payload, expected_seq }) => {
//!             claim.feed(StoreReply::Append(table.append(&stream, &payload, expected_seq, 0)))
//!         }
//!         Step::Request(other) => unreachable!("a claim does not ask for {other:?}"),
//!     }
//! };
//! assert_eq!(decision, DedupDecision::Claimed);
//! ```

pub mod fenced;
mod keyop;
mod read;
mod rules;
mod sweep;

use std::fmt::Debug;
use std::hash::Hash;

use crate::codec::{DedupRecord, ProcessingReceipt};
use crate::hash::KeyHash;
use crate::limits::{MAX_KEY_BYTES, MAX_NAMESPACE_BYTES, MAX_READ_BATCH, MAX_RECEIPT_BYTES};
use crate::store::{DurableStore, ScannedEntry, ScannedHead, StoredEntry, StreamHead};
use crate::{DedupOptions, DurabilityError};

pub use keyop::{KeyOp, PhaseKind};
pub use rules::{ClaimRule, CompleteRule, LookupRule, ReleaseRule, Rule};
pub use sweep::{DedupSweepReport, SweepOp};

/// `claim_or_get` as a state machine.
pub type ClaimOp = KeyOp<ClaimRule>;
/// `lookup` as a state machine.
pub type LookupOp = KeyOp<LookupRule>;
/// `complete_receipt_at` as a state machine.
pub type CompleteOp = KeyOp<CompleteRule>;
/// `release_claim_at` as a state machine.
pub type ReleaseOp = KeyOp<ReleaseRule>;

/// What an operation asks of the store next.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreRequest {
    /// `read_from(stream, offset, limit)`.
    Read {
        /// The stream.
        stream: String,
        /// First sequence wanted.
        offset: u64,
        /// Most entries wanted.
        limit: usize,
    },
    /// `append(stream, payload, expected_seq)`.
    Append {
        /// The stream.
        stream: String,
        /// The encoded record.
        payload: Vec<u8>,
        /// The stream length the append is conditioned on.
        expected_seq: u64,
    },
    /// `scan(prefix)`.
    Scan {
        /// The stream-name prefix.
        prefix: String,
    },
    /// `flush()`.
    Flush,
    /// `read_head(stream)`.
    ReadHead {
        /// The stream.
        stream: String,
    },
    /// `scan_heads(prefix, after, limit)`.
    ScanHeads {
        /// The stream-name prefix.
        prefix: String,
        /// The last stream of the previous page (`None`: the first page).
        after: Option<String>,
        /// Most streams wanted.
        limit: usize,
    },
    /// `compact(stream, below_seq)`.
    Compact {
        /// The stream.
        stream: String,
        /// Entries below this sequence may go (never the last one).
        below_seq: u64,
    },
}

/// The store's answer to a [`StoreRequest`] of the same kind.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreReply {
    /// Answers [`StoreRequest::Read`].
    Read(Result<Vec<StoredEntry>, DurabilityError>),
    /// Answers [`StoreRequest::Append`].
    Append(Result<u64, DurabilityError>),
    /// Answers [`StoreRequest::Scan`].
    Scan(Result<Vec<ScannedEntry>, DurabilityError>),
    /// Answers [`StoreRequest::Flush`].
    Flush(Result<(), DurabilityError>),
    /// Answers [`StoreRequest::ReadHead`].
    Head(Result<StreamHead, DurabilityError>),
    /// Answers [`StoreRequest::ScanHeads`].
    Heads(Result<Vec<ScannedHead>, DurabilityError>),
    /// Answers [`StoreRequest::Compact`]: how many entries were removed.
    Compact(Result<u64, DurabilityError>),
}

/// What an operation does next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step<T> {
    /// Perform this request and [`feed`](Operation::feed) the answer back.
    Request(StoreRequest),
    /// The operation is over.
    Done(Result<T, DurabilityError>),
}

/// An engine operation as a state machine.
pub trait Operation: Clone + Eq + Hash + Debug {
    /// What the operation ends with.
    type Output: Clone + Eq + Hash + Debug;

    /// The next step. Pure: calling it twice gives the same answer.
    fn poll(&self) -> Step<Self::Output>;

    /// Feeds the answer to the request [`poll`](Operation::poll) returned.
    /// An answer of the wrong kind, or one fed to a finished operation, ends
    /// the operation with a [`DurabilityError::StoreError`] (never a panic).
    fn feed(&mut self, reply: StoreReply);

    /// True once the operation has ended.
    fn is_done(&self) -> bool {
        matches!(self.poll(), Step::Done(_))
    }
}

/// The answer to `claim_or_get` (and, without `Claimed`, to `lookup`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DedupDecision {
    /// The caller now holds the key and may deliver the message.
    Claimed,
    /// Someone else holds the key: defer and try again later.
    InFlight,
    /// The key was processed: return this receipt, do not deliver.
    Completed(ProcessingReceipt),
}

/// A key's state as its stream's last record says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// No record, or a tombstone: the key may be claimed.
    Absent,
    /// An active entry without receipt: a claim is in flight.
    InFlight {
        /// The claim's TTL anchor.
        timestamp_millis: u64,
    },
    /// An active entry with a receipt.
    Completed {
        /// The stored receipt.
        receipt: ProcessingReceipt,
        /// The completion's TTL anchor.
        timestamp_millis: u64,
    },
}

impl KeyState {
    /// The state a stream whose last record is `head` is in.
    #[must_use]
    pub fn of(head: Option<&DedupRecord>) -> KeyState {
        match head {
            None | Some(DedupRecord::Tombstone(_)) => KeyState::Absent,
            Some(DedupRecord::Active(entry)) => match entry.receipt() {
                None => KeyState::InFlight {
                    timestamp_millis: entry.timestamp_millis(),
                },
                Some(receipt) => KeyState::Completed {
                    receipt: ProcessingReceipt::new(receipt.to_vec()),
                    timestamp_millis: entry.timestamp_millis(),
                },
            },
        }
    }

    /// What `lookup` answers for this state.
    #[must_use]
    pub fn decision(&self) -> Option<DedupDecision> {
        match self {
            KeyState::Absent => None,
            KeyState::InFlight { .. } => Some(DedupDecision::InFlight),
            KeyState::Completed { receipt, .. } => Some(DedupDecision::Completed(receipt.clone())),
        }
    }
}

/// The key an operation works on and the stream that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The idempotency key.
    pub key: String,
    /// Its stream's name.
    pub stream: String,
}

impl Target {
    /// The read of the stream's head, as both APIs' operations make it.
    pub(crate) fn head_request(&self) -> StoreRequest {
        StoreRequest::ReadHead {
            stream: self.stream.clone(),
        }
    }

    /// The read of the one record at `sequence`, below the head.
    pub(crate) fn probe_request(&self, sequence: u64) -> StoreRequest {
        StoreRequest::Read {
            stream: self.stream.clone(),
            offset: sequence,
            limit: 1,
        }
    }

    /// The append of `payload` at `expected_seq`.
    pub(crate) fn append_request(&self, payload: Vec<u8>, expected_seq: u64) -> StoreRequest {
        StoreRequest::Append {
            stream: self.stream.clone(),
            payload,
            expected_seq,
        }
    }
}

/// Whether a store's acknowledged appends are already durable, which decides
/// whether an operation flushes after appending, before it answers
/// (`docs/spec.md`, "Storage contract").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendDurability {
    /// An append that returned `Ok` is durable: no flush is needed.
    Durable,
    /// A store crash may drop acknowledged appends until a `flush()`
    /// succeeds: every operation flushes before it acknowledges a write.
    NeedsFlush,
}

impl AppendDurability {
    /// What `store` declares ([`DurableStore::acknowledged_appends_are_durable`](crate::DurableStore::acknowledged_appends_are_durable)).
    #[must_use]
    pub fn of(store: &dyn DurableStore) -> AppendDurability {
        if store.acknowledged_appends_are_durable() {
            AppendDurability::Durable
        } else {
            AppendDurability::NeedsFlush
        }
    }
}

/// How an operation talks to the store.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoPolicy {
    /// Entries per `read_from`.
    pub read_batch: usize,
    /// Whether to `flush` after an append before acknowledging it.
    pub durability: AppendDurability,
}

impl IoPolicy {
    /// True when operations flush after appending.
    pub(crate) fn flush_appends(self) -> bool {
        self.durability == AppendDurability::NeedsFlush
    }
}

/// The parameters of one cache (namespace, hashing, I/O policy) and the
/// constructors of its operations, which validate every input first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Protocol {
    namespace: String,
    hash_bits: u8,
    key_hash: KeyHash,
    io: IoPolicy,
}

impl Protocol {
    /// Validates the namespace and options. `durability` says whether
    /// operations flush after appending (needed unless the store's
    /// acknowledged appends are already durable).
    pub fn new(
        namespace: impl Into<String>,
        options: DedupOptions,
        durability: AppendDurability,
    ) -> Result<Protocol, DurabilityError> {
        let namespace = namespace.into();
        if namespace.is_empty() {
            return Err(DurabilityError::ConfigError(
                "the namespace is empty; give each cache a non-empty name such as \"orders\""
                    .into(),
            ));
        }
        if namespace.contains(':') {
            return Err(DurabilityError::ConfigError(format!(
                "the namespace {namespace:?} contains ':', which separates the namespace from \
                 the key hash in stream names; choose a name without ':'"
            )));
        }
        if namespace.len() > MAX_NAMESPACE_BYTES {
            return Err(DurabilityError::LimitExceeded {
                what: "namespace",
                max_bytes: MAX_NAMESPACE_BYTES,
                actual_bytes: namespace.len(),
            });
        }
        if options.read_batch == 0 || options.read_batch > MAX_READ_BATCH {
            return Err(DurabilityError::ConfigError(format!(
                "read_batch is {}; it must be between 1 and {MAX_READ_BATCH}",
                options.read_batch
            )));
        }
        if options.hash_bits == 0 || options.hash_bits > 64 {
            return Err(DurabilityError::ConfigError(format!(
                "hash_bits is {}; it must be between 1 and 64",
                options.hash_bits
            )));
        }
        if let KeyHash::SipHash24 { secret } = options.key_hash {
            if secret == [0; 16] {
                return Err(DurabilityError::ConfigError(
                    "the SipHash-2-4 secret is all zero (an unset secret?); draw 16 random \
                     bytes once for the namespace and keep them secret"
                        .into(),
                ));
            }
            if options.hash_bits != 64 {
                return Err(DurabilityError::ConfigError(format!(
                    "hash_bits is {}, but only the FNV-1a hash can be narrowed; the keyed \
                     hash is always whole",
                    options.hash_bits
                )));
            }
        }
        Ok(Protocol {
            namespace,
            hash_bits: options.hash_bits,
            key_hash: options.key_hash,
            io: IoPolicy {
                read_batch: options.read_batch,
                durability,
            },
        })
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The I/O policy every operation of this protocol follows.
    #[must_use]
    pub fn io(&self) -> IoPolicy {
        self.io
    }

    /// `"{namespace}:{key_hash(key)}"`, or with the keyed hash
    /// `"{namespace}:sip24-{32 hex digits}"` (`docs/spec.md`, "Streams").
    #[must_use]
    pub fn stream_key_for(&self, key: &str) -> String {
        let suffix = self.key_hash.stream_suffix(key, self.hash_bits);
        format!("{}:{suffix}", self.namespace)
    }

    /// The prefix every stream of this namespace starts with.
    #[must_use]
    pub fn stream_prefix(&self) -> String {
        format!("{}:", self.namespace)
    }

    fn target(&self, key: &str) -> Result<Target, DurabilityError> {
        if key.is_empty() {
            return Err(DurabilityError::InvalidInput(
                "the idempotency key is empty".into(),
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(DurabilityError::LimitExceeded {
                what: "idempotency key",
                max_bytes: MAX_KEY_BYTES,
                actual_bytes: key.len(),
            });
        }
        Ok(Target {
            key: key.to_owned(),
            stream: self.stream_key_for(key),
        })
    }

    /// `claim_or_get(key, now_millis)`.
    pub fn claim(&self, key: &str, now_millis: u64) -> Result<ClaimOp, DurabilityError> {
        Ok(KeyOp::new(
            self.target(key)?,
            self.io,
            ClaimRule { now_millis },
        ))
    }

    /// `lookup(key)`.
    pub fn lookup(&self, key: &str) -> Result<LookupOp, DurabilityError> {
        Ok(KeyOp::new(self.target(key)?, self.io, LookupRule))
    }

    /// `complete_receipt_at(key, receipt, timestamp_millis)`.
    pub fn complete(
        &self,
        key: &str,
        receipt: &ProcessingReceipt,
        timestamp_millis: u64,
    ) -> Result<CompleteOp, DurabilityError> {
        let target = self.target(key)?;
        if receipt.as_bytes().len() > MAX_RECEIPT_BYTES {
            return Err(DurabilityError::LimitExceeded {
                what: "receipt",
                max_bytes: MAX_RECEIPT_BYTES,
                actual_bytes: receipt.as_bytes().len(),
            });
        }
        Ok(KeyOp::new(
            target,
            self.io,
            CompleteRule {
                receipt: receipt.clone(),
                timestamp_millis,
            },
        ))
    }

    /// `release_claim_at(key, timestamp_millis)`.
    pub fn release(&self, key: &str, timestamp_millis: u64) -> Result<ReleaseOp, DurabilityError> {
        Ok(KeyOp::new(
            self.target(key)?,
            self.io,
            ReleaseRule { timestamp_millis },
        ))
    }

    /// One sweep of the namespace at `now_millis` with a TTL of `ttl_ms`.
    #[must_use]
    pub fn sweep(&self, now_millis: u64, ttl_ms: u64) -> SweepOp {
        SweepOp::new(self.stream_prefix(), self.io, now_millis, ttl_ms)
    }
}

/// The error an operation ends with when it is fed an answer of the wrong
/// kind: a bug in whatever drives it, reported instead of panicking.
fn misfed(reply: &StoreReply, expected: &str) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "operation driver error: fed {} while the operation waited for {expected}",
        match reply {
            StoreReply::Read(_) => "a read answer",
            StoreReply::Append(_) => "an append answer",
            StoreReply::Scan(_) => "a scan answer",
            StoreReply::Flush(_) => "a flush answer",
            StoreReply::Head(_) => "a head answer",
            StoreReply::Heads(_) => "a heads answer",
            StoreReply::Compact(_) => "a compaction answer",
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamTable;

    /// How the test store answers an operation's appends.
    #[derive(Clone, Copy)]
    enum Appends {
        /// As the table does.
        Normal,
        /// The first append is answered with an indeterminate error
        /// without being applied.
        FirstFails,
        /// Another writer appends a claim just before the first append.
        FirstRaced,
    }

    /// Drives `op` to its end against `table`, checking at every step, and
    /// once more at the end, that `is_done` says what `poll` says.
    fn drive<O: Operation>(mut op: O, table: &mut StreamTable, appends: Appends) {
        let mut first_append = true;
        for _ in 0..32 {
            let polled = op.poll();
            assert_eq!(op.is_done(), matches!(polled, Step::Done(_)), "{op:?}");
            let reply = match polled {
                Step::Done(_) => return,
                Step::Request(StoreRequest::Read {
                    stream,
                    offset,
                    limit,
                }) => StoreReply::Read(Ok(table.read_from(&stream, offset, limit))),
                Step::Request(StoreRequest::Scan { prefix }) => {
                    StoreReply::Scan(Ok(table.scan(&prefix)))
                }
                Step::Request(StoreRequest::Flush) => StoreReply::Flush(Ok(())),
                Step::Request(StoreRequest::ReadHead { stream }) => {
                    StoreReply::Head(Ok(table.head(&stream)))
                }
                Step::Request(StoreRequest::ScanHeads {
                    prefix,
                    after,
                    limit,
                }) => StoreReply::Heads(Ok(table.heads(&prefix, after.as_deref(), limit))),
                Step::Request(StoreRequest::Compact { stream, below_seq }) => {
                    StoreReply::Compact(Ok(table.compact(&stream, below_seq)))
                }
                Step::Request(StoreRequest::Append {
                    stream,
                    payload,
                    expected_seq,
                }) => {
                    let first = std::mem::replace(&mut first_append, false);
                    match appends {
                        Appends::FirstFails if first => {
                            StoreReply::Append(Err(DurabilityError::StoreError("injected".into())))
                        }
                        Appends::FirstRaced if first => {
                            let other =
                                DedupRecord::Active(crate::codec::DedupEntry::new("k", None, 7));
                            let len = table.len(&stream);
                            table.append(&stream, &other.encode(), len, 0).unwrap();
                            StoreReply::Append(table.append(&stream, &payload, expected_seq, 0))
                        }
                        _ => StoreReply::Append(table.append(&stream, &payload, expected_seq, 0)),
                    }
                }
            };
            op.feed(reply);
        }
        panic!("{op:?} did not end within 32 steps");
    }

    #[test]
    fn is_done_agrees_with_poll_at_every_step_of_every_operation() {
        let protocol = Protocol::new(
            "orders",
            DedupOptions::default(),
            AppendDurability::NeedsFlush,
        )
        .unwrap();
        let receipt = ProcessingReceipt::new(b"r".to_vec());
        for appends in [Appends::Normal, Appends::FirstFails, Appends::FirstRaced] {
            let mut table = StreamTable::new();
            drive(protocol.claim("k", 1).unwrap(), &mut table, appends);
            drive(protocol.lookup("k").unwrap(), &mut table, appends);
            drive(
                protocol.complete("k", &receipt, 2).unwrap(),
                &mut table,
                appends,
            );
            drive(protocol.release("k", 3).unwrap(), &mut table, appends);
            drive(protocol.sweep(1_000_000, 1), &mut table, appends);
            drive(protocol.claim("k", 1_000_001).unwrap(), &mut table, appends);
            drive(
                protocol.release("k", 1_000_002).unwrap(),
                &mut table,
                appends,
            );
        }
    }
}
