//! proptest properties of the record codec (S8), through the same checks
//! the `record_decode` and `record_roundtrip` fuzz targets run. Shrunk
//! failures are persisted under `proptest-regressions/`.

use arbitrary::{Arbitrary, Unstructured};
use atmostonce::codec::FencedRecord;
use atmostonce::{DedupEntry, DedupRecord, Tombstone};
use atmostonce_fuzz_check::alloc::CountingAllocator;
use atmostonce_fuzz_check::codec::{
    ArbV2Record, check_decode, check_roundtrip, check_v2_differential, engine_fenced_decode,
    to_reference,
};
use atmostonce_verify::oracle::record::{self, Record, RecordError};
use proptest::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Empty, arbitrary (mostly non-ASCII) and long keys.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<String>(),
        ("\\PC{1,2}", 0usize..1100).prop_map(|(unit, repeats)| unit.repeat(repeats)),
    ]
}

fn record() -> impl Strategy<Value = DedupRecord> {
    let receipt = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..96));
    prop_oneof![
        (key(), receipt, any::<u64>())
            .prop_map(|(k, r, ts)| DedupRecord::Active(DedupEntry::new(k, r, ts))),
        (key(), any::<u64>()).prop_map(|(k, ts)| DedupRecord::Tombstone(Tombstone::new(k, ts))),
    ]
}

/// A change to a valid encoding: overwrite a byte, cut it, or extend it.
#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, byte: u8 },
    Truncate { at: usize },
    Append { bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

proptest! {
    #[test]
    fn every_record_round_trips_within_its_encoded_size(record in record()) {
        check_roundtrip(&record);
    }

    #[test]
    fn arbitrary_bytes_decode_canonically_or_are_rejected_truthfully(
        bytes in proptest::collection::vec(any::<u8>(), 0..96)
    ) {
        let _ = check_decode(&bytes);
    }

    #[test]
    fn a_mutated_record_decodes_canonically_or_is_rejected_truthfully(
        record in record(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = record.encode();
        for mutation in mutations {
            match mutation {
                Mutation::Set { at, byte } => {
                    let len = bytes.len();
                    bytes[at % len] = byte;
                }
                Mutation::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
                Mutation::Append { bytes: extra } => bytes.extend(extra),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let _ = check_decode(&bytes);
    }
}

/// A decoder that forgets the checksum: what a v2 decoder with that bug
/// would answer.
fn checksum_blind(bytes: &[u8]) -> Result<Record, RecordError> {
    let mut resealed = bytes.to_vec();
    if resealed.len() >= 4 {
        let body = resealed.len() - 4;
        let crc = crc32c::crc32c(&resealed[..body]);
        resealed[body..].copy_from_slice(&crc.to_be_bytes());
    }
    record::decode(&resealed)
}

proptest! {
    #[test]
    fn the_engines_v2_decoder_agrees_with_the_reference_on_every_record_and_every_damage(
        seed in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        if let Ok(arb) = ArbV2Record::arbitrary_take_rest(Unstructured::new(&seed)) {
            let bytes = arb.to_record().encode();
            check_v2_differential(&bytes, engine_fenced_decode);
            // The engine re-encodes what it read to the format's bytes.
            let decoded = FencedRecord::decode(&bytes).expect("checked above");
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}

#[test]
fn the_v2_differential_catches_a_decoder_that_ignores_the_checksum() {
    let arb = ArbV2Record::arbitrary_take_rest(Unstructured::new(&[7; 64]))
        .expect("a record from fixed bytes");
    let bytes = arb.to_record().encode();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        check_v2_differential(&bytes, checksum_blind);
    }));
    assert!(caught.is_err(), "a checksum-blind decoder passed");
}

proptest! {
    /// S8's claim for version 2 (`docs/record-format.md`, CRC32C over the
    /// record): whichever bit of a valid record is flipped, the engine's
    /// decoder and the reference both reject it.
    #[test]
    fn a_v2_record_with_any_one_bit_flipped_is_always_rejected(
        seed in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        if let Ok(arb) = ArbV2Record::arbitrary_take_rest(Unstructured::new(&seed)) {
            let bytes = arb.to_record().encode();
            prop_assert!(FencedRecord::decode(&bytes).is_ok());
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(
                    FencedRecord::decode(&flipped).is_err(),
                    "bit {} flipped of {:02x?} still decodes", bit, bytes
                );
                prop_assert!(record::decode(&flipped).is_err(), "the reference accepts bit {}", bit);
            }
        }
    }

    /// Migration: every version-1 record still decodes through the
    /// version-aware decoder the fenced API reads with, to the values the
    /// format gives.
    #[test]
    fn a_v1_record_still_decodes_through_the_fenced_decoder(record in record()) {
        let bytes = record.encode();
        prop_assert_eq!(engine_fenced_decode(&bytes), Ok(to_reference(&record)));
    }
}
