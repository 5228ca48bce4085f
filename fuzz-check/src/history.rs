//! Judging a run: the history of every operation's invocation and answer,
//! and the store the run left, checked against DESIGN.md section 5.
//!
//! - **S7** per key: the history is linearizable against
//!   [`atmostonce_verify::oracle`], by the engine's search
//!   ([`atmostonce_verify::oracle::linear`], the simulator's too), with an expiry
//!   taking effect only on an entry expired at its sweep's clock.
//! - **S1** each `Claimed` answer acknowledges its own claim record, and two
//!   claim records of a key are separated by a tombstone.
//! - **S2** in the store, whatever follows a completed entry is a tombstone
//!   written after the entry expired.
//! - **S3** every `Completed(R)` answer follows a completion with `R` that
//!   may have taken effect.
//! - **S4** every acknowledged completion's record is in the store.
//! - **S6** every stream holds records of one key, the key it is named after.
//! - **S5** (fencing) has nothing to check on the seed API, which has no
//!   claim tokens.
//!
//! [`verify`] first judges everything. If that fails and the history holds
//! operations whose answer the seed-compatible API is *known* to get wrong
//! under an injected fault ([`Exemption`]), it judges again without them; if
//! the rest is then correct, the run ends in a documented
//! [`Verdict::Known`] outcome instead of a failure.

use std::collections::BTreeMap;
use std::fmt;

use atmostonce::core::{DedupDecision, Protocol, SweepOp};
use atmostonce::{DedupRecord, DurabilityError, StreamTable};
use atmostonce_verify::oracle::linear::{
    ExpiryClock, HistoryOp, Linearization, MAX_SEARCH_STEPS, linearize,
};
use atmostonce_verify::oracle::{ErrorClass, SpecAnswer, SpecOp};

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

/// Why an answer of the seed-compatible API is known to be unreliable. An
/// exempted operation never had an append of its own applied, so leaving it
/// out of the history leaves the store's story intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exemption {
    /// The operation was served a stale read (an older snapshot of the
    /// stream) and answered without writing: its answer may describe a
    /// state the key had left before the operation was invoked (S7; a stale
    /// `release` that answers `Ok` without writing leaves a claim the
    /// specification thinks released, so later answers look wrong too).
    StaleRead,
    /// The operation's append was answered with an indeterminate error and
    /// not applied, but another writer had appended byte-identical bytes at
    /// the same sequence (same key, same millisecond), and the seed's
    /// "compare the record" test took them for its own: two producers are
    /// both told `Claimed` (S1, S7).
    MisresolvedAppend,
}

impl Exemption {
    /// Every exemption, for the documentation and the reports.
    pub const ALL: [Exemption; 2] = [Exemption::StaleRead, Exemption::MisresolvedAppend];
}

/// The invariants of DESIGN.md section 5 this module checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// One winner.
    S1,
    /// Receipt stability.
    S2,
    /// No phantom receipt.
    S3,
    /// Acknowledged writes survive.
    S4,
    /// Collision safety.
    S6,
    /// Linearizability.
    S7,
}

/// A broken invariant, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// The key (or stream) concerned.
    pub key: String,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} violated for {:?}: {}",
            self.invariant, self.key, self.detail
        )
    }
}

/// The outcome of a run that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every invariant holds.
    Clean,
    /// An invariant is broken, but only by answers of a documented, known
    /// weakness of the seed API under an injected fault; without those
    /// answers every invariant holds.
    Known {
        /// The weaknesses needed to explain the violation.
        causes: Vec<Exemption>,
        /// The violation found when every answer is judged.
        violation: Violation,
    },
}

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

/// Judges a run. `Err` is a violation no documented weakness explains: a
/// bug in the engine (or in this checker).
pub fn verify(history: &History, table: &StreamTable) -> Result<Verdict, Violation> {
    let strict = match check(history, table, &[]) {
        Ok(()) => return Ok(Verdict::Clean),
        Err(violation) => violation,
    };
    let present: Vec<Exemption> = Exemption::ALL
        .into_iter()
        .filter(|cause| history.events.iter().any(|e| e.exemption == Some(*cause)))
        .collect();
    let mut candidates: Vec<Vec<Exemption>> = present.iter().map(|cause| vec![*cause]).collect();
    if present.len() > 1 {
        candidates.push(present.clone());
    }
    for causes in candidates {
        if check(history, table, &causes).is_ok() {
            return Ok(Verdict::Known {
                causes,
                violation: strict,
            });
        }
    }
    Err(strict)
}

fn check(history: &History, table: &StreamTable, exempt: &[Exemption]) -> Result<(), Violation> {
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
    Violation {
        invariant,
        key: key.to_owned(),
        detail,
    }
}

/// The decoded records of a stream; `None` for a record that does not decode.
fn records(table: &StreamTable, stream: &str) -> Vec<Option<DedupRecord>> {
    table
        .read_from(stream, 0, usize::MAX)
        .iter()
        .map(|entry| DedupRecord::decode(&entry.payload).ok())
        .collect()
}

/// True when `stream` holds a record of a key other than `key`.
#[must_use]
pub fn stream_holds_other_key(table: &StreamTable, stream: &str, key: &str) -> bool {
    records(table, stream)
        .iter()
        .flatten()
        .any(|record| record.idempotency_key() != key)
}

/// S6 and S2, from the store alone.
fn check_streams(history: &History, table: &StreamTable) -> Result<(), Violation> {
    let names: Vec<String> = table
        .stream_lengths()
        .map(|(name, _)| name.to_owned())
        .collect();
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
            let key = record.idempotency_key();
            if history.protocol.stream_key_for(key) != stream {
                return Err(violation(
                    Invariant::S6,
                    &stream,
                    format!("record {sequence} belongs to key {key:?}, whose stream is another"),
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
            if let [Some(DedupRecord::Active(completed)), Some(next)] = pair
                && completed.receipt().is_some()
            {
                let expired_by_tombstone = matches!(next, DedupRecord::Tombstone(t)
                    if SweepOp::is_expired(completed.timestamp_millis(), history.ttl_ms, t.timestamp_millis()));
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
            .any(|r| matches!(r, Some(DedupRecord::Tombstone(_))))
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
            Some(Some(DedupRecord::Active(entry))) if entry.receipt().is_none() && entry.idempotency_key() == key);
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
        let stored = records(table, &event.stream).iter().any(|record| {
            matches!(record, Some(DedupRecord::Active(entry))
                if entry.idempotency_key() == key && entry.receipt() == Some(receipt.as_bytes()))
        });
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

/// S7: the engine's linearizability search ([`linearize`]) over the key's
/// events, every expiry bound by its sweep's clock.
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
    let blocked = match linearize(&history) {
        Linearization::Linearizable => return Ok(()),
        Linearization::NotLinearizable { blocked, .. } => events
            .get(blocked)
            .map(|event| format!("no order places {}", show(event))),
        Linearization::GaveUp => Some(format!(
            "the search gave up after {MAX_SEARCH_STEPS} configurations"
        )),
    };
    let mut ordered = events.to_vec();
    ordered.sort_by_key(|e| (e.invoked_tick, e.responded_tick));
    let timeline: Vec<String> = ordered.iter().map(|e| show(e)).collect();
    Err(violation(
        Invariant::S7,
        key,
        format!(
            "no linearization against the specification ({}):\n  {}",
            blocked.unwrap_or_default(),
            timeline.join("\n  ")
        ),
    ))
}

/// One event on a line of a report.
fn show(event: &Event) -> String {
    format!(
        "[{}..{}] {:?} -> {:?}",
        event.invoked_tick, event.responded_tick, event.op, event.observed
    )
}
