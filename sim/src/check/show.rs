//! Answers, errors and specification states in words, for reports.

use atmostonce::{DedupDecision, DurabilityError};
use atmostonce_verify::oracle::{SpecAnswer, SpecState};

use crate::history::OpRecord;

/// An operation's answer in words.
#[must_use]
pub fn show_answer(op: &OpRecord) -> String {
    match &op.result {
        None => "nothing (its process crashed)".to_owned(),
        Some(Ok(SpecAnswer::Decision(decision))) => show_decision(Some(decision)),
        Some(Ok(SpecAnswer::Lookup(decision))) => show_decision(decision.as_ref()),
        Some(Ok(SpecAnswer::Done)) => "Ok".to_owned(),
        Some(Err(error)) => show_error(error),
    }
}

fn show_decision(decision: Option<&DedupDecision>) -> String {
    match decision {
        None => "absent".to_owned(),
        Some(DedupDecision::Claimed) => "Claimed".to_owned(),
        Some(DedupDecision::InFlight) => "InFlight".to_owned(),
        Some(DedupDecision::Completed(receipt)) => {
            format!("Completed({})", String::from_utf8_lossy(receipt.as_bytes()))
        }
    }
}

/// An engine error in a few words.
#[must_use]
pub fn show_error(error: &DurabilityError) -> String {
    match error {
        DurabilityError::SequenceConflict { expected, actual } => {
            format!("SequenceConflict({expected}->{actual})")
        }
        DurabilityError::DedupCollision { .. } => "DedupCollision".to_owned(),
        DurabilityError::EnvelopeError { sequence, .. } => format!("EnvelopeError(seq {sequence})"),
        DurabilityError::StoreError(_) => "StoreError".to_owned(),
        other => format!("{other}"),
    }
}

pub(super) fn show_state(state: &SpecState) -> String {
    match state {
        SpecState::Absent => "absent".to_owned(),
        SpecState::InFlight { timestamp_millis } => {
            format!("in flight (ts {timestamp_millis})")
        }
        SpecState::Completed { receipt, .. } => {
            format!(
                "completed with {}",
                String::from_utf8_lossy(receipt.as_bytes())
            )
        }
    }
}
