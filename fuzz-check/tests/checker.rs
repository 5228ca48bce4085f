//! The checker must be able to fail: hand-made histories and stores that
//! break each invariant are reported, with the invariant named.

use atmostonce::core::{AppendDurability, Protocol};
use atmostonce::{
    DedupDecision, DedupEntry, DedupOptions, DurabilityError, ProcessingReceipt, StreamTable,
    Tombstone,
};
use atmostonce_fuzz_check::history::{
    Event, Exemption, History, Invariant, Verdict, excused_causes, verify,
};
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

const KEY: &str = "k";
const TTL_MS: u64 = 100;

fn protocol() -> Protocol {
    Protocol::new("check", DedupOptions::default(), AppendDurability::Durable)
        .expect("a valid protocol")
}

fn event(tick: u64, op: SpecOp, observed: Result<SpecAnswer, DurabilityError>) -> Event {
    Event {
        key: KEY.to_owned(),
        stream: protocol().stream_key_for(KEY),
        op,
        sweep_now_millis: None,
        invoked_tick: tick,
        responded_tick: tick,
        observed,
        stream_shared: false,
        claim_seq: None,
        exemption: None,
    }
}

fn claimed(tick: u64, seq: u64) -> Event {
    Event {
        claim_seq: Some(seq),
        ..event(
            tick,
            SpecOp::Claim { now_millis: 1 },
            Ok(SpecAnswer::Decision(DedupDecision::Claimed)),
        )
    }
}

fn table(records: &[Vec<u8>]) -> StreamTable {
    let mut table = StreamTable::new();
    let stream = protocol().stream_key_for(KEY);
    for (seq, payload) in (0u64..).zip(records) {
        table
            .append(&stream, payload, seq, 0)
            .expect("appends in order");
    }
    table
}

fn claim_record() -> Vec<u8> {
    DedupEntry::new(KEY, None, 1)
        .serialize()
        .expect("within the limits")
}

fn judge(events: Vec<Event>, table: &StreamTable) -> Result<Verdict, Invariant> {
    let history = History {
        protocol: protocol(),
        ttl_ms: TTL_MS,
        events,
    };
    verify(
        &history,
        &atmostonce_verify::table::FaultTable::copy_of(table),
    )
    .map_err(|violation| violation.invariant)
}

#[test]
fn a_second_claim_granted_without_a_release_is_not_linearizable() {
    let store = table(&[claim_record(), claim_record()]);
    assert_eq!(
        judge(vec![claimed(1, 0), claimed(2, 1)], &store),
        Err(Invariant::S7)
    );
}

#[test]
fn two_answers_granted_by_one_claim_record_break_one_winner() {
    // Linearizable (a release between them), but both claims rest on the
    // same record.
    let store = table(&[claim_record(), Tombstone::new(KEY, 2).serialize()]);
    let release = event(2, SpecOp::Release, Ok(SpecAnswer::Done));
    assert_eq!(
        judge(vec![claimed(1, 0), release, claimed(3, 0)], &store),
        Err(Invariant::S1)
    );
}

#[test]
fn an_exempted_answer_turns_the_violation_into_a_known_outcome() {
    let store = table(&[claim_record()]);
    let misresolved = Event {
        exemption: Some(Exemption::MisresolvedAppend),
        ..claimed(2, 0)
    };
    let verdict = judge(vec![claimed(1, 0), misresolved], &store);
    assert!(
        matches!(&verdict, Ok(v) if excused_causes(v) == [Exemption::MisresolvedAppend]),
        "{verdict:?}"
    );
}

#[test]
fn a_completed_answer_nobody_stored_is_refused() {
    let receipt = ProcessingReceipt::new(b"r".to_vec());
    let lookup = event(
        1,
        SpecOp::Lookup,
        Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(receipt)))),
    );
    assert_eq!(judge(vec![lookup], &StreamTable::new()), Err(Invariant::S7));
}

#[test]
fn an_expiry_before_the_ttl_has_passed_is_not_linearizable() {
    let expire = Event {
        sweep_now_millis: Some(1 + TTL_MS),
        ..event(2, SpecOp::Expire, Ok(SpecAnswer::Done))
    };
    let store = table(&[claim_record(), Tombstone::new(KEY, 1 + TTL_MS).serialize()]);
    assert_eq!(
        judge(vec![claimed(1, 0), expire], &store),
        Err(Invariant::S7)
    );
}

#[test]
fn a_completed_entry_tombstoned_before_it_expired_breaks_receipt_stability() {
    let completed = DedupEntry::new(KEY, Some(b"r".to_vec()), 1)
        .serialize()
        .expect("within the limits");
    let store = table(&[
        claim_record(),
        completed,
        Tombstone::new(KEY, 5).serialize(),
    ]);
    assert_eq!(judge(Vec::new(), &store), Err(Invariant::S2));
}

#[test]
fn an_acknowledged_completion_missing_from_the_store_breaks_survival() {
    let complete = event(
        2,
        SpecOp::Complete {
            receipt: ProcessingReceipt::new(b"r".to_vec()),
            timestamp_millis: 1,
        },
        Ok(SpecAnswer::Done),
    );
    let store = table(&[claim_record()]);
    assert_eq!(
        judge(vec![claimed(1, 0), complete], &store),
        Err(Invariant::S4)
    );
}

#[test]
fn records_of_two_keys_in_one_stream_break_collision_safety() {
    let mut store = table(&[claim_record()]);
    let stream = protocol().stream_key_for(KEY);
    store
        .append(
            &stream,
            &DedupEntry::new("other", None, 1)
                .serialize()
                .expect("within the limits"),
            1,
            0,
        )
        .expect("appends in order");
    assert_eq!(judge(Vec::new(), &store), Err(Invariant::S6));
}
