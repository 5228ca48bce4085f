//! The fault table's damage: store crashes, which drop every stream back to
//! its flushed prefix, and corruption of one stored record (`docs/spec.md`,
//! fault model).

use super::{Corruption, DroppedEntry, FaultTable};

impl FaultTable {
    /// Crash the store: every stream drops back to its flushed prefix, and
    /// each caller whose appends were dropped is marked so that its next
    /// flush fails.
    pub fn crash(&mut self) {
        for dropped in self.drop_unflushed() {
            self.sessions
                .entry(dropped.appended_by.caller)
                .or_default()
                .lost_appends = true;
        }
    }

    /// Crash the store as one that resets every connection: every stream
    /// drops back to its flushed prefix, and every caller reconnects, so no
    /// later flush fails for what was lost (only the calls the crash
    /// interrupted can tell the caller). Returns the dropped entries, in
    /// stream then sequence order, each with the call that appended it.
    pub fn crash_reconnecting(&mut self) -> Vec<DroppedEntry> {
        let dropped = self.drop_unflushed();
        self.sessions.clear();
        dropped
    }

    fn drop_unflushed(&mut self) -> Vec<DroppedEntry> {
        let mut dropped = Vec::new();
        for (name, stream) in &mut self.streams {
            // A compaction keeps the last durable entry: the durable length
            // is never below the compacted prefix.
            let from = stream
                .durable_len
                .saturating_sub(stream.compacted)
                .min(stream.entries.len());
            for (offset, &appended_by) in stream.appended_by[from..].iter().enumerate() {
                dropped.push(DroppedEntry {
                    stream: name.clone(),
                    sequence: (stream.compacted + from + offset) as u64,
                    appended_by,
                });
            }
            stream.entries.truncate(from);
            stream.appended_by.truncate(from);
        }
        // A stream the crash emptied is no stream: the table's value is the
        // same as if it had never been appended to.
        self.streams
            .retain(|_, stream| !stream.entries.is_empty() || stream.compacted > 0);
        dropped
    }

    /// Damage the entry at `sequence` of `stream`. Returns whether there was
    /// such an entry.
    pub fn corrupt(&mut self, stream: &str, sequence: u64, corruption: &Corruption) -> bool {
        let Some(entry) = self.streams.get_mut(stream).and_then(|s| {
            usize::try_from(sequence)
                .ok()
                .and_then(|sequence| sequence.checked_sub(s.compacted))
                .and_then(|i| s.entries.get_mut(i))
        }) else {
            return false;
        };
        let payload = &mut entry.payload;
        match corruption {
            Corruption::BitFlip { byte, bit } => {
                if payload.is_empty() {
                    return false;
                }
                let index = byte % payload.len();
                payload[index] ^= 1 << (bit % 8);
            }
            Corruption::Truncate { len } => payload.truncate(*len),
            Corruption::Overwrite(bytes) => payload.clone_from(bytes),
        }
        true
    }
}
