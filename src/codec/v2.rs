//! Record codec, version 2 — the fenced API's records (`docs/record-format.md`).
//!
//! ```text
//! claim:       "LDC2" | key | claim_id [16] | fence | claimed_at_millis
//!                     | lease_expires_millis | fingerprint option | crc u32
//! completion:  "LDR2" | key | claim_id [16] | fence | completed_at_millis
//!                     | receipt byte string | fingerprint option | crc u32
//! release:     "LDT2" | key | claim_id [16] | fence | released_at_millis
//!                     | reason u8 | crc u32
//! ```
//!
//! `crc` is the CRC-32C of every byte before it, big-endian. It is checked
//! before any other field is read, so a damaged record is always reported as
//! [`EnvelopeError::ChecksumMismatch`], whatever the damage made of its fields.
//!
//! Worked example: the claim of key `"k"` with claim id `01 02 .. 10`, fence 0,
//! granted at 42 ms with a lease to 30 042 ms and no fingerprint, is 58 bytes:
//!
//! ```
//! use atmostonce::codec::{ClaimId, ClaimRecord, FencedRecord};
//!
//! let claim_id = ClaimId::new([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]).unwrap();
//! let claim = ClaimRecord::new("k", claim_id, 0, 42, 30_000, None);
//! let bytes = FencedRecord::Claim(claim.clone()).encode();
//! let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
//! assert_eq!(
//!     hex.join(" "),
//!     "4c 44 43 32 \
//!      00 00 00 00 00 00 00 01 6b \
//!      01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 \
//!      00 00 00 00 00 00 00 00 \
//!      00 00 00 00 00 00 00 2a \
//!      00 00 00 00 00 00 75 5a \
//!      00 \
//!      37 7a df e0"
//! );
//! assert_eq!(FencedRecord::decode(&bytes), Ok(FencedRecord::Claim(claim)));
//!
//! // A flipped bit anywhere is rejected.
//! let mut damaged = bytes.clone();
//! damaged[20] ^= 0x04;
//! assert!(FencedRecord::decode(&damaged).is_err());
//! ```

use std::fmt;

use super::{
    ACTIVE_MAGIC_V1, DedupEntry, DedupRecord, EnvelopeError, MAGIC_LEN, OPTION_NONE, OPTION_SOME,
    ProcessingReceipt, Reader, RecordField, TOMBSTONE_MAGIC_V1, Tombstone, U64_LEN, put_bytes,
};

/// Magic of a version-2 claim.
pub const CLAIM_MAGIC_V2: [u8; 4] = *b"LDC2";
/// Magic of a version-2 completion.
pub const COMPLETION_MAGIC_V2: [u8; 4] = *b"LDR2";
/// Magic of a version-2 release.
pub const RELEASE_MAGIC_V2: [u8; 4] = *b"LDT2";

/// Bytes of a claim id.
pub const CLAIM_ID_LEN: usize = 16;
const CRC_LEN: usize = 4;
const REASON_RELEASED: u8 = 0x00;
const REASON_EXPIRED: u8 = 0x01;

/// The random id a claimer draws for each grant; never all zero.
///
/// It tells a producer whether an append whose outcome it does not know is
/// its own: two producers claiming one key in the same millisecond write
/// different ids.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimId([u8; CLAIM_ID_LEN]);

impl ClaimId {
    /// The id made of `bytes`; `None` for the reserved all-zero id.
    #[must_use]
    pub fn new(bytes: [u8; CLAIM_ID_LEN]) -> Option<ClaimId> {
        (bytes != [0; CLAIM_ID_LEN]).then_some(ClaimId(bytes))
    }

    /// The id's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; CLAIM_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimId({self})")
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// `LDC2`: a grant (or a renewal) of a key to the claim `claim_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimRecord {
    key: String,
    claim_id: ClaimId,
    fence: u64,
    claimed_at_millis: u64,
    lease_expires_millis: u64,
    fingerprint: Option<Vec<u8>>,
}

impl ClaimRecord {
    /// A claim granted (or renewed) at `claimed_at_millis` whose lease ends
    /// `lease_ms` later (saturating at `u64::MAX`).
    pub fn new(
        key: impl Into<String>,
        claim_id: ClaimId,
        fence: u64,
        claimed_at_millis: u64,
        lease_ms: u64,
        fingerprint: Option<Vec<u8>>,
    ) -> ClaimRecord {
        ClaimRecord {
            key: key.into(),
            claim_id,
            fence,
            claimed_at_millis,
            lease_expires_millis: claimed_at_millis.saturating_add(lease_ms),
            fingerprint,
        }
    }

    /// The idempotency key.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        &self.key
    }

    /// The claim's id.
    #[must_use]
    pub fn claim_id(&self) -> ClaimId {
        self.claim_id
    }

    /// The sequence of the record that granted the claim.
    #[must_use]
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When the claim was granted or renewed.
    #[must_use]
    pub fn claimed_at_millis(&self) -> u64 {
        self.claimed_at_millis
    }

    /// When the lease ends (never before `claimed_at_millis`).
    #[must_use]
    pub fn lease_expires_millis(&self) -> u64 {
        self.lease_expires_millis
    }

    /// The digest of the message the claim is for, if the claimer gave one.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&[u8]> {
        self.fingerprint.as_deref()
    }
}

/// `LDR2`: the claim `claim_id` finished and stored its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompletionRecord {
    key: String,
    claim_id: ClaimId,
    fence: u64,
    completed_at_millis: u64,
    receipt: ProcessingReceipt,
    fingerprint: Option<Vec<u8>>,
}

impl CompletionRecord {
    /// The completion of `claim` at `completed_at_millis`, repeating the
    /// claim's key, id, fence and fingerprint.
    #[must_use]
    pub fn of(
        claim: &ClaimRecord,
        receipt: ProcessingReceipt,
        completed_at_millis: u64,
    ) -> CompletionRecord {
        CompletionRecord {
            key: claim.key.clone(),
            claim_id: claim.claim_id,
            fence: claim.fence,
            completed_at_millis,
            receipt,
            fingerprint: claim.fingerprint.clone(),
        }
    }

    /// The idempotency key.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        &self.key
    }

    /// The id of the claim that completed.
    #[must_use]
    pub fn claim_id(&self) -> ClaimId {
        self.claim_id
    }

    /// The completed claim's fence.
    #[must_use]
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The receipt's TTL anchor.
    #[must_use]
    pub fn completed_at_millis(&self) -> u64 {
        self.completed_at_millis
    }

    /// The stored receipt.
    #[must_use]
    pub fn receipt(&self) -> &ProcessingReceipt {
        &self.receipt
    }

    /// The completed claim's fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&[u8]> {
        self.fingerprint.as_deref()
    }
}

/// Why a key was released: a byte of the version-2 format, so exhaustive
/// (a new reason would be a new record version).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// `0x00`: the holder gave the claim up (delivery failed).
    Released,
    /// `0x01`: the sweeper ended an expired claim or receipt.
    Expired,
}

/// `LDT2`: the key is absent again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReleaseRecord {
    key: String,
    /// `None` (written as sixteen zero bytes) only for an expiry of a
    /// version-1 record.
    claim_id: Option<ClaimId>,
    fence: u64,
    released_at_millis: u64,
    reason: ReleaseReason,
}

impl ReleaseRecord {
    /// The holder's release of its claim.
    pub fn released(
        key: impl Into<String>,
        claim_id: ClaimId,
        fence: u64,
        released_at_millis: u64,
    ) -> ReleaseRecord {
        ReleaseRecord {
            key: key.into(),
            claim_id: Some(claim_id),
            fence,
            released_at_millis,
            reason: ReleaseReason::Released,
        }
    }

    /// The sweeper's expiry of the record with `claim_id` and `fence`
    /// (`None` and the record's own sequence for a version-1 record).
    pub fn expired(
        key: impl Into<String>,
        claim_id: Option<ClaimId>,
        fence: u64,
        released_at_millis: u64,
    ) -> ReleaseRecord {
        ReleaseRecord {
            key: key.into(),
            claim_id,
            fence,
            released_at_millis,
            reason: ReleaseReason::Expired,
        }
    }

    /// The idempotency key.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        &self.key
    }

    /// The id of the claim the release ends (`None`: a version-1 record).
    #[must_use]
    pub fn claim_id(&self) -> Option<ClaimId> {
        self.claim_id
    }

    /// The fence of the record the release ends.
    #[must_use]
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When the release was written.
    #[must_use]
    pub fn released_at_millis(&self) -> u64 {
        self.released_at_millis
    }

    /// Who released the key.
    #[must_use]
    pub fn reason(&self) -> ReleaseReason {
        self.reason
    }
}

/// Any record a key's stream may hold, of either version: what the fenced
/// API reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FencedRecord {
    /// `LDE1`: a seed claim (no receipt) or a seed completion.
    Entry(DedupEntry),
    /// `LDT1`: a seed tombstone.
    Tombstone(Tombstone),
    /// `LDC2`.
    Claim(ClaimRecord),
    /// `LDR2`.
    Completion(CompletionRecord),
    /// `LDT2`.
    Release(ReleaseRecord),
}

impl From<DedupRecord> for FencedRecord {
    fn from(record: DedupRecord) -> FencedRecord {
        match record {
            DedupRecord::Active(entry) => FencedRecord::Entry(entry),
            DedupRecord::Tombstone(tombstone) => FencedRecord::Tombstone(tombstone),
        }
    }
}

impl FencedRecord {
    /// The idempotency key the record belongs to.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        match self {
            FencedRecord::Entry(entry) => entry.idempotency_key(),
            FencedRecord::Tombstone(tombstone) => tombstone.idempotency_key(),
            FencedRecord::Claim(claim) => claim.idempotency_key(),
            FencedRecord::Completion(completion) => completion.idempotency_key(),
            FencedRecord::Release(release) => release.idempotency_key(),
        }
    }

    /// The claim id the record carries (`None` for version 1 and for an
    /// expiry of a version-1 record).
    #[must_use]
    pub fn claim_id(&self) -> Option<ClaimId> {
        match self {
            FencedRecord::Entry(_) | FencedRecord::Tombstone(_) => None,
            FencedRecord::Claim(claim) => Some(claim.claim_id),
            FencedRecord::Completion(completion) => Some(completion.claim_id),
            FencedRecord::Release(release) => release.claim_id,
        }
    }

    /// The record's encoding (version 1 for `Entry` and `Tombstone`).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let (magic, key) = match self {
            FencedRecord::Entry(entry) => return entry.encode(),
            FencedRecord::Tombstone(tombstone) => return tombstone.serialize(),
            FencedRecord::Claim(claim) => (CLAIM_MAGIC_V2, &claim.key),
            FencedRecord::Completion(completion) => (COMPLETION_MAGIC_V2, &completion.key),
            FencedRecord::Release(release) => (RELEASE_MAGIC_V2, &release.key),
        };
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&magic);
        put_bytes(&mut out, key.as_bytes());
        match self {
            FencedRecord::Entry(_) | FencedRecord::Tombstone(_) => {}
            FencedRecord::Claim(claim) => {
                out.extend_from_slice(claim.claim_id.as_bytes());
                out.extend_from_slice(&claim.fence.to_be_bytes());
                out.extend_from_slice(&claim.claimed_at_millis.to_be_bytes());
                out.extend_from_slice(&claim.lease_expires_millis.to_be_bytes());
                put_option(&mut out, claim.fingerprint.as_deref());
            }
            FencedRecord::Completion(completion) => {
                out.extend_from_slice(completion.claim_id.as_bytes());
                out.extend_from_slice(&completion.fence.to_be_bytes());
                out.extend_from_slice(&completion.completed_at_millis.to_be_bytes());
                put_bytes(&mut out, completion.receipt.as_bytes());
                put_option(&mut out, completion.fingerprint.as_deref());
            }
            FencedRecord::Release(release) => {
                let claim_id = release.claim_id.map_or([0; CLAIM_ID_LEN], |id| id.0);
                out.extend_from_slice(&claim_id);
                out.extend_from_slice(&release.fence.to_be_bytes());
                out.extend_from_slice(&release.released_at_millis.to_be_bytes());
                out.push(match release.reason {
                    ReleaseReason::Released => REASON_RELEASED,
                    ReleaseReason::Expired => REASON_EXPIRED,
                });
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The length of a version-2 encoding (an estimate for version 1).
    fn encoded_len(&self) -> usize {
        let option_len =
            |option: &Option<Vec<u8>>| 1 + option.as_ref().map_or(0, |bytes| U64_LEN + bytes.len());
        let fixed = MAGIC_LEN + U64_LEN + CLAIM_ID_LEN + 2 * U64_LEN + CRC_LEN;
        match self {
            FencedRecord::Entry(_) | FencedRecord::Tombstone(_) => 0,
            FencedRecord::Claim(claim) => {
                fixed + claim.key.len() + U64_LEN + option_len(&claim.fingerprint)
            }
            FencedRecord::Completion(completion) => {
                fixed
                    + completion.key.len()
                    + U64_LEN
                    + completion.receipt.as_bytes().len()
                    + option_len(&completion.fingerprint)
            }
            FencedRecord::Release(release) => fixed + release.key.len() + 1,
        }
    }

    /// Decodes a record of either version: the one decoder entry point of
    /// the fenced API.
    pub fn decode(bytes: &[u8]) -> Result<FencedRecord, EnvelopeError> {
        let mut magic_reader = Reader { bytes, offset: 0 };
        let magic = magic_reader.take(MAGIC_LEN, RecordField::Magic)?;
        if magic == ACTIVE_MAGIC_V1 || magic == TOMBSTONE_MAGIC_V1 {
            return DedupRecord::decode(bytes).map(FencedRecord::from);
        }
        if magic != CLAIM_MAGIC_V2 && magic != COMPLETION_MAGIC_V2 && magic != RELEASE_MAGIC_V2 {
            let mut found = [0u8; MAGIC_LEN];
            found.copy_from_slice(magic);
            return Err(EnvelopeError::UnknownMagic { found });
        }
        let mut found_magic = [0u8; MAGIC_LEN];
        found_magic.copy_from_slice(magic);
        let body_len = match bytes.len().checked_sub(MAGIC_LEN + CRC_LEN) {
            Some(rest) => MAGIC_LEN + rest,
            None => {
                return Err(EnvelopeError::Truncated {
                    field: RecordField::Checksum,
                    needed: CRC_LEN as u64,
                    available: (bytes.len() - MAGIC_LEN) as u64,
                });
            }
        };
        let (body, crc_bytes) = bytes.split_at(body_len);
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(crc_bytes);
        let stored = u32::from_be_bytes(stored);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(EnvelopeError::ChecksumMismatch { stored, computed });
        }
        let mut input = Reader {
            bytes: body,
            offset: MAGIC_LEN,
        };
        let key = input.utf8(RecordField::KeyLength, RecordField::Key)?;
        let claim_id = claim_id(&mut input)?;
        let fence = input.u64(RecordField::Fence)?;
        let record = if found_magic == CLAIM_MAGIC_V2 {
            let claimed_at_millis = input.u64(RecordField::ClaimedAt)?;
            let lease_expires_millis = input.u64(RecordField::LeaseExpires)?;
            if lease_expires_millis < claimed_at_millis {
                return Err(EnvelopeError::LeaseBeforeClaim {
                    claimed_at_millis,
                    lease_expires_millis,
                });
            }
            let fingerprint = fingerprint(&mut input)?;
            FencedRecord::Claim(ClaimRecord {
                key,
                claim_id: nonzero(claim_id, found_magic)?,
                fence,
                claimed_at_millis,
                lease_expires_millis,
                fingerprint,
            })
        } else if found_magic == COMPLETION_MAGIC_V2 {
            let completed_at_millis = input.u64(RecordField::CompletedAt)?;
            let receipt = input
                .byte_string(RecordField::ReceiptLength, RecordField::Receipt)?
                .to_vec();
            let fingerprint = fingerprint(&mut input)?;
            FencedRecord::Completion(CompletionRecord {
                key,
                claim_id: nonzero(claim_id, found_magic)?,
                fence,
                completed_at_millis,
                receipt: ProcessingReceipt::new(receipt),
                fingerprint,
            })
        } else {
            let released_at_millis = input.u64(RecordField::ReleasedAt)?;
            let (reason, claim_id) = match input.take(1, RecordField::Reason)?[0] {
                REASON_RELEASED => (
                    ReleaseReason::Released,
                    Some(nonzero(claim_id, found_magic)?),
                ),
                REASON_EXPIRED => (ReleaseReason::Expired, ClaimId::new(claim_id)),
                found => return Err(EnvelopeError::InvalidReleaseReason { found }),
            };
            FencedRecord::Release(ReleaseRecord {
                key,
                claim_id,
                fence,
                released_at_millis,
                reason,
            })
        };
        let trailing = body.len() - input.offset;
        if trailing != 0 {
            return Err(EnvelopeError::TrailingBytes {
                count: trailing as u64,
            });
        }
        Ok(record)
    }
}

pub(crate) fn put_option(out: &mut Vec<u8>, option: Option<&[u8]>) {
    match option {
        None => out.push(OPTION_NONE),
        Some(bytes) => {
            out.push(OPTION_SOME);
            put_bytes(out, bytes);
        }
    }
}

fn claim_id(input: &mut Reader<'_>) -> Result<[u8; CLAIM_ID_LEN], EnvelopeError> {
    let mut id = [0u8; CLAIM_ID_LEN];
    id.copy_from_slice(input.take(CLAIM_ID_LEN, RecordField::ClaimId)?);
    Ok(id)
}

fn nonzero(id: [u8; CLAIM_ID_LEN], magic: [u8; MAGIC_LEN]) -> Result<ClaimId, EnvelopeError> {
    ClaimId::new(id).ok_or(EnvelopeError::ZeroClaimId { magic })
}

pub(crate) fn fingerprint(input: &mut Reader<'_>) -> Result<Option<Vec<u8>>, EnvelopeError> {
    match input.take(1, RecordField::FingerprintMarker)?[0] {
        OPTION_NONE => Ok(None),
        OPTION_SOME => Ok(Some(
            input
                .byte_string(RecordField::FingerprintLength, RecordField::Fingerprint)?
                .to_vec(),
        )),
        found => Err(EnvelopeError::InvalidMarker {
            field: RecordField::FingerprintMarker,
            found,
        }),
    }
}

#[cfg(test)]
mod tests;
