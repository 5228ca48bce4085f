//! The fault table's head calls: a stream's last entry and length, a page
//! of heads in stream-name order after a cursor, and compaction below a
//! sequence (never the last durable entry). Their fault model is stated in
//! `docs/spec.md` (the storage contract).

use atmostonce::{ScannedHead, StreamHead};

use super::{CallFault, FaultTable};

impl FaultTable {
    pub(super) fn head(&self, stream: &str, fault: CallFault) -> StreamHead {
        let last = self
            .streams
            .get(stream)
            .and_then(|s| s.visible(fault).last().cloned());
        StreamHead {
            length: last.as_ref().map_or(0, |last| last.sequence + 1),
            last,
        }
    }

    pub(super) fn heads(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        fault: CallFault,
    ) -> Vec<ScannedHead> {
        let from = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        self.streams
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter_map(|(name, s)| {
                let last = s.visible(fault).last()?.clone();
                Some(ScannedHead {
                    stream: name.clone(),
                    length: last.sequence + 1,
                    last,
                })
            })
            .take(limit)
            .collect()
    }

    /// Removes the entries of `stream` below `below_seq`, but never its last
    /// durable entry nor any entry after it; returns how many went.
    pub(super) fn compact(&mut self, stream: &str, below_seq: u64) -> u64 {
        let Some(s) = self.streams.get_mut(stream) else {
            return 0;
        };
        let below = usize::try_from(below_seq).unwrap_or(usize::MAX);
        let cut = below.min(s.durable_len.saturating_sub(1));
        let removed = cut.saturating_sub(s.compacted).min(s.entries.len());
        s.removed.extend(s.entries.drain(..removed));
        s.appended_by.drain(..removed);
        s.compacted += removed;
        removed as u64
    }
}
