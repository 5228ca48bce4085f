use super::*;
use proptest::prelude::*;

fn id(byte: u8) -> ClaimId {
    ClaimId::new([byte; CLAIM_ID_LEN]).unwrap()
}

/// Re-seals `body` (a record without its checksum) with a valid CRC.
fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body
}

fn unsealed(record: &FencedRecord) -> Vec<u8> {
    let mut bytes = record.encode();
    bytes.truncate(bytes.len() - CRC_LEN);
    bytes
}

#[test]
fn the_all_zero_claim_id_is_not_an_id() {
    assert_eq!(ClaimId::new([0; CLAIM_ID_LEN]), None);
    assert!(ClaimId::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).is_some());
}

#[test]
fn version_1_records_decode_through_the_fenced_decoder() {
    let entry = DedupEntry::new("k", Some(b"r".to_vec()), 5);
    assert_eq!(
        FencedRecord::decode(&entry.encode()),
        Ok(FencedRecord::Entry(entry))
    );
    let tombstone = Tombstone::new("k", 6);
    assert_eq!(
        FencedRecord::decode(&tombstone.serialize()),
        Ok(FencedRecord::Tombstone(tombstone))
    );
}

#[test]
fn a_checksum_mismatch_is_reported_as_such() {
    let mut bytes = FencedRecord::Claim(ClaimRecord::new("k", id(1), 0, 1, 2, None)).encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(
        FencedRecord::decode(&bytes),
        Err(EnvelopeError::ChecksumMismatch { .. })
    ));
    let message = FencedRecord::decode(&bytes).unwrap_err().to_string();
    assert!(message.contains("checksum mismatch"), "{message}");
}

#[test]
fn a_zero_claim_id_is_only_valid_in_an_expiry() {
    let expiry = FencedRecord::Release(ReleaseRecord::expired("k", None, 3, 9));
    assert_eq!(FencedRecord::decode(&expiry.encode()), Ok(expiry.clone()));
    let mut released = unsealed(&expiry);
    let reason_at = released.len() - 1;
    released[reason_at] = REASON_RELEASED;
    assert_eq!(
        FencedRecord::decode(&sealed(released)),
        Err(EnvelopeError::ZeroClaimId {
            magic: RELEASE_MAGIC_V2
        })
    );
    let claim = FencedRecord::Claim(ClaimRecord::new("k", id(1), 0, 1, 2, None));
    let mut zeroed = unsealed(&claim);
    let id_at = MAGIC_LEN + U64_LEN + 1;
    zeroed[id_at..id_at + CLAIM_ID_LEN].fill(0);
    assert_eq!(
        FencedRecord::decode(&sealed(zeroed)),
        Err(EnvelopeError::ZeroClaimId {
            magic: CLAIM_MAGIC_V2
        })
    );
}

#[test]
fn a_release_reason_other_than_zero_or_one_is_rejected() {
    let release = FencedRecord::Release(ReleaseRecord::released("k", id(2), 0, 1));
    let mut bytes = unsealed(&release);
    let reason_at = bytes.len() - 1;
    bytes[reason_at] = 2;
    assert_eq!(
        FencedRecord::decode(&sealed(bytes)),
        Err(EnvelopeError::InvalidReleaseReason { found: 2 })
    );
}

#[test]
fn a_lease_that_ends_before_its_claim_is_rejected() {
    let claim = FencedRecord::Claim(ClaimRecord::new("k", id(1), 0, 10, 0, None));
    let mut bytes = unsealed(&claim);
    let lease_at = MAGIC_LEN + U64_LEN + 1 + CLAIM_ID_LEN + 2 * U64_LEN;
    bytes[lease_at..lease_at + U64_LEN].copy_from_slice(&9u64.to_be_bytes());
    assert_eq!(
        FencedRecord::decode(&sealed(bytes)),
        Err(EnvelopeError::LeaseBeforeClaim {
            claimed_at_millis: 10,
            lease_expires_millis: 9
        })
    );
}

#[test]
fn a_fingerprint_marker_other_than_zero_or_one_is_rejected() {
    let claim = FencedRecord::Claim(ClaimRecord::new("k", id(1), 0, 1, 1, None));
    let mut bytes = unsealed(&claim);
    let marker_at = bytes.len() - 1;
    bytes[marker_at] = 7;
    assert_eq!(
        FencedRecord::decode(&sealed(bytes)),
        Err(EnvelopeError::InvalidMarker {
            field: RecordField::FingerprintMarker,
            found: 7
        })
    );
}

#[test]
fn sealed_trailing_bytes_are_rejected() {
    let release = FencedRecord::Release(ReleaseRecord::released("k", id(2), 0, 1));
    let mut bytes = unsealed(&release);
    bytes.push(0);
    assert_eq!(
        FencedRecord::decode(&sealed(bytes)),
        Err(EnvelopeError::TrailingBytes { count: 1 })
    );
}

fn arb_v2() -> impl Strategy<Value = FencedRecord> {
    let key = any::<String>();
    let claim_id = any::<[u8; CLAIM_ID_LEN]>().prop_filter_map("zero id", ClaimId::new);
    let bytes = proptest::collection::vec(any::<u8>(), 0..48);
    let fingerprint = proptest::option::of(bytes.clone());
    let claim = (
        key,
        claim_id.clone(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        fingerprint,
    )
        .prop_map(|(k, id, fence, at, lease, fp)| ClaimRecord::new(k, id, fence, at, lease, fp));
    prop_oneof![
        claim.clone().prop_map(FencedRecord::Claim),
        (claim, bytes, any::<u64>()).prop_map(|(c, r, at)| FencedRecord::Completion(
            CompletionRecord::of(&c, ProcessingReceipt::new(r), at)
        )),
        (key, claim_id.clone(), any::<u64>(), any::<u64>()).prop_map(|(k, id, f, at)| {
            FencedRecord::Release(ReleaseRecord::released(k, id, f, at))
        }),
        (
            key,
            proptest::option::of(claim_id),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(k, id, f, at)| FencedRecord::Release(ReleaseRecord::expired(k, id, f, at))),
    ]
}

proptest! {
    #[test]
    fn every_version_2_record_round_trips(record in arb_v2()) {
        let bytes = record.encode();
        prop_assert_eq!(bytes.len(), record.encoded_len());
        prop_assert_eq!(FencedRecord::decode(&bytes), Ok(record));
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_version_2_record_is_rejected(
        record in arb_v2(),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut bytes = record.encode();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(FencedRecord::decode(&bytes).is_err());
    }

    #[test]
    fn every_strict_prefix_of_a_version_2_record_is_rejected(record in arb_v2()) {
        let bytes = record.encode();
        for len in 0..bytes.len() {
            prop_assert!(FencedRecord::decode(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn whatever_the_fenced_decoder_accepts_re_encodes_to_the_same_bytes(
        record in arb_v2(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        // Damage the body, re-seal it: the structure is then what is judged.
        let mut body = unsealed(&record);
        let at = position.index(body.len());
        body[at] = byte;
        let bytes = sealed(body);
        if let Ok(decoded) = FencedRecord::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
