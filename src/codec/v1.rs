//! Record codec, version 1 — the seed system's format, byte for byte.
//!
//! Every integer is a `u64` in big-endian order; a byte string is its length
//! (`u64`) followed by its bytes; a key is a UTF-8 byte string.
//!
//! ```text
//! active entry:  "LDE1" | key | receipt option | timestamp_millis
//!                receipt option = 0x00 (none) | 0x01, receipt byte string
//! tombstone:     "LDT1" | key | timestamp_millis
//! ```
//!
//! Decoding is total: any byte string yields a record or an [`EnvelopeError`]
//! naming the field that was wrong. It never panics and never allocates more
//! than the input's length (a declared length is checked against the bytes
//! that remain before anything is allocated). The format is canonical: what
//! decodes re-encodes to exactly the input bytes.
//!
//! ```
//! use atmostonce::{DedupEntry, DedupRecord};
//!
//! let entry = DedupEntry::new("k", None, 42);
//! let bytes = entry.serialize().unwrap();
//! assert_eq!(
//!     bytes,
//!     [b'L', b'D', b'E', b'1', 0, 0, 0, 0, 0, 0, 0, 1, b'k', 0, 0, 0, 0, 0, 0, 0, 0, 42]
//! );
//! assert_eq!(DedupRecord::decode(&bytes), Ok(DedupRecord::Active(entry)));
//! ```

use super::{
    EncodeError, EnvelopeError, MAGIC_LEN, OPTION_NONE, OPTION_SOME, Reader, RecordField,
    RecordKind, U64_LEN, put_bytes,
};
use crate::limits::{MAX_KEY_BYTES, MAX_RECEIPT_BYTES};

/// Magic of a version-1 active entry.
pub const ACTIVE_MAGIC_V1: [u8; 4] = *b"LDE1";
/// Magic of a version-1 tombstone.
pub const TOMBSTONE_MAGIC_V1: [u8; 4] = *b"LDT1";

/// An active dedup entry: a claim in flight (no receipt) or a completed key
/// (with its receipt). `timestamp_millis` anchors the entry's TTL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupEntry {
    idempotency_key: String,
    receipt: Option<Vec<u8>>,
    timestamp_millis: u64,
}

impl DedupEntry {
    /// An active entry for `key`; `receipt` is `None` for an in-flight claim.
    pub fn new(key: impl Into<String>, receipt: Option<Vec<u8>>, timestamp_millis: u64) -> Self {
        DedupEntry {
            idempotency_key: key.into(),
            receipt,
            timestamp_millis,
        }
    }

    /// The idempotency key this entry belongs to.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// The stored receipt; `None` while the claim is in flight.
    #[must_use]
    pub fn receipt(&self) -> Option<&[u8]> {
        self.receipt.as_deref()
    }

    /// The TTL anchor, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_millis(&self) -> u64 {
        self.timestamp_millis
    }

    /// The version-1 encoding (`LDE1`), the seed's call: refuses an entry
    /// no engine writes (an empty key, a key over
    /// [`MAX_KEY_BYTES`], a receipt over [`MAX_RECEIPT_BYTES`]) with an
    /// [`EncodeError`]. [`DedupRecord::encode`] encodes any entry, as the
    /// codec's canonical form.
    pub fn serialize(&self) -> Result<Vec<u8>, EncodeError> {
        if self.idempotency_key.is_empty() {
            return Err(EncodeError::EmptyKey);
        }
        let too_long = |field, max_bytes, actual_bytes| EncodeError::TooLong {
            field,
            max_bytes,
            actual_bytes,
        };
        if self.idempotency_key.len() > MAX_KEY_BYTES {
            return Err(too_long(
                RecordField::Key,
                MAX_KEY_BYTES,
                self.idempotency_key.len(),
            ));
        }
        if let Some(receipt) = &self.receipt
            && receipt.len() > MAX_RECEIPT_BYTES
        {
            return Err(too_long(
                RecordField::Receipt,
                MAX_RECEIPT_BYTES,
                receipt.len(),
            ));
        }
        Ok(self.encode())
    }

    /// The version-1 encoding of any entry, limits or not.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let receipt_len = self.receipt.as_ref().map_or(0, |r| U64_LEN + r.len());
        let mut out = Vec::with_capacity(
            MAGIC_LEN + U64_LEN + self.idempotency_key.len() + 1 + receipt_len + U64_LEN,
        );
        out.extend_from_slice(&ACTIVE_MAGIC_V1);
        put_bytes(&mut out, self.idempotency_key.as_bytes());
        match &self.receipt {
            None => out.push(OPTION_NONE),
            Some(receipt) => {
                out.push(OPTION_SOME);
                put_bytes(&mut out, receipt);
            }
        }
        out.extend_from_slice(&self.timestamp_millis.to_be_bytes());
        out
    }

    /// Decodes an active entry. A valid tombstone is rejected with
    /// [`EnvelopeError::WrongRecordKind`]; use [`DedupRecord::decode`] to
    /// accept both kinds.
    pub fn deserialize(bytes: &[u8]) -> Result<DedupEntry, EnvelopeError> {
        match DedupRecord::decode(bytes)? {
            DedupRecord::Active(entry) => Ok(entry),
            DedupRecord::Tombstone(_) => Err(EnvelopeError::WrongRecordKind {
                expected: RecordKind::Active,
                found: RecordKind::Tombstone,
            }),
        }
    }
}

/// A tombstone: the key was released or expired and may be claimed again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tombstone {
    idempotency_key: String,
    timestamp_millis: u64,
}

impl Tombstone {
    /// A tombstone for `key`, written at `timestamp_millis`.
    pub fn new(key: impl Into<String>, timestamp_millis: u64) -> Self {
        Tombstone {
            idempotency_key: key.into(),
            timestamp_millis,
        }
    }

    /// The idempotency key this tombstone belongs to.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// When the tombstone was written, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_millis(&self) -> u64 {
        self.timestamp_millis
    }

    /// The version-1 encoding (`LDT1`).
    #[must_use]
    pub fn serialize(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(MAGIC_LEN + U64_LEN + self.idempotency_key.len() + U64_LEN);
        out.extend_from_slice(&TOMBSTONE_MAGIC_V1);
        put_bytes(&mut out, self.idempotency_key.as_bytes());
        out.extend_from_slice(&self.timestamp_millis.to_be_bytes());
        out
    }
}

/// Either kind of record a key's stream holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DedupRecord {
    /// A claim in flight or a completed key.
    Active(DedupEntry),
    /// The key was released or expired.
    Tombstone(Tombstone),
}

impl DedupRecord {
    /// The idempotency key the record belongs to.
    #[must_use]
    pub fn idempotency_key(&self) -> &str {
        match self {
            DedupRecord::Active(entry) => entry.idempotency_key(),
            DedupRecord::Tombstone(tombstone) => tombstone.idempotency_key(),
        }
    }

    /// The record's timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_millis(&self) -> u64 {
        match self {
            DedupRecord::Active(entry) => entry.timestamp_millis(),
            DedupRecord::Tombstone(tombstone) => tombstone.timestamp_millis(),
        }
    }

    /// The record's kind.
    #[must_use]
    pub fn kind(&self) -> RecordKind {
        match self {
            DedupRecord::Active(_) => RecordKind::Active,
            DedupRecord::Tombstone(_) => RecordKind::Tombstone,
        }
    }

    /// The version-1 encoding.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DedupRecord::Active(entry) => entry.encode(),
            DedupRecord::Tombstone(tombstone) => tombstone.serialize(),
        }
    }

    /// Decodes a version-1 record of either kind.
    pub fn decode(bytes: &[u8]) -> Result<DedupRecord, EnvelopeError> {
        let mut input = Reader { bytes, offset: 0 };
        let magic = input.take(MAGIC_LEN, RecordField::Magic)?;
        let record = if magic == ACTIVE_MAGIC_V1 {
            let key = input.utf8(RecordField::KeyLength, RecordField::Key)?;
            let receipt = match input.take(1, RecordField::ReceiptMarker)?[0] {
                OPTION_NONE => None,
                OPTION_SOME => Some(
                    input
                        .byte_string(RecordField::ReceiptLength, RecordField::Receipt)?
                        .to_vec(),
                ),
                other => return Err(EnvelopeError::InvalidOptionMarker { found: other }),
            };
            let timestamp_millis = input.u64(RecordField::Timestamp)?;
            DedupRecord::Active(DedupEntry {
                idempotency_key: key,
                receipt,
                timestamp_millis,
            })
        } else if magic == TOMBSTONE_MAGIC_V1 {
            let key = input.utf8(RecordField::KeyLength, RecordField::Key)?;
            let timestamp_millis = input.u64(RecordField::Timestamp)?;
            DedupRecord::Tombstone(Tombstone {
                idempotency_key: key,
                timestamp_millis,
            })
        } else {
            let mut found = [0u8; MAGIC_LEN];
            found.copy_from_slice(magic);
            return Err(EnvelopeError::UnknownMagic { found });
        };
        let trailing = bytes.len() - input.offset;
        if trailing != 0 {
            return Err(EnvelopeError::TrailingBytes {
                count: trailing as u64,
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ProcessingReceipt;
    use proptest::prelude::*;

    fn be(n: u64) -> [u8; 8] {
        n.to_be_bytes()
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn the_design_example_encodes_byte_for_byte() {
        let bytes = DedupEntry::new("k", None, 42).encode();
        let expected: Vec<u8> = vec![
            0x4c, 0x44, 0x45, 0x31, 0, 0, 0, 0, 0, 0, 0, 1, 0x6b, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x2a,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(
            DedupRecord::decode(&expected),
            Ok(DedupRecord::Active(DedupEntry::new("k", None, 42)))
        );
    }

    #[test]
    fn an_entry_with_a_receipt_encodes_its_length_prefixed_bytes() {
        let bytes = DedupEntry::new("ab", Some(b"xyz".to_vec()), 7).encode();
        let expected = concat(&[b"LDE1", &be(2), b"ab", &[1], &be(3), b"xyz", &be(7)]);
        assert_eq!(bytes, expected);
        assert_eq!(
            DedupEntry::deserialize(&expected),
            Ok(DedupEntry::new("ab", Some(b"xyz".to_vec()), 7))
        );
    }

    #[test]
    fn a_tombstone_encodes_byte_for_byte() {
        let bytes = Tombstone::new("k", 0x0102).serialize();
        let expected = concat(&[b"LDT1", &be(1), b"k", &be(0x0102)]);
        assert_eq!(bytes, expected);
        assert_eq!(
            DedupRecord::decode(&expected),
            Ok(DedupRecord::Tombstone(Tombstone::new("k", 0x0102)))
        );
    }

    #[test]
    fn serialize_is_the_encoding_of_an_entry_within_the_limits() {
        let at_limits = DedupEntry::new(
            "k".repeat(MAX_KEY_BYTES),
            Some(vec![7; MAX_RECEIPT_BYTES]),
            9,
        );
        assert_eq!(at_limits.serialize(), Ok(at_limits.encode()));
    }

    #[test]
    fn serialize_refuses_an_entry_no_engine_writes() {
        assert_eq!(
            DedupEntry::new("", None, 1).serialize(),
            Err(EncodeError::EmptyKey)
        );
        assert_eq!(
            DedupEntry::new("k".repeat(MAX_KEY_BYTES + 1), None, 1).serialize(),
            Err(EncodeError::TooLong {
                field: RecordField::Key,
                max_bytes: MAX_KEY_BYTES,
                actual_bytes: MAX_KEY_BYTES + 1,
            })
        );
        assert_eq!(
            DedupEntry::new("k", Some(vec![0; MAX_RECEIPT_BYTES + 1]), 1).serialize(),
            Err(EncodeError::TooLong {
                field: RecordField::Receipt,
                max_bytes: MAX_RECEIPT_BYTES,
                actual_bytes: MAX_RECEIPT_BYTES + 1,
            })
        );
    }

    #[test]
    fn an_empty_receipt_is_distinct_from_no_receipt() {
        let with_empty = DedupEntry::new("k", Some(Vec::new()), 1).encode();
        let without = DedupEntry::new("k", None, 1).encode();
        assert_ne!(with_empty, without);
        assert_eq!(
            DedupEntry::deserialize(&with_empty).unwrap().receipt(),
            Some(&[][..])
        );
    }

    #[test]
    fn decoding_rejects_an_unknown_magic() {
        let bytes = concat(&[b"LDX1", &be(1), b"k", &[0], &be(1)]);
        assert_eq!(
            DedupRecord::decode(&bytes),
            Err(EnvelopeError::UnknownMagic { found: *b"LDX1" })
        );
    }

    #[test]
    fn decoding_rejects_input_shorter_than_the_magic() {
        assert_eq!(
            DedupRecord::decode(b"LD"),
            Err(EnvelopeError::Truncated {
                field: RecordField::Magic,
                needed: 4,
                available: 2
            })
        );
        assert!(matches!(
            DedupRecord::decode(&[]),
            Err(EnvelopeError::Truncated {
                field: RecordField::Magic,
                ..
            })
        ));
    }

    #[test]
    fn decoding_rejects_a_truncated_key_length() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &[0, 0, 0]])),
            Err(EnvelopeError::Truncated {
                field: RecordField::KeyLength,
                needed: 8,
                available: 3
            })
        );
    }

    #[test]
    fn decoding_rejects_a_key_length_beyond_the_input() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(5), b"ab"])),
            Err(EnvelopeError::LengthExceedsInput {
                field: RecordField::Key,
                declared: 5,
                available: 2
            })
        );
    }

    #[test]
    fn decoding_rejects_a_length_that_would_overflow() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(u64::MAX), b"k", &[0], &be(1)])),
            Err(EnvelopeError::LengthExceedsInput {
                field: RecordField::Key,
                declared: u64::MAX,
                available: 10
            })
        );
        assert!(matches!(
            DedupRecord::decode(&concat(&[
                b"LDE1",
                &be(1),
                b"k",
                &[1],
                &be(u64::MAX - 3),
                &be(1)
            ])),
            Err(EnvelopeError::LengthExceedsInput {
                field: RecordField::Receipt,
                ..
            })
        ));
    }

    #[test]
    fn decoding_rejects_a_key_that_is_not_utf8() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDT1", &be(2), &[b'a', 0xff], &be(1)])),
            Err(EnvelopeError::InvalidUtf8 {
                field: RecordField::Key,
                valid_up_to: 1
            })
        );
    }

    #[test]
    fn decoding_rejects_a_missing_receipt_marker() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(1), b"k"])),
            Err(EnvelopeError::Truncated {
                field: RecordField::ReceiptMarker,
                needed: 1,
                available: 0
            })
        );
    }

    #[test]
    fn decoding_rejects_an_option_marker_other_than_zero_or_one() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(1), b"k", &[2], &be(1)])),
            Err(EnvelopeError::InvalidOptionMarker { found: 2 })
        );
    }

    #[test]
    fn decoding_rejects_a_truncated_receipt() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(1), b"k", &[1], &be(4), b"ab"])),
            Err(EnvelopeError::LengthExceedsInput {
                field: RecordField::Receipt,
                declared: 4,
                available: 2
            })
        );
        assert!(matches!(
            DedupRecord::decode(&concat(&[b"LDE1", &be(1), b"k", &[1], &[0, 0]])),
            Err(EnvelopeError::Truncated {
                field: RecordField::ReceiptLength,
                ..
            })
        ));
    }

    #[test]
    fn decoding_rejects_a_truncated_timestamp() {
        assert_eq!(
            DedupRecord::decode(&concat(&[b"LDT1", &be(1), b"k", &[0, 0, 0, 0, 0]])),
            Err(EnvelopeError::Truncated {
                field: RecordField::Timestamp,
                needed: 8,
                available: 5
            })
        );
    }

    #[test]
    fn decoding_rejects_trailing_bytes() {
        let mut bytes = Tombstone::new("k", 1).serialize();
        bytes.extend_from_slice(b"!!");
        assert_eq!(
            DedupRecord::decode(&bytes),
            Err(EnvelopeError::TrailingBytes { count: 2 })
        );
    }

    #[test]
    fn deserializing_an_entry_rejects_a_tombstone() {
        assert_eq!(
            DedupEntry::deserialize(&Tombstone::new("k", 1).serialize()),
            Err(EnvelopeError::WrongRecordKind {
                expected: RecordKind::Active,
                found: RecordKind::Tombstone
            })
        );
    }

    #[test]
    fn receipt_debug_shows_the_length_only() {
        let receipt = ProcessingReceipt::new(b"secret-card-number".to_vec());
        assert_eq!(format!("{receipt:?}"), "ProcessingReceipt(18 bytes)");
    }

    fn arb_record() -> impl Strategy<Value = DedupRecord> {
        let key = any::<String>();
        let receipt = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        prop_oneof![
            (key, receipt, any::<u64>())
                .prop_map(|(k, r, ts)| DedupRecord::Active(DedupEntry::new(k, r, ts))),
            (key, any::<u64>()).prop_map(|(k, ts)| DedupRecord::Tombstone(Tombstone::new(k, ts))),
        ]
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in arb_record()) {
            let bytes = record.encode();
            prop_assert_eq!(DedupRecord::decode(&bytes), Ok(record));
        }

        #[test]
        fn whatever_decodes_re_encodes_to_the_same_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            if let Ok(record) = DedupRecord::decode(&bytes) {
                prop_assert_eq!(record.encode(), bytes);
            }
        }

        #[test]
        fn every_strict_prefix_of_a_record_is_rejected(record in arb_record()) {
            let bytes = record.encode();
            for len in 0..bytes.len() {
                prop_assert!(DedupRecord::decode(&bytes[..len]).is_err());
            }
        }
    }
}
