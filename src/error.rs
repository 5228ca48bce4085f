//! The one error type of the engine, [`DurabilityError`].

use crate::codec::EnvelopeError;

/// Everything that can go wrong in the engine or its store.
///
/// Only [`DurabilityError::SequenceConflict`] is a *determinate* store answer
/// (the append did not happen). A [`DurabilityError::StoreError`] is
/// *indeterminate*: the append it answers may or may not have happened, and
/// the engine re-reads the stream before it decides anything from it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DurabilityError {
    /// An append expected the stream to hold `expected` entries, but it holds
    /// `actual`: another writer got there first. Nothing was appended.
    #[error(
        "sequence conflict: the append expected the stream to hold {expected} entries but it \
         holds {actual}; another writer appended first, re-read and decide again"
    )]
    SequenceConflict {
        /// The stream length the append was conditioned on.
        expected: u64,
        /// The stream's real length when the append was refused.
        actual: u64,
    },

    /// The key's stream holds records of a different idempotency key (a hash
    /// collision), or a completion does not match what the key holds (a
    /// different receipt, or no claim at all).
    #[error(
        "dedup collision on idempotency key {key:?}: its stream holds a different key's \
         records, or a completion does not match the key's stored state"
    )]
    DedupCollision {
        /// The idempotency key the caller asked about.
        key: String,
    },

    /// A stored record is not a valid dedup record.
    #[error(
        "record {sequence} of stream {stream:?} is not a valid dedup record ({error}); the \
         stream is corrupt, nothing was written"
    )]
    EnvelopeError {
        /// The stream holding the bad record.
        stream: String,
        /// The bad record's sequence number.
        sequence: u64,
        /// What the decoder rejected.
        error: EnvelopeError,
    },

    /// The cache or sweeper was configured with an invalid value.
    #[error("invalid configuration: {0}")]
    ConfigError(String),

    /// An argument exceeds one of the engine's documented size limits
    /// (see [`crate::limits`]). Nothing was written.
    #[error(
        "{what} is {actual_bytes} bytes, over the limit of {max_bytes} bytes; nothing was written"
    )]
    // `what` is a `&'static str` naming one of the engine's own limits; it
    // only ever travels from the engine outwards, never back in.
    #[cfg_attr(feature = "serde", serde(skip_deserializing))]
    LimitExceeded {
        /// Which limit: `"idempotency key"`, `"receipt"`, `"namespace"`.
        what: &'static str,
        /// The limit, in bytes.
        max_bytes: usize,
        /// The size that was passed.
        actual_bytes: usize,
    },

    /// An argument is invalid for a reason other than its size (for example
    /// an empty idempotency key). Nothing was written.
    #[error("invalid input: {0}; nothing was written")]
    InvalidInput(String),

    /// The store failed. The operation it answers may or may not have taken
    /// effect; the engine never assumes either without re-reading.
    #[error("store error (outcome unknown): {0}")]
    StoreError(String),
}

impl DurabilityError {
    /// True when the store answered with an indeterminate error: the request
    /// it answers may or may not have been applied.
    #[must_use]
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, DurabilityError::StoreError(_))
    }
}
