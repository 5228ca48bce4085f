use super::*;

fn append(stream: &str, byte: u8, expected_seq: u64) -> StoreRequest {
    StoreRequest::Append {
        stream: stream.into(),
        payload: vec![byte],
        expected_seq,
    }
}

fn read(stream: &str) -> StoreRequest {
    StoreRequest::Read {
        stream: stream.into(),
        offset: 0,
        limit: usize::MAX,
    }
}

fn read_len(reply: StoreReply) -> usize {
    match reply {
        StoreReply::Read(Ok(entries)) => entries.len(),
        other => panic!("expected a read, got {other:?}"),
    }
}

#[test]
fn a_faithful_append_lands_at_the_expected_sequence_and_a_wrong_one_conflicts() {
    let mut table = FaultTable::new();
    assert_eq!(table.serve(&append("s", 1, 0)), StoreReply::Append(Ok(0)));
    assert_eq!(
        table.serve(&append("s", 2, 0)),
        StoreReply::Append(Err(DurabilityError::SequenceConflict {
            expected: 0,
            actual: 1
        }))
    );
    assert_eq!(read_len(table.serve(&read("s"))), 1);
}

#[test]
fn an_error_applied_append_lands_though_the_caller_sees_an_error() {
    let mut table = FaultTable::new();
    let reply = table.serve_with(
        Call::new(1, Some(3)),
        &append("s", 1, 0),
        CallFault::ErrorApplied,
    );
    assert!(matches!(
        reply,
        StoreReply::Append(Err(DurabilityError::StoreError(_)))
    ));
    assert_eq!(table.len("s"), 1);
    assert_eq!(table.calls()[0].landed_at, Some(0));
}

#[test]
fn an_error_lost_append_does_not_land() {
    let mut table = FaultTable::new();
    let reply = table.serve_with(Call::new(1, None), &append("s", 1, 0), CallFault::ErrorLost);
    assert!(matches!(reply, StoreReply::Append(Err(_))));
    assert_eq!(table.len("s"), 0);
}

#[test]
fn a_stale_durable_read_does_not_see_unflushed_appends() {
    let mut table = FaultTable::new();
    table.serve(&append("s", 1, 0));
    table.serve(&StoreRequest::Flush);
    table.serve(&append("s", 2, 1));
    assert_eq!(
        read_len(table.serve_with(Call::new(0, None), &read("s"), CallFault::StaleDurable)),
        1
    );
    assert_eq!(read_len(table.serve(&read("s"))), 2);
}

#[test]
fn a_read_stale_by_one_misses_the_last_entry_of_each_scanned_stream() {
    let mut table = FaultTable::new();
    table.serve(&append("a", 1, 0));
    table.serve(&append("a", 2, 1));
    table.serve(&append("b", 3, 0));
    let scan = StoreRequest::Scan {
        prefix: String::new(),
    };
    match table.serve_with(Call::new(0, None), &scan, CallFault::StaleBy(1)) {
        StoreReply::Scan(Ok(entries)) => assert_eq!(entries.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read_len(table.serve_with(Call::new(0, None), &read("a"), CallFault::StaleBy(1))),
        1
    );
}

#[test]
fn a_crash_drops_exactly_the_unflushed_appends_of_each_stream() {
    let mut table = FaultTable::new();
    table.serve(&append("a", 1, 0));
    table.serve(&StoreRequest::Flush);
    table.serve(&append("a", 2, 1));
    table.serve(&append("b", 3, 0));
    table.crash();
    assert_eq!(table.len("a"), 1);
    assert_eq!(table.len("b"), 0);
    assert_eq!(table.entries("a")[0].payload, vec![1]);
}

#[test]
fn a_flush_after_a_crash_that_dropped_the_callers_appends_fails_once() {
    let mut table = FaultTable::new();
    let flush = StoreRequest::Flush;
    table.serve_with(Call::new(1, None), &append("s", 1, 0), CallFault::None);
    table.crash();
    assert!(matches!(
        table.serve_with(Call::new(1, None), &flush, CallFault::None),
        StoreReply::Flush(Err(_))
    ));
    // Another caller, whose appends were not dropped, flushes fine.
    assert_eq!(
        table.serve_with(Call::new(2, None), &flush, CallFault::None),
        StoreReply::Flush(Ok(()))
    );
    // The session is renewed after the caller heard of the loss.
    assert_eq!(
        table.serve_with(Call::new(1, None), &flush, CallFault::None),
        StoreReply::Flush(Ok(()))
    );
}

#[test]
fn an_error_lost_flush_leaves_appends_to_be_dropped_by_a_crash() {
    let mut table = FaultTable::new();
    table.serve(&append("s", 1, 0));
    table.serve_with(
        Call::new(0, None),
        &StoreRequest::Flush,
        CallFault::ErrorLost,
    );
    table.crash();
    assert_eq!(table.len("s"), 0);
    let mut table = FaultTable::new();
    table.serve(&append("s", 1, 0));
    table.serve_with(
        Call::new(0, None),
        &StoreRequest::Flush,
        CallFault::ErrorApplied,
    );
    table.crash();
    assert_eq!(table.len("s"), 1);
}

#[test]
fn corruption_flips_truncates_or_overwrites_one_record() {
    let mut table = FaultTable::new();
    table.serve(&StoreRequest::Append {
        stream: "s".into(),
        payload: vec![0, 0, 0],
        expected_seq: 0,
    });
    assert!(table.corrupt("s", 0, &Corruption::BitFlip { byte: 4, bit: 9 }));
    assert_eq!(table.entries("s")[0].payload, vec![0, 2, 0]);
    assert!(table.corrupt("s", 0, &Corruption::Truncate { len: 2 }));
    assert_eq!(table.entries("s")[0].payload, vec![0, 2]);
    assert!(table.corrupt("s", 0, &Corruption::Overwrite(vec![9])));
    assert_eq!(table.entries("s")[0].payload, vec![9]);
    assert!(!table.corrupt("s", 1, &Corruption::Truncate { len: 0 }));
    assert!(!table.corrupt("t", 0, &Corruption::Truncate { len: 0 }));
}

#[test]
fn every_call_is_attributed_to_its_operation() {
    let mut table = FaultTable::new();
    table.serve_with(Call::new(4, Some(11)), &append("s", 1, 0), CallFault::None);
    table.serve_with(Call::new(4, Some(12)), &read("s"), CallFault::StaleDurable);
    let calls = table.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].call.op, calls[0].kind, calls[0].landed_at),
        (Some(11), CallKind::Append, Some(0))
    );
    assert_eq!(
        (calls[1].call.op, calls[1].kind, calls[1].fault),
        (Some(12), CallKind::Read, CallFault::StaleDurable)
    );
}

#[test]
fn a_read_past_the_end_or_with_a_huge_offset_is_empty_and_does_not_panic() {
    let mut table = FaultTable::new();
    table.serve(&append("s", 1, 0));
    let req = StoreRequest::Read {
        stream: "s".into(),
        offset: u64::MAX,
        limit: 5,
    };
    assert_eq!(read_len(table.serve(&req)), 0);
    assert_eq!(read_len(table.serve(&read("missing"))), 0);
}

#[test]
fn a_reconnecting_crash_names_each_dropped_entry_and_its_operation_and_fails_no_flush() {
    let mut table = FaultTable::new();
    let flush = StoreRequest::Flush;
    table.serve_with(Call::new(1, Some(10)), &append("a", 1, 0), CallFault::None);
    table.serve_with(Call::new(1, Some(10)), &flush, CallFault::None);
    table.serve_with(Call::new(1, Some(11)), &append("a", 2, 1), CallFault::None);
    table.serve_with(Call::new(2, Some(12)), &append("b", 3, 0), CallFault::None);
    assert!(table.append_would_land("a", 2) && !table.append_would_land("a", 1));
    let dropped = table.crash_reconnecting();
    let seen: Vec<(&str, u64, Option<u64>)> = dropped
        .iter()
        .map(|d| (d.stream.as_str(), d.sequence, d.appended_by.op))
        .collect();
    assert_eq!(seen, [("a", 1, Some(11)), ("b", 0, Some(12))]);
    assert_eq!((table.len("a"), table.len("b")), (1, 0));
    // Every caller reconnected: its next flush succeeds.
    for caller in [1, 2] {
        assert_eq!(
            table.serve_with(Call::new(caller, None), &flush, CallFault::None),
            StoreReply::Flush(Ok(()))
        );
    }
}

#[test]
fn an_unrecorded_table_still_says_where_an_error_applied_append_landed() {
    let mut table = FaultTable::new();
    table.record_calls(false);
    let (reply, landed) = table.serve_landed(
        Call::new(1, Some(2)),
        &append("s", 1, 0),
        CallFault::ErrorApplied,
    );
    assert!(matches!(reply, StoreReply::Append(Err(_))));
    assert_eq!(landed, Some(0));
    let (_, conflicted) =
        table.serve_landed(Call::new(1, None), &append("s", 2, 0), CallFault::None);
    assert_eq!(conflicted, None);
    assert!(table.calls().is_empty());
}
