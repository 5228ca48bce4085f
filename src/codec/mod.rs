//! The record codec: version 1 (the seed system's format, [`DedupRecord`])
//! and version 2 (the fenced API's checksummed records, [`FencedRecord`]).
//!
//! The bytes of both versions are specified in `docs/record-format.md`.
//! Decoding is total: any byte string yields a record or an
//! [`EnvelopeError`] naming the field that was wrong. It never panics and
//! never allocates more than the input's length (a declared length is
//! checked against the bytes that remain before anything is allocated). The
//! format is canonical: what decodes re-encodes to exactly the input bytes.
//!
//! [`DedupRecord::decode`] reads version 1 only (the seed API's streams hold
//! nothing else); [`FencedRecord::decode`] is the one entry point that reads
//! both versions, which is how the fenced API serves a namespace the seed API
//! wrote.

use std::fmt;

mod v1;
pub(crate) mod v2;

pub use v1::{ACTIVE_MAGIC_V1, DedupEntry, DedupRecord, TOMBSTONE_MAGIC_V1, Tombstone};
pub use v2::{
    CLAIM_ID_LEN, CLAIM_MAGIC_V2, COMPLETION_MAGIC_V2, ClaimId, ClaimRecord, CompletionRecord,
    FencedRecord, RELEASE_MAGIC_V2, ReleaseReason, ReleaseRecord,
};

pub(crate) const MAGIC_LEN: usize = 4;
pub(crate) const U64_LEN: usize = 8;
pub(crate) const OPTION_NONE: u8 = 0x00;
pub(crate) const OPTION_SOME: u8 = 0x01;

/// The opaque result of processing a message, stored so that later
/// duplicates get it back instead of being processed again.
///
/// Its `Debug` output shows the length only: receipts may carry customer data.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessingReceipt(Vec<u8>);

impl ProcessingReceipt {
    /// Wraps the receipt bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        ProcessingReceipt(bytes.into())
    }

    /// The receipt bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The receipt bytes, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for ProcessingReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessingReceipt({} bytes)", self.0.len())
    }
}

/// The two kinds of record.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `LDE1`.
    Active,
    /// `LDT1`.
    Tombstone,
}

/// A field of a record, as named in decode errors.
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordField {
    /// The four-byte magic.
    Magic,
    /// The key's length prefix.
    KeyLength,
    /// The key's bytes.
    Key,
    /// The receipt option marker.
    ReceiptMarker,
    /// The receipt's length prefix.
    ReceiptLength,
    /// The receipt's bytes.
    Receipt,
    /// The trailing timestamp (version 1).
    Timestamp,
    /// A version-2 record's claim id.
    ClaimId,
    /// A version-2 record's fence.
    Fence,
    /// A claim's `claimed_at_millis`.
    ClaimedAt,
    /// A claim's `lease_expires_millis`.
    LeaseExpires,
    /// A completion's `completed_at_millis`.
    CompletedAt,
    /// A release's `released_at_millis`.
    ReleasedAt,
    /// The fingerprint option marker.
    FingerprintMarker,
    /// The fingerprint's length prefix.
    FingerprintLength,
    /// The fingerprint's bytes.
    Fingerprint,
    /// A release's reason byte.
    Reason,
    /// A version-2 record's trailing CRC-32C.
    Checksum,
}

impl fmt::Display for RecordField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordField::Magic => "magic",
            RecordField::KeyLength => "key length",
            RecordField::Key => "key",
            RecordField::ReceiptMarker => "receipt marker",
            RecordField::ReceiptLength => "receipt length",
            RecordField::Receipt => "receipt",
            RecordField::Timestamp => "timestamp",
            RecordField::ClaimId => "claim id",
            RecordField::Fence => "fence",
            RecordField::ClaimedAt => "claimed_at_millis",
            RecordField::LeaseExpires => "lease_expires_millis",
            RecordField::CompletedAt => "completed_at_millis",
            RecordField::ReleasedAt => "released_at_millis",
            RecordField::FingerprintMarker => "fingerprint marker",
            RecordField::FingerprintLength => "fingerprint length",
            RecordField::Fingerprint => "fingerprint",
            RecordField::Reason => "release reason",
            RecordField::Checksum => "checksum",
        })
    }
}

/// Why a byte string is not a valid record.
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EnvelopeError {
    /// The first four bytes are no known magic (`LDE1`, `LDT1`, and for
    /// [`FencedRecord::decode`] also `LDC2`, `LDR2`, `LDT2`).
    #[error(
        "unknown magic {found:02x?} (expected \"LDE1\", \"LDT1\", \"LDC2\", \"LDR2\" or \"LDT2\")"
    )]
    UnknownMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The input ends inside a fixed-size field.
    #[error("truncated {field}: needs {needed} bytes, {available} remain")]
    Truncated {
        /// The field being read.
        field: RecordField,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the input.
        available: u64,
    },
    /// A length prefix declares more bytes than the input holds (this also
    /// catches lengths too large to represent or add).
    #[error("{field} declares {declared} bytes but only {available} remain")]
    LengthExceedsInput {
        /// The length-prefixed field.
        field: RecordField,
        /// The declared length.
        declared: u64,
        /// Bytes left in the input.
        available: u64,
    },
    /// The key is not valid UTF-8.
    #[error("{field} is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 {
        /// The field.
        field: RecordField,
        /// Length of the longest valid prefix.
        valid_up_to: u64,
    },
    /// The receipt option marker is neither 0x00 nor 0x01.
    #[error("receipt marker is {found:#04x} (expected 0x00 or 0x01)")]
    InvalidOptionMarker {
        /// The marker byte found.
        found: u8,
    },
    /// A version-2 option marker (the fingerprint's) is neither 0x00 nor 0x01.
    #[error("{field} is {found:#04x} (expected 0x00 or 0x01)")]
    InvalidMarker {
        /// The marker's field.
        field: RecordField,
        /// The marker byte found.
        found: u8,
    },
    /// A version-2 record's CRC-32C does not match its bytes: the record was
    /// damaged (a flipped bit, a torn write) and says nothing reliable.
    #[error(
        "checksum mismatch: the record stores CRC-32C {stored:#010x} but its bytes hash to \
         {computed:#010x}; the record is corrupt"
    )]
    ChecksumMismatch {
        /// The checksum stored in the record's last four bytes.
        stored: u32,
        /// The checksum of the bytes before it.
        computed: u32,
    },
    /// The all-zero claim id, which only a sweeper's release of a version-1
    /// record may carry, in a record of kind `magic`.
    #[error(
        "claim id is all zero in a {magic:02x?} record; only an expiry (reason 0x01) may carry it"
    )]
    ZeroClaimId {
        /// The record's magic.
        magic: [u8; 4],
    },
    /// A release's reason byte is neither 0x00 (released) nor 0x01 (expired).
    #[error("release reason is {found:#04x} (expected 0x00 or 0x01)")]
    InvalidReleaseReason {
        /// The reason byte found.
        found: u8,
    },
    /// A claim's lease ends before the claim was granted.
    #[error(
        "lease_expires_millis {lease_expires_millis} is before claimed_at_millis \
         {claimed_at_millis}"
    )]
    LeaseBeforeClaim {
        /// When the claim was granted.
        claimed_at_millis: u64,
        /// When its lease ends.
        lease_expires_millis: u64,
    },
    /// Bytes follow the last field.
    #[error("{count} trailing bytes after the record's last field")]
    TrailingBytes {
        /// How many.
        count: u64,
    },
    /// A valid record of the other kind.
    #[error("expected a {expected:?} record, found a {found:?} record")]
    WrongRecordKind {
        /// The kind the caller asked for.
        expected: RecordKind,
        /// The kind the bytes hold.
        found: RecordKind,
    },
}

/// Why a record was not encoded: it breaks one of the engine's limits, so
/// no engine writes it (`DedupEntry::serialize`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// The record's idempotency key is empty.
    #[error("the idempotency key is empty; a record always names its key")]
    EmptyKey,
    /// A field is longer than its limit (see [`crate::limits`]).
    #[error("the record's {field} is {actual_bytes} bytes, over the limit of {max_bytes} bytes")]
    TooLong {
        /// The field: [`RecordField::Key`] or [`RecordField::Receipt`].
        field: RecordField,
        /// The limit, in bytes.
        max_bytes: usize,
        /// The field's length, in bytes.
        actual_bytes: usize,
    },
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over the input that never reads past its end.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub(crate) fn take(
        &mut self,
        len: usize,
        field: RecordField,
    ) -> Result<&'a [u8], EnvelopeError> {
        if len > self.remaining() {
            return Err(EnvelopeError::Truncated {
                field,
                needed: len as u64,
                available: self.remaining() as u64,
            });
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    pub(crate) fn u64(&mut self, field: RecordField) -> Result<u64, EnvelopeError> {
        let raw = self.take(U64_LEN, field)?;
        let mut be = [0u8; U64_LEN];
        be.copy_from_slice(raw);
        Ok(u64::from_be_bytes(be))
    }

    pub(crate) fn byte_string(
        &mut self,
        length_field: RecordField,
        field: RecordField,
    ) -> Result<&'a [u8], EnvelopeError> {
        let declared = self.u64(length_field)?;
        let available = self.remaining();
        match usize::try_from(declared) {
            Ok(len) if len <= available => self.take(len, field),
            _ => Err(EnvelopeError::LengthExceedsInput {
                field,
                declared,
                available: available as u64,
            }),
        }
    }

    pub(crate) fn utf8(
        &mut self,
        length_field: RecordField,
        field: RecordField,
    ) -> Result<String, EnvelopeError> {
        let raw = self.byte_string(length_field, field)?;
        match std::str::from_utf8(raw) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(EnvelopeError::InvalidUtf8 {
                field,
                valid_up_to: error.valid_up_to() as u64,
            }),
        }
    }
}
