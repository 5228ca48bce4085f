//! The words of a step, for counterexamples, the Explorer and the replay:
//! [`Narration`] collects them only when a person will read them.

use std::fmt::{self, Write as _};

use atmostonce::DurabilityError;
use atmostonce::core::DedupDecision;
use atmostonce_verify::oracle::record::Record;

use crate::fresh::claim_number;
use crate::model::DedupModel;
use crate::state::State;
use crate::store::RecordKind;

/// Collects the words of a step when a person will read them; costs
/// nothing while the checker explores.
pub(crate) struct Narration {
    lines: Option<Vec<String>>,
    /// The `Debug` text of the result of an operation that ended in the
    /// step, if one did (the replay compares it with the engine's).
    pub(crate) result: Option<String>,
}

impl Narration {
    pub(crate) fn silent() -> Narration {
        Narration {
            lines: None,
            result: None,
        }
    }
    pub(crate) fn spoken() -> Narration {
        Narration {
            lines: Some(Vec::new()),
            result: None,
        }
    }
    /// True when nobody will read the words.
    pub(crate) fn is_silent(&self) -> bool {
        self.lines.is_none()
    }
    pub(crate) fn say(&mut self, words: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.lines {
            lines.push(words());
        }
    }
    pub(crate) fn ended<T: fmt::Debug>(&mut self, result: &Result<T, DurabilityError>) {
        if self.lines.is_some() {
            self.result = Some(format!("{result:?}"));
        }
    }
    pub(crate) fn into_text(self) -> String {
        self.lines.unwrap_or_default().join("; ")
    }
}

impl DedupModel {
    /// The store's contents in words: each stream's records, durable ones
    /// first, `|` marking where the durable prefix ends.
    #[must_use]
    pub fn describe_store(&self, state: &State) -> String {
        let mut text = String::new();
        for (index, name) in self.stream_names.iter().enumerate() {
            let meta = &state.store.streams[index];
            let _ = write!(text, "{name} [");
            let durable = usize::try_from(state.store.durable_len(name)).unwrap_or(usize::MAX);
            for (seq, record) in meta.records.iter().enumerate() {
                if seq == durable {
                    text.push_str(if seq == 0 { "| " } else { " | " });
                } else if seq > 0 {
                    text.push(' ');
                }
                let key = self.key_name(record.key);
                let tick = match record.claim {
                    0 => format!("t{}", record.tick),
                    claim => format!("t{}, id#{claim}", record.tick),
                };
                let _ = match record.kind {
                    RecordKind::Claim => write!(text, "{seq}:claim({key}, {tick})"),
                    RecordKind::Complete => {
                        write!(text, "{seq}:receipt({key}#{}, {tick})", record.receipt)
                    }
                    RecordKind::Release => write!(text, "{seq}:release-tombstone({key}, {tick})"),
                    RecordKind::Expire => write!(text, "{seq}:expiry-tombstone({key}, {tick})"),
                };
                if meta.is_damaged(seq as u64) {
                    text.push_str("!damaged");
                }
            }
            text.push(']');
        }
        text
    }
}

pub(crate) fn show_record(record: &Record) -> String {
    match record {
        Record::V1Entry {
            key,
            receipt: None,
            timestamp_millis,
        } => format!("claim({key}, {timestamp_millis} ms)"),
        Record::V1Entry {
            key,
            receipt: Some(receipt),
            timestamp_millis,
        } => format!(
            "receipt({key}, {}, {timestamp_millis} ms)",
            String::from_utf8_lossy(receipt)
        ),
        Record::V1Tombstone {
            key,
            timestamp_millis,
        } => format!("tombstone({key}, {timestamp_millis} ms)"),
        Record::Claim {
            key,
            claim_id,
            fence,
            claimed_at_millis,
            lease_expires_millis,
            ..
        } => format!(
            "claim({key}, id#{}, fence {fence}, {claimed_at_millis} ms, lease to \
             {lease_expires_millis} ms)",
            claim_number(&claim_id.0).unwrap_or(0)
        ),
        Record::Completion {
            key,
            claim_id,
            fence,
            completed_at_millis,
            receipt,
            ..
        } => format!(
            "completion({key}, id#{}, fence {fence}, {}, {completed_at_millis} ms)",
            claim_number(&claim_id.0).unwrap_or(0),
            String::from_utf8_lossy(receipt)
        ),
        Record::Release {
            key,
            claim_id,
            fence,
            released_at_millis,
            reason,
        } => format!(
            "release({key}, id#{}, fence {fence}, {reason:?}, {released_at_millis} ms)",
            claim_number(&claim_id.0).unwrap_or(0)
        ),
    }
}

pub(crate) fn show_result(result: &Result<DedupDecision, DurabilityError>) -> String {
    match result {
        Ok(DedupDecision::Completed(r)) => {
            format!("Completed({})", String::from_utf8_lossy(r.as_bytes()))
        }
        Ok(decision) => format!("{decision:?}"),
        Err(error) => format!("Err({error:?})"),
    }
}
