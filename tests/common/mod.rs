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
use atmostonce::{DurabilityError, StreamTable};
use atmostonce_verify::served::{ServeRequest, Served};
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
/// (or not) that acknowledged appends are durable: [`ScriptedTable`]
/// serving each store call as one request.
pub type ScriptedStore = Served<ScriptedTable>;

/// A [`ScriptedStore`] over an empty table.
pub fn scripted_store(durable_on_ack: bool) -> ScriptedStore {
    Served(ScriptedTable {
        table: Mutex::new(FaultTable::new()),
        durable_on_ack,
        append_faults: Mutex::new(VecDeque::new()),
        read_failures: Mutex::new(VecDeque::new()),
        appends: AtomicUsize::new(0),
        reads: AtomicUsize::new(0),
        flushes: AtomicUsize::new(0),
    })
}

/// The server of a [`ScriptedStore`]: the table, the scripts and the counts.
pub struct ScriptedTable {
    table: Mutex<FaultTable>,
    pub durable_on_ack: bool,
    append_faults: Mutex<VecDeque<Option<AppendFault>>>,
    read_failures: Mutex<VecDeque<bool>>,
    pub appends: AtomicUsize,
    pub reads: AtomicUsize,
    pub flushes: AtomicUsize,
}

impl ScriptedTable {
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
    fn serve_now(&self, request: &StoreRequest, fault: CallFault) -> StoreReply {
        let mut table = self.table.lock().unwrap();
        table.set_now_millis(atmostonce::wall_clock_millis());
        table.serve_with(Call::new(0, None), request, fault)
    }
}

impl ScriptedTable {
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

    /// The fault the scripts give `request`, counting the call.
    fn next_fault(&self, request: &StoreRequest) -> CallFault {
        match request {
            StoreRequest::Append { .. } => {
                self.appends.fetch_add(1, Ordering::SeqCst);
                match self.append_faults.lock().unwrap().pop_front().flatten() {
                    None => CallFault::None,
                    Some(AppendFault::AppliedThenError) => CallFault::ErrorApplied,
                    Some(AppendFault::LostWithError) => CallFault::ErrorLost,
                }
            }
            // A head read is a read: counted with them, failed by the same
            // script.
            StoreRequest::Read { .. } | StoreRequest::ReadHead { .. } => self.next_read_fault(),
            StoreRequest::Flush => {
                self.flushes.fetch_add(1, Ordering::SeqCst);
                CallFault::None
            }
            StoreRequest::Scan { .. }
            | StoreRequest::ScanHeads { .. }
            | StoreRequest::Compact { .. } => CallFault::None,
        }
    }
}

impl ServeRequest for ScriptedTable {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        let fault = self.next_fault(&request);
        std::future::ready(Ok(self.serve_now(&request, fault)))
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.durable_on_ack
    }

    fn name(&self) -> &'static str {
        "the scripted store"
    }
}
