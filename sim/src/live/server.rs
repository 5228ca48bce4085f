//! Live mode's haematite server: the store in a child process that a live
//! run can kill with SIGKILL and start again, as a crash of the process
//! hosting the store.
//!
//! The child is this same binary, run as `atmostonce-sim live-server --path
//! DIR` ([`serve`]): it opens a [`HaematiteStore`] on `DIR`, listens on a
//! loopback port, prints `listening ADDR` and answers store calls, one
//! request and one response at a time per connection, in the frames of
//! [`wire`]. It exits when its standard input closes, so it never outlives
//! the run that started it. The run's side is [`RemoteStore`], a
//! [`DurableStore`] over a small pool of connections, and
//! [`HaematiteServer`], which starts, kills and restarts the child.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atmostonce::{
    DurabilityError, DurableStore, HaematiteStore, ScannedEntry, StoreFuture, StoredEntry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::faults::lock;
use tokio::net::{TcpListener, TcpStream};

/// The bytes on the wire between the run and its haematite server.
pub(crate) mod wire {
    use atmostonce::{DurabilityError, ScannedEntry, StoredEntry};

    /// The largest frame either side accepts. A scan of a long live run's
    /// streams (every record of every key) is the largest message: a
    /// minute's run is a few MiB; 256 MiB bounds what a corrupt length can
    /// make either side allocate.
    pub(crate) const MAX_FRAME_BYTES: usize = 256 << 20;

    /// A store call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Request {
        Append {
            stream: String,
            payload: Vec<u8>,
            expected_seq: u64,
        },
        Read {
            stream: String,
            offset: u64,
            limit: u64,
        },
        Scan {
            prefix: String,
        },
        Flush,
    }

    /// A store call's answer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Response {
        Appended(u64),
        Entries(Vec<StoredEntry>),
        Scanned(Vec<ScannedEntry>),
        Flushed,
        Conflict { expected: u64, actual: u64 },
        Failed(String),
    }

    impl Response {
        /// The answer to a call that failed with `error`.
        pub(crate) fn from_error(error: &DurabilityError) -> Response {
            match error {
                DurabilityError::SequenceConflict { expected, actual } => Response::Conflict {
                    expected: *expected,
                    actual: *actual,
                },
                other => Response::Failed(other.to_string()),
            }
        }
    }

    fn put_u64(out: &mut Vec<u8>, value: u64) {
        out.extend_from_slice(&value.to_be_bytes());
    }

    fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        put_u64(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn put_entry(out: &mut Vec<u8>, entry: &StoredEntry) {
        put_bytes(out, &entry.payload);
        put_u64(out, entry.sequence);
        put_u64(out, entry.timestamp);
    }

    /// Reads fields off a frame; every read checks the frame's length.
    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn u8(&mut self) -> Option<u8> {
            let (first, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(*first)
        }

        fn u64(&mut self) -> Option<u64> {
            let bytes = self.0.get(..8)?;
            self.0 = &self.0[8..];
            Some(u64::from_be_bytes(bytes.try_into().ok()?))
        }

        fn bytes(&mut self) -> Option<Vec<u8>> {
            let len = usize::try_from(self.u64()?).ok()?;
            let bytes = self.0.get(..len)?.to_vec();
            self.0 = &self.0[len..];
            Some(bytes)
        }

        fn string(&mut self) -> Option<String> {
            String::from_utf8(self.bytes()?).ok()
        }

        fn entry(&mut self) -> Option<StoredEntry> {
            Some(StoredEntry {
                payload: self.bytes()?,
                sequence: self.u64()?,
                timestamp: self.u64()?,
            })
        }

        /// A count of items each at least `min_item_bytes` long: bounded
        /// by what the frame can hold, so a bad count allocates nothing.
        fn count(&mut self, min_item_bytes: usize) -> Option<usize> {
            let count = usize::try_from(self.u64()?).ok()?;
            (count <= self.0.len() / min_item_bytes).then_some(count)
        }

        fn end(&self) -> Option<()> {
            self.0.is_empty().then_some(())
        }
    }

    /// An entry is at least its payload's length, sequence and timestamp.
    const MIN_ENTRY_BYTES: usize = 24;

    impl Request {
        pub(crate) fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            match self {
                Request::Append {
                    stream,
                    payload,
                    expected_seq,
                } => {
                    out.push(1);
                    put_bytes(&mut out, stream.as_bytes());
                    put_bytes(&mut out, payload);
                    put_u64(&mut out, *expected_seq);
                }
                Request::Read {
                    stream,
                    offset,
                    limit,
                } => {
                    out.push(2);
                    put_bytes(&mut out, stream.as_bytes());
                    put_u64(&mut out, *offset);
                    put_u64(&mut out, *limit);
                }
                Request::Scan { prefix } => {
                    out.push(3);
                    put_bytes(&mut out, prefix.as_bytes());
                }
                Request::Flush => out.push(4),
            }
            out
        }

        pub(crate) fn decode(frame: &[u8]) -> Option<Request> {
            let mut reader = Reader(frame);
            let request = match reader.u8()? {
                1 => Request::Append {
                    stream: reader.string()?,
                    payload: reader.bytes()?,
                    expected_seq: reader.u64()?,
                },
                2 => Request::Read {
                    stream: reader.string()?,
                    offset: reader.u64()?,
                    limit: reader.u64()?,
                },
                3 => Request::Scan {
                    prefix: reader.string()?,
                },
                4 => Request::Flush,
                _ => return None,
            };
            reader.end()?;
            Some(request)
        }
    }

    impl Response {
        pub(crate) fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            match self {
                Response::Appended(sequence) => {
                    out.push(1);
                    put_u64(&mut out, *sequence);
                }
                Response::Entries(entries) => {
                    out.push(2);
                    put_u64(&mut out, entries.len() as u64);
                    entries.iter().for_each(|entry| put_entry(&mut out, entry));
                }
                Response::Scanned(entries) => {
                    out.push(3);
                    put_u64(&mut out, entries.len() as u64);
                    for scanned in entries {
                        put_bytes(&mut out, scanned.stream.as_bytes());
                        put_entry(&mut out, &scanned.entry);
                    }
                }
                Response::Flushed => out.push(4),
                Response::Conflict { expected, actual } => {
                    out.push(5);
                    put_u64(&mut out, *expected);
                    put_u64(&mut out, *actual);
                }
                Response::Failed(message) => {
                    out.push(6);
                    put_bytes(&mut out, message.as_bytes());
                }
            }
            out
        }

        pub(crate) fn decode(frame: &[u8]) -> Option<Response> {
            let mut reader = Reader(frame);
            let response = match reader.u8()? {
                1 => Response::Appended(reader.u64()?),
                2 => {
                    let count = reader.count(MIN_ENTRY_BYTES)?;
                    let entries = (0..count).map(|_| reader.entry()).collect::<Option<_>>()?;
                    Response::Entries(entries)
                }
                3 => {
                    let count = reader.count(MIN_ENTRY_BYTES + 8)?;
                    let entries = (0..count)
                        .map(|_| {
                            Some(ScannedEntry {
                                stream: reader.string()?,
                                entry: reader.entry()?,
                            })
                        })
                        .collect::<Option<_>>()?;
                    Response::Scanned(entries)
                }
                4 => Response::Flushed,
                5 => Response::Conflict {
                    expected: reader.u64()?,
                    actual: reader.u64()?,
                },
                6 => Response::Failed(reader.string()?),
                _ => return None,
            };
            reader.end()?;
            Some(response)
        }
    }
}

use wire::{MAX_FRAME_BYTES, Request, Response};

async fn write_frame(socket: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other("frame over the size limit"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    socket.write_all(&frame).await
}

async fn read_frame(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other("frame over the size limit"));
    }
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).await?;
    Ok(body)
}

/// The child's side: serves the database at `path` until standard input
/// closes. Returns the process's exit status.
pub fn serve(path: &Path) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("live-server: no tokio runtime: {error}");
            return 2;
        }
    };
    let store = match HaematiteStore::open(path) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("live-server: cannot open {}: {error}", path.display());
            return 2;
        }
    };
    // The parent holds our standard input: when it closes (the parent
    // exited, or is done with us), we stop.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    runtime.block_on(async move {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("live-server: cannot listen: {error}");
                return 2;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("listening {addr}"),
            Err(error) => {
                eprintln!("live-server: no local address: {error}");
                return 2;
            }
        }
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                // A connection that breaks just ends; the client sees it.
                let _ = connection(socket, &store).await;
            });
        }
    })
}

async fn connection(mut socket: TcpStream, store: &HaematiteStore) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    loop {
        let frame = read_frame(&mut socket).await?;
        let response = match Request::decode(&frame) {
            None => Response::Failed("live-server: a request it cannot decode".into()),
            Some(request) => answer(store, request).await,
        };
        write_frame(&mut socket, &response.encode()).await?;
    }
}

async fn answer(store: &HaematiteStore, request: Request) -> Response {
    let result = match request {
        Request::Append {
            stream,
            payload,
            expected_seq,
        } => store
            .append(&stream, &payload, expected_seq)
            .await
            .map(Response::Appended),
        Request::Read {
            stream,
            offset,
            limit,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            store
                .read_from(&stream, offset, limit)
                .await
                .map(Response::Entries)
        }
        Request::Scan { prefix } => store.scan(&prefix).await.map(Response::Scanned),
        Request::Flush => store.flush().await.map(|()| Response::Flushed),
    };
    result.unwrap_or_else(|error| Response::from_error(&error))
}

/// Longest wait for the child to say where it listens: opening a database
/// replays its WAL, which after a long run under load can take seconds.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The child process serving the store, as the run sees it.
pub(crate) struct HaematiteServer {
    exe: PathBuf,
    path: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl HaematiteServer {
    /// Starts `exe live-server --path PATH`; its standard error goes to
    /// `log`. Returns the server and the address it listens on.
    pub(crate) fn start(exe: &Path, path: &Path, log: &Path) -> Result<(Self, SocketAddr), String> {
        let mut server = HaematiteServer {
            exe: exe.to_owned(),
            path: path.to_owned(),
            log: log.to_owned(),
            child: None,
        };
        let addr = server.spawn()?;
        Ok((server, addr))
    }

    fn spawn(&mut self) -> Result<SocketAddr, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|error| format!("cannot open {}: {error}", self.log.display()))?;
        let mut child = Command::new(&self.exe)
            .arg("live-server")
            .arg("--path")
            .arg(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|error| {
                format!(
                    "cannot start the haematite server {}: {error}",
                    self.exe.display()
                )
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the haematite server has no standard output")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(SERVER_START_TIMEOUT)
            .unwrap_or_default();
        self.child = Some(child);
        line.trim()
            .strip_prefix("listening ")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| {
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                format!(
                    "the haematite server did not start (it said {line:?}); the end of its log \
                     {}:\n{}",
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
    }

    /// SIGKILLs the child and waits for it to be gone.
    pub(crate) fn kill(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|error| format!("cannot kill the haematite server: {error}"))?;
            child
                .wait()
                .map_err(|error| format!("cannot reap the haematite server: {error}"))?;
        }
        Ok(())
    }

    /// Starts the child again on the same database.
    pub(crate) fn restart(&mut self) -> Result<SocketAddr, String> {
        self.kill()?;
        self.spawn()
    }

    /// Whether the child exited by itself (a crash the run did not cause).
    pub(crate) fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "the haematite server exited by itself ({status}); see {}",
                self.log.display()
            )),
            _ => None,
        }
    }
}

impl Drop for HaematiteServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

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

#[cfg(test)]
mod tests {
    use super::wire::{Request, Response};
    use atmostonce::{ScannedEntry, StoredEntry};

    #[test]
    fn every_request_and_response_survives_the_wire() {
        let entry = StoredEntry {
            payload: b"LDE1...".to_vec(),
            sequence: 7,
            timestamp: 1_700_000_000_000,
        };
        for request in [
            Request::Append {
                stream: "sim:0a".into(),
                payload: vec![0, 1, 255],
                expected_seq: 3,
            },
            Request::Read {
                stream: "sim:0a".into(),
                offset: 2,
                limit: 256,
            },
            Request::Scan {
                prefix: "sim:".into(),
            },
            Request::Flush,
        ] {
            assert_eq!(Request::decode(&request.encode()), Some(request));
        }
        for response in [
            Response::Appended(9),
            Response::Entries(vec![entry.clone(), entry.clone()]),
            Response::Scanned(vec![ScannedEntry {
                stream: "sim:0b".into(),
                entry,
            }]),
            Response::Flushed,
            Response::Conflict {
                expected: 4,
                actual: 5,
            },
            Response::Failed("disk full".into()),
        ] {
            assert_eq!(Response::decode(&response.encode()), Some(response));
        }
    }

    #[test]
    fn truncated_trailing_or_oversized_frames_decode_to_nothing() {
        let frame = Response::Entries(vec![StoredEntry {
            payload: vec![1; 40],
            sequence: 1,
            timestamp: 2,
        }])
        .encode();
        for cut in 0..frame.len() {
            assert_eq!(Response::decode(&frame[..cut]), None, "cut at {cut}");
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(Response::decode(&longer), None);
        // A count far beyond what the frame holds allocates nothing.
        let mut huge = vec![2];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(Response::decode(&huge), None);
        assert_eq!(Request::decode(&[9]), None);
    }
}
