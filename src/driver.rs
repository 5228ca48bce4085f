//! The thin async driver: feeds an operation from a [`DurableStore`].

use crate::DurabilityError;
use crate::core::{Operation, Step, StoreReply, StoreRequest};
use crate::store::DurableStore;

/// Performs one request against `store`.
pub async fn execute(store: &dyn DurableStore, request: &StoreRequest) -> StoreReply {
    match request {
        StoreRequest::Read {
            stream,
            offset,
            limit,
        } => StoreReply::Read(store.read_from(stream, *offset, *limit).await),
        StoreRequest::Append {
            stream,
            payload,
            expected_seq,
        } => StoreReply::Append(store.append(stream, payload, *expected_seq).await),
        StoreRequest::Scan { prefix } => StoreReply::Scan(store.scan(prefix).await),
        StoreRequest::Flush => StoreReply::Flush(store.flush().await),
    }
}

/// Runs `operation` to its end against `store`.
pub async fn drive<O: Operation>(
    store: &dyn DurableStore,
    mut operation: O,
) -> Result<O::Output, DurabilityError> {
    loop {
        match operation.poll() {
            Step::Done(result) => return result,
            Step::Request(request) => {
                let reply = execute(store, &request).await;
                operation.feed(reply);
            }
        }
    }
}
