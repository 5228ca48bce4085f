//! Test support for the fenced API: driving a fenced machine by hand up to
//! its append (so a test can answer it as a faulty store would), and the
//! fenced checks every durable store backend's tests run.

use std::sync::Arc;

use atmostonce::core::{Operation, Step, StoreReply, StoreRequest};
use atmostonce::fenced::{Claim, FencedCache, FencedOptions, FencedSweeper};
use atmostonce::{DurabilityError, DurableStore, ProcessingReceipt, execute};

/// Feeds `operation` from `store` until it asks for an append, and returns
/// that request unexecuted (`None` if the operation ended first).
pub async fn run_until_append<O: Operation>(
    operation: &mut O,
    store: &dyn DurableStore,
) -> Option<StoreRequest> {
    loop {
        match operation.poll() {
            Step::Done(_) => return None,
            Step::Request(request @ StoreRequest::Append { .. }) => return Some(request),
            Step::Request(request) => operation.feed(execute(store, &request).await),
        }
    }
}

/// Answers the pending append of `operation` with an indeterminate error,
/// after applying it to `store` if `applied`.
pub async fn fail_append<O: Operation>(
    operation: &mut O,
    store: &dyn DurableStore,
    request: &StoreRequest,
    applied: bool,
) {
    if applied {
        assert!(matches!(
            execute(store, request).await,
            StoreReply::Append(Ok(_))
        ));
    }
    operation.feed(StoreReply::Append(Err(DurabilityError::StoreError(
        "scripted: outcome unknown".into(),
    ))));
}

/// The fenced API's main path on `store`: grant, duplicate, stale token,
/// retried completion, takeover after the lease, and the sweep.
pub async fn the_fenced_api_keeps_its_promises_on(store: Arc<dyn DurableStore>) {
    let options = FencedOptions::default()
        .with_lease_ms(1_000)
        .with_receipt_ttl_ms(10_000);
    let cache = FencedCache::new(store, "fenced", options).unwrap();
    let receipt = ProcessingReceipt::new(b"done".to_vec());
    let Claim::Granted(first) = cache.claim("a", 0).await.unwrap() else {
        panic!("a fresh key is granted");
    };
    assert!(matches!(
        cache.claim("a", 10).await.unwrap(),
        Claim::InFlight { .. }
    ));
    cache.complete(&first, &receipt, 20).await.unwrap();
    cache.complete(&first, &receipt, 21).await.unwrap();
    assert_eq!(
        cache.claim("a", 30).await.unwrap(),
        Claim::Completed(receipt.clone())
    );
    assert!(matches!(
        cache.release(&first, 40).await,
        Err(DurabilityError::StaleClaim { .. })
    ));

    let Claim::Granted(zombie) = cache.claim("b", 0).await.unwrap() else {
        panic!("a fresh key is granted");
    };
    let Claim::Granted(taker) = cache.claim("b", 5_000).await.unwrap() else {
        panic!("an expired claim is taken over");
    };
    assert!(taker.fence() > zombie.fence());
    assert!(matches!(
        cache.complete(&zombie, &receipt, 5_001).await,
        Err(DurabilityError::StaleClaim { .. })
    ));
    let report = FencedSweeper::new(&cache)
        .sweep_once(100_000)
        .await
        .unwrap();
    assert_eq!(report.expired_claims, 1, "{report:?}");
    assert_eq!(report.expired_receipts, 1, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(cache.lookup("a", 100_001).await.unwrap(), None);
}

/// A `MemoryStore` that does not declare acknowledged appends durable, so
/// the engine flushes as it must on such a store.
pub struct NotDurableOnAck(pub atmostonce::MemoryStore);

impl DurableStore for NotDurableOnAck {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> atmostonce::StoreFuture<'a, u64> {
        self.0.append(stream, payload, expected_seq)
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> atmostonce::StoreFuture<'a, Vec<atmostonce::StoredEntry>> {
        self.0.read_from(stream, offset, limit)
    }

    fn scan<'a>(
        &'a self,
        prefix: &'a str,
    ) -> atmostonce::StoreFuture<'a, Vec<atmostonce::ScannedEntry>> {
        self.0.scan(prefix)
    }

    fn flush(&self) -> atmostonce::StoreFuture<'_, ()> {
        self.0.flush()
    }
}
