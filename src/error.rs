//! The one error type of the engine, [`DurabilityError`].

use crate::codec::EnvelopeError;

/// Everything that can go wrong in the engine or its store.
///
/// Only [`DurabilityError::SequenceConflict`] is a *determinate* store answer
/// (the append did not happen). A [`DurabilityError::StoreError`] is
/// *indeterminate*: the append it answers may or may not have happened, and
/// the engine re-reads the stream before it decides anything from it.
#[non_exhaustive]
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

    /// A fenced operation's token no longer names the key's current claim:
    /// the claim was completed, released, expired by the sweeper or taken
    /// over after its lease ran out. Nothing was written.
    #[error(
        "the claim with fence {fence} on idempotency key {key:?} is no longer the key's current \
         claim (it was completed, released, expired or taken over); nothing was written: stop \
         working on its behalf and claim the key again if the message still needs processing"
    )]
    StaleClaim {
        /// The token's idempotency key.
        key: String,
        /// The token's fence.
        fence: u64,
    },

    /// A claim's fingerprint differs from the one the key is held or
    /// completed with: a different message reuses the idempotency key.
    /// Nothing was written and no receipt is given.
    #[error(
        "idempotency key {key:?} is held or completed for a message with a different \
         fingerprint; this is another message reusing the key: give it its own idempotency key"
    )]
    FingerprintMismatch {
        /// The idempotency key.
        key: String,
    },
}

impl DurabilityError {
    /// True when the store answered with an indeterminate error: the request
    /// it answers may or may not have been applied.
    #[must_use]
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, DurabilityError::StoreError(_))
    }
}

/// `Serialize`/`Deserialize` for [`DurabilityError`] through its serde form: the same variants, with the limit's
/// name as an owned string (the engine's own `&'static str` cannot be
/// borrowed from a deserializer).
#[cfg(feature = "serde")]
mod wire {
    use super::DurabilityError;
    use crate::codec::EnvelopeError;

    // The variant names are the engine's, kept so the wire reads alike.
    #[allow(clippy::enum_variant_names)]
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(super) enum Error {
        SequenceConflict {
            expected: u64,
            actual: u64,
        },
        DedupCollision {
            key: String,
        },
        EnvelopeError {
            stream: String,
            sequence: u64,
            error: EnvelopeError,
        },
        ConfigError(String),
        LimitExceeded {
            what: String,
            max_bytes: usize,
            actual_bytes: usize,
        },
        InvalidInput(String),
        StoreError(String),
        StaleClaim {
            key: String,
            fence: u64,
        },
        FingerprintMismatch {
            key: String,
        },
    }

    impl serde::Serialize for DurabilityError {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Error::from(self.clone()).serialize(serializer)
        }
    }

    impl<'de> serde::Deserialize<'de> for DurabilityError {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Error::deserialize(deserializer).map(DurabilityError::from)
        }
    }

    /// The engine's names for its limits (see `crate::limits`).
    const LIMIT_NAMES: [&str; 4] = ["idempotency key", "receipt", "namespace", "fingerprint"];

    impl From<DurabilityError> for Error {
        fn from(error: DurabilityError) -> Self {
            match error {
                DurabilityError::SequenceConflict { expected, actual } => {
                    Error::SequenceConflict { expected, actual }
                }
                DurabilityError::DedupCollision { key } => Error::DedupCollision { key },
                DurabilityError::EnvelopeError {
                    stream,
                    sequence,
                    error,
                } => Error::EnvelopeError {
                    stream,
                    sequence,
                    error,
                },
                DurabilityError::ConfigError(text) => Error::ConfigError(text),
                DurabilityError::LimitExceeded {
                    what,
                    max_bytes,
                    actual_bytes,
                } => Error::LimitExceeded {
                    what: what.to_owned(),
                    max_bytes,
                    actual_bytes,
                },
                DurabilityError::InvalidInput(text) => Error::InvalidInput(text),
                DurabilityError::StoreError(text) => Error::StoreError(text),
                DurabilityError::StaleClaim { key, fence } => Error::StaleClaim { key, fence },
                DurabilityError::FingerprintMismatch { key } => Error::FingerprintMismatch { key },
            }
        }
    }

    impl From<Error> for DurabilityError {
        fn from(error: Error) -> Self {
            match error {
                Error::SequenceConflict { expected, actual } => {
                    DurabilityError::SequenceConflict { expected, actual }
                }
                Error::DedupCollision { key } => DurabilityError::DedupCollision { key },
                Error::EnvelopeError {
                    stream,
                    sequence,
                    error,
                } => DurabilityError::EnvelopeError {
                    stream,
                    sequence,
                    error,
                },
                Error::ConfigError(text) => DurabilityError::ConfigError(text),
                Error::LimitExceeded {
                    what,
                    max_bytes,
                    actual_bytes,
                } => {
                    DurabilityError::LimitExceeded {
                        // A name the engine does not know reads as "limit".
                        what: LIMIT_NAMES
                            .into_iter()
                            .find(|known| *known == what)
                            .unwrap_or("limit"),
                        max_bytes,
                        actual_bytes,
                    }
                }
                Error::InvalidInput(text) => DurabilityError::InvalidInput(text),
                Error::StoreError(text) => DurabilityError::StoreError(text),
                Error::StaleClaim { key, fence } => DurabilityError::StaleClaim { key, fence },
                Error::FingerprintMismatch { key } => DurabilityError::FingerprintMismatch { key },
            }
        }
    }
}
