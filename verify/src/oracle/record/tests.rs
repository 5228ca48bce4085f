use super::*;

/// The worked example of `docs/record-format.md`: the claim of key "k" at
/// 42 ms.
const WORKED_EXAMPLE: [u8; 22] = [
    0x4c, 0x44, 0x45, 0x31, // "LDE1"
    0, 0, 0, 0, 0, 0, 0, 1,    // key length 1
    0x6b, // "k"
    0x00, // no receipt
    0, 0, 0, 0, 0, 0, 0, 0x2a, // timestamp 42
];

fn id(byte: u8) -> ClaimId {
    ClaimId([byte; CLAIM_ID_BYTES])
}

fn claim() -> Record {
    claim_with(id(0xab), 100, 30_100)
}

fn claim_with(claim_id: ClaimId, claimed_at_millis: u64, lease_expires_millis: u64) -> Record {
    Record::Claim {
        key: "k".into(),
        claim_id,
        fence: 3,
        claimed_at_millis,
        lease_expires_millis,
        fingerprint: Some(b"fp".to_vec()),
    }
}

fn completion() -> Record {
    Record::Completion {
        key: "order-17".into(),
        claim_id: id(0x01),
        fence: 0,
        completed_at_millis: 7,
        receipt: b"receipt".to_vec(),
        fingerprint: None,
    }
}

fn release(reason: ReleaseReason, claim_id: ClaimId) -> Record {
    Record::Release {
        key: "é".into(),
        claim_id,
        fence: 9,
        released_at_millis: u64::MAX,
        reason,
    }
}

fn samples() -> Vec<Record> {
    vec![
        Record::V1Entry {
            key: "k".into(),
            receipt: None,
            timestamp_millis: 42,
        },
        Record::V1Entry {
            key: String::new(),
            receipt: Some(Vec::new()),
            timestamp_millis: 0,
        },
        Record::V1Tombstone {
            key: "k".into(),
            timestamp_millis: 1,
        },
        claim(),
        completion(),
        release(ReleaseReason::Holder, id(2)),
        release(ReleaseReason::Expired, ClaimId::ZERO),
    ]
}

/// The bytes of `record` with the checksum recomputed after `edit`.
fn resealed(record: &Record, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = record.encode();
    bytes.truncate(bytes.len() - CRC_BYTES);
    edit(&mut bytes);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn the_worked_example_decodes_to_a_claim_of_k_at_42_ms() {
    let record = decode(&WORKED_EXAMPLE);
    assert_eq!(
        record,
        Ok(Record::V1Entry {
            key: "k".into(),
            receipt: None,
            timestamp_millis: 42
        })
    );
    assert_eq!(record.map(|r| r.encode()), Ok(WORKED_EXAMPLE.to_vec()));
}

#[test]
fn the_checksum_is_the_castagnoli_crc_the_format_names() {
    // The standard check value of CRC-32C (iSCSI): "123456789".
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn a_claim_is_laid_out_field_by_field_as_the_format_gives() {
    let bytes = claim().encode();
    let mut expected = b"LDC2".to_vec();
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.push(b'k');
    expected.extend_from_slice(&[0xab; 16]);
    expected.extend_from_slice(&3u64.to_be_bytes());
    expected.extend_from_slice(&100u64.to_be_bytes());
    expected.extend_from_slice(&30_100u64.to_be_bytes());
    expected.push(0x01);
    expected.extend_from_slice(&2u64.to_be_bytes());
    expected.extend_from_slice(b"fp");
    let crc = crc32c::crc32c(&expected);
    expected.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), 4 + 9 + 16 + 24 + 11 + 4);
}

#[test]
fn a_release_ends_with_its_reason_byte_then_the_checksum() {
    let bytes = release(ReleaseReason::Expired, ClaimId::ZERO).encode();
    assert_eq!(&bytes[..4], b"LDT2");
    assert_eq!(bytes[bytes.len() - CRC_BYTES - 1], 0x01);
    assert_eq!(bytes.len(), 4 + 8 + 2 + 16 + 8 + 8 + 1 + 4);
}

#[test]
fn every_sample_record_round_trips() {
    for record in samples() {
        assert_eq!(decode(&record.encode()), Ok(record.clone()), "{record:?}");
    }
}

#[test]
fn a_flipped_bit_anywhere_in_a_version_2_record_is_rejected() {
    for record in samples().into_iter().filter(Record::is_v2) {
        let bytes = record.encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&flipped).is_err(),
                "{record:?} with bit {bit} flipped decodes"
            );
        }
    }
}

#[test]
fn every_truncation_of_every_sample_is_rejected() {
    for record in samples() {
        let bytes = record.encode();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "{record:?} cut at {len}");
        }
    }
}

#[test]
fn a_byte_after_a_complete_record_is_rejected_as_trailing() {
    for record in samples() {
        let mut bytes = record.encode();
        bytes.push(0);
        assert_eq!(
            decode(&bytes),
            Err(RecordError::TrailingBytes { count: 1 }),
            "{record:?}"
        );
    }
}

#[test]
fn an_unknown_or_short_magic_is_rejected() {
    assert_eq!(
        decode(b"LDE"),
        Err(RecordError::UnknownMagic {
            found: b"LDE".to_vec()
        })
    );
    let mut bytes = WORKED_EXAMPLE;
    bytes[3] = b'9';
    assert_eq!(
        decode(&bytes),
        Err(RecordError::UnknownMagic {
            found: b"LDE9".to_vec()
        })
    );
    assert!(decode(&[]).is_err());
}

#[test]
fn an_option_marker_other_than_zero_or_one_is_rejected() {
    let mut bytes = WORKED_EXAMPLE;
    bytes[13] = 2;
    assert_eq!(
        decode(&bytes),
        Err(RecordError::InvalidOptionMarker { found: 2 })
    );
    let bad_fingerprint = resealed(&claim(), |bytes| {
        let marker = 4 + 9 + 16 + 24;
        bytes[marker] = 0x07;
    });
    assert_eq!(
        decode(&bad_fingerprint),
        Err(RecordError::InvalidOptionMarker { found: 7 })
    );
}

#[test]
fn a_key_length_beyond_the_input_is_rejected_before_allocating() {
    let mut bytes = WORKED_EXAMPLE;
    bytes[4] = 0xff;
    assert!(matches!(
        decode(&bytes),
        Err(RecordError::LengthExceedsInput {
            field: Field::Key,
            ..
        })
    ));
}

#[test]
fn a_key_that_is_not_utf8_is_rejected() {
    let mut bytes = WORKED_EXAMPLE;
    bytes[12] = 0xff;
    assert_eq!(decode(&bytes), Err(RecordError::InvalidUtf8));
}

#[test]
fn a_bad_checksum_is_rejected_even_when_every_field_is_valid() {
    let mut bytes = completion().encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    assert!(matches!(
        decode(&bytes),
        Err(RecordError::ChecksumMismatch { .. })
    ));
}

#[test]
fn a_zero_claim_id_is_allowed_only_in_a_sweepers_release() {
    let zero_claim = claim_with(ClaimId::ZERO, 100, 30_100);
    assert_eq!(decode(&zero_claim.encode()), Err(RecordError::ZeroClaimId));
    let zero_completion = match completion() {
        Record::Completion {
            key,
            fence,
            completed_at_millis,
            receipt,
            fingerprint,
            ..
        } => Record::Completion {
            key,
            claim_id: ClaimId::ZERO,
            fence,
            completed_at_millis,
            receipt,
            fingerprint,
        },
        other => other,
    };
    assert_eq!(
        decode(&zero_completion.encode()),
        Err(RecordError::ZeroClaimId)
    );
    assert_eq!(
        decode(&release(ReleaseReason::Holder, ClaimId::ZERO).encode()),
        Err(RecordError::ZeroClaimId)
    );
    assert!(decode(&release(ReleaseReason::Expired, ClaimId::ZERO).encode()).is_ok());
}

#[test]
fn a_release_reason_other_than_zero_or_one_is_rejected() {
    let bytes = resealed(&release(ReleaseReason::Holder, id(2)), |bytes| {
        let last = bytes.len() - 1;
        bytes[last] = 0x02;
    });
    assert_eq!(decode(&bytes), Err(RecordError::InvalidReason { found: 2 }));
}

#[test]
fn a_lease_that_ends_before_its_claim_is_rejected() {
    let backwards = claim_with(id(0xab), 10, 9);
    assert_eq!(
        decode(&backwards.encode()),
        Err(RecordError::LeaseEndsBeforeClaim)
    );
}

#[test]
fn every_error_has_a_message() {
    let mut bytes = WORKED_EXAMPLE;
    bytes[13] = 9;
    let error = decode(&bytes).err().map(|e| e.to_string());
    assert!(error.is_some_and(|message| message.contains("0x09")));
}
