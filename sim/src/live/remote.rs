//! Live mode's client of its haematite server (`server.rs`): a
//! `DurableStore` (as `Served`) over a small pool of loopback connections, each call
//! one [`StoreRequest`] and one [`StoreReply`] in the frames of `wire.rs`.

use parking_lot::{Mutex, MutexGuard};
use std::net::SocketAddr;
use std::time::Duration;

use atmostonce::DurabilityError;
use atmostonce::core::{StoreReply, StoreRequest};
use tokio::net::TcpStream;

use super::wire::{Response, decode, encode, read_frame, write_frame};
use atmostonce_verify::served::{ServeRequest, Served};

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

/// A [`DurableStore`](atmostonce::DurableStore) served by a
/// [`HaematiteServer`](super::server::HaematiteServer).
pub(crate) type RemoteStore = Served<RemoteClient>;

/// The client of a haematite server: one request, one reply per call.
#[derive(Debug, Default)]
pub(crate) struct RemoteClient {
    pool: Mutex<Pool>,
}

impl RemoteClient {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock()
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

    async fn call(&self, request: StoreRequest) -> Result<StoreReply, DurabilityError> {
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
            write_frame(&mut socket, &encode(&request)?).await?;
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
        let reply = decode::<Response>(&frame)
            .map_err(|error| {
                format!("the haematite server sent an answer this client cannot decode: {error}")
            })
            .and_then(|response| {
                response.map_err(|error| format!("the haematite server refused a call: {error}"))
            })
            .map_err(DurabilityError::StoreError)?;
        let mut pool = self.lock();
        if pool.server.map(|(current, _)| current) == Some(generation)
            && pool.idle.len() < MAX_IDLE_CONNECTIONS
        {
            pool.idle.push((generation, socket));
        }
        Ok(reply)
    }
}

impl ServeRequest for RemoteClient {
    fn serve(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreReply, DurabilityError>> + Send + '_ {
        self.call(request)
    }

    /// The server is a `HaematiteStore`, whose acknowledged appends are
    /// durable on return (its docs; `tests/haematite_crash.rs`).
    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "the haematite server"
    }
}
