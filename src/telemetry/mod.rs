//! What the engine reports while it works: counters and histograms through
//! the [`metrics`] facade (the application installs a recorder or an
//! exporter; without one every report is a no-op) and one [`tracing`] span
//! per operation. `docs/metrics.md` lists every metric, its labels and its
//! meaning.
//!
//! Everything here watches an operation from outside, at the driver: the
//! store calls it makes and the answers it gets ([`Watch`]), and the result
//! it ends with ([`Outcome`]). The core's state machines know nothing of it.
//! A span's fields carry the key's stream name (namespace and hash), never
//! the raw key, unless the cache's options opt in.

mod family;

use std::time::Instant;

use family::{Dimension, Family};
use tracing::Span;
use tracing::field::Empty;

use crate::DurabilityError;
use crate::core::fenced::{Claim, ClaimToken, FencedSweepReport, KeyStatus, SkipReason};
use crate::core::{DedupDecision, DedupSweepReport, StoreReply, StoreRequest};

/// Operations whose answer the engine counts.
pub const OPERATIONS_TOTAL: &str = "atmostonce_operations_total";
/// An operation's duration, store calls and retries included, in seconds.
pub const OPERATION_SECONDS: &str = "atmostonce_operation_seconds";
/// One store call's duration, in seconds.
pub const STORE_CALL_SECONDS: &str = "atmostonce_store_call_seconds";
/// Store calls that failed with an error other than a lost race.
pub const STORE_ERRORS_TOTAL: &str = "atmostonce_store_errors_total";
/// Appends that lost their race (`SequenceConflict`).
pub const LOST_RACES_TOTAL: &str = "atmostonce_lost_races_total";
/// Appends to a stream the operation had already appended to.
pub const RETRIES_TOTAL: &str = "atmostonce_retries_total";
/// Appends answered with an indeterminate error, by what the operation's
/// next read of the stream showed.
pub const INDETERMINATE_APPENDS_TOTAL: &str = "atmostonce_indeterminate_appends_total";
/// Entries a sweep expired.
pub const EXPIRIES_TOTAL: &str = "atmostonce_expiries_total";
/// Scans a sweep made.
pub const SWEEP_PAGES_TOTAL: &str = "atmostonce_sweep_pages_total";
/// Keys a fenced sweep left alone.
pub const SWEEP_SKIPPED_TOTAL: &str = "atmostonce_sweep_skipped_total";

/// Which API an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `DedupCache` / `DedupSweeper`.
    Seed = 0,
    /// `FencedCache` / `FencedSweeper`.
    Fenced = 1,
}

/// The `api` label, its values in [`Api`]'s order.
const API: Dimension = ("api", &["seed", "fenced"]);

impl Api {
    fn name(self) -> &'static str {
        API.1[self as usize]
    }
}

/// Which operation a watch is watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Claim = 0,
    Lookup = 1,
    Complete = 2,
    Release = 3,
    Renew = 4,
    Sweep = 5,
}

/// The `operation` label, its values in [`OpKind`]'s order.
const OPERATION: Dimension = (
    "operation",
    &["claim", "lookup", "complete", "release", "renew", "sweep"],
);

impl OpKind {
    fn name(self) -> &'static str {
        OPERATION.1[self as usize]
    }
}

/// The `outcome` label of an operation: what it answered, or its error's
/// class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Claimed = 0,
    InFlight = 1,
    Completed = 2,
    Absent = 3,
    Ok = 4,
    Granted = 5,
    Renewed = 6,
    SequenceConflict = 7,
    DedupCollision = 8,
    EnvelopeError = 9,
    ConfigError = 10,
    LimitExceeded = 11,
    InvalidInput = 12,
    StoreError = 13,
    StaleClaim = 14,
    FingerprintMismatch = 15,
}

/// The `outcome` label, its values in [`Label`]'s order.
const OUTCOME: Dimension = (
    "outcome",
    &[
        "claimed",
        "in_flight",
        "completed",
        "absent",
        "ok",
        "granted",
        "renewed",
        "sequence_conflict",
        "dedup_collision",
        "envelope_error",
        "config_error",
        "limit_exceeded",
        "invalid_input",
        "store_error",
        "stale_claim",
        "fingerprint_mismatch",
    ],
);

impl Label {
    fn name(self) -> &'static str {
        OUTCOME.1[self as usize]
    }
}

/// The `call` label, its values in [`call_index`]'s order.
const CALL: Dimension = (
    "call",
    &[
        "read",
        "append",
        "scan",
        "flush",
        "read_head",
        "scan_heads",
        "compact",
    ],
);
/// The `resolution` label of an indeterminate append.
const RESOLUTION: Dimension = ("resolution", &["landed", "lost", "absent", "unresolved"]);
const LANDED: usize = 0;
const LOST: usize = 1;
const ABSENT: usize = 2;
const UNRESOLVED: usize = 3;
/// The `kind` label of an expiry.
const EXPIRY: Dimension = ("kind", &["entry", "claim", "receipt"]);
/// The `reason` label of a key a fenced sweep skipped.
const REASON: Dimension = (
    "reason",
    &["conflict", "corrupt", "collision", "store_error"],
);

static OPERATIONS: Family = Family::new(OPERATIONS_TOTAL, &[API, OPERATION, OUTCOME]);
static OPERATION_TIMES: Family = Family::new(OPERATION_SECONDS, &[API, OPERATION]);
static STORE_CALL_TIMES: Family = Family::new(STORE_CALL_SECONDS, &[CALL]);
static STORE_ERRORS: Family = Family::new(STORE_ERRORS_TOTAL, &[CALL]);
static LOST_RACES: Family = Family::new(LOST_RACES_TOTAL, &[API, OPERATION]);
static RETRIES: Family = Family::new(RETRIES_TOTAL, &[API, OPERATION]);
static INDETERMINATE: Family =
    Family::new(INDETERMINATE_APPENDS_TOTAL, &[API, OPERATION, RESOLUTION]);
static EXPIRIES: Family = Family::new(EXPIRIES_TOTAL, &[API, EXPIRY]);
static SWEEP_PAGES: Family = Family::new(SWEEP_PAGES_TOTAL, &[API]);
static SWEEP_SKIPPED: Family = Family::new(SWEEP_SKIPPED_TOTAL, &[API, REASON]);

/// What an operation ended with, as a label, and what else its answer
/// reports (a sweep's expiries and skipped keys).
pub(crate) trait Outcome {
    /// The `outcome` label of a successful answer.
    fn outcome(&self) -> Label;

    /// Reports what the answer counts beyond its outcome.
    fn report(&self, _api: Api) {}
}

impl Outcome for DedupDecision {
    fn outcome(&self) -> Label {
        match self {
            DedupDecision::Claimed => Label::Claimed,
            DedupDecision::InFlight => Label::InFlight,
            DedupDecision::Completed(_) => Label::Completed,
        }
    }
}

impl Outcome for Option<DedupDecision> {
    fn outcome(&self) -> Label {
        self.as_ref().map_or(Label::Absent, Outcome::outcome)
    }
}

impl Outcome for () {
    fn outcome(&self) -> Label {
        Label::Ok
    }
}

impl Outcome for Claim {
    fn outcome(&self) -> Label {
        match self {
            Claim::Granted(_) => Label::Granted,
            Claim::InFlight { .. } => Label::InFlight,
            Claim::Completed(_) => Label::Completed,
        }
    }
}

impl Outcome for Option<KeyStatus> {
    fn outcome(&self) -> Label {
        match self {
            None => Label::Absent,
            Some(KeyStatus::InFlight { .. }) => Label::InFlight,
            Some(KeyStatus::Completed(_)) => Label::Completed,
        }
    }
}

impl Outcome for ClaimToken {
    fn outcome(&self) -> Label {
        Label::Renewed
    }
}

/// Index of the `entry`, `claim` and `receipt` expiry kinds.
const ENTRY: usize = 0;
const CLAIM: usize = 1;
const RECEIPT: usize = 2;

fn count_expiries(api: Api, kind: usize, count: usize) {
    if count > 0 {
        EXPIRIES
            .counter(&[api as usize, kind])
            .increment(count as u64);
    }
}

impl Outcome for DedupSweepReport {
    fn outcome(&self) -> Label {
        Label::Ok
    }

    fn report(&self, api: Api) {
        count_expiries(api, ENTRY, self.expired_entries);
    }
}

impl Outcome for FencedSweepReport {
    fn outcome(&self) -> Label {
        Label::Ok
    }

    fn report(&self, api: Api) {
        count_expiries(api, CLAIM, self.expired_claims);
        count_expiries(api, RECEIPT, self.expired_receipts);
        for skipped in &self.skipped {
            let reason = match skipped.reason {
                SkipReason::Conflict => 0,
                SkipReason::Corrupt { .. } => 1,
                SkipReason::Collision => 2,
                SkipReason::StoreError(_) => 3,
            };
            SWEEP_SKIPPED.counter(&[api as usize, reason]).increment(1);
        }
    }
}

/// The `outcome` label of an error: its class.
fn error_outcome(error: &DurabilityError) -> Label {
    match error {
        DurabilityError::SequenceConflict { .. } => Label::SequenceConflict,
        DurabilityError::DedupCollision { .. } => Label::DedupCollision,
        DurabilityError::EnvelopeError { .. } => Label::EnvelopeError,
        DurabilityError::ConfigError(_) => Label::ConfigError,
        DurabilityError::LimitExceeded { .. } => Label::LimitExceeded,
        DurabilityError::InvalidInput(_) => Label::InvalidInput,
        DurabilityError::StoreError(_) => Label::StoreError,
        DurabilityError::StaleClaim { .. } => Label::StaleClaim,
        DurabilityError::FingerprintMismatch { .. } => Label::FingerprintMismatch,
    }
}

/// The index of `request`'s store call in the `call` label.
fn call_index(request: &StoreRequest) -> usize {
    match request {
        StoreRequest::Read { .. } => 0,
        StoreRequest::Append { .. } => 1,
        StoreRequest::Scan { .. } => 2,
        StoreRequest::Flush => 3,
        StoreRequest::ReadHead { .. } => 4,
        StoreRequest::ScanHeads { .. } => 5,
        StoreRequest::Compact { .. } => 6,
    }
}

/// An append answered with an indeterminate error, until a read of its
/// stream shows what became of it.
struct Uncertain {
    stream: String,
    sequence: u64,
    payload: Vec<u8>,
}

/// What a read of the stream showed at an uncertain append's sequence.
fn resolution(uncertain: &Uncertain, request: &StoreRequest, reply: &StoreReply) -> Option<usize> {
    match (request, reply) {
        (StoreRequest::Read { stream, limit, .. }, StoreReply::Read(Ok(entries)))
            if *stream == uncertain.stream =>
        {
            match entries
                .iter()
                .find(|entry| entry.sequence == uncertain.sequence)
            {
                Some(entry) => Some(landed_or_lost(uncertain, &entry.payload)),
                // A short batch ends the stream: nothing is at the sequence.
                None if entries.len() < *limit
                    && entries
                        .iter()
                        .all(|entry| entry.sequence < uncertain.sequence) =>
                {
                    Some(ABSENT)
                }
                None => None,
            }
        }
        (StoreRequest::ReadHead { stream }, StoreReply::Head(Ok(head)))
            if *stream == uncertain.stream =>
        {
            match &head.last {
                Some(last) if last.sequence == uncertain.sequence => {
                    Some(landed_or_lost(uncertain, &last.payload))
                }
                // The stream ends before the sequence.
                _ if head.length <= uncertain.sequence => Some(ABSENT),
                // Past it: a read of that one record tells.
                _ => None,
            }
        }
        _ => None,
    }
}

fn landed_or_lost(uncertain: &Uncertain, payload: &[u8]) -> usize {
    if payload == uncertain.payload.as_slice() {
        LANDED
    } else {
        LOST
    }
}

/// Watches one operation: its span, its store calls, its answer.
pub(crate) struct Watch {
    api: Api,
    operation: OpKind,
    span: Span,
    started: Instant,
    call_started: Option<Instant>,
    /// Whether a store call was answered yet.
    answered: bool,
    appended_streams: Vec<String>,
    uncertain: Vec<Uncertain>,
}

impl Watch {
    /// A watch of `operation` in `namespace`, on the key whose stream is
    /// `stream()` (called only when the span is recorded), naming the raw
    /// `key` in the span only when `raw_key` is set.
    pub(crate) fn new(
        api: Api,
        operation: OpKind,
        namespace: &str,
        key: Option<&str>,
        raw_key: bool,
        stream: impl FnOnce() -> String,
    ) -> Watch {
        let span = tracing::debug_span!(
            target: "atmostonce",
            "atmostonce.operation",
            api = api.name(),
            operation = operation.name(),
            namespace,
            stream = Empty,
            key = Empty,
            outcome = Empty,
        );
        if !span.is_disabled() {
            span.record("stream", stream().as_str());
            if let (true, Some(key)) = (raw_key, key) {
                span.record("key", key);
            }
        }
        Watch {
            api,
            operation,
            span,
            started: Instant::now(),
            call_started: None,
            answered: false,
            appended_streams: Vec::new(),
            uncertain: Vec::new(),
        }
    }

    /// The indices of the `api` and `operation` labels.
    fn labels(&self) -> [usize; 2] {
        [self.api as usize, self.operation as usize]
    }

    /// The operation's span.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Before `request` is sent to the store.
    pub(crate) fn calling(&mut self, request: &StoreRequest) {
        self.call_started = Some(Instant::now());
        if let StoreRequest::Append { stream, .. } = request {
            if self.appended_streams.contains(stream) {
                RETRIES.counter(&self.labels()).increment(1);
            } else {
                self.appended_streams.push(stream.clone());
            }
        }
        if matches!(
            request,
            StoreRequest::Scan { .. } | StoreRequest::ScanHeads { .. }
        ) && self.operation == OpKind::Sweep
        {
            SWEEP_PAGES.counter(&[self.api as usize]).increment(1);
        }
    }

    /// After the store answered `request` with `reply`.
    pub(crate) fn answered(&mut self, request: &StoreRequest, reply: &StoreReply) {
        let call = call_index(request);
        if let Some(started) = self.call_started.take() {
            STORE_CALL_TIMES
                .histogram(&[call])
                .record(started.elapsed().as_secs_f64());
        }
        let [api, operation] = self.labels();
        let first_call = !std::mem::replace(&mut self.answered, true);
        self.uncertain.retain(|uncertain| match resolution(uncertain, request, reply) {
            Some(resolution) => {
                tracing::debug!(target: "atmostonce", sequence = uncertain.sequence, resolution = RESOLUTION.1[resolution], "an indeterminate append resolved");
                INDETERMINATE.counter(&[api, operation, resolution]).increment(1);
                false
            }
            None => true,
        });
        let error = match reply {
            StoreReply::Read(Err(error))
            | StoreReply::Scan(Err(error))
            | StoreReply::Flush(Err(error))
            | StoreReply::Head(Err(error))
            | StoreReply::Heads(Err(error))
            | StoreReply::Compact(Err(error))
            | StoreReply::Append(Err(error)) => error,
            _ => return,
        };
        if let (DurabilityError::SequenceConflict { .. }, StoreRequest::Append { stream, .. }) =
            (error, request)
            && first_call
        {
            // An append before any read is the operation's guess of the
            // head (`core::fenced`'s first append): a conflict says the key
            // is not new, not that a race was lost.
            tracing::debug!(target: "atmostonce", "the first append's guess of the head missed");
            self.appended_streams.retain(|appended| appended != stream);
            return;
        }
        if let (
            DurabilityError::SequenceConflict { expected, actual },
            StoreRequest::Append { .. },
        ) = (error, request)
        {
            tracing::debug!(target: "atmostonce", expected, actual, "an append lost its race");
            LOST_RACES.counter(&[api, operation]).increment(1);
            return;
        }
        tracing::debug!(target: "atmostonce", call = CALL.1[call], %error, "a store call failed");
        STORE_ERRORS.counter(&[call]).increment(1);
        if let StoreRequest::Append {
            stream,
            payload,
            expected_seq,
        } = request
        {
            self.uncertain.push(Uncertain {
                stream: stream.clone(),
                sequence: *expected_seq,
                payload: payload.clone(),
            });
        }
    }

    /// The operation ended with `result`.
    pub(crate) fn finish<T: Outcome>(self, result: &Result<T, DurabilityError>) {
        let [api, operation] = self.labels();
        let outcome = match result {
            Ok(answer) => {
                answer.report(self.api);
                answer.outcome()
            }
            Err(error) => error_outcome(error),
        };
        self.span.record("outcome", outcome.name());
        OPERATIONS
            .counter(&[api, operation, outcome as usize])
            .increment(1);
        OPERATION_TIMES
            .histogram(&[api, operation])
            .record(self.started.elapsed().as_secs_f64());
        if !self.uncertain.is_empty() {
            INDETERMINATE
                .counter(&[api, operation, UNRESOLVED])
                .increment(self.uncertain.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of an enum names the label its index picks.
    #[test]
    fn enum_indices_pick_their_own_label_values() {
        assert_eq!(Api::Seed.name(), "seed");
        assert_eq!(Api::Fenced.name(), "fenced");
        let operations = [
            (OpKind::Claim, "claim"),
            (OpKind::Lookup, "lookup"),
            (OpKind::Complete, "complete"),
            (OpKind::Release, "release"),
            (OpKind::Renew, "renew"),
            (OpKind::Sweep, "sweep"),
        ];
        for (operation, name) in operations {
            assert_eq!(operation.name(), name);
        }
        let errors = [
            (DurabilityError::StoreError("x".into()), "store_error"),
            (DurabilityError::InvalidInput("x".into()), "invalid_input"),
            (DurabilityError::ConfigError("x".into()), "config_error"),
            (
                DurabilityError::SequenceConflict {
                    expected: 1,
                    actual: 2,
                },
                "sequence_conflict",
            ),
        ];
        for (error, name) in errors {
            assert_eq!(error_outcome(&error).name(), name);
        }
        assert_eq!(Label::FingerprintMismatch.name(), "fingerprint_mismatch");
        assert_eq!(Label::Claimed.name(), "claimed");
        let calls = [
            (StoreRequest::Flush, "flush"),
            (StoreRequest::ReadHead { stream: "s".into() }, "read_head"),
            (
                StoreRequest::Compact {
                    stream: "s".into(),
                    below_seq: 1,
                },
                "compact",
            ),
        ];
        for (request, name) in calls {
            assert_eq!(CALL.1[call_index(&request)], name);
        }
    }

    /// The largest index of every dimension has a key: no report falls
    /// out of its family's table.
    #[test]
    fn every_family_has_a_key_for_its_last_values() {
        let last_op = OpKind::Sweep as usize;
        let last_outcome = Label::FingerprintMismatch as usize;
        assert!(OPERATIONS.key(&[1, last_op, last_outcome]).is_some());
        assert!(OPERATION_TIMES.key(&[1, last_op]).is_some());
        assert!(STORE_CALL_TIMES.key(&[CALL.1.len() - 1]).is_some());
        assert!(INDETERMINATE.key(&[1, last_op, UNRESOLVED]).is_some());
        assert!(EXPIRIES.key(&[1, RECEIPT]).is_some());
        assert!(SWEEP_SKIPPED.key(&[1, REASON.1.len() - 1]).is_some());
        assert!(OPERATIONS.key(&[2, 0, 0]).is_none());
    }
}
