//! [`SweepOp`]: one pass of the TTL sweeper as a state machine.

use super::{IoPolicy, Operation, Step, StoreReply, StoreRequest, misfed};
use crate::DurabilityError;
use crate::codec::{DedupRecord, Tombstone};
use crate::limits::CLOCK_SKEW_GRACE_MS;
use crate::store::ScannedEntry;

/// What one sweep saw and did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DedupSweepReport {
    /// Records the scan returned (every record of every stream of the
    /// namespace: the seed sweep reads whole histories).
    pub scanned_entries: usize,
    /// Keys whose active entry had outlived its TTL and were tombstoned.
    pub expired_entries: usize,
    /// Keys whose active entry is still within its TTL (plus grace).
    pub retained_entries: usize,
}

/// One tombstone the sweep has decided to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Expiry {
    stream: String,
    key: String,
    expected_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Scanning,
    Expiring { expiries: Vec<Expiry>, next: usize },
    Flushing,
    Done(Result<DedupSweepReport, DurabilityError>),
}

/// One sweep: scan the namespace, then tombstone, one append at a time,
/// every key whose latest record is active and older than
/// `ttl + CLOCK_SKEW_GRACE_MS` at `now`. The tombstone goes at the latest
/// record's sequence + 1, so a key that moved on since the scan makes the
/// append conflict instead of being expired wrongly.
///
/// As in the seed system, any error (a lost race included) ends the whole
/// sweep with that error; tombstones already written stay written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SweepOp {
    prefix: String,
    io: IoPolicy,
    now_millis: u64,
    ttl_ms: u64,
    report: DedupSweepReport,
    phase: Phase,
}

impl SweepOp {
    pub(crate) fn new(prefix: String, io: IoPolicy, now_millis: u64, ttl_ms: u64) -> SweepOp {
        SweepOp {
            prefix,
            io,
            now_millis,
            ttl_ms,
            report: DedupSweepReport::default(),
            phase: Phase::Scanning,
        }
    }

    /// The sweep's clock reading.
    #[must_use]
    pub fn now_millis(&self) -> u64 {
        self.now_millis
    }

    /// True when an entry stamped `timestamp_millis` has expired at
    /// `now_millis` (`docs/spec.md`, "Expiry"). Private: the harness judges
    /// expiry by the oracle's own rule, never by this one.
    fn is_expired(timestamp_millis: u64, ttl_ms: u64, now_millis: u64) -> bool {
        now_millis
            > timestamp_millis
                .saturating_add(ttl_ms)
                .saturating_add(CLOCK_SKEW_GRACE_MS)
    }

    /// Plans the tombstones from a scan: the last entry of each stream
    /// decides. Fails on a scan out of order or an undecodable latest record.
    fn plan(&mut self, entries: Vec<ScannedEntry>) -> Result<Vec<Expiry>, DurabilityError> {
        self.report.scanned_entries = entries.len();
        let mut expiries = Vec::new();
        let mut index = 0;
        while index < entries.len() {
            let stream = &entries[index].stream;
            if !stream.starts_with(&self.prefix) {
                return Err(DurabilityError::StoreError(format!(
                    "scan for prefix {:?} returned stream {stream:?}",
                    self.prefix
                )));
            }
            let mut last = index;
            while last + 1 < entries.len() && entries[last + 1].stream == *stream {
                if entries[last + 1].entry.sequence <= entries[last].entry.sequence {
                    return Err(DurabilityError::StoreError(format!(
                        "scan returned stream {stream:?} out of sequence order"
                    )));
                }
                last += 1;
            }
            if last + 1 < entries.len() && entries[last + 1].stream < *stream {
                return Err(DurabilityError::StoreError(
                    "scan returned streams out of name order".into(),
                ));
            }
            let head = &entries[last].entry;
            let record = DedupRecord::decode(&head.payload).map_err(|error| {
                DurabilityError::EnvelopeError {
                    stream: stream.clone(),
                    sequence: head.sequence,
                    error,
                }
            })?;
            if let DedupRecord::Active(entry) = record {
                if Self::is_expired(entry.timestamp_millis(), self.ttl_ms, self.now_millis) {
                    let expected_seq = head.sequence.checked_add(1).ok_or_else(|| {
                        DurabilityError::StoreError(format!(
                            "scan returned sequence {} of stream {stream:?}, the last one a \
                             stream can have; no tombstone can follow it",
                            head.sequence
                        ))
                    })?;
                    expiries.push(Expiry {
                        stream: stream.clone(),
                        key: entry.idempotency_key().to_owned(),
                        expected_seq,
                    });
                } else {
                    self.report.retained_entries += 1;
                }
            }
            index = last + 1;
        }
        debug_assert!(
            expiries.len() + self.report.retained_entries <= self.report.scanned_entries,
            "a sweep judges each stream once, by one of the entries it scanned"
        );
        Ok(expiries)
    }

    fn after_expiries(&self) -> Phase {
        if self.report.expired_entries > 0 && self.io.flush_appends() {
            Phase::Flushing
        } else {
            Phase::Done(Ok(self.report))
        }
    }
}

/// The error a sweep ends with if its expiry index ever left its plan: an
/// engine bug, reported instead of panicking.
fn index_out_of_range(next: usize, planned: usize) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "sweep error: expiry {next} of a plan of {planned} (an engine bug); tombstones already \
         written stay written"
    ))
}

impl Operation for SweepOp {
    type Output = DedupSweepReport;

    fn poll(&self) -> Step<DedupSweepReport> {
        match &self.phase {
            Phase::Scanning => Step::Request(StoreRequest::Scan {
                prefix: self.prefix.clone(),
            }),
            Phase::Expiring { expiries, next } => match expiries.get(*next) {
                Some(expiry) => Step::Request(StoreRequest::Append {
                    stream: expiry.stream.clone(),
                    payload: Tombstone::new(expiry.key.clone(), self.now_millis).serialize(),
                    expected_seq: expiry.expected_seq,
                }),
                // Unreachable (`feed` keeps `next` in range); ends, never panics.
                None => Step::Done(Err(index_out_of_range(*next, expiries.len()))),
            },
            Phase::Flushing => Step::Request(StoreRequest::Flush),
            Phase::Done(result) => Step::Done(result.clone()),
        }
    }

    /// Without building the next request.
    fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn feed(&mut self, reply: StoreReply) {
        let phase = std::mem::replace(&mut self.phase, Phase::Flushing);
        self.phase = match (phase, reply) {
            (Phase::Done(result), _) => Phase::Done(result),
            (Phase::Scanning, StoreReply::Scan(Ok(entries))) => match self.plan(entries) {
                Ok(expiries) if expiries.is_empty() => self.after_expiries(),
                Ok(expiries) => Phase::Expiring { expiries, next: 0 },
                Err(error) => Phase::Done(Err(error)),
            },
            (Phase::Scanning, StoreReply::Scan(Err(error))) => Phase::Done(Err(error)),
            (Phase::Expiring { expiries, next }, StoreReply::Append(Ok(sequence))) => {
                debug_assert!(
                    next < expiries.len(),
                    "a sweep's expiry index stays in range"
                );
                match expiries.get(next) {
                    None => Phase::Done(Err(index_out_of_range(next, expiries.len()))),
                    Some(expiry) if sequence != expiry.expected_seq => {
                        Phase::Done(Err(DurabilityError::StoreError(format!(
                            "store acknowledged sequence {sequence} of stream {:?} for an \
                             append expected at {}",
                            expiry.stream, expiry.expected_seq
                        ))))
                    }
                    Some(_) => {
                        self.report.expired_entries += 1;
                        debug_assert!(
                            self.report.expired_entries == next + 1,
                            "each landed tombstone is counted once, in order"
                        );
                        if next + 1 < expiries.len() {
                            Phase::Expiring {
                                expiries,
                                next: next + 1,
                            }
                        } else {
                            self.after_expiries()
                        }
                    }
                }
            }
            (Phase::Expiring { .. }, StoreReply::Append(Err(error))) => Phase::Done(Err(error)),
            (Phase::Flushing, StoreReply::Flush(Ok(()))) => Phase::Done(Ok(self.report)),
            (Phase::Flushing, StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (Phase::Scanning, reply) => Phase::Done(Err(misfed(&reply, "a scan answer"))),
            (Phase::Expiring { .. }, reply) => Phase::Done(Err(misfed(&reply, "an append answer"))),
            (Phase::Flushing, reply) => Phase::Done(Err(misfed(&reply, "a flush answer"))),
        };
    }
}
