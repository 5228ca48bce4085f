//! The store calls an operation makes, recorded by a wrapping store, and
//! their replay on another store without the engine: the "bare calls"
//! baselines follow whatever the engine does today.

use std::hint::black_box;

use atmostonce::{DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead};
use parking_lot::Mutex;

/// One store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Append {
        stream: String,
        payload: Vec<u8>,
        expected_seq: u64,
    },
    ReadFrom {
        stream: String,
        offset: u64,
        limit: usize,
    },
    ReadHead {
        stream: String,
    },
    Flush,
    /// A scan, a page of heads or a compaction: not part of a single-key
    /// operation, replayed as nothing.
    Other(&'static str),
}

impl Call {
    /// The call's name.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Append { .. } => "append",
            Call::ReadFrom { .. } => "read_from",
            Call::ReadHead { .. } => "read_head",
            Call::Flush => "flush",
            Call::Other(name) => name,
        }
    }
}

/// The calls' names, comma-separated.
pub fn names(calls: &[Call]) -> String {
    calls.iter().map(Call::name).collect::<Vec<_>>().join(", ")
}

/// `inner`, recording every call made through it.
pub struct Recording<S> {
    pub inner: S,
    calls: Mutex<Vec<Call>>,
}

impl<S> Recording<S> {
    pub fn new(inner: S) -> Recording<S> {
        Recording {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls so far, and forgets them.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock())
    }

    fn record(&self, call: Call) {
        self.calls.lock().push(call);
    }
}

impl<S: DurableStore> DurableStore for Recording<S> {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        self.record(Call::Append {
            stream: stream.to_owned(),
            payload: payload.to_vec(),
            expected_seq,
        });
        self.inner.append(stream, payload, expected_seq)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        self.record(Call::ReadFrom {
            stream: stream.to_owned(),
            offset,
            limit,
        });
        self.inner.read_from(stream, offset, limit)
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        self.record(Call::Other("scan"));
        self.inner.scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.record(Call::Flush);
        self.inner.flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.inner.acknowledged_appends_are_durable()
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        self.record(Call::ReadHead {
            stream: stream.to_owned(),
        });
        self.inner.read_head(stream)
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        self.record(Call::Other("scan_heads"));
        self.inner.scan_heads(prefix, after, limit)
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        self.record(Call::Other("compact"));
        self.inner.compact(stream, below_seq)
    }
}

/// Makes `calls` on `store` with `stream` in place of the recorded stream
/// (so a replay can go to a fresh key), failing on an error the recording
/// did not have: every append must land where it landed then.
pub async fn replay(store: &dyn DurableStore, calls: &[Call], stream: &str) {
    for call in calls {
        match call {
            Call::Append {
                payload,
                expected_seq,
                ..
            } => {
                let landed = store.append(stream, payload, *expected_seq).await;
                assert_eq!(landed, Ok(*expected_seq), "a replayed append lands");
            }
            Call::ReadFrom { offset, limit, .. } => {
                black_box(
                    store
                        .read_from(stream, *offset, *limit)
                        .await
                        .expect("read"),
                );
            }
            Call::ReadHead { .. } => {
                black_box(store.read_head(stream).await.expect("read_head"));
            }
            Call::Flush => store.flush().await.expect("flush"),
            Call::Other(_) => {}
        }
    }
}
