//! The fault table's head calls: a stream's last entry and length, a page
//! of heads in stream-name order after a cursor, and compaction below a
//! sequence (never the last durable entry). Their fault model is stated in
//! `docs/spec.md` (the storage contract).

use atmostonce::{ScannedHead, StoredEntry, StreamHead};

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

    /// Every entry the stream has held that a crash did not drop, from
    /// sequence 0 on: the entries compactions removed (which were durable,
    /// so no crash drops them), then the current ones. This is the history
    /// a checker judges; callers of the store see only
    /// [`entries`](FaultTable::entries). A stream copied from a compacted
    /// engine table ([`copy_of`](FaultTable::copy_of)) starts above 0.
    pub fn history(&self, stream: &str) -> impl Iterator<Item = &StoredEntry> {
        self.streams
            .get(stream)
            .into_iter()
            .flat_map(|s| s.removed.iter().chain(&s.entries))
    }

    /// The table of a store whose acknowledged appends are durable (an
    /// engine on it does not flush) when `on`: an append that lands is
    /// durable at once, so a compaction may reach up to it.
    #[must_use]
    pub fn with_appends_durable(mut self, on: bool) -> Self {
        self.appends_durable = on;
        self
    }
}
