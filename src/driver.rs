//! The thin async driver: feeds an operation from a [`DurableStore`], and
//! reports what it sees ([`crate::telemetry`]).

use tracing::Instrument;

use crate::DurabilityError;
use crate::core::{Operation, Step, StoreReply, StoreRequest};
use crate::limits::MAX_DRIVER_STEPS;
use crate::store::DurableStore;
use crate::telemetry::{Outcome, Watch};

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
        StoreRequest::ReadHead { stream } => StoreReply::Head(store.read_head(stream).await),
        StoreRequest::ScanHeads {
            prefix,
            after,
            limit,
        } => StoreReply::Heads(store.scan_heads(prefix, after.as_deref(), *limit).await),
        StoreRequest::Compact { stream, below_seq } => {
            StoreReply::Compact(store.compact(stream, *below_seq).await)
        }
    }
}

/// Runs `operation` to its end against `store`, in at most
/// [`MAX_DRIVER_STEPS`] store calls; past that, the operation ends with a
/// [`DurabilityError::StoreError`] (its writes so far may have landed).
/// Reports nothing (the caches drive with [`drive_watched`]).
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub async fn drive<O: Operation>(
    store: &dyn DurableStore,
    operation: O,
) -> Result<O::Output, DurabilityError> {
    drive_bounded(store, operation, MAX_DRIVER_STEPS, None).await
}

/// [`drive`] of the operation `build` makes (its refusal of the inputs is
/// the operation's error), reported to `watch` and inside its span.
pub(crate) async fn drive_watched<O>(
    store: &dyn DurableStore,
    mut watch: Watch,
    build: impl FnOnce() -> Result<O, DurabilityError>,
) -> Result<O::Output, DurabilityError>
where
    O: Operation,
    O::Output: Outcome,
{
    let span = watch.span().clone();
    let result = async {
        let operation = build()?;
        drive_bounded(store, operation, MAX_DRIVER_STEPS, Some(&mut watch)).await
    }
    .instrument(span)
    .await;
    watch.finish(&result);
    result
}

/// [`drive`] with a bound of `max_steps` store calls, each reported to
/// `watch` when there is one.
async fn drive_bounded<O: Operation>(
    store: &dyn DurableStore,
    mut operation: O,
    max_steps: u64,
    mut watch: Option<&mut Watch>,
) -> Result<O::Output, DurabilityError> {
    for _ in 0..max_steps {
        match operation.poll() {
            Step::Done(result) => return result,
            Step::Request(request) => {
                if let Some(watch) = watch.as_deref_mut() {
                    watch.calling(&request);
                }
                let reply = execute(store, &request).await;
                if let Some(watch) = watch.as_deref_mut() {
                    watch.answered(&request, &reply);
                }
                operation.feed(reply);
            }
        }
    }
    match operation.poll() {
        Step::Done(result) => result,
        Step::Request(request) => Err(DurabilityError::StoreError(format!(
            "the operation made {max_steps} store calls without ending (the limit; the store \
             keeps answering in a way that never settles it, or the engine has a bug) and was \
             stopped before {request:?}; what it wrote so far may or may not have landed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DedupOptions;
    use crate::core::{AppendDurability, Protocol};

    /// An operation that never ends: it asks for a flush, whatever it is
    /// answered. No operation of the engine does this (each reads its head a
    /// bounded number of times), which is why the driver's bound is needed
    /// only as a guard.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Endless;

    impl Operation for Endless {
        type Output = ();

        fn poll(&self) -> Step<()> {
            Step::Request(StoreRequest::Flush)
        }

        fn feed(&mut self, _: StoreReply) {}
    }

    fn lookup() -> crate::core::LookupOp {
        let options = DedupOptions::default();
        let protocol = Protocol::new("ns", options, AppendDurability::Durable).unwrap();
        protocol.lookup("k").unwrap()
    }

    #[test]
    fn an_operation_that_never_ends_is_stopped_at_the_step_bound_with_an_error() {
        let result = futures::executor::block_on(drive_bounded(
            &crate::MemoryStore::new(),
            Endless,
            50,
            None,
        ));
        let Err(DurabilityError::StoreError(message)) = result else {
            panic!("expected the step bound's error, got {result:?}");
        };
        assert!(message.contains("50 store calls"), "{message}");
    }

    #[test]
    fn an_operation_that_ends_within_the_bound_gives_its_result() {
        let store = crate::MemoryStore::new();
        let result = futures::executor::block_on(drive_bounded(&store, lookup(), 1, None));
        assert_eq!(result, Ok(None));
    }
}
