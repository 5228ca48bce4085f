//! The invariants a step checks as it happens: each flags the invariant it
//! sees violated in the state (the `always` properties of
//! [`crate::properties`] read the flags).

use atmostonce::DurabilityError;
use atmostonce::ProcessingReceipt;
use atmostonce_verify::oracle::{Judgement, SpecAnswer, SpecOp, SpecResponse, SpecState};

use crate::config::{Api, Config, TICK_MS};
use crate::hashed::Hashed;
use crate::model::{Actor, DedupModel};
use atmostonce_verify::catalogue::Invariant;

use crate::state::{Phase, State, violation_bit};
use crate::store::{ModelStore, RecordKind, RecordSummary};

/// The kind of store call a step made, as far as S7 needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    /// A read: an operation ending here answers from what it read.
    Read,
    /// An append at `seq`, applied or not.
    Append { seq: u64, applied: bool },
    /// A flush or a scan.
    Other,
}

impl DedupModel {
    /// An append landed on stream `index` at `expected_seq`, leaving
    /// `after`: checks it and updates the ghost variables it affects.
    pub(crate) fn appended(
        &self,
        s: &mut State,
        actor: Actor,
        index: usize,
        expected_seq: u64,
        summary: RecordSummary,
        after: Hashed<ModelStore>,
    ) {
        let previous = s.store.streams[index].records.last().copied();
        // S2: after a stored receipt, only an expiry may follow. (A fenced
        // claim may take over an expired receipt: the oracle judges that.)
        if self.config.api == Api::Seed
            && previous.is_some_and(|r| r.kind == RecordKind::Complete)
            && summary.kind != RecordKind::Expire
        {
            s.flag(Invariant::S2);
        }
        // S5 (seed API: no tokens): a completion or release appends only
        // directly over the appending producer's own claim.
        if let Actor::Producer(p) = actor {
            let grant = match &s.producers[p].phase {
                Phase::Completing { grant, .. } | Phase::Releasing { grant, .. } => Some(*grant),
                _ => None,
            };
            if grant.is_some_and(|g| g.seq + 1 != expected_seq) {
                s.flag(Invariant::S5);
            }
        }
        s.store = after;
        Self::session(s, actor).applied();
        match self.config.api {
            Api::Seed => self.check_append_is_a_spec_step(s, index, summary),
            // Judged by the oracle's fenced specification with the call
            // (`crate::fenced_judge`).
            Api::Fenced => {
                let records = &s.store.streams[index].records;
                let ends = crate::fenced_actors::ends_a_window(records, summary.key);
                let ghost = &mut s.keys[usize::from(summary.key)];
                ghost.claim_ids |= 1 << summary.claim;
                // A takeover ends the receipt's dedup window as an expiry does.
                if ends {
                    ghost.acked = None;
                }
            }
        }
        if matches!(summary.kind, RecordKind::Release | RecordKind::Expire) {
            let ghost = &mut s.keys[usize::from(summary.key)];
            ghost.window_deliveries = 0;
            if summary.kind == RecordKind::Expire {
                ghost.acked = None;
            }
        }
        self.check_acked(s);
    }

    pub(crate) fn stream_records<'a>(&self, s: &'a State, key: u8) -> &'a [RecordSummary] {
        &s.store.streams[self.stream_of(key)].records
    }

    /// The key's state in the sequential specification, by its stream's
    /// latest record (another key's record counts as absent: S6's matter).
    pub(crate) fn spec_state(&self, records: &[RecordSummary], key: u8) -> SpecState {
        match records.last() {
            Some(r) if r.key == key => match r.kind {
                RecordKind::Claim => SpecState::InFlight {
                    timestamp_millis: u64::from(r.tick) * TICK_MS,
                },
                RecordKind::Complete => SpecState::Completed {
                    receipt: self.receipt(key, r.receipt),
                    timestamp_millis: u64::from(r.tick) * TICK_MS,
                },
                RecordKind::Release | RecordKind::Expire => SpecState::Absent,
            },
            _ => SpecState::Absent,
        }
    }

    /// S7 on an operation's answer. The seed engine's linearization points:
    /// an answer decided by a read linearizes at that read (this step); an
    /// answer acknowledged after a flush linearizes where its own append
    /// landed (checked against the spec when it landed), so it must have
    /// landed. Errors are judged by their class (indeterminate, no effect).
    pub(crate) fn check_linearizable(
        &self,
        s: &mut State,
        key: u8,
        op: &SpecOp,
        observed: &Result<SpecAnswer, DurabilityError>,
        made: Made,
        landed: bool,
    ) {
        let records = self.stream_records(s, key);
        let fine = match (made, observed) {
            (Made::Read, _) | (_, Err(_)) => {
                let shared = records.iter().any(|r| r.key != key);
                matches!(
                    self.spec_state(records, key).judge(op, observed, shared),
                    Judgement::Admissible(_)
                )
            }
            (_, Ok(_)) => landed,
        };
        if !fine {
            s.flag(Invariant::S7);
        }
    }

    /// S7 on an append as it lands: it must be a step the specification
    /// takes from the key's current state, to the state the record says.
    pub(crate) fn check_append_is_a_spec_step(
        &self,
        s: &mut State,
        index: usize,
        summary: RecordSummary,
    ) {
        let records = &s.store.streams[index].records;
        let (before, after) = records.split_at(records.len().saturating_sub(1));
        let key = summary.key;
        let stamp = u64::from(summary.tick) * TICK_MS;
        let op = match summary.kind {
            RecordKind::Claim => SpecOp::Claim { now_millis: stamp },
            RecordKind::Complete => SpecOp::Complete {
                receipt: self.receipt(key, summary.receipt),
                timestamp_millis: stamp,
            },
            RecordKind::Release => SpecOp::Release,
            RecordKind::Expire => SpecOp::Expire,
        };
        let state = self.spec_state(before, key);
        // An expiry takes effect only once the entry has expired at the
        // sweep's clock, by the oracle's rule (`docs/spec.md`, "Expiry").
        let early = match (&op, &state) {
            (
                SpecOp::Expire,
                SpecState::InFlight { timestamp_millis }
                | SpecState::Completed {
                    timestamp_millis, ..
                },
            ) => !Config::expired_at(*timestamp_millis, summary.tick),
            _ => false,
        };
        let (next, response) = state.apply(&op);
        if early
            || matches!(response, SpecResponse::Collision)
            || next != self.spec_state(after, key)
        {
            s.flag(Invariant::S7);
        }
    }

    /// S4: an acknowledged completion is the key's latest record.
    pub(crate) fn check_acked(&self, s: &mut State) {
        for (key, ghost) in s.keys.iter().enumerate() {
            let Some(receipt) = ghost.acked else { continue };
            let head = s.store.streams[self.key_stream[key]].records.last();
            let visible = head.is_some_and(|r| {
                r.kind == RecordKind::Complete && usize::from(r.key) == key && r.receipt == receipt
            });
            if !visible {
                s.violations |= violation_bit(Invariant::S4);
            }
        }
    }

    /// A completion with receipt `receipt` was acknowledged.
    pub(crate) fn acknowledge(&self, s: &mut State, key: u8, receipt: u8) {
        let records = &s.store.streams[self.stream_of(key)].records;
        let is_receipt = |r: &RecordSummary| {
            r.kind == RecordKind::Complete && r.key == key && r.receipt == receipt
        };
        if records.last().is_some_and(is_receipt) {
            s.keys[usize::from(key)].acked = Some(receipt);
        } else {
            // Acceptable only if the completion landed and has expired
            // since (for the fenced API: its window ended, by an expiry or
            // a takeover).
            let expired_since =
                records
                    .iter()
                    .position(is_receipt)
                    .is_some_and(|at| match self.config.api {
                        Api::Seed => records[at..].iter().any(|r| r.kind == RecordKind::Expire),
                        Api::Fenced => (at + 2..=records.len())
                            .any(|end| crate::fenced_actors::ends_a_window(&records[..end], key)),
                    });
            if !expired_since {
                s.flag(Invariant::S4);
            }
        }
    }

    /// S6: an `InFlight` or `Claimed` answer for `key` comes from a stream
    /// holding only records of `key`.
    pub(crate) fn check_answer_from_own_key(&self, s: &mut State, key: u8) {
        let records = &s.store.streams[self.stream_of(key)].records;
        if records.iter().any(|r| r.key != key) {
            s.flag(Invariant::S6);
        }
    }

    /// S2, S3, S6 on a `Completed(receipt)` answer for `key`.
    pub(crate) fn check_receipt_answer(&self, s: &mut State, key: u8, receipt: &ProcessingReceipt) {
        match self.parse_receipt(receipt.as_bytes()) {
            Some((owner, number)) if owner == key => {
                let ghost = s.keys[usize::from(key)];
                if ghost.attempted & (1 << number) == 0 {
                    s.flag(Invariant::S3);
                }
                // (A fenced answer may be given after a later completion:
                // it was decided on the read before it, where the oracle
                // judged it, S2 included.)
                if self.config.api == Api::Seed && ghost.acked.is_some_and(|acked| acked != number)
                {
                    s.flag(Invariant::S2);
                }
            }
            Some(_) => s.flag(Invariant::S6),
            None => s.flag(Invariant::S3),
        }
    }
}
