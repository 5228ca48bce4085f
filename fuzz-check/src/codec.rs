//! Checks of the record codec (S8): what `record_decode` and
//! `record_roundtrip` run on every input, and what the corpus replay and the
//! codec proptests run too.
//!
//! The engine's codec is what is under test; it is judged by the reference
//! decoder ([`atmostonce_verify::oracle::record`], written from
//! `docs/record-format.md` apart from the engine). The two must agree on
//! which byte strings are records and on what each says (the differential),
//! so a bug that the engine's encoder and decoder share is still caught.

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};
use atmostonce::codec::{self as engine, FencedRecord, RecordKind};
use atmostonce::{DedupEntry, DedupRecord, EnvelopeError, Tombstone};
use atmostonce_verify::oracle::record::{self, ClaimId, Record, ReleaseReason};

use crate::alloc::measure;

/// Whether the engine's `DedupRecord::decode` reads version-2 records. Off
/// until the engine's v2 codec exists: until then a version-2 record the
/// reference decoder accepts must be rejected by the engine's v1 decoder.
/// The v2 half of the differential ([`check_v2_differential`]) is ready for
/// the engine's v2 decoder.
pub const ENGINE_V1_DECODER_READS_V2: bool = false;

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

/// The engine's record as the reference decoder's plain values.
#[must_use]
pub fn to_reference(record: &DedupRecord) -> Record {
    match record {
        DedupRecord::Active(entry) => Record::V1Entry {
            key: entry.idempotency_key().to_owned(),
            receipt: entry.receipt().map(<[u8]>::to_vec),
            timestamp_millis: entry.timestamp_millis(),
        },
        DedupRecord::Tombstone(tombstone) => Record::V1Tombstone {
            key: tombstone.idempotency_key().to_owned(),
            timestamp_millis: tombstone.timestamp_millis(),
        },
    }
}

/// The engine's version-aware record (what `FencedRecord::decode` reads) as
/// the reference decoder's plain values.
#[must_use]
pub fn fenced_to_reference(record: &FencedRecord) -> Record {
    match record {
        FencedRecord::Entry(entry) => to_reference(&DedupRecord::Active(entry.clone())),
        FencedRecord::Tombstone(tombstone) => {
            to_reference(&DedupRecord::Tombstone(tombstone.clone()))
        }
        FencedRecord::Claim(claim) => Record::Claim {
            key: claim.idempotency_key().to_owned(),
            claim_id: ClaimId(*claim.claim_id().as_bytes()),
            fence: claim.fence(),
            claimed_at_millis: claim.claimed_at_millis(),
            lease_expires_millis: claim.lease_expires_millis(),
            fingerprint: claim.fingerprint().map(<[u8]>::to_vec),
        },
        FencedRecord::Completion(completion) => Record::Completion {
            key: completion.idempotency_key().to_owned(),
            claim_id: ClaimId(*completion.claim_id().as_bytes()),
            fence: completion.fence(),
            completed_at_millis: completion.completed_at_millis(),
            receipt: completion.receipt().as_bytes().to_vec(),
            fingerprint: completion.fingerprint().map(<[u8]>::to_vec),
        },
        FencedRecord::Release(release) => Record::Release {
            key: release.idempotency_key().to_owned(),
            claim_id: release
                .claim_id()
                .map_or(ClaimId::ZERO, |id| ClaimId(*id.as_bytes())),
            fence: release.fence(),
            released_at_millis: release.released_at_millis(),
            reason: match release.reason() {
                engine::ReleaseReason::Released => ReleaseReason::Holder,
                engine::ReleaseReason::Expired => ReleaseReason::Expired,
            },
        },
    }
}

/// The engine's version-aware decoder, answering in the reference's values.
///
/// # Errors
/// The engine's rejection.
pub fn engine_fenced_decode(bytes: &[u8]) -> Result<Record, EnvelopeError> {
    FencedRecord::decode(bytes).map(|record| fenced_to_reference(&record))
}

/// The differential (S8): the engine's answer on `bytes` and the reference
/// decoder's must agree on accept/reject and on the decoded values.
///
/// # Panics
/// When they disagree, naming how.
pub fn check_differential(bytes: &[u8], engine: &Result<DedupRecord, EnvelopeError>) {
    let (reference, allocated) = measure(|| record::decode(bytes));
    assert!(
        allocated.bytes <= bytes.len(),
        "the reference decoder allocated {} bytes for {} input bytes",
        allocated.bytes,
        bytes.len()
    );
    match (engine, &reference) {
        (Ok(decoded), Ok(expected)) => assert_eq!(
            &to_reference(decoded),
            expected,
            "the engine and the reference decoder read different values from {bytes:02x?}"
        ),
        (Ok(decoded), Err(why)) => panic!(
            "the engine decodes {decoded:?} from bytes the format rejects ({why}): {bytes:02x?}"
        ),
        (Err(error), Ok(expected)) => assert!(
            expected.is_v2() && !ENGINE_V1_DECODER_READS_V2,
            "the engine rejects ({error}) a record the format accepts, {expected:?}: {bytes:02x?}"
        ),
        (Err(_), Err(_)) => {}
    }
    if let Ok(expected) = &reference {
        assert_eq!(
            expected.encode(),
            bytes,
            "the reference decoder accepted bytes it does not re-encode to"
        );
    }
}

/// The v2 half of the differential, ready for the engine's v2 decoder:
/// `engine` decodes bytes into the reference's plain values (`Err` for a
/// rejection). Checks `bytes` itself and, when it is a version-2 record,
/// that the engine rejects it with every single bit flipped, every
/// truncation and one trailing byte, as the reference does; a one-bit flip
/// is rejected whatever the reference says.
///
/// # Panics
/// When the engine and the reference disagree.
pub fn check_v2_differential<E>(bytes: &[u8], engine: impl Fn(&[u8]) -> Result<Record, E>) {
    let agree = |input: &[u8]| {
        let expected = record::decode(input).ok();
        let decoded = engine(input).ok();
        assert_eq!(
            decoded, expected,
            "the engine and the reference disagree on {input:02x?}"
        );
    };
    agree(bytes);
    if !record::decode(bytes).is_ok_and(|r| r.is_v2()) {
        return;
    }
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        // Not only agreement: the checksum rejects every one-bit flip
        // (docs/record-format.md), so a decoder pair that both missed one
        // is caught too.
        assert!(
            engine(&flipped).is_err(),
            "a version-2 record with bit {bit} flipped decodes: {flipped:02x?}"
        );
        agree(&flipped);
    }
    for len in 0..bytes.len() {
        agree(&bytes[..len]);
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    agree(&longer);
}

/// A version-2 record as the v2 differential builds it, through the
/// reference encoder.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum ArbV2Record {
    /// A claim.
    Claim {
        /// Its key.
        key: ArbKey,
        /// Its claim id (zero is made one: zero is invalid in a claim).
        claim_id: [u8; 16],
        /// Its fence.
        fence: u64,
        /// When granted.
        claimed_at_millis: u64,
        /// The lease, added to the grant's time (saturating).
        lease_ms: u32,
        /// Its fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A completion.
    Completion {
        /// Its key.
        key: ArbKey,
        /// Its claim id (zero is made one).
        claim_id: [u8; 16],
        /// Its fence.
        fence: u64,
        /// Its TTL anchor.
        completed_at_millis: u64,
        /// Its receipt.
        receipt: Vec<u8>,
        /// Its fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A release.
    Release {
        /// Its key.
        key: ArbKey,
        /// Its claim id.
        claim_id: [u8; 16],
        /// Its fence.
        fence: u64,
        /// When written.
        released_at_millis: u64,
        /// True for the sweeper's reason (`0x01`), which alone allows a
        /// zero claim id.
        expired: bool,
    },
}

fn nonzero(claim_id: [u8; 16]) -> ClaimId {
    let id = ClaimId(claim_id);
    if id.is_zero() { ClaimId([1; 16]) } else { id }
}

impl ArbV2Record {
    /// The record, valid by construction.
    #[must_use]
    pub fn to_record(&self) -> Record {
        match self {
            ArbV2Record::Claim {
                key,
                claim_id,
                fence,
                claimed_at_millis,
                lease_ms,
                fingerprint,
            } => Record::Claim {
                key: key.text(),
                claim_id: nonzero(*claim_id),
                fence: *fence,
                claimed_at_millis: *claimed_at_millis,
                lease_expires_millis: claimed_at_millis.saturating_add(u64::from(*lease_ms)),
                fingerprint: fingerprint.clone(),
            },
            ArbV2Record::Completion {
                key,
                claim_id,
                fence,
                completed_at_millis,
                receipt,
                fingerprint,
            } => Record::Completion {
                key: key.text(),
                claim_id: nonzero(*claim_id),
                fence: *fence,
                completed_at_millis: *completed_at_millis,
                receipt: receipt.clone(),
                fingerprint: fingerprint.clone(),
            },
            ArbV2Record::Release {
                key,
                claim_id,
                fence,
                released_at_millis,
                expired,
            } => Record::Release {
                key: key.text(),
                claim_id: if *expired {
                    ClaimId(*claim_id)
                } else {
                    nonzero(*claim_id)
                },
                fence: *fence,
                released_at_millis: *released_at_millis,
                reason: if *expired {
                    ReleaseReason::Expired
                } else {
                    ReleaseReason::Holder
                },
            },
        }
    }
}

/// The length the format gives a record (`docs/record-format.md`,
/// "Version 1").
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
    check_differential(bytes, &decoded);
    // The version-aware decoder against the reference, on every input; on a
    // version-2 record also with every bit flipped and every truncation.
    check_v2_differential(bytes, engine_fenced_decode);
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
        EnvelopeError::InvalidMarker { .. }
        | EnvelopeError::ChecksumMismatch { .. }
        | EnvelopeError::ZeroClaimId { .. }
        | EnvelopeError::InvalidReleaseReason { .. }
        | EnvelopeError::LeaseBeforeClaim { .. } => {
            panic!("DedupRecord::decode reads version 1 only, yet answered {error:?}")
        }
        // `EnvelopeError` is non-exhaustive: a reason this check does not
        // know yet is a reason it cannot vouch for.
        _ => panic!("a rejection this check does not know: {error:?}"),
    }
}

/// The `record_roundtrip` check (S8): a record encodes to the length the
/// format gives it and to the bytes the reference encoder gives it, and
/// decodes back to itself within the input's size; the encoding cut short
/// by one byte, or followed by one more, is rejected.
///
/// # Panics
/// On any violation, with a message naming it.
pub fn check_roundtrip(record: &DedupRecord) {
    let bytes = record.encode();
    assert_eq!(bytes.len(), encoded_len(record), "{record:?}");
    assert_eq!(
        bytes,
        to_reference(record).encode(),
        "the engine encodes {record:?} to other bytes than the format gives"
    );
    assert_eq!(
        record::decode(&bytes),
        Ok(to_reference(record)),
        "the reference decoder reads other values from the engine's encoding of {record:?}"
    );
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
