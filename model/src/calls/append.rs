//! The model store's answer to an append: the record read by the oracle's
//! reference decoder, summarised, and appended if its sequence is next.

use atmostonce::DurabilityError;
use atmostonce_verify::oracle::record;

use super::Effect;
use super::settle::unexplained;
use crate::config::{Api, TICK_MS};
use crate::hashed::Hashed;
use crate::model::{Actor, DedupModel};
use crate::store::{ModelStore, RecordKind, RecordSummary};

impl DedupModel {
    /// `append` on `store`: the store's answer, and the store after it and
    /// the record's summary if it landed.
    pub(super) fn append_to(
        &self,
        store: Hashed<ModelStore>,
        actor: Actor,
        index: usize,
        stream: &str,
        payload: &[u8],
        expected_seq: u64,
    ) -> (Result<u64, DurabilityError>, Effect) {
        if !store.would_apply(stream, expected_seq) {
            let conflict = DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual: store.len(stream),
            };
            return (Err(conflict), Effect::Nothing);
        }
        // The record is read by the oracle's reference decoder
        // (`docs/record-format.md`), not the engine's codec.
        let Ok(record) = record::decode(payload) else {
            // The engine only appends records it encoded; a garbage append
            // is a broken engine, which the store refuses loudly.
            return (
                Err(unexplained("an undecodable append")),
                Effect::Unexplained,
            );
        };
        let Some((key, timestamp_millis, receipt, claim, expired)) =
            self.record_fields(&record, actor)
        else {
            let refused = unexplained(match self.config.api {
                Api::Seed => "a version-2 record, which the seed API never writes",
                Api::Fenced => {
                    "a version-1 record or a claim id the model never drew, which the fenced \
                     API never writes"
                }
            });
            return (Err(refused), Effect::Unexplained);
        };
        let Some(key) = self.key_index(key) else {
            let refused = unexplained("an append of a key the model does not have");
            return (Err(refused), Effect::Unexplained);
        };
        let tick = u8::try_from(timestamp_millis / TICK_MS).unwrap_or(u8::MAX);
        let (kind, receipt) = match (receipt, expired) {
            (Some(None), _) => (RecordKind::Claim, 0),
            (Some(Some(bytes)), _) => match self.parse_receipt(bytes) {
                Some((_, number)) => (RecordKind::Complete, number),
                None => {
                    let refused = unexplained("a receipt the model never made");
                    return (Err(refused), Effect::Unexplained);
                }
            },
            (None, true) => (RecordKind::Expire, 0),
            (None, false) => (RecordKind::Release, 0),
        };
        let summary = RecordSummary {
            kind,
            key,
            receipt,
            tick,
            claim,
        };
        let mut result = Ok(expected_seq);
        let after = store.with(|store| {
            result = store.append(index, stream, payload, expected_seq, summary);
        });
        match result {
            Ok(_) => {
                let effect = Effect::Appended {
                    index,
                    expected_seq,
                    summary,
                    store: after,
                };
                (result, effect)
            }
            Err(_) => (result, Effect::Nothing),
        }
    }
}
