//! The checks of the head calls: `read_head`, `scan_heads` and `compact`.
//! A store that only has the required calls passes them with the trait's
//! default implementations (`compact` then removes nothing).

use super::{CheckOutcome, append_n, expect_eq, expected_payloads, ok, payloads};
use crate::store::{DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead};

/// `store` with only the four required calls passed through, so that its
/// `read_head`, `scan_heads` and `compact` are the trait's default
/// implementations: run the suite on it to check those defaults over your
/// store, or measure what a native implementation saves.
#[derive(Debug, Default)]
pub struct RequiredCallsOnly<S>(pub S);

impl<S: DurableStore> DurableStore for RequiredCallsOnly<S> {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        self.0.append(stream, payload, expected_seq)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        self.0.read_from(stream, offset, limit)
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        self.0.scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.0.flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.0.acknowledged_appends_are_durable()
    }
}

/// The (sequence, payload) of a head, as `append_n` wrote it.
fn head_of(head: &StreamHead) -> (Option<(u64, Vec<u8>)>, u64) {
    let last = head
        .last
        .as_ref()
        .map(|entry| (entry.sequence, entry.payload.clone()));
    (last, head.length)
}

fn expected_head(stream: &str, length: u64) -> (Option<(u64, Vec<u8>)>, u64) {
    let last = length
        .checked_sub(1)
        .map(|sequence| (sequence, format!("{stream}#{sequence}").into_bytes()));
    (last, length)
}

pub(super) async fn read_head_answers_the_last_entry(
    store: &dyn DurableStore,
    stream: &str,
) -> CheckOutcome {
    let empty = ok(
        "head read of a stream never written",
        store.read_head(stream).await,
    )?;
    expect_eq("head of a stream never written", head_of(&empty), (None, 0))?;
    append_n(store, stream, 3).await?;
    let head = ok("head read", store.read_head(stream).await)?;
    expect_eq(
        "head after 3 appends",
        head_of(&head),
        expected_head(stream, 3),
    )?;
    let fourth = format!("{stream}#3");
    ok(
        "fourth append",
        store.append(stream, fourth.as_bytes(), 3).await,
    )?;
    let head = ok("head read", store.read_head(stream).await)?;
    expect_eq(
        "head after 4 appends",
        head_of(&head),
        expected_head(stream, 4),
    )
}

fn page_of(heads: &[ScannedHead]) -> Vec<(String, u64, u64, Vec<u8>)> {
    heads
        .iter()
        .map(|head| {
            (
                head.stream.clone(),
                head.length,
                head.last.sequence,
                head.last.payload.clone(),
            )
        })
        .collect()
}

fn expected_page(streams: &[(&str, u64)]) -> Vec<(String, u64, u64, Vec<u8>)> {
    streams
        .iter()
        .map(|&(stream, length)| {
            let last = length - 1;
            (
                stream.to_owned(),
                length,
                last,
                format!("{stream}#{last}").into_bytes(),
            )
        })
        .collect()
}

pub(super) async fn scan_heads_pages_by_name(store: &dyn DurableStore, base: &str) -> CheckOutcome {
    let prefix = format!("{base}:");
    let (a, ab, b) = (
        format!("{base}:a"),
        format!("{base}:ab"),
        format!("{base}:b"),
    );
    append_n(store, &b, 1).await?;
    append_n(store, &a, 2).await?;
    append_n(store, &ab, 3).await?;
    for outside in [format!("{base}-other:a"), base.to_owned()] {
        append_n(store, &outside, 1).await?;
    }
    let all = [(a.as_str(), 2), (ab.as_str(), 3), (b.as_str(), 1)];
    let first = ok("first page", store.scan_heads(&prefix, None, 2).await)?;
    expect_eq("first page of 2", page_of(&first), expected_page(&all[..2]))?;
    let second = ok(
        "page after the first",
        store.scan_heads(&prefix, Some(&ab), 2).await,
    )?;
    expect_eq(
        &format!("page after {ab:?}"),
        page_of(&second),
        expected_page(&all[2..]),
    )?;
    let last = ok(
        "page after the last",
        store.scan_heads(&prefix, Some(&b), 2).await,
    )?;
    expect_eq("page after the last stream", page_of(&last), Vec::new())?;
    let whole = ok(
        "page after a name below the prefix",
        store.scan_heads(&prefix, Some(base), 10).await,
    )?;
    expect_eq(
        "page after a name below the prefix",
        page_of(&whole),
        expected_page(&all),
    )?;
    let between = ok(
        "page after a name between streams",
        store
            .scan_heads(&prefix, Some(&format!("{base}:aa")), 10)
            .await,
    )?;
    expect_eq(
        "page after a name between streams",
        page_of(&between),
        expected_page(&all[1..]),
    )?;
    let none = ok("page of 0", store.scan_heads(&prefix, None, 0).await)?;
    expect_eq("a page of limit 0", page_of(&none), Vec::new())?;
    let unused = ok(
        "page of an unused prefix",
        store.scan_heads(&format!("{base}:zz"), None, 10).await,
    )?;
    expect_eq("heads under an unused prefix", page_of(&unused), Vec::new())
}

pub(super) async fn compact_keeps_the_head(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    let never = ok(
        "compaction of a stream never written",
        store.compact(stream, 10).await,
    )?;
    expect_eq("entries removed from a stream never written", never, 0)?;
    append_n(store, stream, 6).await?;
    let removed = ok("compaction below 4", store.compact(stream, 4).await)?;
    if removed > 4 {
        return Err(format!(
            "compaction below sequence 4 removed {removed} entries"
        ));
    }
    let entries = ok(
        "read after compaction",
        store.read_from(stream, 0, 100).await,
    )?;
    expect_eq(
        &format!("entries after removing {removed} below 4"),
        payloads(&entries),
        expected_payloads(stream, removed..6),
    )?;
    let head = ok("head read after compaction", store.read_head(stream).await)?;
    expect_eq(
        "head after compaction",
        head_of(&head),
        expected_head(stream, 6),
    )?;
    let appended = format!("{stream}#6");
    let assigned = ok(
        "append after compaction",
        store.append(stream, appended.as_bytes(), 6).await,
    )?;
    expect_eq("sequence of the append after compaction", assigned, 6)?;
    // A store that finds a stream's length by counting entries, or that
    // lets sequence 0 in whenever no entry 0 exists, gets this wrong.
    match store.append(stream, b"again at 0", 0).await {
        Err(crate::DurabilityError::SequenceConflict { .. }) => {}
        other => {
            return Err(format!(
                "an append at sequence 0 after compaction answered {other:?}, not a conflict"
            ));
        }
    }
    let all = ok(
        "compaction of everything",
        store.compact(stream, u64::MAX).await,
    )?;
    let entries = ok(
        "read after compacting all",
        store.read_from(stream, 0, 100).await,
    )?;
    let kept = 7 - removed - all;
    expect_eq(
        &format!("entries after removing {all} more"),
        payloads(&entries),
        expected_payloads(stream, 7 - kept..7),
    )?;
    let heads = ok(
        "head scan of the compacted stream",
        store.scan_heads(stream, None, 10).await,
    )?;
    expect_eq(
        "heads under the compacted stream's name",
        page_of(&heads),
        expected_page(&[(stream, 7)]),
    )?;
    let scanned = ok("scan of the compacted stream", store.scan(stream).await)?;
    expect_eq(
        "entries scanned of the compacted stream",
        scanned.len() as u64,
        kept,
    )
}
