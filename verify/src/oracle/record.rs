//! The reference record decoder and encoder (`docs/record-format.md`).
//!
//! Written from the format's page alone, never from the engine's codec, so
//! that the harness can compare the two: a bug in the engine's codec that
//! encodes and decodes symmetrically wrong still disagrees with this one.
//!
//! [`decode`] is total: any input is one [`Record`] or one [`RecordError`].
//! It never panics and allocates at most the input's length: every declared
//! length is compared with the bytes that remain before anything is
//! allocated. [`Record::encode`] is the reference encoder the tests and the
//! fuzz differential build byte strings with.

use std::fmt;

/// Bytes of the magic that opens every record.
pub const MAGIC_BYTES: usize = 4;
/// Bytes of a claim id (`docs/record-format.md`, "Version 2").
pub const CLAIM_ID_BYTES: usize = 16;
/// Bytes of the CRC-32C that ends every version-2 record.
pub const CRC_BYTES: usize = 4;

/// The magic of a version-1 active entry.
pub const MAGIC_V1_ENTRY: [u8; 4] = *b"LDE1";
/// The magic of a version-1 tombstone.
pub const MAGIC_V1_TOMBSTONE: [u8; 4] = *b"LDT1";
/// The magic of a version-2 claim.
pub const MAGIC_V2_CLAIM: [u8; 4] = *b"LDC2";
/// The magic of a version-2 completion.
pub const MAGIC_V2_COMPLETION: [u8; 4] = *b"LDR2";
/// The magic of a version-2 release.
pub const MAGIC_V2_RELEASE: [u8; 4] = *b"LDT2";

const OPTION_ABSENT: u8 = 0x00;
const OPTION_PRESENT: u8 = 0x01;

/// A claim id: 16 bytes drawn at random by the claimer for each grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClaimId(pub [u8; CLAIM_ID_BYTES]);

impl ClaimId {
    /// The reserved all-zero id (valid only in a sweeper's release of a
    /// version-1 record).
    pub const ZERO: ClaimId = ClaimId([0; CLAIM_ID_BYTES]);

    /// True for the reserved all-zero id.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == ClaimId::ZERO
    }
}

/// Why a version-2 release was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleaseReason {
    /// `0x00`: released by the holder (delivery failed).
    Holder,
    /// `0x01`: expired by the sweeper.
    Expired,
}

impl ReleaseReason {
    /// The reason's byte.
    #[must_use]
    pub fn byte(self) -> u8 {
        match self {
            ReleaseReason::Holder => 0x00,
            ReleaseReason::Expired => 0x01,
        }
    }

    /// The reason a byte names, if any.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<ReleaseReason> {
        match byte {
            0x00 => Some(ReleaseReason::Holder),
            0x01 => Some(ReleaseReason::Expired),
            _ => None,
        }
    }
}

/// One record, as plain values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// `LDE1`: a claim in flight (no receipt) or a completed key.
    V1Entry {
        /// The idempotency key.
        key: String,
        /// The receipt, for a completed key.
        receipt: Option<Vec<u8>>,
        /// The entry's TTL anchor.
        timestamp_millis: u64,
    },
    /// `LDT1`: the key is absent again.
    V1Tombstone {
        /// The idempotency key.
        key: String,
        /// When it was written.
        timestamp_millis: u64,
    },
    /// `LDC2`: a claim (a grant or a renewal).
    Claim {
        /// The idempotency key.
        key: String,
        /// The grant's claim id (never zero).
        claim_id: ClaimId,
        /// The sequence of the record that granted the claim.
        fence: u64,
        /// When the claim was granted or renewed.
        claimed_at_millis: u64,
        /// When its lease ends (never before `claimed_at_millis`).
        lease_expires_millis: u64,
        /// The digest of the message the claim is for.
        fingerprint: Option<Vec<u8>>,
    },
    /// `LDR2`: a completion.
    Completion {
        /// The idempotency key.
        key: String,
        /// The claim id of the claim it completes (never zero).
        claim_id: ClaimId,
        /// That claim's fence.
        fence: u64,
        /// The receipt's TTL anchor.
        completed_at_millis: u64,
        /// The receipt.
        receipt: Vec<u8>,
        /// The claim's fingerprint, repeated.
        fingerprint: Option<Vec<u8>>,
    },
    /// `LDT2`: a release by the holder or an expiry by the sweeper.
    Release {
        /// The idempotency key.
        key: String,
        /// The claim id of the record it ends (zero only for an expiry of
        /// a version-1 record).
        claim_id: ClaimId,
        /// That record's fence.
        fence: u64,
        /// When it was written.
        released_at_millis: u64,
        /// Why.
        reason: ReleaseReason,
    },
}

/// A field of a record, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The magic.
    Magic,
    /// A byte string's length.
    Length,
    /// The key's bytes.
    Key,
    /// An option's marker byte.
    OptionMarker,
    /// The receipt's bytes.
    Receipt,
    /// The fingerprint's bytes.
    Fingerprint,
    /// The claim id.
    ClaimId,
    /// A `u64` timestamp or fence.
    Integer,
    /// The release reason.
    Reason,
    /// The checksum.
    Checksum,
}

/// Why a byte string is not a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordError {
    /// Fewer than four bytes, or a magic no version defines.
    UnknownMagic {
        /// The first bytes (at most four).
        found: Vec<u8>,
    },
    /// The input ended inside a field.
    Truncated {
        /// The field.
        field: Field,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that remained.
        available: usize,
    },
    /// A byte string declares more bytes than remain.
    LengthExceedsInput {
        /// The field.
        field: Field,
        /// The declared length.
        declared: u64,
        /// Bytes that remained.
        available: usize,
    },
    /// The key's bytes are not UTF-8.
    InvalidUtf8,
    /// An option marker other than `0x00` and `0x01`.
    InvalidOptionMarker {
        /// The marker.
        found: u8,
    },
    /// A release reason other than `0x00` and `0x01`.
    InvalidReason {
        /// The byte.
        found: u8,
    },
    /// An all-zero claim id where the format forbids it.
    ZeroClaimId,
    /// A claim whose lease ends before it was granted.
    LeaseEndsBeforeClaim,
    /// The stored checksum is not the CRC-32C of the bytes before it.
    ChecksumMismatch {
        /// The stored value.
        stored: u32,
        /// The value computed over the record.
        computed: u32,
    },
    /// Bytes after a complete record.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::UnknownMagic { found } => write!(f, "unknown magic {found:02x?}"),
            RecordError::Truncated {
                field,
                needed,
                available,
            } => write!(
                f,
                "truncated in {field:?}: {needed} bytes needed, {available} left"
            ),
            RecordError::LengthExceedsInput {
                field,
                declared,
                available,
            } => write!(
                f,
                "{field:?} declares {declared} bytes, only {available} left"
            ),
            RecordError::InvalidUtf8 => f.write_str("the key is not UTF-8"),
            RecordError::InvalidOptionMarker { found } => {
                write!(f, "option marker {found:#04x} is neither 0x00 nor 0x01")
            }
            RecordError::InvalidReason { found } => {
                write!(f, "release reason {found:#04x} is neither 0x00 nor 0x01")
            }
            RecordError::ZeroClaimId => f.write_str("an all-zero claim id where none is allowed"),
            RecordError::LeaseEndsBeforeClaim => f.write_str("the lease ends before the claim"),
            RecordError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
            RecordError::TrailingBytes { count } => {
                write!(f, "{count} bytes after a complete record")
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// A cursor over the input; every read checks what remains first.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn take(&mut self, field: Field, count: usize) -> Result<&'a [u8], RecordError> {
        let available = self.remaining();
        let slice = self
            .bytes
            .get(self.at..)
            .and_then(|rest| rest.get(..count))
            .ok_or(RecordError::Truncated {
                field,
                needed: count,
                available,
            })?;
        self.at += count;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn u8(&mut self, field: Field) -> Result<u8, RecordError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array(Field::Integer)?))
    }

    fn byte_string(&mut self, field: Field) -> Result<&'a [u8], RecordError> {
        let declared = u64::from_be_bytes(self.array(Field::Length)?);
        let available = self.remaining();
        match usize::try_from(declared) {
            Ok(len) if len <= available => self.take(field, len),
            _ => Err(RecordError::LengthExceedsInput {
                field,
                declared,
                available,
            }),
        }
    }

    fn key(&mut self) -> Result<String, RecordError> {
        let bytes = self.byte_string(Field::Key)?;
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    fn option(&mut self, field: Field) -> Result<Option<Vec<u8>>, RecordError> {
        match self.u8(Field::OptionMarker)? {
            OPTION_ABSENT => Ok(None),
            OPTION_PRESENT => Ok(Some(self.byte_string(field)?.to_vec())),
            found => Err(RecordError::InvalidOptionMarker { found }),
        }
    }

    fn claim_id(&mut self) -> Result<ClaimId, RecordError> {
        Ok(ClaimId(self.array(Field::ClaimId)?))
    }

    /// For a version-2 record: the checksum, compared with the CRC-32C of
    /// every byte before it.
    fn checksum(&mut self) -> Result<(), RecordError> {
        let covered = self.bytes.get(..self.at).unwrap_or_default();
        let stored = u32::from_be_bytes(self.array(Field::Checksum)?);
        let computed = crc32c::crc32c(covered);
        if stored == computed {
            Ok(())
        } else {
            Err(RecordError::ChecksumMismatch { stored, computed })
        }
    }

    fn end(&self) -> Result<(), RecordError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(RecordError::TrailingBytes { count }),
        }
    }
}

/// Decodes one record: version 1 or version 2, dispatched on the magic.
///
/// # Errors
/// A [`RecordError`] naming the first thing wrong with the bytes.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let Some(magic) = bytes.first_chunk::<MAGIC_BYTES>() else {
        return Err(RecordError::UnknownMagic {
            found: bytes.to_vec(),
        });
    };
    let mut reader = Reader {
        bytes,
        at: MAGIC_BYTES,
    };
    let record = match *magic {
        MAGIC_V1_ENTRY => {
            let key = reader.key()?;
            let receipt = reader.option(Field::Receipt)?;
            let timestamp_millis = reader.u64()?;
            Record::V1Entry {
                key,
                receipt,
                timestamp_millis,
            }
        }
        MAGIC_V1_TOMBSTONE => Record::V1Tombstone {
            key: reader.key()?,
            timestamp_millis: reader.u64()?,
        },
        MAGIC_V2_CLAIM => decode_claim(&mut reader)?,
        MAGIC_V2_COMPLETION => decode_completion(&mut reader)?,
        MAGIC_V2_RELEASE => decode_release(&mut reader)?,
        found => {
            return Err(RecordError::UnknownMagic {
                found: found.to_vec(),
            });
        }
    };
    reader.end()?;
    Ok(record)
}

fn decode_claim(reader: &mut Reader<'_>) -> Result<Record, RecordError> {
    let key = reader.key()?;
    let claim_id = reader.claim_id()?;
    let fence = reader.u64()?;
    let claimed_at_millis = reader.u64()?;
    let lease_expires_millis = reader.u64()?;
    let fingerprint = reader.option(Field::Fingerprint)?;
    reader.checksum()?;
    if claim_id.is_zero() {
        return Err(RecordError::ZeroClaimId);
    }
    if lease_expires_millis < claimed_at_millis {
        return Err(RecordError::LeaseEndsBeforeClaim);
    }
    Ok(Record::Claim {
        key,
        claim_id,
        fence,
        claimed_at_millis,
        lease_expires_millis,
        fingerprint,
    })
}

fn decode_completion(reader: &mut Reader<'_>) -> Result<Record, RecordError> {
    let key = reader.key()?;
    let claim_id = reader.claim_id()?;
    let fence = reader.u64()?;
    let completed_at_millis = reader.u64()?;
    let receipt = reader.byte_string(Field::Receipt)?.to_vec();
    let fingerprint = reader.option(Field::Fingerprint)?;
    reader.checksum()?;
    if claim_id.is_zero() {
        return Err(RecordError::ZeroClaimId);
    }
    Ok(Record::Completion {
        key,
        claim_id,
        fence,
        completed_at_millis,
        receipt,
        fingerprint,
    })
}

fn decode_release(reader: &mut Reader<'_>) -> Result<Record, RecordError> {
    let key = reader.key()?;
    let claim_id = reader.claim_id()?;
    let fence = reader.u64()?;
    let released_at_millis = reader.u64()?;
    let reason_byte = reader.u8(Field::Reason)?;
    reader.checksum()?;
    let reason = ReleaseReason::from_byte(reason_byte)
        .ok_or(RecordError::InvalidReason { found: reason_byte })?;
    if claim_id.is_zero() && reason != ReleaseReason::Expired {
        return Err(RecordError::ZeroClaimId);
    }
    Ok(Record::Release {
        key,
        claim_id,
        fence,
        released_at_millis,
        reason,
    })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // A `usize` always fits a `u64` on the platforms Rust supports.
    out.extend_from_slice(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_option(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(OPTION_ABSENT),
        Some(bytes) => {
            out.push(OPTION_PRESENT);
            put_bytes(out, bytes);
        }
    }
}

impl Record {
    /// The record's key.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            Record::V1Entry { key, .. }
            | Record::V1Tombstone { key, .. }
            | Record::Claim { key, .. }
            | Record::Completion { key, .. }
            | Record::Release { key, .. } => key,
        }
    }

    /// True for a record of version 2.
    #[must_use]
    pub fn is_v2(&self) -> bool {
        matches!(
            self,
            Record::Claim { .. } | Record::Completion { .. } | Record::Release { .. }
        )
    }

    /// The record's bytes, as `docs/record-format.md` gives them. Version-2
    /// records end with their CRC-32C. Every record this crate's [`decode`]
    /// accepts re-encodes to the bytes it was decoded from.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::V1Entry {
                key,
                receipt,
                timestamp_millis,
            } => {
                out.extend_from_slice(&MAGIC_V1_ENTRY);
                put_bytes(&mut out, key.as_bytes());
                put_option(&mut out, receipt.as_deref());
                out.extend_from_slice(&timestamp_millis.to_be_bytes());
            }
            Record::V1Tombstone {
                key,
                timestamp_millis,
            } => {
                out.extend_from_slice(&MAGIC_V1_TOMBSTONE);
                put_bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&timestamp_millis.to_be_bytes());
            }
            Record::Claim {
                key,
                claim_id,
                fence,
                claimed_at_millis,
                lease_expires_millis,
                fingerprint,
            } => {
                out.extend_from_slice(&MAGIC_V2_CLAIM);
                put_bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&claim_id.0);
                out.extend_from_slice(&fence.to_be_bytes());
                out.extend_from_slice(&claimed_at_millis.to_be_bytes());
                out.extend_from_slice(&lease_expires_millis.to_be_bytes());
                put_option(&mut out, fingerprint.as_deref());
            }
            Record::Completion {
                key,
                claim_id,
                fence,
                completed_at_millis,
                receipt,
                fingerprint,
            } => {
                out.extend_from_slice(&MAGIC_V2_COMPLETION);
                put_bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&claim_id.0);
                out.extend_from_slice(&fence.to_be_bytes());
                out.extend_from_slice(&completed_at_millis.to_be_bytes());
                put_bytes(&mut out, receipt);
                put_option(&mut out, fingerprint.as_deref());
            }
            Record::Release {
                key,
                claim_id,
                fence,
                released_at_millis,
                reason,
            } => {
                out.extend_from_slice(&MAGIC_V2_RELEASE);
                put_bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&claim_id.0);
                out.extend_from_slice(&fence.to_be_bytes());
                out.extend_from_slice(&released_at_millis.to_be_bytes());
                out.push(reason.byte());
            }
        }
        if self.is_v2() {
            let crc = crc32c::crc32c(&out);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests;
