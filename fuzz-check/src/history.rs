//! Judging a run: the history of every operation's invocation and answer,
//! and the store the run left, checked against `docs/spec.md`
//! ("Invariants").
//!
//! The checker judges by the oracle only: records are read with the
//! reference decoder ([`atmostonce_verify::oracle::record`]), stream names
//! with [`atmostonce_verify::oracle::naming`], expiry with
//! [`atmostonce_verify::oracle::expiry`], error classes with
//! [`ErrorClass`]; it never calls the engine's codec, sweeper or naming.
//!
//! - **S7** per key: the history is linearizable against the sequential
//!   specification, by the oracle's search
//!   ([`atmostonce_verify::oracle::linear`], the simulator's too), with an
//!   expiry taking effect only on an entry expired at its sweep's clock.
//! - **S1** each `Claimed` answer acknowledges its own claim record, and two
//!   claim records of a key are separated by a tombstone.
//! - **S2** in the store, whatever follows a completed entry is a tombstone
//!   written after the entry expired.
//! - **S3** every `Completed(R)` answer follows a completion with `R` that
//!   may have taken effect.
//! - **S4** every acknowledged completion's record is in the store.
//! - **S6** every stream holds records of one key, the key it is named after
//!   (one hash width names every stream of the run).
//! - **S5** (fencing) has nothing to check on the seed API, which has no
//!   claim tokens.
//!
//! [`verify`] first judges everything. If that fails and the history holds
//! operations whose answer the seed-compatible API is *known* to get wrong
//! under an injected fault ([`Exemption`], the catalogue's [`KnownCause`]),
//! it judges again without them; if the rest is then correct, the run passes
//! with the violation in the verdict's `excused` list, naming the cause.

use std::collections::BTreeMap;

use atmostonce::core::{DedupDecision, Protocol};
pub use atmostonce_verify::catalogue::{Excused, Invariant, KnownCause, Verdict, Violation};
use atmostonce_verify::oracle::expiry::is_expired;
use atmostonce_verify::oracle::linear::{
    ExpiryClock, HistoryOp, Linearization, Unexplained, linearize_checked, search_step_budget,
};
use atmostonce_verify::oracle::naming::hash_widths_naming;
use atmostonce_verify::oracle::record::{Record, decode};
use atmostonce_verify::oracle::{ErrorClass, SpecAnswer, SpecOp, SpecState};
use atmostonce_verify::table::FaultTable as StreamTable;

use atmostonce::DurabilityError;

/// Most operations one key's history may hold. A program runs at most
/// [`MAX_ACTIONS`](crate::program::MAX_ACTIONS) operations, so a longer
/// history means the program's bound is broken; the bound also keeps the
/// linearizability search far inside its step budget.
pub const MAX_EVENTS_PER_KEY: usize = 128;

/// One operation on one key: when it was invoked and answered (in the run's
/// logical time) and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The idempotency key.
    pub key: String,
    /// The key's stream.
    pub stream: String,
    /// The operation, as the specification names it.
    pub op: SpecOp,
    /// For [`SpecOp::Expire`]: the sweep's clock, which must have passed
    /// the expired entry's TTL plus grace.
    pub sweep_now_millis: Option<u64>,
    /// Logical time of the invocation.
    pub invoked_tick: u64,
    /// Logical time of the answer (`>= invoked_tick`).
    pub responded_tick: u64,
    /// What the engine answered.
    pub observed: Result<SpecAnswer, DurabilityError>,
    /// The key's stream held another key's records when the answer came (a
    /// hash collision), which makes `DedupCollision` admissible.
    pub stream_shared: bool,
    /// For a `Claimed` answer: the sequence of the claim record the
    /// operation appended (or believes it appended).
    pub claim_seq: Option<u64>,
    /// Set when the answer is one the seed API is known to get wrong.
    pub exemption: Option<Exemption>,
}

/// Why an answer of the seed-compatible API is known to be unreliable: the
/// two causes of the catalogue this checker can excuse. An exempted
/// operation never had an append of its own applied, so leaving it out of
/// the history leaves the store's story intact.
///
/// - [`KnownCause::StaleRead`]: the operation was served a stale read (an
///   older snapshot of the stream) and answered without writing: its answer
///   may describe a state the key had left before the operation was invoked
///   (S7; a stale `release` that answers `Ok` without writing leaves a claim
///   the specification thinks released, so later answers look wrong too).
/// - [`KnownCause::MisresolvedAppend`]: the operation's append was answered
///   with an indeterminate error and not applied, but another writer had
///   appended byte-identical bytes at the same sequence (same key, same
///   millisecond), and the seed's "compare the record" test took them for
///   its own: two producers are both told `Claimed` (S1, S7).
pub type Exemption = KnownCause;

/// The causes [`verify`] may excuse, in the order it tries them.
pub const EXCUSABLE: [KnownCause; 2] = [KnownCause::StaleRead, KnownCause::MisresolvedAppend];

/// A run to judge: its history, the store it left, and the parameters.
#[derive(Debug, Clone)]
pub struct History {
    /// The cache's protocol (it names the streams).
    pub protocol: Protocol,
    /// The sweeper's TTL.
    pub ttl_ms: u64,
    /// Every operation, in any order.
    pub events: Vec<Event>,
}

/// Judges a run. `Ok` is a passing verdict (possibly with excused
/// violations); `Err` is a violation no documented weakness explains: a bug
/// in the engine (or, for [`Invariant::Internal`], in this checker).
pub fn verify(history: &History, table: &StreamTable) -> Result<Verdict, Violation> {
    let strict = match check(history, table, &[]) {
        Ok(()) => return Ok(Verdict::default()),
        Err(violation) => violation,
    };
    if strict.invariant == Invariant::Internal {
        return Err(strict);
    }
    let present: Vec<KnownCause> = EXCUSABLE
        .into_iter()
        .filter(|cause| history.events.iter().any(|e| e.exemption == Some(*cause)))
        .collect();
    let mut candidates: Vec<Vec<KnownCause>> = present.iter().map(|cause| vec![*cause]).collect();
    if present.len() > 1 {
        candidates.push(present.clone());
    }
    for causes in candidates {
        if check(history, table, &causes).is_ok() {
            return Ok(Verdict {
                violations: Vec::new(),
                excused: causes
                    .into_iter()
                    .map(|cause| Excused {
                        cause,
                        violation: strict.clone(),
                    })
                    .collect(),
                notes: (),
            });
        }
    }
    Err(strict)
}

/// The causes a passing verdict excused, in the order [`verify`] found them.
#[must_use]
pub fn excused_causes(verdict: &Verdict) -> Vec<KnownCause> {
    verdict
        .excused
        .iter()
        .map(|excused| excused.cause)
        .collect()
}

fn check(history: &History, table: &StreamTable, exempt: &[KnownCause]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in &history.events {
        if event.exemption.is_some_and(|cause| exempt.contains(&cause)) {
            continue;
        }
        by_key.entry(&event.key).or_default().push(event);
    }
    check_streams(history, table)?;
    for (key, events) in &by_key {
        check_linearizable(key, events, history.ttl_ms)?;
        check_one_winner(key, events, table)?;
        check_receipts(key, events, table)?;
    }
    Ok(())
}

fn violation(invariant: Invariant, key: &str, detail: String) -> Violation {
    Violation::new(invariant, Some(key.to_owned()), detail)
}

/// The records of a stream, read with the reference decoder; `None` for a
/// record that does not decode.
fn records(table: &StreamTable, stream: &str) -> Vec<Option<Record>> {
    table
        .read_from(stream, 0, usize::MAX)
        .iter()
        .map(|entry| decode(&entry.payload).ok())
        .collect()
}

/// True when `stream` holds a record of a key other than `key`.
#[must_use]
pub fn stream_holds_other_key(table: &StreamTable, stream: &str, key: &str) -> bool {
    records(table, stream)
        .iter()
        .flatten()
        .any(|record| record.key() != key)
}

/// The seed API's active entry: its receipt (`None` in flight).
fn active(record: &Record) -> Option<Option<&[u8]>> {
    match record {
        Record::V1Entry { receipt, .. } => Some(receipt.as_deref()),
        _ => None,
    }
}

/// S6 and S2, from the store alone.
fn check_streams(history: &History, table: &StreamTable) -> Result<(), Violation> {
    let namespace = history.protocol.namespace();
    let names: Vec<String> = table
        .stream_lengths()
        .map(|(name, _)| name.to_owned())
        .collect();
    // The hash widths that could have named every stream seen so far.
    let mut widths = u128::MAX;
    for stream in names {
        let records = records(table, &stream);
        let mut owner: Option<&str> = None;
        for (sequence, record) in records.iter().enumerate() {
            let Some(record) = record else {
                return Err(violation(
                    Invariant::S6,
                    &stream,
                    format!("record {sequence} does not decode"),
                ));
            };
            let key = record.key();
            if record.is_v2() {
                return Err(violation(
                    Invariant::S6,
                    &stream,
                    format!(
                        "record {sequence} is a version-2 record; the seed API writes version 1"
                    ),
                ));
            }
            widths &= hash_widths_naming(namespace, key, &stream);
            if widths == 0 {
                return Err(violation(
                    Invariant::S6,
                    &stream,
                    format!(
                        "record {sequence} belongs to key {key:?}, whose stream is another \
                         (no one hash width names every stream of the run)"
                    ),
                ));
            }
            match owner {
                Some(first) if first != key => {
                    return Err(violation(
                        Invariant::S6,
                        &stream,
                        format!("records of keys {first:?} and {key:?} are mixed"),
                    ));
                }
                _ => owner = Some(key),
            }
        }
        for (sequence, pair) in records.windows(2).enumerate() {
            let [Some(completed), Some(next)] = pair else {
                continue;
            };
            let Some(Record::V1Entry {
                receipt: Some(_),
                timestamp_millis: completed_at,
                ..
            }) = Some(completed)
            else {
                continue;
            };
            let expired_by_tombstone = matches!(next, Record::V1Tombstone { timestamp_millis, .. }
                if is_expired(*completed_at, history.ttl_ms, *timestamp_millis));
            if !expired_by_tombstone {
                return Err(violation(
                    Invariant::S2,
                    &stream,
                    format!(
                        "the completed entry at {sequence} is followed by {next:?} before it \
                         expired"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// S1: every `Claimed` acknowledges a claim record of its own.
fn check_one_winner(key: &str, events: &[&Event], table: &StreamTable) -> Result<(), Violation> {
    let mut claims: Vec<(u64, &Event)> = Vec::new();
    for event in events {
        if event.observed != Ok(SpecAnswer::Decision(DedupDecision::Claimed)) {
            continue;
        }
        let Some(seq) = event.claim_seq else {
            return Err(violation(
                Invariant::S1,
                key,
                format!("a claim answered Claimed without appending: {event:?}"),
            ));
        };
        claims.push((seq, event));
    }
    claims.sort_by_key(|(seq, _)| *seq);
    let Some(stream) = events.first().map(|e| e.stream.as_str()) else {
        return Ok(());
    };
    let records = records(table, stream);
    for pair in claims.windows(2) {
        let ((first, a), (second, b)) = (pair[0], pair[1]);
        if first == second {
            return Err(violation(
                Invariant::S1,
                key,
                format!(
                    "two claims were both granted by the claim record at {first}: {a:?} and {b:?}"
                ),
            ));
        }
        let between = records
            .get(to_index(first) + 1..to_index(second))
            .unwrap_or(&[]);
        if !between
            .iter()
            .any(|r| matches!(r, Some(Record::V1Tombstone { .. })))
        {
            return Err(violation(
                Invariant::S1,
                key,
                format!("claims granted at {first} and {second} with no release or expiry between"),
            ));
        }
    }
    for (seq, event) in &claims {
        let is_claim_record = matches!(records.get(to_index(*seq)),
            Some(Some(record)) if active(record) == Some(None) && record.key() == key);
        if !is_claim_record {
            return Err(violation(
                Invariant::S1,
                key,
                format!("a claim answered Claimed, but record {seq} is no claim of it: {event:?}"),
            ));
        }
    }
    Ok(())
}

fn to_index(seq: u64) -> usize {
    usize::try_from(seq).unwrap_or(usize::MAX)
}

/// S3 and S4.
fn check_receipts(key: &str, events: &[&Event], table: &StreamTable) -> Result<(), Violation> {
    for event in events {
        let answered = match &event.observed {
            Ok(SpecAnswer::Decision(DedupDecision::Completed(receipt)))
            | Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(receipt)))) => receipt,
            _ => continue,
        };
        let completed_before = events.iter().any(|other| {
            matches!(&other.op, SpecOp::Complete { receipt, .. } if receipt == answered)
                && other.invoked_tick <= event.responded_tick
                && match &other.observed {
                    Ok(_) => true,
                    Err(error) => ErrorClass::of(error) == ErrorClass::Indeterminate,
                }
        });
        if !completed_before {
            return Err(violation(
                Invariant::S3,
                key,
                format!("{event:?} answers a receipt no completion stored before"),
            ));
        }
    }
    for event in events {
        let SpecOp::Complete { receipt, .. } = &event.op else {
            continue;
        };
        if event.observed.is_err() {
            continue;
        }
        let stored = records(table, &event.stream)
            .iter()
            .flatten()
            .any(|record| record.key() == key && active(record) == Some(Some(receipt.as_bytes())));
        if !stored {
            return Err(violation(
                Invariant::S4,
                key,
                format!("an acknowledged completion is not in the store: {event:?}"),
            ));
        }
    }
    Ok(())
}

/// S7: the oracle's linearizability search ([`linearize_checked`]) over the
/// key's events, every expiry bound by its sweep's clock. A history the
/// search cannot explain is an [`Invariant::Internal`] violation.
fn check_linearizable(key: &str, events: &[&Event], ttl_ms: u64) -> Result<(), Violation> {
    if events.len() > MAX_EVENTS_PER_KEY {
        return Err(violation(
            Invariant::S7,
            key,
            format!(
                "{} operations on one key, more than the checker's {MAX_EVENTS_PER_KEY}",
                events.len()
            ),
        ));
    }
    let history: Vec<HistoryOp<'_>> = events
        .iter()
        .map(|event| HistoryOp {
            stream_shared: event.stream_shared,
            expiry_clock: event
                .sweep_now_millis
                .map(|now_millis| ExpiryClock { now_millis, ttl_ms }),
            ..HistoryOp::answered(
                &event.op,
                event.invoked_tick,
                event.responded_tick,
                &event.observed,
            )
        })
        .collect();
    let shown: Vec<Shown> = events.iter().map(|event| show(event)).collect();
    search_verdict(key, linearize_checked(&history, SpecState::Absent), &shown)
}

/// One event on a line of a report.
fn show(event: &Event) -> Shown {
    Shown {
        invoked_tick: event.invoked_tick,
        responded_tick: event.responded_tick,
        line: format!(
            "[{}..{}] {:?} -> {:?}",
            event.invoked_tick, event.responded_tick, event.op, event.observed
        ),
    }
}

/// One operation of a key's history as a report shows it: its span in
/// the run's logical time and a line describing it and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Logical time of the invocation.
    pub invoked_tick: u64,
    /// Logical time of the answer.
    pub responded_tick: u64,
    /// The operation and its answer.
    pub line: String,
}

/// The violation a per-key linearizability search's result means, if any:
/// S7 with the key's timeline, or [`Invariant::Internal`] when the search
/// could not judge. `shown[i]` is operation `i` of the searched history.
pub fn search_verdict<S>(
    key: &str,
    result: Result<Linearization<S>, Unexplained>,
    shown: &[Shown],
) -> Result<(), Violation> {
    let blocked = match result {
        Ok(Linearization::Linearizable) => return Ok(()),
        Ok(Linearization::NotLinearizable { blocked, .. }) => match shown.get(blocked) {
            Some(op) => format!("no order places {}", op.line),
            None => {
                return Err(violation(
                    Invariant::Internal,
                    key,
                    format!("the search blamed operation {blocked}, which the history lacks"),
                ));
            }
        },
        Ok(Linearization::GaveUp) => {
            format!(
                "the search gave up after {} configurations",
                search_step_budget(shown.len())
            )
        }
        Err(unexplained) => {
            return Err(violation(
                Invariant::Internal,
                key,
                format!(
                    "the search cannot explain the history (operation {:?}): {}",
                    unexplained.op, unexplained.reason
                ),
            ));
        }
    };
    let mut ordered: Vec<&Shown> = shown.iter().collect();
    ordered.sort_by_key(|op| (op.invoked_tick, op.responded_tick));
    let timeline: Vec<&str> = ordered.iter().map(|op| op.line.as_str()).collect();
    Err(violation(
        Invariant::S7,
        key,
        format!(
            "no linearization against the specification ({blocked}):\n  {}",
            timeline.join("\n  ")
        ),
    ))
}
