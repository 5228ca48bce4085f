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

fn head(stream: &str) -> StoreRequest {
    StoreRequest::ReadHead {
        stream: stream.into(),
    }
}

fn compact(stream: &str, below_seq: u64) -> StoreRequest {
    StoreRequest::Compact {
        stream: stream.into(),
        below_seq,
    }
}

/// The (sequence of the last entry, length) a head answer says.
fn head_of(reply: StoreReply) -> (Option<u64>, u64) {
    match reply {
        StoreReply::Head(Ok(head)) => (head.last.map(|last| last.sequence), head.length),
        other => panic!("expected a head, got {other:?}"),
    }
}

fn filled(streams: &[(&str, u64)]) -> FaultTable {
    let mut table = FaultTable::new();
    for &(stream, count) in streams {
        for sequence in 0..count {
            table.serve(&append(stream, sequence as u8, sequence));
        }
    }
    table
}

#[test]
fn a_head_read_answers_the_last_entry_and_the_length_and_faults_like_a_read() {
    let mut table = filled(&[("s", 3)]);
    assert_eq!(head_of(table.serve(&head("s"))), (Some(2), 3));
    assert_eq!(head_of(table.serve(&head("none"))), (None, 0));
    let stale = table.serve_with(Call::new(1, None), &head("s"), CallFault::StaleBy(2));
    assert_eq!(head_of(stale), (Some(0), 1));
    let durable = table.serve_with(Call::new(1, None), &head("s"), CallFault::StaleDurable);
    assert_eq!(head_of(durable), (None, 0), "nothing was flushed");
    for fault in [CallFault::ErrorApplied, CallFault::ErrorLost] {
        let reply = table.serve_with(Call::new(1, None), &head("s"), fault);
        assert!(matches!(reply, StoreReply::Head(Err(_))), "{fault:?}");
    }
}

#[test]
fn a_scan_of_heads_pages_by_name_after_the_cursor() {
    let mut table = filled(&[("p:a", 2), ("p:b", 1), ("p:c", 3), ("q:a", 1)]);
    let page = |table: &mut FaultTable, after: Option<&str>, fault| {
        let request = StoreRequest::ScanHeads {
            prefix: "p:".into(),
            after: after.map(str::to_owned),
            limit: 2,
        };
        match table.serve_with(Call::new(0, None), &request, fault) {
            StoreReply::Heads(Ok(heads)) => heads
                .into_iter()
                .map(|head| (head.stream, head.length))
                .collect::<Vec<_>>(),
            other => panic!("expected heads, got {other:?}"),
        }
    };
    let named = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|&(s, n)| (s.to_owned(), n)).collect()
    };
    assert_eq!(
        page(&mut table, None, CallFault::None),
        named(&[("p:a", 2), ("p:b", 1)])
    );
    assert_eq!(
        page(&mut table, Some("p:b"), CallFault::None),
        named(&[("p:c", 3)])
    );
    // A stale page hides the newest entry of each stream (p:b's only one).
    assert_eq!(
        page(&mut table, None, CallFault::StaleBy(1)),
        named(&[("p:a", 1), ("p:c", 2)])
    );
}

#[test]
fn a_compaction_keeps_the_last_durable_entry_so_a_crash_keeps_the_length() {
    let mut table = filled(&[("s", 4)]);
    // Nothing is durable yet: nothing may go.
    assert_eq!(table.serve(&compact("s", 10)), StoreReply::Compact(Ok(0)));
    table.serve(&StoreRequest::Flush);
    table.serve(&append("s", 4, 4));
    // Entries 0..3 go, entry 3 (the last durable one) and 4 stay.
    assert_eq!(table.serve(&compact("s", 10)), StoreReply::Compact(Ok(3)));
    assert_eq!(table.compacted("s"), 3);
    assert_eq!(head_of(table.serve(&head("s"))), (Some(4), 5));
    table.crash();
    assert_eq!(head_of(table.serve(&head("s"))), (Some(3), 4));
    assert_eq!(table.serve(&append("s", 9, 4)), StoreReply::Append(Ok(4)));
    match table.serve(&read("s")) {
        StoreReply::Read(Ok(entries)) => assert_eq!(
            entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [3, 4]
        ),
        other => panic!("expected a read, got {other:?}"),
    }
}

#[test]
fn a_stale_view_never_reaches_below_a_compaction() {
    let mut table = filled(&[("s", 5)]);
    table.serve(&StoreRequest::Flush);
    table.serve(&compact("s", 4));
    let stale = table.serve_with(Call::new(1, None), &head("s"), CallFault::StaleBy(3));
    assert_eq!(head_of(stale), (Some(4), 5));
    let stale = table.serve_with(Call::new(1, None), &read("s"), CallFault::StaleBy(3));
    assert_eq!(read_len(stale), 1);
}

#[test]
fn a_compaction_faults_like_an_append() {
    let mut table = filled(&[("s", 3)]);
    table.serve(&StoreRequest::Flush);
    let lost = table.serve_with(Call::new(1, None), &compact("s", 2), CallFault::ErrorLost);
    assert!(matches!(lost, StoreReply::Compact(Err(_))));
    assert_eq!(table.compacted("s"), 0);
    let applied = table.serve_with(
        Call::new(1, None),
        &compact("s", 2),
        CallFault::ErrorApplied,
    );
    assert!(matches!(applied, StoreReply::Compact(Err(_))));
    assert_eq!(table.compacted("s"), 2);
    assert_eq!(
        table.calls().last().map(|c| c.kind),
        Some(CallKind::Compact)
    );
}

#[test]
fn a_copy_of_a_compacted_engine_table_is_compacted_alike() {
    let mut engine = atmostonce::StreamTable::new();
    for sequence in 0..4 {
        engine.append("s", &[sequence as u8], sequence, 0).unwrap();
    }
    engine.compact("s", 3);
    let mut copy = FaultTable::copy_of(&engine);
    assert_eq!((copy.len("s"), copy.compacted("s")), (4, 3));
    assert_eq!(copy.serve(&append("s", 9, 4)), StoreReply::Append(Ok(4)));
}

#[test]
fn a_compaction_keeps_what_it_removed_in_the_history_checkers_read() {
    let mut table = filled(&[("s", 4)]);
    table.serve(&StoreRequest::Flush);
    assert_eq!(table.serve(&compact("s", 3)), StoreReply::Compact(Ok(3)));
    let sequences = |table: &FaultTable| {
        let history: Vec<u64> = table.history("s").map(|e| e.sequence).collect();
        let entries: Vec<u64> = table.entries("s").iter().map(|e| e.sequence).collect();
        (history, entries)
    };
    assert_eq!(sequences(&table), (vec![0, 1, 2, 3], vec![3]));
    // A crash drops nothing of it: what went was durable.
    table.serve(&append("s", 9, 4));
    table.crash();
    assert_eq!(sequences(&table), (vec![0, 1, 2, 3], vec![3]));
}

#[test]
fn a_table_of_durable_appends_compacts_up_to_its_last_append_unflushed() {
    let mut table = FaultTable::new().with_appends_durable(true);
    for sequence in 0..3 {
        table.serve(&append("s", 1, sequence));
    }
    assert_eq!(table.serve(&compact("s", 10)), StoreReply::Compact(Ok(2)));
    assert_eq!(head_of(table.serve(&head("s"))), (Some(2), 3));
}
