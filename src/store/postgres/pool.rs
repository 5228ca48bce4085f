//! The connection pool's side of every call: the store's shared state, a
//! pooled connection by a deadline, and how a bounded call's outcome becomes
//! the store's answer.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio::time::{Instant, timeout_at};

use super::sql::Statements;
use crate::DurabilityError;

/// What every clone of a [`PostgresStore`](super::PostgresStore) shares.
pub(super) struct Inner {
    pub(super) pool: Pool,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) sql: Statements,
    pub(super) table: String,
    pub(super) call_timeout: Duration,
}

/// A pooled connection by `deadline`, or an error saying why there is none.
pub(super) async fn connection(
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
pub(super) fn settle<T>(
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

pub(super) fn query_error(what: &str, error: &tokio_postgres::Error) -> DurabilityError {
    DurabilityError::StoreError(format!(
        "postgres: {what} failed: {}; the outcome is unknown, re-read before deciding",
        describe(error)
    ))
}

/// An error and its chain of causes, on one line.
pub(super) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
