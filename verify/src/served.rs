//! A store that answers whole requests, as a [`DurableStore`]: the
//! engine's own vocabulary, a [`StoreRequest`] in and a [`StoreReply`] out,
//! is what every fault-injecting store of the harness serves (the
//! simulator's store, live mode's wire client and its `wipe-on-crash`
//! plant, the model's replay store, each over a
//! [`FaultTable`](crate::table::FaultTable) or a wire); [`Served`] turns
//! each store method into one request and checks the reply is of the
//! request's kind.
//!
//! ```
//! use std::sync::Mutex;
//! use atmostonce::DurableStore;
//! use atmostonce::core::{StoreReply, StoreRequest};
//! use atmostonce_verify::served::{ServeRequest, Served};
//! use atmostonce_verify::table::FaultTable;
//!
//! struct Plain(Mutex<FaultTable>);
//!
//! impl ServeRequest for Plain {
//!     fn serve(
//!         &self,
//!         request: StoreRequest,
//!     ) -> impl Future<Output = Result<StoreReply, atmostonce::DurabilityError>> + Send + '_ {
//!         let reply = self.0.lock().unwrap().serve(&request);
//!         std::future::ready(Ok(reply))
//!     }
//!     fn acknowledged_appends_are_durable(&self) -> bool {
//!         false
//!     }
//!     fn name(&self) -> &'static str {
//!         "a plain table"
//!     }
//! }
//!
//! let store = Served(Plain(Mutex::new(FaultTable::new())));
//! let appended = futures_lite_block_on(store.append("s", b"x", 0));
//! assert_eq!(appended, Ok(0));
//! # fn futures_lite_block_on<T>(future: atmostonce::StoreFuture<'_, T>) -> Result<T, atmostonce::DurabilityError> {
//! #     let mut future = future;
//! #     match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
//! #         std::task::Poll::Ready(result) => result,
//! #         std::task::Poll::Pending => unreachable!("a table answers at once"),
//! #     }
//! # }
//! ```

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{
    DurabilityError, DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead,
};

/// Something that serves one store request at a time.
pub trait ServeRequest: Send + Sync {
    /// Serves `request`. An `Err` is a failure of the call as a whole (the
    /// connection, an injected fault); a reply carries the store's own
    /// answer, success or error, for that kind of request. Not boxed: the
    /// [`DurableStore`] method that wraps it boxes the two as one future.
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_;

    /// Whether an acknowledged append is durable without a flush.
    fn acknowledged_appends_are_durable(&self) -> bool;

    /// Who the server is, for the error of a reply of the wrong kind.
    fn name(&self) -> &'static str;
}

/// A [`ServeRequest`] as a [`DurableStore`] (and, through `Deref`, the
/// server itself, for what else it offers).
#[derive(Debug, Default)]
pub struct Served<S>(
    /// The server.
    pub S,
);

impl<S> std::ops::Deref for Served<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

impl<S: ServeRequest> Served<S> {
    /// Serves `request` and takes the answer out of a reply of its kind
    /// (`unpack` returns the reply back when it is of another kind).
    fn ask<T: Send + 'static>(
        &self,
        request: StoreRequest,
        unpack: fn(StoreReply) -> Result<Result<T, DurabilityError>, StoreReply>,
    ) -> StoreFuture<'_, T> {
        Box::pin(async move {
            unpack(self.0.serve(request).await?).unwrap_or_else(|other| {
                Err(DurabilityError::StoreError(format!(
                    "{} answered with a reply of the wrong kind: {other:?}",
                    self.0.name()
                )))
            })
        })
    }
}

impl<S: ServeRequest> DurableStore for Served<S> {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        let request = StoreRequest::Append {
            stream: stream.to_owned(),
            payload: payload.to_vec(),
            expected_seq,
        };
        self.ask(request, |reply| match reply {
            StoreReply::Append(result) => Ok(result),
            other => Err(other),
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        let request = StoreRequest::Read {
            stream: stream.to_owned(),
            offset,
            limit,
        };
        self.ask(request, |reply| match reply {
            StoreReply::Read(result) => Ok(result),
            other => Err(other),
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        let request = StoreRequest::Scan {
            prefix: prefix.to_owned(),
        };
        self.ask(request, |reply| match reply {
            StoreReply::Scan(result) => Ok(result),
            other => Err(other),
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.ask(StoreRequest::Flush, |reply| match reply {
            StoreReply::Flush(result) => Ok(result),
            other => Err(other),
        })
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.0.acknowledged_appends_are_durable()
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        let request = StoreRequest::ReadHead {
            stream: stream.to_owned(),
        };
        self.ask(request, |reply| match reply {
            StoreReply::Head(result) => Ok(result),
            other => Err(other),
        })
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        let request = StoreRequest::ScanHeads {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        };
        self.ask(request, |reply| match reply {
            StoreReply::Heads(result) => Ok(result),
            other => Err(other),
        })
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let request = StoreRequest::Compact {
            stream: stream.to_owned(),
            below_seq,
        };
        self.ask(request, |reply| match reply {
            StoreReply::Compact(result) => Ok(result),
            other => Err(other),
        })
    }
}
