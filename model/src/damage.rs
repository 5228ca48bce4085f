//! The store's faults that strike between calls, racing every operation:
//! the janitor's compactions (`compaction`) and damaged records
//! (`corruption`). Which are enabled in a state, and performing one.

use atmostonce_verify::table::Corruption;

use crate::action::{Action, Damage};
use crate::config::{Config, Fault, TICK_MS};
use crate::model::DedupModel;
use crate::narration::Narration;
use crate::state::{Event, Phase, State};
use crate::store::RecordKind;

impl DedupModel {
    /// The janitor's compactions and the damages enabled in `state`.
    ///
    /// A compaction may cut a stream below any sequence from the first
    /// one kept plus one up to its head's, as the simulator's janitor
    /// does, but never past its last durable entry (the table keeps that
    /// one; a cut that would remove nothing more is no step). A damage may
    /// strike any record the store still holds and that is not damaged.
    pub(crate) fn store_fault_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let store = &state.store;
        if state.budget.left(Fault::Compaction) > 0 {
            for (index, name) in self.stream_names.iter().enumerate() {
                let Ok(stream) = u8::try_from(index) else {
                    continue;
                };
                let first = store.table.compacted(name) as u64 + 1;
                let top = store
                    .len(name)
                    .min(store.durable_len(name))
                    .saturating_sub(1);
                for below in first..=top {
                    if let Ok(below) = u8::try_from(below) {
                        actions.push(Action::Compact { stream, below });
                    }
                }
            }
        }
        if state.budget.left(Fault::Corruption) > 0 {
            for (index, name) in self.stream_names.iter().enumerate() {
                let Ok(stream) = u8::try_from(index) else {
                    continue;
                };
                let meta = &store.streams[index];
                for entry in store.table.entries(name) {
                    let Ok(sequence) = u8::try_from(entry.sequence) else {
                        continue;
                    };
                    if meta.is_damaged(entry.sequence) {
                        continue;
                    }
                    for damage in [Damage::CutLast, Damage::FlipBit] {
                        actions.push(Action::Corrupt {
                            stream,
                            sequence,
                            damage,
                        });
                    }
                }
            }
        }
    }

    /// Performs a compaction or a damage on `next`: `None` when it is not
    /// enabled (or would change nothing).
    pub(crate) fn store_fault_step(
        &self,
        next: &mut State,
        action: Action,
        words: &mut Narration,
    ) -> Option<()> {
        match action {
            Action::Compact { stream, below } => {
                let name = self.stream_names.get(usize::from(stream))?;
                next.budget.spend(Fault::Compaction)?;
                let mut removed = 0;
                next.store = next
                    .store
                    .with(|store| removed = store.compact(name, u64::from(below)));
                if removed == 0 {
                    return None;
                }
                let racing = next.sweeper.op.is_some()
                    || next.producers.iter().any(|p| in_operation(&p.phase));
                if racing {
                    next.note(Event::CompactedUnderOperation);
                }
                words.say(|| {
                    format!(
                        "the janitor compacts {name} below {below}: {removed} removed{}",
                        if racing {
                            " while an operation is under way"
                        } else {
                            ""
                        }
                    )
                });
            }
            Action::Corrupt {
                stream,
                sequence,
                damage,
            } => {
                let index = usize::from(stream);
                let name = self.stream_names.get(index)?;
                let sequence = u64::from(sequence);
                if next.store.streams.get(index)?.is_damaged(sequence) {
                    return None;
                }
                let corruption = self.corruption(next, index, sequence, damage)?;
                next.budget.spend(Fault::Corruption)?;
                let mut done = false;
                next.store = next
                    .store
                    .with(|store| done = store.corrupt(index, name, sequence, &corruption));
                if !done {
                    return None;
                }
                words.say(|| {
                    format!("the record at {sequence} of {name} is damaged: {corruption:?}")
                });
            }
            _ => return None,
        }
        Some(())
    }

    /// The fault table's damage that `damage` does to the record at
    /// `sequence` of stream `stream` in `state` (see [`Damage`]); `None`
    /// when the store no longer holds that record. The replay applies the
    /// same damage to its own table.
    #[must_use]
    pub fn corruption(
        &self,
        state: &State,
        stream: usize,
        sequence: u64,
        damage: Damage,
    ) -> Option<Corruption> {
        let name = self.stream_names.get(stream)?;
        let at = usize::try_from(sequence).ok()?;
        let offset = at.checked_sub(state.store.table.compacted(name))?;
        let payload = &state.store.table.entries(name).get(offset)?.payload;
        let summary = state.store.streams.get(stream)?.records.get(at)?;
        Some(match damage {
            Damage::CutLast => Corruption::Truncate {
                len: payload.len().checked_sub(1)?,
            },
            Damage::FlipBit => {
                let receipt = (summary.kind == RecordKind::Complete)
                    .then(|| self.receipt(summary.key, summary.receipt));
                let in_receipt = receipt.and_then(|receipt| {
                    let bytes = receipt.as_bytes();
                    let start = payload
                        .windows(bytes.len())
                        .rposition(|window| window == bytes)?;
                    Some(start + bytes.len().checked_sub(1)?)
                });
                match in_receipt {
                    Some(byte) => Corruption::BitFlip { byte, bit: 0 },
                    None => {
                        let tail = payload.len().checked_sub(8)?;
                        let (byte, bit) = payload[tail..].iter().position(|b| *b != 0).map_or(
                            (payload.len() - 1, 0),
                            |i| {
                                let value = payload[tail + i];
                                // The highest set bit (bit 0 is the lowest).
                                let bit = 7 - u8::try_from(value.leading_zeros()).unwrap_or(7);
                                (tail + i, bit)
                            },
                        );
                        Corruption::BitFlip { byte, bit }
                    }
                }
            }
        })
    }

    /// With `corruption`, true when a sweep pass started now has something
    /// to do by the oracle, whatever the engine's own sweep would do: a
    /// key's head is damaged (the pass must name it and go on), or an
    /// undamaged claim or receipt at a head has expired at the current
    /// tick (the pass must expire it). A sweep that stops on a damaged
    /// record appends nothing, so a pass started only when the engine
    /// would append could not show it.
    pub(crate) fn sweep_due_by_oracle(&self, state: &State) -> bool {
        self.config.faults.contains(Fault::Corruption)
            && state.store.streams.iter().any(|meta| {
                meta.records.last().is_some_and(|head| {
                    meta.is_damaged(meta.records.len() as u64 - 1)
                        || matches!(head.kind, RecordKind::Claim | RecordKind::Complete)
                            && Config::expired_at(u64::from(head.tick) * TICK_MS, state.tick)
                })
            })
    }
}

/// True while a producer runs an engine operation (not between them, nor
/// while it delivers).
fn in_operation(phase: &Phase) -> bool {
    matches!(
        phase,
        Phase::Claiming { .. }
            | Phase::Completing { .. }
            | Phase::Releasing { .. }
            | Phase::FencedClaiming { .. }
            | Phase::FencedCompleting { .. }
            | Phase::FencedReleasing { .. }
    )
}
