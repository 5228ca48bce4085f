//! [`FencedSweepOp`]: one pass of the fenced sweeper as a state machine.
//!
//! The sweep pages over the namespace's stream heads (`scan_heads`, at most
//! [`SWEEP_PAGE_STREAMS`](crate::limits::SWEEP_PAGE_STREAMS) per page, a cursor between pages), never over
//! history: its cost grows with the number of keys, not of operations.
//! Per page it judges every head, flushes and re-reads the heads it means
//! to write to, appends the expiries, flushes them, and compacts the
//! history below heads (see [`policy`] and `docs/spec.md`, "Sweep").

mod policy;

use super::{FencedState, Times};
use crate::DurabilityError;
use crate::codec::{EnvelopeError, FencedRecord, ReleaseRecord};
use crate::core::{Operation, Protocol, Step, StoreReply, StoreRequest, misfed};
use crate::store::{ScannedHead, StreamHead};

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
    /// Pages of heads read (`scan_heads` calls).
    pub pages: usize,
    /// Compactions made (`compact` calls answered `Ok`).
    pub compactions: usize,
    /// Records those compactions removed.
    pub compacted_records: u64,
    /// Compactions that failed with an indeterminate error: the history
    /// stays (it decides nothing), and a later sweep compacts it.
    pub failed_compactions: usize,
}

/// One expiry the sweep has decided to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Expiry {
    record: ReleaseRecord,
    expected_seq: u64,
    of_claim: bool,
}

/// A stream of the page the sweep writes to: expires, compacts, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Candidate {
    stream: String,
    /// The head judged, kept to check after the flush that it is still the
    /// head (see [`Phase::Verifying`]).
    head: StoredHead,
    expiry: Option<Expiry>,
    /// Compact below this sequence (for an expiry: once it has landed).
    compact_below: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StoredHead {
    sequence: u64,
    payload: Vec<u8>,
}

/// The writes planned for one page, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Page {
    candidates: Vec<Candidate>,
    /// The cursor of the next page; `None` after the last page.
    next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    /// Reading the page of heads after the cursor.
    Paging {
        after: Option<String>,
    },
    /// Flushing the page's heads before deciding on them.
    Settling(Page),
    /// Re-reading the head of each candidate after that flush, one
    /// `read_head` per candidate: a store crash before the flush may have
    /// dropped the head read and the stream grown back to the same length
    /// with other records, so a candidate is kept only where its head is
    /// still the one judged (then the flush made it durable); the others are
    /// skipped as contended. A re-read per candidate rather than the page
    /// again: it costs nothing on a page with nothing to do (most pages of
    /// a namespace of live keys), a call per key the sweep writes to anyway
    /// otherwise, it holds one head beside the page instead of a second page,
    /// and streams created meanwhile cannot push a candidate out of a
    /// re-read page.
    Verifying {
        page: Page,
        next: usize,
    },
    /// Appending the expiry of candidate `next`.
    Expiring {
        page: Page,
        next: usize,
    },
    /// Flushing the page's expiries before compacting below them: a
    /// compaction below an expiry a crash then drops would leave the stream
    /// shorter than a fence already handed out.
    Flushing(Page),
    /// Compacting candidate `next`.
    Compacting {
        page: Page,
        next: usize,
    },
    Done(Result<FencedSweepReport, DurabilityError>),
}

/// One sweep: page over the namespace's stream heads and, for every stream
/// whose last record is a claim past its lease or a receipt past its TTL
/// (plus the clock-skew grace), append a release with reason `0x01` at the
/// head it read; compact the history below heads as [`policy`] says. A
/// contended, corrupt or collided key is listed in the report and skipped;
/// only a failed page read or a failed flush ends the sweep with an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedSweepOp {
    protocol: Protocol,
    times: Times,
    /// Streams per page (`scan_heads`' limit).
    page_streams: usize,
    now_millis: u64,
    previous_sweep_millis: Option<u64>,
    report: FencedSweepReport,
    phase: Phase,
}

impl FencedSweepOp {
    pub(crate) fn new(
        protocol: Protocol,
        times: Times,
        page_streams: usize,
        now_millis: u64,
        previous_sweep_millis: Option<u64>,
    ) -> FencedSweepOp {
        FencedSweepOp {
            protocol,
            times,
            page_streams,
            now_millis,
            previous_sweep_millis,
            report: FencedSweepReport::default(),
            phase: Phase::Paging { after: None },
        }
    }

    /// The sweep's clock reading.
    #[must_use]
    pub fn now_millis(&self) -> u64 {
        self.now_millis
    }

    /// The stream heads the machine holds now: never more than one page
    /// (at most [`SWEEP_PAGE_STREAMS`](crate::limits::SWEEP_PAGE_STREAMS)).
    #[must_use]
    pub fn heads_held(&self) -> usize {
        match &self.phase {
            Phase::Settling(page)
            | Phase::Flushing(page)
            | Phase::Verifying { page, .. }
            | Phase::Expiring { page, .. }
            | Phase::Compacting { page, .. } => page.candidates.len(),
            Phase::Paging { .. } | Phase::Done(_) => 0,
        }
    }

    fn skip(&mut self, stream: &str, key: Option<&str>, reason: SkipReason) {
        self.report.skipped.push(SkippedKey {
            stream: stream.to_owned(),
            key: key.map(str::to_owned),
            reason,
        });
    }

    /// Judges one head: what the sweep writes to its stream, if anything.
    fn judge(&mut self, head: ScannedHead) -> Option<Candidate> {
        let ScannedHead { stream, last, .. } = head;
        let sequence = last.sequence;
        let record = match FencedRecord::decode(&last.payload) {
            Ok(record) => record,
            Err(error) => {
                self.skip(&stream, None, SkipReason::Corrupt { sequence, error });
                return None;
            }
        };
        let key = record.idempotency_key();
        if self.protocol.stream_key_for(key) != stream {
            self.skip(&stream, Some(key), SkipReason::Collision);
            return None;
        }
        let state = FencedState::at(Some(&record), self.now_millis, self.times);
        let of_claim = match state {
            FencedState::ExpiredClaim => true,
            FencedState::ExpiredReceipt => false,
            FencedState::Held { .. } | FencedState::Completed { .. } | FencedState::Absent => {
                if !matches!(state, FencedState::Absent) {
                    self.report.retained += 1;
                }
                let below = policy::compact_below(
                    sequence,
                    &record,
                    self.now_millis,
                    self.times,
                    self.previous_sweep_millis,
                )?;
                debug_assert!(below <= sequence, "a compaction never reaches the head");
                return Some(Candidate {
                    stream,
                    head: StoredHead {
                        sequence,
                        payload: last.payload,
                    },
                    expiry: None,
                    compact_below: Some(below),
                });
            }
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
            self.skip(&stream, Some(record.idempotency_key()), reason);
            return None;
        };
        let record = ReleaseRecord::expired(key, claim_id, fence, self.now_millis);
        Some(Candidate {
            stream,
            head: StoredHead {
                sequence,
                payload: last.payload,
            },
            expiry: Some(Expiry {
                record,
                expected_seq,
                of_claim,
            }),
            compact_below: None,
        })
    }

    /// Checks a page the store answered and plans its writes. Fails only on
    /// a page the store answered wrongly (too long, out of order, outside
    /// the prefix or not after the cursor).
    fn plan(
        &mut self,
        after: Option<&str>,
        heads: Vec<ScannedHead>,
    ) -> Result<Page, DurabilityError> {
        let prefix = self.protocol.stream_prefix();
        if heads.len() > self.page_streams {
            return Err(DurabilityError::StoreError(format!(
                "scan_heads returned {} heads for a page of at most {}",
                heads.len(),
                self.page_streams
            )));
        }
        let mut previous = after;
        for head in &heads {
            if !head.stream.starts_with(&prefix) {
                return Err(DurabilityError::StoreError(format!(
                    "scan_heads for prefix {prefix:?} returned stream {:?}",
                    head.stream
                )));
            }
            if previous.is_some_and(|previous| head.stream.as_str() <= previous) {
                return Err(DurabilityError::StoreError(format!(
                    "scan_heads returned stream {:?} after {previous:?}: out of name order",
                    head.stream
                )));
            }
            previous = Some(&head.stream);
        }
        let next = (heads.len() == self.page_streams)
            .then(|| heads.last().map(|head| head.stream.clone()))
            .flatten();
        self.report.pages += 1;
        self.report.scanned_streams += heads.len();
        let candidates = heads
            .into_iter()
            .filter_map(|head| self.judge(head))
            .collect();
        Ok(Page { candidates, next })
    }

    /// After a page's heads were read (and, where needed, flushed and
    /// re-read): its expiries, else its compactions, else the next page.
    fn write(&mut self, page: Page) -> Phase {
        match page.candidates.iter().position(|c| c.expiry.is_some()) {
            Some(next) => Phase::Expiring { page, next },
            None => self.compact(page, 0),
        }
    }

    /// The first compaction of the page from candidate `from` on.
    fn compact(&mut self, page: Page, from: usize) -> Phase {
        let found = page
            .candidates
            .iter()
            .skip(from)
            .position(|c| c.compact_below.is_some());
        match found {
            Some(offset) => Phase::Compacting {
                page,
                next: from + offset,
            },
            None => self.turn(page.next),
        }
    }

    /// The next page, or the end of the sweep.
    fn turn(&mut self, next: Option<String>) -> Phase {
        match next {
            Some(after) => Phase::Paging { after: Some(after) },
            None => Phase::Done(Ok(self.report.clone())),
        }
    }

    /// Candidate `next`'s head re-read after the flush is `head`.
    fn verified(&mut self, mut page: Page, next: usize, head: &StreamHead) -> Phase {
        if let Some(candidate) = page.candidates.get(next) {
            let same = head.last.as_ref().is_some_and(|last| {
                last.sequence == candidate.head.sequence && last.payload == candidate.head.payload
            });
            if same {
                let next = next + 1;
                return if next < page.candidates.len() {
                    Phase::Verifying { page, next }
                } else {
                    self.write(page)
                };
            }
            // The head moved on (or was lost): leave the key to the next
            // sweep. A compaction alone is no skip: nothing was decided.
            let candidate = page.candidates.remove(next);
            if let Some(expiry) = candidate.expiry {
                let key = expiry.record.idempotency_key().to_owned();
                self.skip(&candidate.stream, Some(&key), SkipReason::Conflict);
            }
        }
        if next < page.candidates.len() {
            Phase::Verifying { page, next }
        } else {
            self.write(page)
        }
    }

    /// The expiry of candidate `next` was answered with `result`.
    fn expired(
        &mut self,
        mut page: Page,
        next: usize,
        result: Result<u64, DurabilityError>,
    ) -> Phase {
        let Some(candidate) = page.candidates.get_mut(next) else {
            return Phase::Done(Err(DurabilityError::StoreError(
                "sweep: an expiry answered for a key the page does not hold".into(),
            )));
        };
        let Some(expiry) = candidate.expiry.clone() else {
            return Phase::Done(Err(DurabilityError::StoreError(
                "sweep: an expiry answered for a key with none planned".into(),
            )));
        };
        let stream = candidate.stream.clone();
        let key = expiry.record.idempotency_key().to_owned();
        match result {
            Ok(sequence) if sequence == expiry.expected_seq => {
                // Everything below the expiry goes, once it is durable.
                candidate.compact_below = Some(expiry.expected_seq);
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
                let reason = SkipReason::StoreError(error.to_string());
                self.skip(&stream, Some(&key), reason);
            }
        }
        let later = page
            .candidates
            .iter()
            .skip(next + 1)
            .position(|c| c.expiry.is_some());
        match later {
            Some(offset) => Phase::Expiring {
                page,
                next: next + 1 + offset,
            },
            None if self.protocol.io().flush_appends()
                && page
                    .candidates
                    .iter()
                    .any(|c| c.expiry.is_some() && c.compact_below.is_some()) =>
            {
                Phase::Flushing(page)
            }
            None => self.compact(page, 0),
        }
    }

    fn compacted(
        &mut self,
        page: Page,
        next: usize,
        result: Result<u64, DurabilityError>,
    ) -> Phase {
        match result {
            Ok(removed) => {
                self.report.compactions += 1;
                self.report.compacted_records =
                    self.report.compacted_records.saturating_add(removed);
            }
            // Compaction decides nothing: a failed one leaves history that
            // a later sweep removes.
            Err(_) => self.report.failed_compactions += 1,
        }
        self.compact(page, next + 1)
    }
}

impl Operation for FencedSweepOp {
    type Output = FencedSweepReport;

    fn poll(&self) -> Step<FencedSweepReport> {
        let candidate = |page: &Page, next: usize| page.candidates.get(next).cloned();
        match &self.phase {
            Phase::Paging { after } => Step::Request(StoreRequest::ScanHeads {
                prefix: self.protocol.stream_prefix(),
                after: after.clone(),
                limit: self.page_streams,
            }),
            Phase::Settling(_) | Phase::Flushing(_) => Step::Request(StoreRequest::Flush),
            Phase::Verifying { page, next } => match candidate(page, *next) {
                Some(c) => Step::Request(StoreRequest::ReadHead { stream: c.stream }),
                None => Step::Done(Ok(self.report.clone())),
            },
            Phase::Expiring { page, next } => {
                match candidate(page, *next).and_then(|c| Some((c.stream, c.expiry?))) {
                    Some((stream, expiry)) => Step::Request(StoreRequest::Append {
                        stream,
                        payload: FencedRecord::Release(expiry.record).encode(),
                        expected_seq: expiry.expected_seq,
                    }),
                    None => Step::Done(Ok(self.report.clone())),
                }
            }
            Phase::Compacting { page, next } => {
                match candidate(page, *next).and_then(|c| Some((c.stream, c.compact_below?))) {
                    Some((stream, below_seq)) => {
                        Step::Request(StoreRequest::Compact { stream, below_seq })
                    }
                    None => Step::Done(Ok(self.report.clone())),
                }
            }
            Phase::Done(result) => Step::Done(result.clone()),
        }
    }

    /// Without building the next request.
    fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn feed(&mut self, reply: StoreReply) {
        let phase = std::mem::replace(&mut self.phase, Phase::Paging { after: None });
        self.phase = match (phase, reply) {
            (Phase::Done(result), _) => Phase::Done(result),
            (Phase::Paging { after }, StoreReply::Heads(Ok(heads))) => {
                match self.plan(after.as_deref(), heads) {
                    Err(error) => Phase::Done(Err(error)),
                    Ok(page) if page.candidates.is_empty() => self.turn(page.next),
                    Ok(page) if self.protocol.io().flush_appends() => Phase::Settling(page),
                    Ok(page) => self.write(page),
                }
            }
            (Phase::Paging { .. }, StoreReply::Heads(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling(page), StoreReply::Flush(Ok(()))) => {
                Phase::Verifying { page, next: 0 }
            }
            (Phase::Verifying { page, next }, StoreReply::Head(Ok(head))) => {
                self.verified(page, next, &head)
            }
            (Phase::Verifying { .. }, StoreReply::Head(Err(error))) => Phase::Done(Err(error)),
            (Phase::Settling(_) | Phase::Flushing(_), StoreReply::Flush(Err(error))) => {
                Phase::Done(Err(error))
            }
            (Phase::Expiring { page, next }, StoreReply::Append(result)) => {
                self.expired(page, next, result)
            }
            (Phase::Flushing(page), StoreReply::Flush(Ok(()))) => self.compact(page, 0),
            (Phase::Compacting { page, next }, StoreReply::Compact(result)) => {
                self.compacted(page, next, result)
            }
            (Phase::Paging { .. }, reply) => Phase::Done(Err(misfed(&reply, "a page of heads"))),
            (Phase::Verifying { .. }, reply) => Phase::Done(Err(misfed(&reply, "a head"))),
            (Phase::Expiring { .. }, reply) => Phase::Done(Err(misfed(&reply, "an append answer"))),
            (Phase::Compacting { .. }, reply) => {
                Phase::Done(Err(misfed(&reply, "a compaction answer")))
            }
            (Phase::Settling(_) | Phase::Flushing(_), reply) => {
                Phase::Done(Err(misfed(&reply, "a flush answer")))
            }
        };
    }
}
