use super::*;

fn append(stream: &str, expected_seq: u64) -> StoreRequest {
    StoreRequest::Append {
        stream: stream.into(),
        payload: vec![0xAB, 0xCD],
        expected_seq,
    }
}

fn read(stream: &str) -> StoreRequest {
    StoreRequest::Read {
        stream: stream.into(),
        offset: 0,
        limit: 100,
    }
}

const P: Caller = Caller(0);
const Q: Caller = Caller(1);

#[test]
fn a_crash_drops_exactly_the_unflushed_appends() {
    let mut t = FaultTable::new();
    t.serve(P, &append("s", 0), 1);
    t.serve(P, &StoreRequest::Flush, 2);
    t.serve(P, &append("s", 1), 3);
    let dropped = t.crash();
    assert_eq!(t.len("s"), 1);
    assert_eq!(dropped, vec![("s".to_owned(), 1, Some(P))]);
}

#[test]
fn a_flush_after_a_crash_dropped_the_callers_appends_fails_once() {
    let mut t = FaultTable::new();
    t.serve(P, &append("s", 0), 1);
    t.crash();
    assert!(matches!(
        t.serve(P, &StoreRequest::Flush, 2),
        StoreReply::Flush(Err(_))
    ));
    assert_eq!(
        t.serve(P, &StoreRequest::Flush, 3),
        StoreReply::Flush(Ok(()))
    );
    assert_eq!(
        t.serve(Q, &StoreRequest::Flush, 4),
        StoreReply::Flush(Ok(()))
    );
}

#[test]
fn an_error_applied_append_lands_and_an_error_lost_one_does_not() {
    let mut t = FaultTable::new();
    let r = t.serve_with(P, &append("s", 0), CallFault::ErrorApplied, 1);
    assert!(matches!(
        r,
        StoreReply::Append(Err(DurabilityError::StoreError(_)))
    ));
    assert_eq!(t.len("s"), 1);
    let r = t.serve_with(P, &append("s", 1), CallFault::ErrorLost, 2);
    assert!(matches!(
        r,
        StoreReply::Append(Err(DurabilityError::StoreError(_)))
    ));
    assert_eq!(t.len("s"), 1);
}

#[test]
fn a_stale_read_hides_the_newest_entries() {
    let mut t = FaultTable::new();
    for seq in 0..3 {
        t.serve(P, &append("s", seq), seq);
    }
    let StoreReply::Read(Ok(entries)) =
        t.serve_with(P, &read("s"), CallFault::Stale { hidden: 2 }, 9)
    else {
        panic!("a read answers a read");
    };
    assert_eq!(entries.len(), 1);
}

#[test]
fn corruption_changes_the_stored_bytes() {
    let mut t = FaultTable::new();
    t.serve(P, &append("s", 0), 1);
    assert!(t.flip_bit("s", 0, 0));
    assert_eq!(t.entries("s")[0].payload, vec![0xAA, 0xCD]);
    assert!(t.truncate_record("s", 0, 1));
    assert_eq!(t.entries("s")[0].payload, vec![0xAA]);
    assert!(!t.flip_bit("s", 5, 0));
}

#[test]
fn every_append_is_attributed_to_its_caller() {
    let mut t = FaultTable::new();
    t.serve(P, &append("s", 0), 1);
    t.serve(Q, &append("s", 1), 2);
    assert_eq!(t.appended_by("s", 0), Some(P));
    assert_eq!(t.appended_by("s", 1), Some(Q));
}
