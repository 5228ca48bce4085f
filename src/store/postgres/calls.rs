//! The statements each call runs: the set-up, the conditional insert of an
//! append, and the reads (retried once on a fresh connection).

use deadpool_postgres::Object;
use tokio::time::{Instant, timeout_at};
use tokio_postgres::types::Type;

use super::pool::{Inner, connection, settle};
use super::sql::{Read, Statements};
use crate::DurabilityError;

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

/// Checks that the server can be durable, and creates the table if it is
/// missing. An advisory lock serialises the creation, so concurrent first
/// uses from several processes do not race on the catalog (a bare
/// `CREATE TABLE IF NOT EXISTS` can fail with a unique violation then).
pub(super) async fn set_up(inner: &Inner) -> Result<(), DurabilityError> {
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
pub(super) async fn append(
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
        let seen = match i64::try_from(expected_seq) {
            Ok(sequence) => {
                let row = client
                    .query_one(&insert, &[&stream, &sequence, &payload])
                    .await?;
                if row.try_get::<_, bool>(0)? {
                    return Ok(Ok(expected_seq));
                }
                Some(row.try_get::<_, i64>(1)?)
            }
            Err(_) => None,
        };
        // A length past the expected sequence, seen by the insert's
        // snapshot, is a conflict as it stands (rows are never removed from
        // a stream's end). A shorter one may be older than a predecessor
        // committed since: read the length again in a fresh snapshot.
        let actual: i64 = match seen {
            Some(seen) if u64::try_from(seen).is_ok_and(|seen| seen > expected_seq) => seen,
            _ => client.query_one(&length, &[&stream]).await?.try_get(0)?,
        };
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

pub(super) async fn read_rows(
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
        Read::Head { stream } => {
            let statement = client
                .prepare_typed_cached(&inner.sql.head, &[Type::BYTEA])
                .await?;
            client.query(&statement, &[stream]).await
        }
        Read::Heads { limit: ..=0, .. } => Ok(Vec::new()),
        Read::Heads {
            from,
            until: Some(until),
            limit,
        } => {
            let statement = client
                .prepare_typed_cached(
                    &inner.sql.heads_range,
                    &[Type::BYTEA, Type::BYTEA, Type::INT8],
                )
                .await?;
            client.query(&statement, &[from, until, limit]).await
        }
        Read::Heads {
            from,
            until: None,
            limit,
        } => {
            let statement = client
                .prepare_typed_cached(&inner.sql.heads_from, &[Type::BYTEA, Type::INT8])
                .await?;
            client.query(&statement, &[from, limit]).await
        }
    }
}

/// Deletes the entries of `stream` below `below_seq` but its last one, and
/// returns how many rows went.
pub(super) async fn compact(
    inner: &Inner,
    client: &Object,
    stream: &[u8],
    below_seq: u64,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client
        .prepare_typed_cached(&inner.sql.compact, &[Type::BYTEA, Type::INT8])
        .await?;
    // Every sequence fits in bigint: a larger bound cuts as much as the
    // largest one.
    let below = i64::try_from(below_seq).unwrap_or(i64::MAX);
    client.execute(&statement, &[&stream, &below]).await
}

/// Runs a read, once more on a fresh connection if the first attempt fails
/// with a connection or server error (reads change nothing, so a retry is
/// always safe; a server restart or a terminated backend then costs no
/// error).
pub(super) async fn read_with_retry(
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
