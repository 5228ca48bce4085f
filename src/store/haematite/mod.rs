//! [`HaematiteStore`]: the engine's streams in an embedded haematite database
//! (the event store the seed system ran on).
//!
//! # Durability
//!
//! An append that returned `Ok` is durable on return: haematite writes the
//! append's WAL frame and fsyncs it before its shard actor answers, under
//! both of its commit policies ([`HaematiteOptions::buffered_commit_bytes`]
//! chooses between them). So [`acknowledged_appends_are_durable`] is `true`
//! and the engine skips its flushes; [`flush`] still folds haematite's
//! buffered appends into its tree (a genuine persist, never needed for
//! safety). `tests/haematite_crash.rs` kills a writer process with SIGKILL
//! at random points and checks that every acknowledged append survives.
//! That test proves process crashes; surviving a power loss rests on the
//! fsyncs above and on a disk that honours them.
//!
//! # Concurrency
//!
//! haematite takes an exclusive lock on its directory: one process at a
//! time opens a database; a second [`HaematiteStore::open`] of the same path
//! fails with haematite's "locked" error. Inside the process every call is
//! safe from any number of tasks: each stream belongs to one single-threaded
//! shard actor, which checks the expected sequence and appends in one step,
//! so appends to a stream are linearizable.
//!
//! # Async
//!
//! haematite's API is synchronous and may block on the disk. Each call runs
//! on a small pool of threads owned by the store (see
//! [`HaematiteOptions::worker_threads`]) and is awaited through a
//! runtime-agnostic channel, so the store works under any executor and never
//! blocks one. A call whose future is dropped still runs to its end.
//!
//! [`acknowledged_appends_are_durable`]: DurableStore::acknowledged_appends_are_durable
//! [`flush`]: DurableStore::flush

mod events;
mod keys;

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use haematite::{
    ApiError, CommitPolicy, Database, DatabaseConfig, DatabaseError, EventStore, NodeCacheBudget,
    ReclaimStart, Retention, RuntimeOptions,
};

use self::events::{call_error, read_events, scan_prefix};
use self::keys::stream_key;
use super::blocking::{BlockingPool, JobLost};
use super::{DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead};
use crate::DurabilityError;

/// Default number of haematite shards (single-threaded actors) a new
/// database is created with. Appends to different shards proceed in
/// parallel; four keeps a small machine busy without a thread per core.
pub const DEFAULT_SHARD_COUNT: usize = 4;

/// Upper bound on [`HaematiteOptions::shard_count`]: each shard is an actor
/// with its own WAL file and fsyncs; past a few per core they only compete.
pub const MAX_SHARD_COUNT: usize = 256;

/// Default number of threads that wait on haematite calls. Each in-flight
/// store call occupies one; 16 lets 16 concurrent producers each have a call
/// in flight, which is what the shard actors need to batch their work.
pub const DEFAULT_WORKER_THREADS: usize = 16;

/// Upper bound on [`HaematiteOptions::worker_threads`]: more threads than
/// this only wait in line at the shard actors.
pub const MAX_WORKER_THREADS: usize = 256;

/// Default byte budget of haematite's cache of tree nodes, for the whole
/// database. haematite demands an explicit figure; 64 MiB holds the hot part
/// of a dedup store's tree (recent keys) on a small machine.
pub const DEFAULT_NODE_CACHE_BYTES: usize = 64 << 20;

/// Default staged bytes after which haematite folds buffered appends into
/// its tree. Buffered appends are as durable as per-append commits (each is
/// fsynced in the WAL before it is acknowledged); folding once per MiB
/// instead of once per append spares every record a rewrite of its tree path.
pub const DEFAULT_BUFFERED_COMMIT_BYTES: u64 = 1 << 20;

/// How long a haematite call may wait on a shard before haematite logs a
/// warning (through the `log` crate). It never bounds the wait.
const LONG_WAIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// How a [`HaematiteStore`] creates and runs its database.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaematiteOptions {
    /// Shards of a newly created database (1..=[`MAX_SHARD_COUNT`]). An
    /// existing database keeps the shard count it was created with.
    pub shard_count: usize,
    /// Threads that run haematite's blocking calls
    /// (1..=[`MAX_WORKER_THREADS`]).
    pub worker_threads: usize,
    /// Byte budget of haematite's node cache for the whole database.
    pub node_cache_bytes: usize,
    /// `Some(n)`: buffer appends in the WAL (each fsynced before it is
    /// acknowledged) and fold them into the tree every `n` staged bytes.
    /// `None`: fold every append into the tree before acknowledging it
    /// (haematite's default, slower, equally durable).
    pub buffered_commit_bytes: Option<NonZeroU64>,
}

impl Default for HaematiteOptions {
    fn default() -> Self {
        HaematiteOptions {
            shard_count: DEFAULT_SHARD_COUNT,
            worker_threads: DEFAULT_WORKER_THREADS,
            node_cache_bytes: DEFAULT_NODE_CACHE_BYTES,
            buffered_commit_bytes: NonZeroU64::new(DEFAULT_BUFFERED_COMMIT_BYTES),
        }
    }
}

impl HaematiteOptions {
    /// Sets the shard count of a newly created database.
    #[must_use]
    pub fn with_shard_count(mut self, shard_count: usize) -> Self {
        self.shard_count = shard_count;
        self
    }

    /// Sets the threads that run haematite's blocking calls.
    #[must_use]
    pub fn with_worker_threads(mut self, worker_threads: usize) -> Self {
        self.worker_threads = worker_threads;
        self
    }

    /// Sets the node cache's byte budget.
    #[must_use]
    pub fn with_node_cache_bytes(mut self, node_cache_bytes: usize) -> Self {
        self.node_cache_bytes = node_cache_bytes;
        self
    }

    /// Sets the buffered-commit threshold (`None`: commit every append).
    #[must_use]
    pub fn with_buffered_commit_bytes(mut self, buffered_commit_bytes: Option<NonZeroU64>) -> Self {
        self.buffered_commit_bytes = buffered_commit_bytes;
        self
    }
}

/// A [`DurableStore`] in a haematite database on local disk.
///
/// ```
/// use std::sync::Arc;
/// use atmostonce::{DedupCache, DedupDecision};
/// use atmostonce::store::HaematiteStore;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("dedup");
/// // Creates the database at `path`, or opens the one already there.
/// let store = Arc::new(HaematiteStore::open(&path)?);
/// let cache = DedupCache::new(store, "orders");
/// # futures::executor::block_on(async {
/// assert_eq!(cache.claim_or_get("order-17", 1_000).await?, DedupDecision::Claimed);
/// # Ok::<(), atmostonce::DurabilityError>(())
/// # })?;
/// # Ok(())
/// # }
/// ```
///
/// See the [module documentation](self) for its durability and concurrency
/// guarantees.
pub struct HaematiteStore {
    // Declared first so it drops first: joining the workers ends every call
    // before the database closes.
    pool: BlockingPool,
    shared: Arc<Shared>,
}

struct Shared {
    events: EventStore,
    /// Whether appends are buffered: haematite's stream listing then misses
    /// streams created since the last tree commit, so a scan commits first.
    buffered: bool,
    path: PathBuf,
    // Declared after `events`, so the directory is removed after the
    // database has closed.
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for HaematiteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaematiteStore")
            .field("path", &self.shared.path)
            .field("ephemeral", &self.shared._temp_dir.is_some())
            .finish_non_exhaustive()
    }
}

impl HaematiteStore {
    /// Opens the database at `path`, creating it (and the directory) if it
    /// does not exist, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<HaematiteStore, DurabilityError> {
        HaematiteStore::open_with_options(path, HaematiteOptions::default())
    }

    /// Opens or creates the database at `path` with `options`.
    pub fn open_with_options(
        path: impl AsRef<Path>,
        options: HaematiteOptions,
    ) -> Result<HaematiteStore, DurabilityError> {
        let path = path.as_ref().to_path_buf();
        let database = open_or_create(&path, options)?;
        HaematiteStore::start(database, path, None, options)
    }

    /// A database in a fresh temporary directory, removed when the store is
    /// dropped. Its writes skip fsync (haematite's ephemeral mode): they
    /// survive the death of the process but not of the machine, which is
    /// moot for a store nobody can reopen.
    pub fn ephemeral() -> Result<HaematiteStore, DurabilityError> {
        HaematiteStore::ephemeral_with_options(HaematiteOptions::default())
    }

    /// [`ephemeral`](HaematiteStore::ephemeral) with `options`.
    pub fn ephemeral_with_options(
        options: HaematiteOptions,
    ) -> Result<HaematiteStore, DurabilityError> {
        let temp_dir = tempfile::Builder::new()
            .prefix("atmostonce-haematite-")
            .tempdir()
            .map_err(|error| {
                DurabilityError::StoreError(format!(
                    "haematite: could not create a temporary directory for an ephemeral store: \
                     {error}; check that the system temporary directory is writable"
                ))
            })?;
        let path = temp_dir.path().join("db");
        let config = database_config(&path, options)?;
        let database = Database::create_ephemeral(config, runtime_options())
            .map_err(|error| open_error(&path, "create", &error))?;
        HaematiteStore::start(database, path, Some(temp_dir), options)
    }

    fn start(
        database: Database,
        path: PathBuf,
        temp_dir: Option<tempfile::TempDir>,
        options: HaematiteOptions,
    ) -> Result<HaematiteStore, DurabilityError> {
        let threads = options.worker_threads;
        if !(1..=MAX_WORKER_THREADS).contains(&threads) {
            return Err(DurabilityError::ConfigError(format!(
                "haematite worker_threads is {threads}; it must be 1..={MAX_WORKER_THREADS}"
            )));
        }
        let policy = match options.buffered_commit_bytes {
            Some(bytes) => CommitPolicy::buffered(bytes),
            None => CommitPolicy::PerAppend,
        };
        let pool = BlockingPool::new("atmostonce-haematite", threads).map_err(|error| {
            DurabilityError::StoreError(format!(
                "haematite: could not start {threads} worker threads for the store at {}: \
                 {error}",
                path.display()
            ))
        })?;
        Ok(HaematiteStore {
            pool,
            shared: Arc::new(Shared {
                events: EventStore::with_commit_policy(database, policy),
                buffered: options.buffered_commit_bytes.is_some(),
                path,
                _temp_dir: temp_dir,
            }),
        })
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs `call` against the event store on a worker thread.
    fn call<'a, T, F>(&self, what: String, call: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, DurabilityError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let answer = self.pool.run(move || call(&shared));
        Box::pin(async move {
            match answer.await {
                Ok(result) => result,
                Err(JobLost::PoolStopped) => Err(DurabilityError::StoreError(format!(
                    "haematite: {what}: the store is shutting down and did not run the call"
                ))),
                Err(JobLost::Panicked) => Err(DurabilityError::StoreError(format!(
                    "haematite: {what}: the call panicked; it may or may not have taken \
                     effect, re-read before deciding"
                ))),
            }
        })
    }
}

impl DurableStore for HaematiteStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        let key = stream_key(stream);
        let payload = payload.to_vec();
        let what = format!("append to stream {stream:?} at sequence {expected_seq}");
        self.call(what.clone(), move |shared| {
            match shared.events.append(&key, &payload, expected_seq) {
                // haematite answers with the stream's new length; the
                // contract answers with the sequence the entry got.
                Ok(next_seq) if Some(next_seq) == expected_seq.checked_add(1) => Ok(expected_seq),
                Ok(next_seq) => Err(DurabilityError::StoreError(format!(
                    "haematite: {what}: haematite reported the stream's length as \
                     {next_seq}, not {expected_seq} + 1; it broke its own contract, so the \
                     append's outcome is unknown: re-read the stream"
                ))),
                Err(ApiError::SequenceConflict(conflict)) => {
                    Err(DurabilityError::SequenceConflict {
                        expected: conflict.expected,
                        actual: conflict.actual,
                    })
                }
                Err(error) => Err(call_error(&what, &error)),
            }
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        let key = stream_key(stream);
        let what = format!("read of stream {stream:?} from sequence {offset}");
        self.call(what.clone(), move |shared| {
            read_events(&shared.events, &key, offset, limit)
                .map_err(|error| call_error(&what, &error))
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        let key_prefix = stream_key(prefix);
        let what = format!("scan of the streams under prefix {prefix:?}");
        self.call(what.clone(), move |shared| {
            if shared.buffered {
                // Every append acknowledged before this scan was queued
                // ahead of this commit on its shard, so it is listed.
                shared
                    .events
                    .flush()
                    .map_err(|error| call_error(&what, &error))?;
            }
            scan_prefix(&shared.events, &key_prefix, &what)
        })
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        let key = stream_key(stream);
        let name = stream.to_owned();
        let what = format!("head read of stream {stream:?}");
        self.call(what.clone(), move |shared| {
            events::read_head(&shared.events, &key, &name, &what)
        })
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        let key_prefix = stream_key(prefix);
        let after_key = after.map(stream_key);
        let what = format!("scan of stream heads under prefix {prefix:?} after {after:?}");
        self.call(what.clone(), move |shared| {
            if shared.buffered {
                // As for `scan`: list the streams of every acknowledged append.
                shared
                    .events
                    .flush()
                    .map_err(|error| call_error(&what, &error))?;
            }
            events::scan_heads(
                &shared.events,
                &key_prefix,
                after_key.as_deref(),
                limit,
                &what,
            )
        })
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let key = stream_key(stream);
        let what = format!("compaction of stream {stream:?} below sequence {below_seq}");
        self.call(what.clone(), move |shared| {
            events::compact(&shared.events, &key, below_seq, &what)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        let what = "flush".to_owned();
        self.call(what.clone(), move |shared| {
            shared
                .events
                .flush()
                .map_err(|error| call_error(&what, &error))
        })
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }
}

fn runtime_options() -> RuntimeOptions {
    RuntimeOptions {
        long_wait_interval: LONG_WAIT_WARNING_INTERVAL,
        reclaim_start: ReclaimStart::AtOpen,
    }
}

fn database_config(
    path: &Path,
    options: HaematiteOptions,
) -> Result<DatabaseConfig, DurabilityError> {
    if !(1..=MAX_SHARD_COUNT).contains(&options.shard_count) {
        return Err(DurabilityError::ConfigError(format!(
            "haematite shard_count is {}; it must be 1..={MAX_SHARD_COUNT}",
            options.shard_count
        )));
    }
    let budget = NodeCacheBudget::bytes(options.node_cache_bytes).map_err(|error| {
        DurabilityError::ConfigError(format!(
            "haematite node_cache_bytes is {}: {error}",
            options.node_cache_bytes
        ))
    })?;
    Ok(DatabaseConfig {
        data_dir: path.to_path_buf(),
        shard_count: options.shard_count,
        distributed: None,
        executor_threads: None,
        node_cache_budget: Some(budget),
        // Superseded tree nodes are deleted while the store runs; a dedup
        // store is written forever and must not grow by a tree path per
        // commit.
        retention: Retention::default(),
    })
}

fn open_or_create(path: &Path, options: HaematiteOptions) -> Result<Database, DurabilityError> {
    match Database::open(path, runtime_options()) {
        Ok(database) => Ok(database),
        Err(DatabaseError::ConfigRead(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            let config = database_config(path, options)?;
            Database::create(config, runtime_options())
                .map_err(|error| open_error(path, "create", &error))
        }
        Err(error) => Err(open_error(path, "open", &error)),
    }
}

fn open_error(path: &Path, verb: &str, error: &DatabaseError) -> DurabilityError {
    let hint = match error {
        DatabaseError::DataDirLocked { .. } => {
            "; another process (or another store in this process) has it open, and haematite \
             allows one writer per directory"
        }
        _ => "",
    };
    DurabilityError::StoreError(format!(
        "haematite: could not {verb} the database at {}: {error}{hint}",
        path.display()
    ))
}
