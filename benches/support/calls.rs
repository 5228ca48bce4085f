//! The store calls an operation makes, recorded by a wrapping store, and
//! their replay on another store without the engine: the "bare calls"
//! baselines follow whatever the engine does today.

use std::hint::black_box;

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{DurabilityError, DurableStore};
use atmostonce_verify::served::{ServeRequest, Served};
use parking_lot::Mutex;

/// One store call: the engine's own request vocabulary.
pub type Call = StoreRequest;

/// The call's name.
pub fn name(call: &Call) -> &'static str {
    match call {
        StoreRequest::Append { .. } => "append",
        StoreRequest::Read { .. } => "read_from",
        StoreRequest::ReadHead { .. } => "read_head",
        StoreRequest::Flush => "flush",
        StoreRequest::Scan { .. } => "scan",
        StoreRequest::ScanHeads { .. } => "scan_heads",
        StoreRequest::Compact { .. } => "compact",
    }
}

/// The calls' names, comma-separated.
pub fn names(calls: &[Call]) -> String {
    calls.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// `inner`, recording every request served through it.
pub struct Recorder<S> {
    inner: S,
    calls: Mutex<Vec<Call>>,
}

/// `inner` as a store that records every call made through it.
pub type Recording<S> = Served<Recorder<S>>;

/// A store over `inner` that records its calls.
pub fn recording<S: DurableStore>(inner: S) -> Recording<S> {
    Served(Recorder {
        inner,
        calls: Mutex::new(Vec::new()),
    })
}

/// The calls `store` recorded so far, and forgets them.
pub fn take<S>(store: &Recording<S>) -> Vec<Call> {
    std::mem::take(&mut *store.0.calls.lock())
}

impl<S: DurableStore> ServeRequest for Recorder<S> {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        self.calls.lock().push(request.clone());
        async move { Ok(atmostonce::execute(&self.inner, &request).await) }
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.inner.acknowledged_appends_are_durable()
    }

    fn name(&self) -> &'static str {
        "a recording store"
    }
}

/// Makes `calls` on `store` with `stream` in place of the recorded stream
/// (so a replay can go to a fresh key), failing on an error the recording
/// did not have: every append must land where it landed then.
pub async fn replay(store: &dyn DurableStore, calls: &[Call], stream: &str) {
    for call in calls {
        match call {
            StoreRequest::Append {
                payload,
                expected_seq,
                ..
            } => {
                let landed = store.append(stream, payload, *expected_seq).await;
                assert_eq!(landed, Ok(*expected_seq), "a replayed append lands");
            }
            StoreRequest::Read { offset, limit, .. } => {
                black_box(
                    store
                        .read_from(stream, *offset, *limit)
                        .await
                        .expect("read"),
                );
            }
            StoreRequest::ReadHead { .. } => {
                black_box(store.read_head(stream).await.expect("read_head"));
            }
            StoreRequest::Flush => store.flush().await.expect("flush"),
            // Not part of a single-key operation: replayed as nothing.
            StoreRequest::Scan { .. }
            | StoreRequest::ScanHeads { .. }
            | StoreRequest::Compact { .. } => {}
        }
    }
}
