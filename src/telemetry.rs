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

use std::time::Instant;

use metrics::{counter, histogram};
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
    Seed,
    /// `FencedCache` / `FencedSweeper`.
    Fenced,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Seed => "seed",
            Api::Fenced => "fenced",
        }
    }
}

/// Which operation a watch is watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Claim,
    Lookup,
    Complete,
    Release,
    Renew,
    Sweep,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Claim => "claim",
            OpKind::Lookup => "lookup",
            OpKind::Complete => "complete",
            OpKind::Release => "release",
            OpKind::Renew => "renew",
            OpKind::Sweep => "sweep",
        }
    }
}

/// What an operation ended with, as a label, and what else its answer
/// reports (a sweep's expiries and skipped keys).
pub(crate) trait Outcome {
    /// The `outcome` label of a successful answer.
    fn outcome(&self) -> &'static str;

    /// Reports what the answer counts beyond its outcome.
    fn report(&self, _api: Api) {}
}

impl Outcome for DedupDecision {
    fn outcome(&self) -> &'static str {
        match self {
            DedupDecision::Claimed => "claimed",
            DedupDecision::InFlight => "in_flight",
            DedupDecision::Completed(_) => "completed",
        }
    }
}

impl Outcome for Option<DedupDecision> {
    fn outcome(&self) -> &'static str {
        self.as_ref().map_or("absent", Outcome::outcome)
    }
}

impl Outcome for () {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for Claim {
    fn outcome(&self) -> &'static str {
        match self {
            Claim::Granted(_) => "granted",
            Claim::InFlight { .. } => "in_flight",
            Claim::Completed(_) => "completed",
        }
    }
}

impl Outcome for Option<KeyStatus> {
    fn outcome(&self) -> &'static str {
        match self {
            None => "absent",
            Some(KeyStatus::InFlight { .. }) => "in_flight",
            Some(KeyStatus::Completed(_)) => "completed",
        }
    }
}

impl Outcome for ClaimToken {
    fn outcome(&self) -> &'static str {
        "renewed"
    }
}

fn count_expiries(api: Api, kind: &'static str, count: usize) {
    if count > 0 {
        counter!(EXPIRIES_TOTAL, "api" => api.name(), "kind" => kind).increment(count as u64);
    }
}

impl Outcome for DedupSweepReport {
    fn outcome(&self) -> &'static str {
        "ok"
    }

    fn report(&self, api: Api) {
        count_expiries(api, "entry", self.expired_entries);
    }
}

impl Outcome for FencedSweepReport {
    fn outcome(&self) -> &'static str {
        "ok"
    }

    fn report(&self, api: Api) {
        count_expiries(api, "claim", self.expired_claims);
        count_expiries(api, "receipt", self.expired_receipts);
        for skipped in &self.skipped {
            let reason = match skipped.reason {
                SkipReason::Conflict => "conflict",
                SkipReason::Corrupt { .. } => "corrupt",
                SkipReason::Collision => "collision",
                SkipReason::StoreError(_) => "store_error",
            };
            counter!(SWEEP_SKIPPED_TOTAL, "api" => api.name(), "reason" => reason).increment(1);
        }
    }
}

/// The `outcome` label of an error: its class.
fn error_outcome(error: &DurabilityError) -> &'static str {
    match error {
        DurabilityError::SequenceConflict { .. } => "sequence_conflict",
        DurabilityError::DedupCollision { .. } => "dedup_collision",
        DurabilityError::EnvelopeError { .. } => "envelope_error",
        DurabilityError::ConfigError(_) => "config_error",
        DurabilityError::LimitExceeded { .. } => "limit_exceeded",
        DurabilityError::InvalidInput(_) => "invalid_input",
        DurabilityError::StoreError(_) => "store_error",
        DurabilityError::StaleClaim { .. } => "stale_claim",
        DurabilityError::FingerprintMismatch { .. } => "fingerprint_mismatch",
    }
}

fn call_name(request: &StoreRequest) -> &'static str {
    match request {
        StoreRequest::Read { .. } => "read",
        StoreRequest::Append { .. } => "append",
        StoreRequest::Scan { .. } => "scan",
        StoreRequest::Flush => "flush",
        StoreRequest::ReadHead { .. } => "read_head",
        StoreRequest::ScanHeads { .. } => "scan_heads",
        StoreRequest::Compact { .. } => "compact",
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
fn resolution(
    uncertain: &Uncertain,
    request: &StoreRequest,
    reply: &StoreReply,
) -> Option<&'static str> {
    let (StoreRequest::Read { stream, limit, .. }, StoreReply::Read(Ok(entries))) =
        (request, reply)
    else {
        return None;
    };
    if *stream != uncertain.stream {
        return None;
    }
    match entries
        .iter()
        .find(|entry| entry.sequence == uncertain.sequence)
    {
        Some(entry) if entry.payload == uncertain.payload => Some("landed"),
        Some(_) => Some("lost"),
        // A short batch ends the stream: nothing is at the sequence.
        None if entries.len() < *limit
            && entries
                .iter()
                .all(|entry| entry.sequence < uncertain.sequence) =>
        {
            Some("absent")
        }
        None => None,
    }
}

/// Watches one operation: its span, its store calls, its answer.
pub(crate) struct Watch {
    api: Api,
    operation: OpKind,
    span: Span,
    started: Instant,
    call_started: Option<Instant>,
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
            appended_streams: Vec::new(),
            uncertain: Vec::new(),
        }
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
                counter!(RETRIES_TOTAL, "api" => self.api.name(), "operation" => self.operation.name())
                    .increment(1);
            } else {
                self.appended_streams.push(stream.clone());
            }
        }
        if matches!(request, StoreRequest::Scan { .. }) && self.operation == OpKind::Sweep {
            counter!(SWEEP_PAGES_TOTAL, "api" => self.api.name()).increment(1);
        }
    }

    /// After the store answered `request` with `reply`.
    pub(crate) fn answered(&mut self, request: &StoreRequest, reply: &StoreReply) {
        let call = call_name(request);
        if let Some(started) = self.call_started.take() {
            histogram!(STORE_CALL_SECONDS, "call" => call).record(started.elapsed().as_secs_f64());
        }
        let (api, operation) = (self.api.name(), self.operation.name());
        self.uncertain.retain(|uncertain| match resolution(uncertain, request, reply) {
            Some(resolution) => {
                tracing::debug!(target: "atmostonce", sequence = uncertain.sequence, resolution, "an indeterminate append resolved");
                counter!(INDETERMINATE_APPENDS_TOTAL, "api" => api, "operation" => operation, "resolution" => resolution)
                    .increment(1);
                false
            }
            None => true,
        });
        let error = match reply {
            StoreReply::Read(Err(error))
            | StoreReply::Scan(Err(error))
            | StoreReply::Flush(Err(error)) => error,
            StoreReply::Append(Err(error)) => error,
            _ => return,
        };
        if let (
            DurabilityError::SequenceConflict { expected, actual },
            StoreRequest::Append { .. },
        ) = (error, request)
        {
            tracing::debug!(target: "atmostonce", expected, actual, "an append lost its race");
            counter!(LOST_RACES_TOTAL, "api" => api, "operation" => operation).increment(1);
            return;
        }
        tracing::debug!(target: "atmostonce", call, %error, "a store call failed");
        counter!(STORE_ERRORS_TOTAL, "call" => call).increment(1);
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
        let (api, operation) = (self.api.name(), self.operation.name());
        let outcome = match result {
            Ok(answer) => {
                answer.report(self.api);
                answer.outcome()
            }
            Err(error) => error_outcome(error),
        };
        self.span.record("outcome", outcome);
        counter!(OPERATIONS_TOTAL, "api" => api, "operation" => operation, "outcome" => outcome)
            .increment(1);
        histogram!(OPERATION_SECONDS, "api" => api, "operation" => operation)
            .record(self.started.elapsed().as_secs_f64());
        for _ in &self.uncertain {
            counter!(INDETERMINATE_APPENDS_TOTAL, "api" => api, "operation" => operation, "resolution" => "unresolved")
                .increment(1);
        }
    }
}
