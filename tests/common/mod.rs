//! Shared test support: a scripted fault injector around the real
//! `MemoryStore`, a tiny executor, and (in `backend`) the checks every
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

use atmostonce::{
    DurabilityError, DurableStore, MemoryStore, ScannedEntry, StoreFuture, StoredEntry, StreamTable,
};

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

/// A `MemoryStore` that fails scripted appends and reads, counts calls, and
/// claims (or not) that acknowledged appends are durable.
pub struct ScriptedStore {
    pub inner: MemoryStore,
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
            inner: MemoryStore::new(),
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

    pub fn snapshot(&self) -> StreamTable {
        self.inner.snapshot()
    }
}

impl DurableStore for ScriptedStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let fault = self.append_faults.lock().unwrap().pop_front().flatten();
        Box::pin(async move {
            match fault {
                None => self.inner.append(stream, payload, expected_seq).await,
                Some(AppendFault::AppliedThenError) => {
                    self.inner.append(stream, payload, expected_seq).await?;
                    Err(DurabilityError::StoreError(
                        "scripted: applied, then the connection dropped".into(),
                    ))
                }
                Some(AppendFault::LostWithError) => {
                    Err(DurabilityError::StoreError("scripted: request lost".into()))
                }
            }
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .read_failures
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(false);
        if fail {
            return Box::pin(async {
                Err(DurabilityError::StoreError(
                    "scripted: read timed out".into(),
                ))
            });
        }
        self.inner.read_from(stream, offset, limit)
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        self.inner.scan(prefix)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush()
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        self.durable_on_ack
    }
}
