//! Checks of the version-1 record codec (S8): what `record_decode` and
//! `record_roundtrip` run on every input, and what the corpus replay and the
//! codec proptests run too.

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};
use atmostonce::codec::RecordKind;
use atmostonce::{DedupEntry, DedupRecord, EnvelopeError, Tombstone};

use crate::alloc::measure;

/// Bytes of a record's fixed fields: magic (4) + key length (8) + timestamp (8).
const FIXED_BYTES: usize = 4 + 8 + 8;
/// Longest unit a generated long key repeats (bytes of a `String`).
const MAX_LONG_KEY_UNIT_BYTES: usize = 4;
/// Most repetitions of a long key's unit: with 4-byte units, keys reach
/// 4 * 1100 = 4400 bytes, past the engine's 1024-byte key limit (the codec
/// itself has none) while one execution stays fast.
const MAX_LONG_KEY_REPEATS: usize = 1100;

/// A key as `record_roundtrip` builds it: every shape the codec must carry.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum ArbKey {
    /// The empty key (the codec allows it; the engine refuses it earlier).
    Empty,
    /// Any UTF-8 string: ASCII, multi-byte characters, control characters.
    Text(String),
    /// A short unit repeated up to [`MAX_LONG_KEY_REPEATS`] times.
    Long {
        /// The repeated text (cut to [`MAX_LONG_KEY_UNIT_BYTES`] at a
        /// character boundary).
        unit: String,
        /// How many times (modulo [`MAX_LONG_KEY_REPEATS`] + 1).
        repeats: u16,
    },
}

impl ArbKey {
    /// The key text.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            ArbKey::Empty => String::new(),
            ArbKey::Text(text) => text.clone(),
            ArbKey::Long { unit, repeats } => {
                let mut cut = unit.len().min(MAX_LONG_KEY_UNIT_BYTES);
                while !unit.is_char_boundary(cut) {
                    cut -= 1;
                }
                let unit = if cut == 0 { "é" } else { &unit[..cut] };
                unit.repeat(usize::from(*repeats) % (MAX_LONG_KEY_REPEATS + 1))
            }
        }
    }
}

/// A record as `record_roundtrip` builds it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum ArbRecord {
    /// An active entry: in flight (`receipt: None`) or completed.
    Active {
        /// Its key.
        key: ArbKey,
        /// Its receipt, possibly empty.
        receipt: Option<Vec<u8>>,
        /// Its TTL anchor.
        timestamp_millis: u64,
    },
    /// A tombstone.
    Tombstone {
        /// Its key.
        key: ArbKey,
        /// When it was written.
        timestamp_millis: u64,
    },
}

impl ArbRecord {
    /// The engine's record.
    #[must_use]
    pub fn to_record(&self) -> DedupRecord {
        match self {
            ArbRecord::Active {
                key,
                receipt,
                timestamp_millis,
            } => DedupRecord::Active(DedupEntry::new(
                key.text(),
                receipt.clone(),
                *timestamp_millis,
            )),
            ArbRecord::Tombstone {
                key,
                timestamp_millis,
            } => DedupRecord::Tombstone(Tombstone::new(key.text(), *timestamp_millis)),
        }
    }
}

/// The length the format gives a record (DESIGN.md section 3).
fn encoded_len(record: &DedupRecord) -> usize {
    let key = record.idempotency_key().len();
    match record {
        DedupRecord::Active(entry) => {
            FIXED_BYTES + key + 1 + entry.receipt().map_or(0, |receipt| 8 + receipt.len())
        }
        DedupRecord::Tombstone(_) => FIXED_BYTES + key,
    }
}

/// Decodes `bytes` and checks the allocation bound: decoding never
/// allocates more bytes than the input holds. The bound is checked only
/// where [`crate::alloc::CountingAllocator`] is installed.
///
/// # Panics
/// When decoding allocates more than `bytes.len()` bytes.
pub fn decode_within_input_size(bytes: &[u8]) -> Result<DedupRecord, EnvelopeError> {
    let (decoded, allocated) = measure(|| DedupRecord::decode(bytes));
    assert!(
        allocated.bytes <= bytes.len(),
        "decoding {} input bytes allocated {} bytes in {} calls",
        bytes.len(),
        allocated.bytes,
        allocated.calls
    );
    decoded
}

/// The `record_decode` check on arbitrary bytes (S8): decoding does not
/// panic and stays within the input's size; what decodes re-encodes to
/// exactly the input (the format is canonical) and agrees with
/// `DedupEntry::deserialize`; a rejection names a reason the bytes really
/// have. Returns the decoder's answer.
///
/// # Panics
/// On any violation, with a message naming it.
pub fn check_decode(bytes: &[u8]) -> Result<DedupRecord, EnvelopeError> {
    let decoded = decode_within_input_size(bytes);
    let entry = DedupEntry::deserialize(bytes);
    match &decoded {
        Ok(record) => {
            assert_eq!(
                record.encode(),
                bytes,
                "{record:?} decoded from bytes it does not re-encode to"
            );
            assert_eq!(encoded_len(record), bytes.len());
            match record {
                DedupRecord::Active(expected) => assert_eq!(entry.as_ref(), Ok(expected)),
                DedupRecord::Tombstone(_) => assert_eq!(
                    entry,
                    Err(EnvelopeError::WrongRecordKind {
                        expected: RecordKind::Active,
                        found: RecordKind::Tombstone
                    })
                ),
            }
        }
        Err(error) => {
            assert_eq!(entry.as_ref(), Err(error), "the two decoders disagree");
            check_rejection_reason(bytes, error);
        }
    }
    decoded
}

/// A `fmt::Write` that only counts what is written to it.
struct MessageLength(usize);

impl fmt::Write for MessageLength {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0 += text.len();
        Ok(())
    }
}

/// Checks that a rejection's reason holds of the bytes.
fn check_rejection_reason(bytes: &[u8], error: &EnvelopeError) {
    // Display must not panic either; it is measured, not allocated.
    let mut message = MessageLength(0);
    assert!(fmt::write(&mut message, format_args!("{error}")).is_ok() && message.0 > 0);
    match error {
        EnvelopeError::UnknownMagic { found } => {
            assert_eq!(&bytes[..4], found);
            assert!(found != b"LDE1" && found != b"LDT1");
        }
        EnvelopeError::Truncated {
            needed, available, ..
        } => assert!(available < needed),
        EnvelopeError::LengthExceedsInput {
            declared,
            available,
            ..
        } => assert!(declared > available),
        EnvelopeError::InvalidUtf8 { .. } => {}
        EnvelopeError::InvalidOptionMarker { found } => assert!(*found > 1),
        EnvelopeError::TrailingBytes { count } => {
            let count = usize::try_from(*count).unwrap_or(usize::MAX);
            assert!(count > 0 && count < bytes.len());
            let prefix = &bytes[..bytes.len() - count];
            assert!(
                DedupRecord::decode(prefix).is_ok(),
                "{count} bytes reported trailing after a prefix that does not decode"
            );
        }
        EnvelopeError::WrongRecordKind { .. } => {
            panic!("DedupRecord::decode accepts both kinds, yet answered {error:?}")
        }
    }
}

/// The `record_roundtrip` check (S8): a record encodes to the length the
/// format gives it and decodes back to itself within the input's size; the
/// encoding cut short by one byte, or followed by one more, is rejected.
///
/// # Panics
/// On any violation, with a message naming it.
pub fn check_roundtrip(record: &DedupRecord) {
    let bytes = record.encode();
    assert_eq!(bytes.len(), encoded_len(record), "{record:?}");
    assert_eq!(
        decode_within_input_size(&bytes).as_ref(),
        Ok(record),
        "{record:?} does not round-trip"
    );
    assert!(
        DedupRecord::decode(&bytes[..bytes.len() - 1]).is_err(),
        "{record:?} cut short by one byte still decodes"
    );
    let mut longer = bytes;
    longer.push(0);
    assert_eq!(
        DedupRecord::decode(&longer),
        Err(EnvelopeError::TrailingBytes { count: 1 })
    );
}

/// The `record_roundtrip` check on a corpus file: builds the record from
/// the bytes as the target does (`arbitrary_take_rest`, as libfuzzer-sys
/// does for a typed target) and checks it. Bytes that build none are
/// ignored.
pub fn roundtrip_from_bytes(data: &[u8]) {
    if let Ok(record) = ArbRecord::arbitrary_take_rest(Unstructured::new(data)) {
        check_roundtrip(&record.to_record());
    }
}
