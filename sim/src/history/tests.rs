use super::*;

#[test]
fn the_same_changes_give_the_same_trace_hash_and_a_different_answer_changes_it() {
    let build = |answer| {
        let mut history = History::new(vec!["k0".into()], vec!["ns:0".into()]);
        let id = history.invoke(
            Process::Producer(0),
            0,
            0,
            SpecOp::Claim { now_millis: 5 },
            None,
            10,
        );
        history.respond(id, Ok(SpecAnswer::Decision(answer)), 20);
        history.trace_hash()
    };
    assert_eq!(
        build(atmostonce::DedupDecision::Claimed),
        build(atmostonce::DedupDecision::Claimed)
    );
    assert_ne!(
        build(atmostonce::DedupDecision::Claimed),
        build(atmostonce::DedupDecision::InFlight)
    );
}

#[test]
fn keys_sharing_a_stream_are_marked_shared() {
    let history = History::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec!["ns:1".into(), "ns:1".into(), "ns:2".into()],
    );
    assert_eq!(history.shared_stream, vec![true, true, false]);
    assert_eq!(
        history.keys_of_stream("ns:1").collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn a_receipt_names_its_key() {
    let receipt = receipt_for("k07", Process::Producer(3), 41);
    assert_eq!(receipt_key(&receipt), Some("k07"));
}
