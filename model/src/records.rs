//! What the model's store notes of each record an engine operation
//! appends, read with the verification layer's own record decoder.

use atmostonce_verify::oracle::record::{Record, ReleaseReason};

use crate::config::Api;
use crate::fresh::claim_number;
use crate::model::{Actor, DedupModel};

impl DedupModel {
    /// What the model's store notes of a record the API writes: its key,
    /// its time, its receipt (`Some(None)` for a claim, `None` for a
    /// release), the model's number of its claim id (0 for version 1) and
    /// whether it is an expiry. A seed release and expiry differ only in
    /// who appends them; a fenced one says so in its reason. `None` for a
    /// record the configuration's API never writes.
    #[allow(clippy::type_complexity)]
    pub(crate) fn record_fields<'r>(
        &self,
        record: &'r Record,
        actor: Actor,
    ) -> Option<(&'r str, u64, Option<Option<&'r [u8]>>, u8, bool)> {
        let sweeper = matches!(actor, Actor::Sweeper);
        match (self.config.api, record) {
            (
                Api::Seed,
                Record::V1Entry {
                    key,
                    receipt,
                    timestamp_millis,
                },
            ) => Some((key, *timestamp_millis, Some(receipt.as_deref()), 0, false)),
            (
                Api::Seed,
                Record::V1Tombstone {
                    key,
                    timestamp_millis,
                },
            ) => Some((key, *timestamp_millis, None, 0, sweeper)),
            (
                Api::Fenced,
                Record::Claim {
                    key,
                    claim_id,
                    claimed_at_millis,
                    ..
                },
            ) => Some((
                key,
                *claimed_at_millis,
                Some(None),
                claim_number(&claim_id.0)?,
                false,
            )),
            (
                Api::Fenced,
                Record::Completion {
                    key,
                    claim_id,
                    completed_at_millis,
                    receipt,
                    ..
                },
            ) => Some((
                key,
                *completed_at_millis,
                Some(Some(receipt.as_slice())),
                claim_number(&claim_id.0)?,
                false,
            )),
            (
                Api::Fenced,
                Record::Release {
                    key,
                    claim_id,
                    released_at_millis,
                    reason,
                    ..
                },
            ) => Some((
                key,
                *released_at_millis,
                None,
                claim_number(&claim_id.0)?,
                *reason == ReleaseReason::Expired,
            )),
            _ => None,
        }
    }
}
