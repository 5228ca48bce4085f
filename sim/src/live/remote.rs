//! Live mode's client of its haematite server (`server.rs`): a
//! [`DurableStore`] over a small pool of loopback connections, each call
//! one request and one response in the frames of `wire.rs`.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use atmostonce::{DurabilityError, DurableStore, ScannedEntry, StoreFuture, StoredEntry};
use tokio::net::TcpStream;

use super::lock::lock;
use super::wire::{Request, Response, read_frame, write_frame};

/// Longest a store call waits on the server. A call past it is an
/// indeterminate error whose effect could still come later, which the
/// checker does not allow for: it must be far longer than any outage a
/// run causes (a restart takes well under a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept for reuse: one per concurrent caller of a
/// standard run, with room to spare.
const MAX_IDLE_CONNECTIONS: usize = 64;

#[derive(Debug, Default)]
struct Pool {
    /// The server's address and its generation (one per start), or `None`
    /// while it is down.
    server: Option<(u64, SocketAddr)>,
    generation: u64,
    idle: Vec<(u64, TcpStream)>,
}

/// A [`DurableStore`] served by a [`HaematiteServer`].
#[derive(Debug, Default)]
pub(crate) struct RemoteStore {
    pool: Mutex<Pool>,
}

impl RemoteStore {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    /// The server is down (`None`) or listening at `addr`: a new
    /// generation, whose calls never reuse an older one's connections.
    pub(crate) fn set_server(&self, addr: Option<SocketAddr>) {
        let mut pool = self.lock();
        pool.generation += 1;
        let generation = pool.generation;
        pool.server = addr.map(|addr| (generation, addr));
        pool.idle.clear();
    }

    async fn call(&self, request: Request) -> Result<Response, DurabilityError> {
        let (generation, addr, idle) = {
            let mut pool = self.lock();
            let Some((generation, addr)) = pool.server else {
                return Err(DurabilityError::StoreError(
                    "the haematite server is down (connection refused)".into(),
                ));
            };
            (generation, addr, pool.idle.pop().map(|(_, socket)| socket))
        };
        let exchange = async {
            let mut socket = match idle {
                Some(socket) => socket,
                None => {
                    let socket = TcpStream::connect(addr).await?;
                    socket.set_nodelay(true)?;
                    socket
                }
            };
            write_frame(&mut socket, &request.encode()).await?;
            let frame = read_frame(&mut socket).await?;
            Ok::<_, std::io::Error>((socket, frame))
        };
        let (socket, frame) = match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                return Err(DurabilityError::StoreError(format!(
                    "the connection to the haematite server failed: {error}"
                )));
            }
            Err(_) => {
                return Err(DurabilityError::StoreError(format!(
                    "the haematite server did not answer within {CALL_TIMEOUT:?}"
                )));
            }
        };
        let response = Response::decode(&frame).ok_or_else(|| {
            DurabilityError::StoreError(
                "the haematite server sent an answer it cannot decode".into(),
            )
        })?;
        let mut pool = self.lock();
        if pool.server.map(|(current, _)| current) == Some(generation)
            && pool.idle.len() < MAX_IDLE_CONNECTIONS
        {
            pool.idle.push((generation, socket));
        }
        Ok(response)
    }
}

fn mismatch(response: Response) -> DurabilityError {
    match response {
        Response::Conflict { expected, actual } => {
            DurabilityError::SequenceConflict { expected, actual }
        }
        Response::Failed(message) => DurabilityError::StoreError(message),
        other => DurabilityError::StoreError(format!(
            "the haematite server answered with the wrong kind of reply: {other:?}"
        )),
    }
}

impl DurableStore for RemoteStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let request = Request::Append {
                stream: stream.to_owned(),
                payload: payload.to_vec(),
                expected_seq,
            };
            match self.call(request).await? {
                Response::Appended(sequence) => Ok(sequence),
                other => Err(mismatch(other)),
            }
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        Box::pin(async move {
            let request = Request::Read {
                stream: stream.to_owned(),
                offset,
                limit: limit as u64,
            };
            match self.call(request).await? {
                Response::Entries(entries) => Ok(entries),
                other => Err(mismatch(other)),
            }
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        Box::pin(async move {
            let request = Request::Scan {
                prefix: prefix.to_owned(),
            };
            match self.call(request).await? {
                Response::Scanned(entries) => Ok(entries),
                other => Err(mismatch(other)),
            }
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.call(Request::Flush).await? {
                Response::Flushed => Ok(()),
                other => Err(mismatch(other)),
            }
        })
    }

    /// The server is a `HaematiteStore`, whose acknowledged appends are
    /// durable on return (its docs; `tests/haematite_crash.rs`).
    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }
}
