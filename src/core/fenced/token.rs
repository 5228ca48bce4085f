//! [`ClaimToken`]: what a granted claim hands its holder, and its bytes.

use std::fmt;

use crate::codec::v2::{fingerprint, put_option};
use crate::codec::{CLAIM_ID_LEN, ClaimId, EnvelopeError, Reader, RecordField, put_bytes};

/// Magic of a serialized claim token (not a record: tokens never enter a
/// stream).
const TOKEN_MAGIC: [u8; 4] = *b"AOT2";
const CRC_LEN: usize = 4;

/// Proof that a claim was granted: the key, the stream sequence of the
/// claim's record, its random claim id, its fence, the lease's end and the
/// claim's fingerprint (so that a completion or a renewal can write its
/// record without reading the claim's first).
///
/// Pass [`fence`](ClaimToken::fence) downstream with the message: it is
/// strictly greater for every later grant of the same key, so a downstream
/// system that remembers the highest fence it accepted per key can refuse a
/// stale holder's writes. [`to_bytes`](ClaimToken::to_bytes) /
/// [`from_bytes`](ClaimToken::from_bytes) carry the token along with the
/// message (and, with the `serde` feature, serde does).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    pub(crate) key: String,
    pub(crate) sequence: u64,
    pub(crate) claim_id: ClaimId,
    pub(crate) fence: u64,
    pub(crate) lease_expires_millis: u64,
    pub(crate) fingerprint: Option<Vec<u8>>,
}

impl ClaimToken {
    /// The idempotency key the claim is for.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The stream sequence of the claim record this token was handed for (a
    /// renewal's token names the renewal's record).
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The claim's random id.
    #[must_use]
    pub fn claim_id(&self) -> ClaimId {
        self.claim_id
    }

    /// The fencing token: the sequence of the record that granted the claim.
    /// A renewal keeps it; every later grant of the key has a greater one.
    #[must_use]
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When the lease ends, in milliseconds since the Unix epoch. After it
    /// (plus the clock-skew grace) another claimer may take the key over.
    #[must_use]
    pub fn lease_expires_millis(&self) -> u64 {
        self.lease_expires_millis
    }

    /// The fingerprint the claim was made with, if any.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&[u8]> {
        self.fingerprint.as_deref()
    }

    /// The token's bytes: `"AOT2" | key | sequence u64 | claim_id [16] |
    /// fence u64 | lease_expires_millis u64 | fingerprint option | crc32c
    /// u32`, integers big-endian, the key as a length-prefixed string, the
    /// fingerprint as in a claim record (`docs/record-format.md`).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 + self.key.len() + 8 + CLAIM_ID_LEN + 16 + 4);
        out.extend_from_slice(&TOKEN_MAGIC);
        put_bytes(&mut out, self.key.as_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(self.claim_id.as_bytes());
        out.extend_from_slice(&self.fence.to_be_bytes());
        out.extend_from_slice(&self.lease_expires_millis.to_be_bytes());
        put_option(&mut out, self.fingerprint.as_deref());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads what [`to_bytes`](ClaimToken::to_bytes) wrote. Never panics;
    /// anything else is a [`TokenError`] saying what was wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClaimToken, TokenError> {
        let body_len = bytes
            .len()
            .checked_sub(CRC_LEN)
            .ok_or(TokenError::TooShort {
                length: bytes.len(),
            })?;
        let (body, crc) = bytes.split_at(body_len);
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(crc);
        if u32::from_be_bytes(stored) != crc32c::crc32c(body) {
            return Err(TokenError::ChecksumMismatch);
        }
        let mut input = Reader {
            bytes: body,
            offset: 0,
        };
        if input.take(TOKEN_MAGIC.len(), RecordField::Magic)? != TOKEN_MAGIC {
            return Err(TokenError::NotAToken);
        }
        let key = input.utf8(RecordField::KeyLength, RecordField::Key)?;
        let sequence = input.u64(RecordField::Fence)?;
        let mut id = [0u8; CLAIM_ID_LEN];
        id.copy_from_slice(input.take(CLAIM_ID_LEN, RecordField::ClaimId)?);
        let claim_id = ClaimId::new(id).ok_or(TokenError::ZeroClaimId)?;
        let fence = input.u64(RecordField::Fence)?;
        let lease_expires_millis = input.u64(RecordField::LeaseExpires)?;
        let fingerprint = fingerprint(&mut input)?;
        if input.offset != body.len() {
            return Err(TokenError::Field(EnvelopeError::TrailingBytes {
                count: (body.len() - input.offset) as u64,
            }));
        }
        if fence > sequence {
            return Err(TokenError::FenceAfterSequence { fence, sequence });
        }
        Ok(ClaimToken {
            key,
            sequence,
            claim_id,
            fence,
            lease_expires_millis,
            fingerprint,
        })
    }
}

/// Why bytes are not a claim token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TokenError {
    /// Fewer bytes than the checksum alone.
    #[error("not a claim token: {length} bytes is too short")]
    TooShort {
        /// The input's length.
        length: usize,
    },
    /// The bytes were damaged in transit.
    #[error("not a claim token: the checksum does not match (the bytes were damaged)")]
    ChecksumMismatch,
    /// The bytes are something else.
    #[error("not a claim token: the bytes do not start with \"AOT2\"")]
    NotAToken,
    /// A token's claim id is never all zero.
    #[error("not a claim token: its claim id is all zero")]
    ZeroClaimId,
    /// A token's fence is never greater than its record's sequence.
    #[error("not a claim token: fence {fence} is greater than its sequence {sequence}")]
    FenceAfterSequence {
        /// The fence read.
        fence: u64,
        /// The sequence read.
        sequence: u64,
    },
    /// A field is malformed.
    #[error("not a claim token: {0}")]
    Field(#[from] EnvelopeError),
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "claim {} on {:?} (fence {}, sequence {}, lease to {} ms)",
            self.claim_id, self.key, self.fence, self.sequence, self.lease_expires_millis
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> ClaimToken {
        ClaimToken {
            key: "order-17".into(),
            sequence: 4,
            claim_id: ClaimId::new([7; CLAIM_ID_LEN]).unwrap(),
            fence: 3,
            lease_expires_millis: 31_000,
            fingerprint: Some(b"sha256:9f2c".to_vec()),
        }
    }

    #[test]
    fn a_token_survives_its_bytes() {
        assert_eq!(ClaimToken::from_bytes(&token().to_bytes()), Ok(token()));
        let without = ClaimToken {
            fingerprint: None,
            ..token()
        };
        assert_eq!(ClaimToken::from_bytes(&without.to_bytes()), Ok(without));
    }

    #[test]
    fn damaged_or_foreign_bytes_are_not_a_token() {
        let bytes = token().to_bytes();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(ClaimToken::from_bytes(&damaged).is_err(), "flip at {at}");
        }
        for len in 0..bytes.len() {
            assert!(
                ClaimToken::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        assert_eq!(
            ClaimToken::from_bytes(&[1, 2]),
            Err(TokenError::TooShort { length: 2 })
        );
    }
}
