//! [`PostgresStore`]: the engine's streams in a PostgreSQL table, shared by
//! producers in any number of processes on any number of machines.
//!
//! # Schema
//!
//! One table (default `atmostonce_entries`), created on first use:
//!
//! ```sql
//! CREATE TABLE atmostonce_entries (
//!     stream    bytea  NOT NULL,             -- the stream name, UTF-8
//!     sequence  bigint NOT NULL CHECK (sequence >= 0),
//!     payload   bytea  NOT NULL,
//!     stored_ms bigint NOT NULL,             -- the server's clock
//!     PRIMARY KEY (stream, sequence)
//! );
//! ```
//!
//! Stream names are `bytea`, not `text`: `bytea` compares byte by byte
//! whatever the database's collation, so the primary key's index orders
//! streams exactly as the contract does and serves a prefix scan as the
//! range `prefix <= stream < successor(prefix)` (no `LIKE`, no wildcards to
//! escape), and any Rust string, NUL included, is a valid name.
//!
//! # Appends
//!
//! An append is one statement, in autocommit:
//!
//! ```sql
//! WITH inserted AS (
//!   INSERT INTO t (stream, sequence, payload, stored_ms)
//!   SELECT $1, $2, $3, <now in ms>
//!   WHERE CASE WHEN $2 = 0 THEN NOT EXISTS (SELECT 1 FROM t WHERE stream = $1)
//!         ELSE EXISTS (SELECT 1 FROM t WHERE stream = $1 AND sequence = $2 - 1) END
//!   ON CONFLICT (stream, sequence) DO NOTHING RETURNING sequence)
//! SELECT EXISTS (SELECT 1 FROM inserted),
//!        (SELECT COALESCE(MAX(sequence) + 1, 0) FROM t WHERE stream = $1)
//! ```
//!
//! It inserts entry `n` only if entry `n - 1` is committed (no gaps, ever:
//! only compaction deletes rows, and never a stream's last one, so a
//! committed predecessor stays; entry 0 only into an empty stream, since a
//! compacted stream has no entry 0 left to conflict with) and no entry
//! `n` exists (the primary key; a concurrent insert of the same `n` waits
//! for the first to commit and then does nothing). Exactly one writer wins
//! each sequence, across every process sharing the database, at READ
//! COMMITTED (which the store sets for its sessions). When nothing was
//! inserted, the same statement's second column is the stream's length in
//! the insert's snapshot: past the expected sequence, that is the
//! `SequenceConflict` (one round trip, the common conflict: a claim's guess
//! of a new key that is not new). Otherwise a second query reads the
//! stream's length in a fresh snapshot. If that length equals the expected
//! sequence (the predecessor committed after the insert's snapshot), the
//! insert is retried, at most [`APPEND_ATTEMPTS`] times.
//!
//! # Durability
//!
//! The store's sessions run with `synchronous_commit = on`, so an append
//! that returned `Ok` was committed and its WAL record flushed to disk (and
//! to the synchronous standbys, if the server has any) before the server
//! answered: acknowledged appends are durable on return,
//! [`acknowledged_appends_are_durable`] is `true` and [`flush`] has nothing
//! left to do. That holds only if the server runs with `fsync = on` (its
//! default); [`PostgresStore::connect`] refuses a server with `fsync = off`.
//!
//! # Failures
//!
//! A dropped connection, a server error or a call that exceeds
//! [`PostgresOptions::call_timeout`] is a [`DurabilityError::StoreError`],
//! which is indeterminate: the append may or may not have committed. A read
//! that fails (typically on a pooled connection that a server restart or
//! `pg_terminate_backend` closed) is retried once on another connection;
//! reads change nothing, so the retry is safe. Closed connections leave the
//! pool when next handed out, so the store recovers by itself once the
//! server is back.
//!
//! # TLS
//!
//! `sslmode` and `sslrootcert` in the connection string mean what they mean
//! to libpq: `disable`, `prefer` (the default), `require`, `verify-ca` and
//! `verify-full`, over rustls (see `tls.rs` and the README's "TLS to
//! PostgreSQL").
//!
//! # Async
//!
//! tokio-postgres needs a tokio runtime. [`PostgresStore::connect`] must be
//! called inside one; the store keeps its handle and runs every call as a
//! task on it, so the store's futures can be awaited from any executor, and
//! a call whose future is dropped still runs to its end.
//!
//! [`acknowledged_appends_are_durable`]: DurableStore::acknowledged_appends_are_durable
//! [`flush`]: DurableStore::flush

mod calls;
mod pool;
mod sql;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tls::TlsSettings;
use tokio::time::{Instant, timeout_at};
use tokio_postgres::NoTls;

use super::{DurableStore, ScannedEntry, ScannedHead, StoreFuture, StoredEntry, StreamHead};
use crate::DurabilityError;
use calls::{append, compact, read_with_retry, set_up};
use pool::{Inner, connection, describe, query_error, settle};
use sql::{Read, Statements, prefix_successor, stored_entry, validate_table_name};

pub use calls::APPEND_ATTEMPTS;

/// The table the store uses unless told otherwise.
pub const DEFAULT_TABLE: &str = "atmostonce_entries";

/// Default number of pooled connections. One per concurrent store call; 16
/// serves 16 concurrent producers without queueing and stays far below
/// PostgreSQL's default `max_connections` (100).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Upper bound on [`PostgresOptions::pool_size`]: each connection is a
/// server process, and more than this exhausts a default server.
pub const MAX_POOL_SIZE: usize = 1024;

/// Default bound on one store call, including the wait for a pooled
/// connection and for a new connection. Long enough for a loaded server's
/// fsync, short enough that a dead server surfaces as an error.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on [`PostgresOptions::call_timeout`]. A call that may take
/// longer than an hour is a hung call; the bound also keeps deadline
/// arithmetic far from overflow.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Session settings the store relies on, passed at connection start-up:
/// durable commits, and the isolation level the append statement is
/// written for (a server default of REPEATABLE READ or SERIALIZABLE would
/// turn lost races into serialization errors).
const SESSION_OPTIONS: &str =
    r"-c synchronous_commit=on -c default_transaction_isolation=read\ committed";

/// How a [`PostgresStore`] connects and which table it uses.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The table holding the streams: lowercase ASCII letters, digits and
    /// `_`, starting with a letter or `_`, at most 63 bytes. Created if
    /// missing. Stores that share a table share their streams.
    pub table: String,
    /// Pooled connections (1..=[`MAX_POOL_SIZE`]).
    pub pool_size: usize,
    /// Bound on one store call, from the call to its answer: waiting for a
    /// pooled connection (or opening one) and every statement it runs
    /// (more than zero, at most [`MAX_CALL_TIMEOUT`]).
    pub call_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            table: DEFAULT_TABLE.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl PostgresOptions {
    /// Sets the table.
    #[must_use]
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Sets the number of pooled connections.
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Sets the bound on one store call.
    #[must_use]
    pub fn with_call_timeout(mut self, call_timeout: Duration) -> Self {
        self.call_timeout = call_timeout;
        self
    }
}

/// A [`DurableStore`] in a PostgreSQL table. Cloning is cheap and clones
/// share the connection pool.
///
/// See the [module documentation](self) for the schema, the append
/// statement, and the durability and failure guarantees.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.table)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the server at `url` (a `postgres://` URL or a
    /// `key=value` connection string) with default options, and creates
    /// the table if it is missing. Must be called inside a tokio runtime.
    pub async fn connect(url: &str) -> Result<PostgresStore, DurabilityError> {
        PostgresStore::connect_with_options(url, PostgresOptions::default()).await
    }

    /// [`connect`](PostgresStore::connect) with `options`.
    pub async fn connect_with_options(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, DurabilityError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            DurabilityError::ConfigError(
                "PostgresStore::connect must be called inside a tokio runtime; the store runs \
                 its connections on that runtime"
                    .to_owned(),
            )
        })?;
        validate_table_name(&options.table)?;
        if !(1..=MAX_POOL_SIZE).contains(&options.pool_size) {
            return Err(DurabilityError::ConfigError(format!(
                "postgres pool_size is {}; it must be 1..={MAX_POOL_SIZE}",
                options.pool_size
            )));
        }
        if options.call_timeout.is_zero() || options.call_timeout > MAX_CALL_TIMEOUT {
            return Err(DurabilityError::ConfigError(format!(
                "postgres call_timeout is {} ms; it must be more than 0 and at most {} ms",
                options.call_timeout.as_millis(),
                MAX_CALL_TIMEOUT.as_millis()
            )));
        }
        let (tls, url) = TlsSettings::split_from(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            DurabilityError::ConfigError(format!(
                "the PostgreSQL connection string is invalid ({}); pass a postgres:// URL or \
                 a key=value string",
                describe(&error)
            ))
        })?;
        let session_options = match config.get_options() {
            Some(theirs) => format!("{theirs} {SESSION_OPTIONS}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(session_options);
        config.connect_timeout(options.call_timeout);
        if config.get_application_name().is_none() {
            config.application_name("atmostonce");
        }
        config.ssl_mode(tls.mode.on_the_wire());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls.connector()? {
            Some(connector) => Manager::from_config(config, connector, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.call_timeout))
            .create_timeout(Some(options.call_timeout))
            .recycle_timeout(Some(options.call_timeout))
            .build()
            .map_err(|error| {
                DurabilityError::ConfigError(format!(
                    "could not build the PostgreSQL connection pool: {error}"
                ))
            })?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                runtime,
                sql: Statements::for_table(&options.table),
                table: options.table,
                call_timeout: options.call_timeout,
            }),
        };
        let inner = Arc::clone(&store.inner);
        store
            .spawn("set-up".to_owned(), async move { set_up(&inner).await })
            .await?;
        Ok(store)
    }

    /// The table holding the streams.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Runs `work` as a task on the store's runtime, bounded by the call
    /// timeout (the work itself also bounds the part that talks to the
    /// server, so that a timed-out connection is discarded, not reused).
    fn spawn<'a, T, F>(&self, what: String, work: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, DurabilityError>> + Send + 'static,
    {
        let task = self.inner.runtime.spawn(work);
        Box::pin(async move {
            match task.await {
                Ok(result) => result,
                Err(error) => Err(DurabilityError::StoreError(format!(
                    "postgres: {what}: the call's task {}; the outcome is unknown, re-read \
                     before deciding",
                    if error.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled (is the runtime shutting down?)"
                    }
                ))),
            }
        })
    }
}

impl DurableStore for PostgresStore {
    fn append<'a>(
        &'a self,
        stream: &'a str,
        payload: &'a [u8],
        expected_seq: u64,
    ) -> StoreFuture<'a, u64> {
        let inner = Arc::clone(&self.inner);
        let what = format!("append to stream {stream:?} at sequence {expected_seq}");
        let stream = stream.as_bytes().to_vec();
        let payload = payload.to_vec();
        self.spawn(what.clone(), async move {
            let deadline = Instant::now() + inner.call_timeout;
            let client = connection(&inner, &what, deadline).await?;
            let outcome = timeout_at(
                deadline,
                append(&inner, &client, &stream, &payload, expected_seq),
            )
            .await;
            settle(&inner, client, outcome, &what)?
        })
    }

    fn read_from<'a>(
        &'a self,
        stream: &'a str,
        offset: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<StoredEntry>> {
        let inner = Arc::clone(&self.inner);
        let what = format!("read of stream {stream:?} from sequence {offset}");
        let query = Read::Stream {
            stream: stream.as_bytes().to_vec(),
            // An offset beyond bigint's range is past the end of every
            // stream; a limit beyond it is no limit.
            offset: i64::try_from(offset).ok(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        self.spawn(what.clone(), async move {
            let rows = read_with_retry(&inner, &query, &what).await?;
            rows.iter()
                .map(|row| stored_entry(row, 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| query_error(&what, &error))
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<ScannedEntry>> {
        let inner = Arc::clone(&self.inner);
        let what = format!("scan of the streams under prefix {prefix:?}");
        let query = Read::Prefix {
            from: prefix.as_bytes().to_vec(),
            until: prefix_successor(prefix.as_bytes()),
        };
        self.spawn(what.clone(), async move {
            let rows = read_with_retry(&inner, &query, &what).await?;
            let mut scanned = Vec::with_capacity(rows.len());
            for row in &rows {
                let stream = stream_of(&inner, row, &what)?;
                let entry = stored_entry(row, 1).map_err(|error| query_error(&what, &error))?;
                scanned.push(ScannedEntry { stream, entry });
            }
            Ok(scanned)
        })
    }

    fn read_head<'a>(&'a self, stream: &'a str) -> StoreFuture<'a, StreamHead> {
        let inner = Arc::clone(&self.inner);
        let what = format!("head read of stream {stream:?}");
        let name = stream.to_owned();
        let query = Read::Head {
            stream: stream.as_bytes().to_vec(),
        };
        self.spawn(what.clone(), async move {
            let rows = read_with_retry(&inner, &query, &what).await?;
            match rows.first() {
                None => Ok(StreamHead::default()),
                Some(row) => {
                    let last = stored_entry(row, 0).map_err(|error| query_error(&what, &error))?;
                    StreamHead::of_last(&name, last)
                }
            }
        })
    }

    fn scan_heads<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ScannedHead>> {
        let inner = Arc::clone(&self.inner);
        let what = format!("scan of stream heads under prefix {prefix:?} after {after:?}");
        let query = Read::Heads {
            from: heads_start(prefix, after),
            until: prefix_successor(prefix.as_bytes()),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        self.spawn(what.clone(), async move {
            let rows = read_with_retry(&inner, &query, &what).await?;
            let mut heads = Vec::with_capacity(rows.len());
            for row in &rows {
                let stream = stream_of(&inner, row, &what)?;
                let last = stored_entry(row, 1).map_err(|error| query_error(&what, &error))?;
                heads.push(ScannedHead::of_last(stream, last)?);
            }
            Ok(heads)
        })
    }

    fn compact<'a>(&'a self, stream: &'a str, below_seq: u64) -> StoreFuture<'a, u64> {
        let inner = Arc::clone(&self.inner);
        let what = format!("compaction of stream {stream:?} below sequence {below_seq}");
        let stream = stream.as_bytes().to_vec();
        self.spawn(what.clone(), async move {
            let deadline = Instant::now() + inner.call_timeout;
            let client = connection(&inner, &what, deadline).await?;
            let outcome = timeout_at(deadline, compact(&inner, &client, &stream, below_seq)).await;
            settle(&inner, client, outcome, &what)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Every acknowledged append was committed with synchronous_commit
        // on: it is durable already.
        Box::pin(std::future::ready(Ok(())))
    }

    fn acknowledged_appends_are_durable(&self) -> bool {
        true
    }
}

/// The stream name in a row's first column.
fn stream_of(
    inner: &Inner,
    row: &tokio_postgres::Row,
    what: &str,
) -> Result<String, DurabilityError> {
    let stream: Vec<u8> = row.try_get(0).map_err(|error| query_error(what, &error))?;
    String::from_utf8(stream).map_err(|_| {
        DurabilityError::StoreError(format!(
            "postgres: {what}: table \"{}\" holds a stream name that is not UTF-8; is another \
             program writing to it?",
            inner.table
        ))
    })
}

/// The smallest stream name a page of heads under `prefix` after `after`
/// may hold: the prefix, or the name just above `after` (`after` with a NUL
/// byte appended) when that is greater.
fn heads_start(prefix: &str, after: Option<&str>) -> Vec<u8> {
    match after {
        Some(after) if after >= prefix => {
            let mut start = after.as_bytes().to_vec();
            start.push(0);
            start
        }
        _ => prefix.as_bytes().to_vec(),
    }
}
