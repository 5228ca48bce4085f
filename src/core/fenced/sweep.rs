//! [`FencedSweepOp`]: one pass of the fenced sweeper as a state machine.

use super::{FencedState, Times};
use crate::DurabilityError;
use crate::codec::{EnvelopeError, FencedRecord, ReleaseRecord};
use crate::core::{Operation, Protocol, Step, StoreReply, StoreRequest, misfed};
use crate::store::ScannedEntry;

/// Why the sweep left a key alone.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The key moved on between the scan and the expiry's append (it was
    /// claimed, completed or released meanwhile); the next sweep decides again.
    Conflict,
    /// A record of the stream does not decode.
    Corrupt {
        /// The bad record's sequence.
        sequence: u64,
        /// What the decoder rejected.
        error: EnvelopeError,
    },
    /// The stream holds a record of a key that does not belong in it.
    Collision,
    /// The expiry's append failed with an indeterminate error; it may or may
    /// not have landed, and the next sweep sees which.
    StoreError(String),
}

/// A key the sweep skipped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkippedKey {
    /// The stream.
    pub stream: String,
    /// The key of the stream's last record, when it decodes.
    pub key: Option<String>,
    /// Why.
    pub reason: SkipReason,
}

/// What one fenced sweep saw and did.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FencedSweepReport {
    /// Streams the scan returned.
    pub scanned_streams: usize,
    /// Claims whose lease (plus grace) had passed, ended.
    pub expired_claims: usize,
    /// Receipts whose TTL (plus grace) had passed, ended.
    pub expired_receipts: usize,
    /// Keys held or completed and still within their lease or TTL.
    pub retained: usize,
    /// Keys left alone, with the reason, in stream order.
    pub skipped: Vec<SkippedKey>,
}

/// One expiry the sweep has decided to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Expiry {
    stream: String,
    record: ReleaseRecord,
    expected_seq: u64,
    of_claim: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Scanning,
    /// Flushing what was scanned before deciding on it.
    Settling(Vec<ScannedEntry>),
    /// Scanning again after that flush: a store crash before it may have
    /// dropped what was scanned and the stream grown back to the same
    /// length with other records, so an expiry is appended only where the
    /// stream's head is still the one scanned (then the flush made it
    /// durable); the others are skipped as contended.
    Verifying(Vec<ScannedEntry>),
    Expiring {
        expiries: Vec<Expiry>,
        next: usize,
    },
    Flushing,
    Done(Result<FencedSweepReport, DurabilityError>),
}

/// One sweep: scan the namespace and, for every stream whose last record is
/// a claim past its lease or a receipt past its TTL (plus the clock-skew
/// grace), append a release with reason `0x01` at the head it read. A
/// contended, corrupt or collided key is listed in the report and skipped;
/// only a failed scan or a failed final flush ends the sweep with an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedSweepOp {
    protocol: Protocol,
    times: Times,
    now_millis: u64,
    report: FencedSweepReport,
    phase: Phase,
}

impl FencedSweepOp {
    pub(crate) fn new(protocol: Protocol, times: Times, now_millis: u64) -> FencedSweepOp {
        FencedSweepOp {
            protocol,
            times,
            now_millis,
            report: FencedSweepReport::default(),
            phase: Phase::Scanning,
        }
    }

    /// The sweep's clock reading.
    #[must_use]
    pub fn now_millis(&self) -> u64 {
        self.now_millis
    }

    fn skip(&mut self, stream: &str, key: Option<&str>, reason: SkipReason) {
        self.report.skipped.push(SkippedKey {
            stream: stream.to_owned(),
            key: key.map(str::to_owned),
            reason,
        });
    }

    /// Judges one stream's records (`entries`, in sequence order).
    fn judge(&mut self, stream: &str, entries: &[ScannedEntry]) -> Option<Expiry> {
        let mut head: Option<(u64, FencedRecord)> = None;
        for scanned in entries {
            let entry = &scanned.entry;
            let record = match FencedRecord::decode(&entry.payload) {
                Ok(record) => record,
                Err(error) => {
                    let sequence = entry.sequence;
                    self.skip(stream, None, SkipReason::Corrupt { sequence, error });
                    return None;
                }
            };
            let key = record.idempotency_key();
            if self.protocol.stream_key_for(key) != stream
                || head
                    .as_ref()
                    .is_some_and(|(_, first)| first.idempotency_key() != key)
            {
                self.skip(stream, Some(key), SkipReason::Collision);
                return None;
            }
            head = Some((entry.sequence, record));
        }
        let (sequence, record) = head?;
        let state = FencedState::at(Some(&record), self.now_millis, self.times);
        let of_claim = match state {
            FencedState::ExpiredClaim => true,
            FencedState::ExpiredReceipt => false,
            FencedState::Held { .. } | FencedState::Completed { .. } => {
                self.report.retained += 1;
                return None;
            }
            FencedState::Absent => return None,
        };
        let (claim_id, fence) = match &record {
            FencedRecord::Claim(claim) => (Some(claim.claim_id()), claim.fence()),
            FencedRecord::Completion(completion) => {
                (Some(completion.claim_id()), completion.fence())
            }
            // A version-1 record has no claim id: its own sequence fences it.
            _ => (None, sequence),
        };
        let Some(expected_seq) = sequence.checked_add(1) else {
            let reason = SkipReason::StoreError(format!(
                "scan returned sequence {sequence}, the last one a stream can have; no expiry \
                 can follow it"
            ));
            self.skip(stream, Some(record.idempotency_key()), reason);
            return None;
        };
        Some(Expiry {
            stream: stream.to_owned(),
            record: ReleaseRecord::expired(
                record.idempotency_key(),
                claim_id,
                fence,
                self.now_millis,
            ),
            expected_seq,
            of_claim,
        })
    }

    /// Plans the expiries from a scan. Fails only on a scan the store
    /// answered wrongly (out of order, or outside the prefix).
    fn plan(&mut self, entries: Vec<ScannedEntry>) -> Result<Vec<Expiry>, DurabilityError> {
        let prefix = self.protocol.stream_prefix();
        let mut expiries = Vec::new();
        let mut index = 0;
        while index < entries.len() {
            let stream = entries[index].stream.clone();
            if !stream.starts_with(&prefix) {
                return Err(DurabilityError::StoreError(format!(
                    "scan for prefix {prefix:?} returned stream {stream:?}"
                )));
            }
            let mut end = index + 1;
            while end < entries.len() && entries[end].stream == stream {
                if entries[end].entry.sequence <= entries[end - 1].entry.sequence {
                    return Err(DurabilityError::StoreError(format!(
                        "scan returned stream {stream:?} out of sequence order"
                    )));
                }
                end += 1;
            }
            if end < entries.len() && entries[end].stream < stream {
                return Err(DurabilityError::StoreError(
                    "scan returned streams out of name order".into(),
                ));
            }
            self.report.scanned_streams += 1;
            if let Some(expiry) = self.judge(&stream, &entries[index..end]) {
                expiries.push(expiry);
            }
            index = end;
        }
        Ok(expiries)
    }

    fn start_expiring(&mut self, entries: Vec<ScannedEntry>) -> Phase {
        match self.plan(entries) {
            Ok(expiries) if expiries.is_empty() => Phase::Done(Ok(self.report.clone())),
            Ok(expiries) => Phase::Expiring { expiries, next: 0 },
            Err(error) => Phase::Done(Err(error)),
        }
    }

    /// The expiries planned from the flushed scan `read` whose judged head
    /// the scan after the flush (`now`) still shows at its sequence.
    fn verified(&mut self, read: Vec<ScannedEntry>, now: &[ScannedEntry]) -> Phase {
        fn entry<'a>(entries: &'a [ScannedEntry], stream: &str, sequence: u64) -> Option<&'a [u8]> {
            entries
                .iter()
                .find(|scanned| scanned.stream == stream && scanned.entry.sequence == sequence)
                .map(|scanned| scanned.entry.payload.as_slice())
        }
        let planned = match self.plan(read.clone()) {
            Ok(planned) => planned,
            Err(error) => return Phase::Done(Err(error)),
        };
        let mut expiries = Vec::with_capacity(planned.len());
        for expiry in planned {
            // The head judged (at `expected_seq - 1`) is still there; an
            // append since makes the expiry's append conflict, as before.
            let at = expiry.expected_seq.saturating_sub(1);
            if entry(&read, &expiry.stream, at).is_some()
                && entry(&read, &expiry.stream, at) == entry(now, &expiry.stream, at)
            {
                expiries.push(expiry);
            } else {
                let key = expiry.record.idempotency_key().to_owned();
                self.skip(&expiry.stream, Some(&key), SkipReason::Conflict);
            }
        }
        if expiries.is_empty() {
            Phase::Done(Ok(self.report.clone()))
        } else {
            Phase::Expiring { expiries, next: 0 }
        }
    }

    fn after(&mut self, expiries: Vec<Expiry>, next: usize) -> Phase {
        if next + 1 < expiries.len() {
            Phase::Expiring {
                expiries,
                next: next + 1,
            }
        } else if self.protocol.io().flush_appends()
            && self.report.expired_claims + self.report.expired_receipts > 0
        {
            Phase::Flushing
        } else {
            Phase::Done(Ok(self.report.clone()))
        }
    }
}

impl Operation for FencedSweepOp {
    type Output = FencedSweepReport;

    fn poll(&self) -> Step<FencedSweepReport> {
        match &self.phase {
            Phase::Scanning => Step::Request(StoreRequest::Scan {
                prefix: self.protocol.stream_prefix(),
            }),
            Phase::Verifying(_) => Step::Request(StoreRequest::Scan {
                prefix: self.protocol.stream_prefix(),
            }),
            Phase::Settling(_) | Phase::Flushing => Step::Request(StoreRequest::Flush),
            Phase::Expiring { expiries, next } => match expiries.get(*next) {
                Some(expiry) => Step::Request(StoreRequest::Append {
                    stream: expiry.stream.clone(),
                    payload: FencedRecord::Release(expiry.record.clone()).encode(),
                    expected_seq: expiry.expected_seq,
                }),
                None => Step::Done(Ok(self.report.clone())),
            },
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
            (Phase::Scanning, StoreReply::Scan(Ok(entries))) => {
                if self.protocol.io().flush_appends() && !entries.is_empty() {
                    Phase::Settling(entries)
                } else {
                    self.start_expiring(entries)
                }
            }
            (Phase::Scanning, StoreReply::Scan(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling(entries), StoreReply::Flush(Ok(()))) => Phase::Verifying(entries),
            (Phase::Verifying(read), StoreReply::Scan(Ok(now))) => self.verified(read, &now),
            (Phase::Verifying(_), StoreReply::Scan(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling(_), StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (Phase::Expiring { expiries, next }, StoreReply::Append(result)) => {
                debug_assert!(
                    next < expiries.len(),
                    "a sweep's expiry index stays in range"
                );
                let Some(expiry) = expiries.get(next).cloned() else {
                    self.phase = Phase::Done(Ok(self.report.clone()));
                    return;
                };
                let (stream, key) = (
                    expiry.stream.clone(),
                    expiry.record.idempotency_key().to_owned(),
                );
                match result {
                    Ok(sequence) if sequence == expiry.expected_seq => {
                        if expiry.of_claim {
                            self.report.expired_claims += 1;
                        } else {
                            self.report.expired_receipts += 1;
                        }
                    }
                    Ok(sequence) => {
                        let reason = SkipReason::StoreError(format!(
                            "store acknowledged sequence {sequence} for an append expected at {}",
                            expiry.expected_seq
                        ));
                        self.skip(&stream, Some(&key), reason);
                    }
                    Err(DurabilityError::SequenceConflict { .. }) => {
                        self.skip(&stream, Some(&key), SkipReason::Conflict);
                    }
                    Err(error) => {
                        self.skip(
                            &stream,
                            Some(&key),
                            SkipReason::StoreError(error.to_string()),
                        );
                    }
                }
                self.after(expiries, next)
            }
            (Phase::Flushing, StoreReply::Flush(Ok(()))) => Phase::Done(Ok(self.report.clone())),
            (Phase::Flushing, StoreReply::Flush(Err(error))) => Phase::Done(Err(error)),
            (Phase::Scanning | Phase::Verifying(_), reply) => {
                Phase::Done(Err(misfed(&reply, "a scan answer")))
            }
            (Phase::Expiring { .. }, reply) => Phase::Done(Err(misfed(&reply, "an append answer"))),
            (Phase::Settling(_) | Phase::Flushing, reply) => {
                Phase::Done(Err(misfed(&reply, "a flush answer")))
            }
        };
    }
}
