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
//! [`DurableStore`](atmostonce::DurableStore) over a small pool of connections, and
//! [`HaematiteServer`], which starts, kills and restarts the child.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atmostonce::HaematiteStore;
use atmostonce::core::StoreRequest;
use tokio::net::{TcpListener, TcpStream};

use super::wire::{Response, decode, encode, read_frame, write_frame};

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
        let response: Response = match decode::<StoreRequest>(&frame) {
            Err(error) => Err(format!("live-server: a request it cannot decode: {error}")),
            Ok(request) => Ok(atmostonce::execute(store, &request).await),
        };
        write_frame(&mut socket, &encode(&response)?).await?;
    }
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
