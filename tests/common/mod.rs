//! Shared test support: a scripted fault injector on the verification
//! layer's fault table, a tiny executor, and (in `backend`) the checks every
//! durable store backend's tests run.

#![allow(dead_code)]

mod backend;
pub mod fenced;

#[allow(unused_imports)]
pub use backend::*;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use atmostonce::core::{StoreReply, StoreRequest};
use atmostonce::{
    DurabilityError, DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead,
    StreamTable,
};
use atmostonce_verify::table::{Call, CallFault, FaultTable};

/// Runs a future to completion on the current thread.
pub fn run<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// What the next append does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFault {
    /// Applied, but answered with a `StoreError`.
    AppliedThenError,
    /// Not applied, answered with a `StoreError`.
    LostWithError,
}

/// The verification layer's fault table (`atmostonce_verify::table`) as a
/// store that fails scripted appends and reads, counts calls, and claims
/// (or not) that acknowledged appends are durable.
pub struct ScriptedStore {
    table: Mutex<FaultTable>,
    pub durable_on_ack: bool,
    append_faults: Mutex<VecDeque<Option<AppendFault>>>,
    read_failures: Mutex<VecDeque<bool>>,
    pub appends: AtomicUsize,
    pub reads: AtomicUsize,
    pub flushes: AtomicUsize,
}

impl ScriptedStore {
    pub fn new(durable_on_ack: bool) -> ScriptedStore {
        ScriptedStore {
            table: Mutex::new(FaultTable::new()),
            durable_on_ack,
            append_faults: Mutex::new(VecDeque::new()),
            read_failures: Mutex::new(VecDeque::new()),
            appends: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            flushes: AtomicUsize::new(0),
        }
    }

    /// The next appends behave as listed (`None` = normally), in order.
    pub fn script_appends(&self, faults: &[Option<AppendFault>]) {
        self.append_faults
            .lock()
            .unwrap()
            .extend(faults.iter().copied());
    }

    /// The next reads fail (`true`) or succeed (`false`), in order.
    pub fn script_reads(&self, failures: &[bool]) {
        self.read_failures
            .lock()
            .unwrap()
            .extend(failures.iter().copied());
    }

    /// The streams as they are now, as the engine's `StreamTable`.
    pub fn snapshot(&self) -> StreamTable {
        let table = self.table.lock().unwrap();
        let mut snapshot = StreamTable::new();
        for (name, _) in table.stream_lengths() {
            for entry in table.entries(name) {
                snapshot
                    .append(name, &entry.payload, entry.sequence, entry.timestamp)
                    .expect("a copy appends each entry at its own sequence");
            }
        }
        snapshot
    }

    /// Serves `request` with `fault`, stamped with the wall clock.
    fn serve(&self, request: StoreRequest, fault: CallFault) -> StoreReply {
        let mut table = self.table.lock().unwrap();
        table.set_now_millis(atmostonce::wall_clock_millis());
        table.serve_with(Call::new(0, None), &request, fault)
    }
}

impl ScriptedStore {
    /// Counts a read (of entries or of the head) and takes its scripted
    /// fault: a lost read when the script says it fails.
    fn next_read_fault(&self) -> CallFault {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .read_failures
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(false);
        if fail {
            CallFault::ErrorLost
        } else {
            CallFault::None
        }
    }
}

/// A reply of another kind than the request's: a bug of this file.
fn mismatch(reply: StoreReply) -> DurabilityError {
    DurabilityError::StoreError(format!("scripted store: reply of the wrong kind {reply:?}"))
}

impl DurableStore for ScriptedStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let fault = match self.append_faults.lock().unwrap().pop_front().flatten() {
            None => CallFault::None,
            Some(AppendFault::AppliedThenError) => CallFault::ErrorApplied,
            Some(AppendFault::LostWithError) => CallFault::ErrorLost,
        };
        let request = StoreRequest::Append {
            stream: stream.to_owned(),
            payload: payload.to_vec(),
            expected_seq,
        };
        Box::pin(std::future::ready(match self.serve(request, fault) {
            StoreReply::Append(result) => result,
            other => Err(mismatch(other)),
        }))
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        let fault = self.next_read_fault();
        let request = StoreRequest::Read {
            stream: stream.to_owned(),
            offset,
            limit,
        };
        Box::pin(std::future::ready(match self.serve(request, fault) {
            StoreReply::Read(result) => result,
            other => Err(mismatch(other)),
        }))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        let request = StoreRequest::Scan {
            prefix: prefix.to_owned(),
        };
        Box::pin(std::future::ready(
            match self.serve(request, CallFault::None) {
                StoreReply::Scan(result) => result,
                other => Err(mismatch(other)),
            },
        ))
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(
            match self.serve(StoreRequest::Flush, CallFault::None) {
                StoreReply::Flush(result) => result,
                other => Err(mismatch(other)),
            },
        ))
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.durable_on_ack
    }

    /// A head read is a read: counted with them, failed by the same script.
    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        let fault = self.next_read_fault();
        let request = StoreRequest::ReadHead {
            stream: stream.to_owned(),
        };
        Box::pin(std::future::ready(match self.serve(request, fault) {
            StoreReply::Head(result) => result,
            other => Err(mismatch(other)),
        }))
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
        Box::pin(std::future::ready(
            match self.serve(request, CallFault::None) {
                StoreReply::Heads(result) => result,
                other => Err(mismatch(other)),
            },
        ))
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let request = StoreRequest::Compact {
            stream: stream.to_owned(),
            below_seq,
        };
        Box::pin(std::future::ready(
            match self.serve(request, CallFault::None) {
                StoreReply::Compact(result) => result,
                other => Err(mismatch(other)),
            },
        ))
    }
}
