//! Crash test of `HaematiteStore`'s durability promise: an append that
//! returned `Ok` survives the writer being killed at any moment.
//!
//! This file is its own `main` (no test harness): run plainly it is the
//! parent; run with `ATMOSTONCE_CRASH_CHILD_DB` set it is the child. Each
//! iteration the parent starts the child on one database, the child appends
//! from several threads and prints `ack STREAM SEQUENCE` after each append
//! that returned `Ok`, the parent kills it with SIGKILL after a random delay,
//! reopens the database and checks that every acknowledged append is there,
//! byte for byte, and that every stream is gap-free. The database is kept
//! across iterations, so later children also write to recovered state.
//! Iterations alternate haematite's two commit policies.
//!
//! `ATMOSTONCE_CRASH_ITERATIONS` sets the number of iterations (default 8).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU64;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atmostonce::{DurableStore, HaematiteOptions, HaematiteStore};

const CHILD_DATABASE: &str = "ATMOSTONCE_CRASH_CHILD_DB";
const CHILD_POLICY: &str = "ATMOSTONCE_CRASH_CHILD_POLICY";
const ITERATIONS_VARIABLE: &str = "ATMOSTONCE_CRASH_ITERATIONS";
const DEFAULT_ITERATIONS: usize = 8;
/// Streams the child writes; each writer thread owns some of them.
const STREAMS: usize = 8;
const WRITER_THREADS: usize = 4;
/// The kill comes this long after the child's first acknowledged append.
const MAX_KILL_DELAY_MS: u64 = 400;
const MIN_KILL_DELAY_MS: u64 = 20;
/// A child that somehow outlives its parent stops by itself after this.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn main() {
    match std::env::var(CHILD_DATABASE) {
        Ok(path) => child(
            Path::new(&path),
            std::env::var(CHILD_POLICY).as_deref() == Ok("per-append"),
        ),
        Err(_) => parent(),
    }
}

fn options(per_append: bool) -> HaematiteOptions {
    HaematiteOptions::default().with_buffered_commit_bytes(if per_append {
        None
    } else {
        // Small, so that the kill also lands between tree commits.
        NonZeroU64::new(16 * 1024)
    })
}

fn stream_name(index: usize) -> String {
    format!("crash:{index}")
}

/// What the child appends at `sequence` of `stream`: recognisable, and of
/// varying size (up to ~3 KiB) so frames straddle pages.
fn payload(stream: &str, sequence: u64) -> Vec<u8> {
    let head = format!("{stream}#{sequence}|");
    let repeat = (sequence as usize * 37) % 100;
    head.repeat(repeat + 1).into_bytes()
}

fn child(path: &Path, per_append: bool) {
    let store = HaematiteStore::open_with_options(path, options(per_append))
        .unwrap_or_else(|error| panic!("child: could not open {}: {error}", path.display()));
    let stdout = Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut out = stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The parent reads whole lines only: a line cut by the kill is no claim.
        out.write_all(line.as_bytes())
            .expect("child: stdout closed");
        out.flush().expect("child: stdout closed");
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..WRITER_THREADS {
            let (store, say) = (&store, &say);
            scope.spawn(move || {
                futures::executor::block_on(async move {
                    let streams: Vec<String> = (writer..STREAMS)
                        .step_by(WRITER_THREADS)
                        .map(stream_name)
                        .collect();
                    let mut heads = Vec::new();
                    for stream in &streams {
                        let entries = store.read_from(stream, 0, usize::MAX).await.unwrap();
                        heads.push(entries.len() as u64);
                    }
                    while started.elapsed() < CHILD_LIFETIME {
                        for (stream, head) in streams.iter().zip(heads.iter_mut()) {
                            let sequence = store
                                .append(stream, &payload(stream, *head), *head)
                                .await
                                .unwrap_or_else(|error| panic!("child: append failed: {error}"));
                            say(format!("ack {stream} {sequence}\n"));
                            *head += 1;
                        }
                    }
                });
            });
        }
    });
}

/// A small xorshift generator: the kill delays need no quality, only a seed
/// that is printed so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn parent() {
    let iterations = std::env::var(ITERATIONS_VARIABLE)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let seed = std::env::var("ATMOSTONCE_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64 | 1)
        });
    println!("haematite crash test: {iterations} iterations, seed {seed} (ATMOSTONCE_CRASH_SEED)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("db");
    let mut acknowledged: BTreeSet<(String, u64)> = BTreeSet::new();
    for iteration in 0..iterations {
        let per_append = iteration % 2 == 1;
        let delay = Duration::from_millis(
            MIN_KILL_DELAY_MS + rng.below(MAX_KILL_DELAY_MS - MIN_KILL_DELAY_MS),
        );
        let new_acks = run_child_and_kill(&path, per_append, delay);
        let count = new_acks.len();
        acknowledged.extend(new_acks);
        verify(&path, &acknowledged, iteration);
        println!(
            "iteration {iteration} ({} commits): SIGKILL after {} ms, {count} new acknowledged \
             appends, all {} so far present after reopening",
            if per_append { "per-append" } else { "buffered" },
            delay.as_millis(),
            acknowledged.len()
        );
    }
    println!(
        "haematite crash test passed: {iterations} kills, {} acknowledged appends, none lost",
        acknowledged.len()
    );
}

/// Starts the child, kills it with SIGKILL `delay` after its first
/// acknowledged append, and returns the appends it acknowledged in whole
/// lines.
fn run_child_and_kill(path: &Path, per_append: bool, delay: Duration) -> Vec<(String, u64)> {
    let mut child = Command::new(std::env::current_exe().expect("the test's own path"))
        .env(CHILD_DATABASE, path)
        .env(
            CHILD_POLICY,
            if per_append { "per-append" } else { "buffered" },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the child");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (writing_tx, writing_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return acks,
                Ok(_) if !line.ends_with('\n') => return acks, // cut by the kill
                Ok(_) => {}
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ack", stream, sequence] => {
                    if acks.is_empty() {
                        let _ = writing_tx.send(());
                    }
                    acks.push(((*stream).to_owned(), sequence.parse().expect("a sequence")));
                }
                _ => panic!("the child said {line:?}"),
            }
        }
    });
    writing_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledged no append within 60 s");
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL to the child"); // Child::kill sends SIGKILL on Unix.
    let status = child.wait().expect("reaping the child");
    /// The signal `Child::kill` sends on Unix.
    const SIGKILL: i32 = 9;
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the child ended by itself ({status}) before the kill"
    );
    reader.join().expect("the reader thread")
}

fn verify(path: &Path, acknowledged: &BTreeSet<(String, u64)>, iteration: usize) {
    let store = HaematiteStore::open(path).unwrap_or_else(|error| {
        panic!("iteration {iteration}: reopening after the kill failed: {error}")
    });
    futures::executor::block_on(async {
        for index in 0..STREAMS {
            let stream = stream_name(index);
            let entries = store.read_from(&stream, 0, usize::MAX).await.unwrap();
            for (position, entry) in entries.iter().enumerate() {
                assert_eq!(
                    entry.sequence, position as u64,
                    "iteration {iteration}: stream {stream} has a gap"
                );
                assert!(
                    entry.payload == payload(&stream, entry.sequence),
                    "iteration {iteration}: {stream} #{} holds the wrong bytes",
                    entry.sequence
                );
            }
            let lost: Vec<u64> = acknowledged
                .iter()
                .filter(|(acked_stream, sequence)| {
                    *acked_stream == stream && *sequence >= entries.len() as u64
                })
                .map(|(_, sequence)| *sequence)
                .collect();
            assert!(
                lost.is_empty(),
                "iteration {iteration}: acknowledged appends of {stream} lost by the crash: \
                 sequences {lost:?} (the stream holds {})",
                entries.len()
            );
        }
    });
}
