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
//! INSERT INTO t (stream, sequence, payload, stored_ms)
//! SELECT $1, $2, $3, <now in ms>
//! WHERE $2 = 0 OR EXISTS (SELECT 1 FROM t WHERE stream = $1 AND sequence = $2 - 1)
//! ON CONFLICT (stream, sequence) DO NOTHING
//! ```
//!
//! It inserts entry `n` only if entry `n - 1` is committed (no gaps, ever:
//! rows are never deleted, so a committed predecessor stays) and no entry
//! `n` exists (the primary key; a concurrent insert of the same `n` waits
//! for the first to commit and then does nothing). Exactly one writer wins
//! each sequence, across every process sharing the database, at READ
//! COMMITTED (which the store sets for its sessions). When nothing was
//! inserted, a second query reads the stream's real length for the
//! `SequenceConflict`. If that length equals the expected sequence (the
//! predecessor committed between the insert's snapshot and the length
//! query), the insert is retried, at most [`APPEND_ATTEMPTS`] times.
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
//! # Async
//!
//! tokio-postgres needs a tokio runtime. [`PostgresStore::connect`] must be
//! called inside one; the store keeps its handle and runs every call as a
//! task on it, so the store's futures can be awaited from any executor, and
//! a call whose future is dropped still runs to its end.
//!
//! [`acknowledged_appends_are_durable`]: DurableStore::acknowledged_appends_are_durable
//! [`flush`]: DurableStore::flush

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

use super::{DurableStore, ScannedEntry, StoreFuture, StoredEntry};
use crate::DurabilityError;

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

/// Times an append runs its conditional insert. A retry happens only when
/// the insert saw no predecessor but the stream's length, read just after,
/// says the append was at the head: the predecessor committed in between.
/// The retry's fresh snapshot sees it, so the second attempt decides; the
/// third covers a server that answers oddly, then the append gives up.
pub const APPEND_ATTEMPTS: u32 = 3;

/// Times a read runs when its connection turns out to be closed (a restarted
/// server, a terminated backend): once on the pooled connection, once on a
/// fresh one. Reads change nothing, so a retry is always safe.
const READ_ATTEMPTS: u32 = 2;

/// PostgreSQL's limit on identifier length (`NAMEDATALEN - 1`).
const MAX_TABLE_NAME_BYTES: usize = 63;

/// Session settings the store relies on, passed at connection start-up:
/// durable commits, and the isolation level the append statement is
/// written for (a server default of REPEATABLE READ or SERIALIZABLE would
/// turn lost races into serialization errors).
const SESSION_OPTIONS: &str =
    r"-c synchronous_commit=on -c default_transaction_isolation=read\ committed";

/// How a [`PostgresStore`] connects and which table it uses.
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

/// A [`DurableStore`] in a PostgreSQL table. Cloning is cheap and clones
/// share the connection pool.
///
/// See the [module documentation](self) for the schema, the append
/// statement, and the durability and failure guarantees.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    sql: Statements,
    table: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.table)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The store's SQL, with the table name filled in.
struct Statements {
    append: String,
    length: String,
    read: String,
    scan_range: String,
    scan_from: String,
}

impl Statements {
    fn for_table(table: &str) -> Statements {
        let t = format!("\"{table}\"");
        Statements {
            append: format!(
                "INSERT INTO {t} (stream, sequence, payload, stored_ms) \
                 SELECT $1, $2, $3, (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                 WHERE $2 = 0 OR EXISTS \
                   (SELECT 1 FROM {t} WHERE stream = $1 AND sequence = $2 - 1) \
                 ON CONFLICT (stream, sequence) DO NOTHING"
            ),
            length: format!("SELECT COALESCE(MAX(sequence) + 1, 0) FROM {t} WHERE stream = $1"),
            read: format!(
                "SELECT sequence, payload, stored_ms FROM {t} \
                 WHERE stream = $1 AND sequence >= $2 ORDER BY sequence LIMIT $3"
            ),
            scan_range: format!(
                "SELECT stream, sequence, payload, stored_ms FROM {t} \
                 WHERE stream >= $1 AND stream < $2 ORDER BY stream, sequence"
            ),
            scan_from: format!(
                "SELECT stream, sequence, payload, stored_ms FROM {t} \
                 WHERE stream >= $1 ORDER BY stream, sequence"
            ),
        }
    }

    fn create_table(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\
               stream bytea NOT NULL, \
               sequence bigint NOT NULL CHECK (sequence >= 0), \
               payload bytea NOT NULL, \
               stored_ms bigint NOT NULL, \
               PRIMARY KEY (stream, sequence))"
        )
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
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
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
                let stream: Vec<u8> = row.try_get(0).map_err(|error| query_error(&what, &error))?;
                let entry = stored_entry(row, 1).map_err(|error| query_error(&what, &error))?;
                let stream = String::from_utf8(stream).map_err(|_| {
                    DurabilityError::StoreError(format!(
                        "postgres: {what}: table \"{}\" holds a stream name that is not UTF-8; \
                         is another program writing to it?",
                        inner.table
                    ))
                })?;
                scanned.push(ScannedEntry { stream, entry });
            }
            Ok(scanned)
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

/// Checks that the server can be durable, and creates the table if it is
/// missing. An advisory lock serialises the creation, so concurrent first
/// uses from several processes do not race on the catalog (a bare
/// `CREATE TABLE IF NOT EXISTS` can fail with a unique violation then).
async fn set_up(inner: &Inner) -> Result<(), DurabilityError> {
    let what = format!("set-up of table \"{}\"", inner.table);
    let deadline = Instant::now() + inner.call_timeout;
    let mut client = connection(inner, &what, deadline).await?;
    let outcome = timeout_at(deadline, async {
        let fsync: String = client.query_one("SHOW fsync", &[]).await?.try_get(0)?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext('atmostonce schema ' || $1::text))",
                &[&inner.table],
            )
            .await?;
        transaction
            .batch_execute(&Statements::create_table(&inner.table))
            .await?;
        transaction.commit().await?;
        Ok(fsync)
    })
    .await;
    let fsync = settle(inner, client, outcome, &what)?;
    if fsync != "on" {
        return Err(DurabilityError::ConfigError(format!(
            "the PostgreSQL server runs with fsync = {fsync}, so no commit is durable; \
             atmostonce promises that acknowledged appends survive a crash and needs \
             fsync = on"
        )));
    }
    Ok(())
}

/// The conditional insert, then the stream's real length if it inserted
/// nothing. The outer `Result` is the connection's, the inner the append's.
async fn append(
    inner: &Inner,
    client: &Object,
    stream: &[u8],
    payload: &[u8],
    expected_seq: u64,
) -> Result<Result<u64, DurabilityError>, tokio_postgres::Error> {
    let insert = client
        .prepare_typed_cached(&inner.sql.append, &[Type::BYTEA, Type::INT8, Type::BYTEA])
        .await?;
    let length = client
        .prepare_typed_cached(&inner.sql.length, &[Type::BYTEA])
        .await?;
    for _ in 0..APPEND_ATTEMPTS {
        // A sequence beyond bigint's range is ahead of every stream: it
        // conflicts without an insert.
        if let Ok(sequence) = i64::try_from(expected_seq)
            && client
                .execute(&insert, &[&stream, &sequence, &payload])
                .await?
                == 1
        {
            return Ok(Ok(expected_seq));
        }
        let actual: i64 = client.query_one(&length, &[&stream]).await?.try_get(0)?;
        // The CHECK constraint keeps sequences non-negative.
        let actual = u64::try_from(actual).unwrap_or(0);
        if actual != expected_seq {
            return Ok(Err(DurabilityError::SequenceConflict {
                expected: expected_seq,
                actual,
            }));
        }
    }
    Ok(Err(DurabilityError::StoreError(format!(
        "postgres: append to stream {:?} at sequence {expected_seq}: the conditional insert \
         did nothing {APPEND_ATTEMPTS} times although the stream's length was {expected_seq} \
         each time; nothing was appended, check table \"{}\" and its constraints",
        String::from_utf8_lossy(stream),
        inner.table
    ))))
}

/// A read-only query.
enum Read {
    /// Up to `limit` entries of `stream` from `offset` (`None`: past the end).
    Stream {
        stream: Vec<u8>,
        offset: Option<i64>,
        limit: i64,
    },
    /// Every entry of the streams in `from..until` (`until` `None`: no end).
    Prefix {
        from: Vec<u8>,
        until: Option<Vec<u8>>,
    },
}

async fn read_rows(
    inner: &Inner,
    client: &Object,
    query: &Read,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    match query {
        Read::Stream { offset: None, .. } => Ok(Vec::new()),
        Read::Stream {
            stream,
            offset: Some(offset),
            limit,
        } => {
            let statement = client
                .prepare_typed_cached(&inner.sql.read, &[Type::BYTEA, Type::INT8, Type::INT8])
                .await?;
            client.query(&statement, &[stream, offset, limit]).await
        }
        Read::Prefix {
            from,
            until: Some(until),
        } => {
            let statement = client
                .prepare_typed_cached(&inner.sql.scan_range, &[Type::BYTEA, Type::BYTEA])
                .await?;
            client.query(&statement, &[from, until]).await
        }
        Read::Prefix { from, until: None } => {
            let statement = client
                .prepare_typed_cached(&inner.sql.scan_from, &[Type::BYTEA])
                .await?;
            client.query(&statement, &[from]).await
        }
    }
}

/// Runs a read, once more on a fresh connection if the first attempt fails
/// with a connection or server error (reads change nothing, so a retry is
/// always safe; a server restart or a terminated backend then costs no
/// error).
async fn read_with_retry(
    inner: &Inner,
    query: &Read,
    what: &str,
) -> Result<Vec<tokio_postgres::Row>, DurabilityError> {
    let deadline = Instant::now() + inner.call_timeout;
    let mut attempt = 1;
    loop {
        let client = connection(inner, what, deadline).await?;
        let outcome = timeout_at(deadline, read_rows(inner, &client, query)).await;
        match outcome {
            Ok(Err(_)) if attempt < READ_ATTEMPTS => attempt += 1,
            outcome => return settle(inner, client, outcome, what),
        }
    }
}

/// A pooled connection by `deadline`, or an error saying why there is none.
async fn connection(
    inner: &Inner,
    what: &str,
    deadline: Instant,
) -> Result<Object, DurabilityError> {
    let no_connection_in_time = || {
        format!(
            "none was free or could be opened within {} ms; is the server up and \
             reachable, and is the pool large enough?",
            inner.call_timeout.as_millis()
        )
    };
    let got = timeout_at(deadline, inner.pool.get()).await;
    got.map_err(|_elapsed| no_connection_in_time())
        .and_then(|got| {
            got.map_err(|error| match &error {
                deadpool_postgres::PoolError::Backend(error) => describe(error),
                deadpool_postgres::PoolError::Timeout(_) => no_connection_in_time(),
                other => describe(other),
            })
        })
        .map_err(|why| {
            DurabilityError::StoreError(format!(
                "postgres: {what}: could not get a connection: {why}; nothing was sent"
            ))
        })
}

/// Turns what a bounded piece of work on `client` ended with into the call's
/// answer. A connection whose work timed out is discarded, not returned to
/// the pool: its request may still be in flight, and the next caller would
/// queue behind it.
fn settle<T>(
    inner: &Inner,
    client: Object,
    outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    what: &str,
) -> Result<T, DurabilityError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(query_error(what, &error)),
        Err(_elapsed) => {
            drop(Object::take(client));
            Err(DurabilityError::StoreError(format!(
                "postgres: {what}: no answer within {} ms; the outcome is unknown, re-read \
                 before deciding",
                inner.call_timeout.as_millis()
            )))
        }
    }
}

fn query_error(what: &str, error: &tokio_postgres::Error) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "postgres: {what} failed: {}; the outcome is unknown, re-read before deciding",
        describe(error)
    ))
}

/// An error and its chain of causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The entry in `row`, whose columns from `first` are sequence, payload and
/// stored_ms.
fn stored_entry(
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<StoredEntry, tokio_postgres::Error> {
    let sequence: i64 = row.try_get(first)?;
    let payload: Vec<u8> = row.try_get(first + 1)?;
    let stored_ms: i64 = row.try_get(first + 2)?;
    Ok(StoredEntry {
        payload,
        // The CHECK constraint keeps sequences non-negative; a server clock
        // before 1970 reads as 0.
        sequence: u64::try_from(sequence).unwrap_or(0),
        timestamp: u64::try_from(stored_ms).unwrap_or(0),
    })
}

/// The smallest byte string above every string that starts with `prefix`,
/// or `None` when there is none (an empty prefix, or one of 0xFF bytes,
/// which UTF-8 never contains).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut successor = prefix.to_vec();
    while let Some(last) = successor.pop() {
        if last < u8::MAX {
            successor.push(last + 1);
            return Some(successor);
        }
    }
    None
}

fn validate_table_name(table: &str) -> Result<(), DurabilityError> {
    let mut chars = table.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && table.len() <= MAX_TABLE_NAME_BYTES {
        Ok(())
    } else {
        Err(DurabilityError::ConfigError(format!(
            "postgres table name {table:?} is not allowed: use lowercase ASCII letters, digits \
             and '_', starting with a letter or '_', at most {MAX_TABLE_NAME_BYTES} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_successor_bounds_exactly_the_prefixed_strings() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn table_names_that_would_need_quoting_are_refused() {
        assert!(validate_table_name("atmostonce_entries").is_ok());
        assert!(validate_table_name("_t2").is_ok());
        for bad in ["", "Entries", "2t", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(validate_table_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
