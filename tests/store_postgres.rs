//! `PostgresStore` against a real PostgreSQL server: the conformance suite,
//! racing appends, schema creation under concurrency, failures, and the seed
//! semantics of `DedupCache` on top.
//!
//! The server is `ATMOSTONCE_POSTGRES_URL` when it is set, else a throwaway
//! cluster this test binary starts and stops (the `testpg` crate); none is
//! skipped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atmostonce::{
    DedupCache, DurabilityError, DurableStore, PostgresOptions, PostgresStore, conformance,
};

const URL_VARIABLE: &str = testpg::URL_VARIABLE;

fn server_url() -> String {
    match testpg::server() {
        Ok(server) => server.url().to_owned(),
        Err(error) => panic!("the PostgreSQL store's tests have no server: {error}"),
    }
}

/// A table no other test (or earlier run) uses, so every test also
/// exercises the schema's creation.
fn fresh_table() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "test_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect_to(url: &str, table: &str) -> PostgresStore {
    let options = PostgresOptions::default().with_table(table.to_owned());
    PostgresStore::connect_with_options(url, options)
        .await
        .unwrap_or_else(|error| {
            panic!("could not use the PostgreSQL server at {URL_VARIABLE}={url}: {error}")
        })
}

async fn store() -> PostgresStore {
    connect_to(&server_url(), &fresh_table()).await
}

/// A plain client on the test server, for checking what the store wrote.
async fn raw_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("could not connect to {URL_VARIABLE}: {error}"));
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_passes_the_conformance_suite() {
    let store = store().await;
    let report = conformance::run_all(&store, "conformance").await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_tasks_leave_no_gap_duplicate_or_lost_append() {
    let store = store().await;
    let (acked, lost_races) =
        common::racing_appends_leave_no_gap_duplicate_or_lost_append(Arc::new(store), "race").await;
    assert!(
        lost_races > 0,
        "{acked} appends raced without a single conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_stay_correct_when_the_server_defaults_to_serializable() {
    // The store sets READ COMMITTED for its sessions; without that, lost
    // races would come back as serialization errors, which the race check
    // reports as failures.
    let url = server_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{separator}options=-c%20default_transaction_isolation%3Dserializable%20-c%20synchronous_commit%3Doff"
    );
    let store = connect_to(&url, &fresh_table()).await;
    common::racing_appends_leave_no_gap_duplicate_or_lost_append(Arc::new(store), "race").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_using_a_new_table_at_once_create_it_once() {
    let url = server_url();
    let table = fresh_table();
    let connects: Vec<_> = (0..8)
        .map(|_| {
            let (url, table) = (url.clone(), table.clone());
            tokio::spawn(async move { connect_to(&url, &table).await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.expect("a connecting task panicked"));
    }
    for (index, store) in stores.iter().enumerate() {
        assert_eq!(
            store.append("shared", b"x", index as u64).await,
            Ok(index as u64)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_ahead_of_the_stream_is_refused_not_inserted_as_a_gap() {
    let store = store().await;
    store.append("s", b"0", 0).await.unwrap();
    assert_eq!(
        store.append("s", b"5", 5).await,
        Err(DurabilityError::SequenceConflict {
            expected: 5,
            actual: 1
        })
    );
    assert_eq!(
        store.append("fresh", b"3", 3).await,
        Err(DurabilityError::SequenceConflict {
            expected: 3,
            actual: 0
        })
    );
    assert_eq!(
        store.append("s", b"huge", u64::MAX).await,
        Err(DurabilityError::SequenceConflict {
            expected: u64::MAX,
            actual: 1
        })
    );
    let rows = raw_client()
        .await
        .query(
            &format!(
                "SELECT sequence FROM \"{}\" ORDER BY stream, sequence",
                store.table()
            ),
            &[],
        )
        .await
        .unwrap();
    let sequences: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(sequences, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_carry_the_server_clock_in_milliseconds() {
    let store = store().await;
    let before = atmostonce::wall_clock_millis();
    store.append("s", b"a", 0).await.unwrap();
    let entry = &store.read_from("s", 0, 1).await.unwrap()[0];
    let after = atmostonce::wall_clock_millis();
    // The server is on this machine: its clock is ours, give or take a second.
    assert!(
        (before - 1_000..=after + 1_000).contains(&entry.timestamp),
        "timestamp {} outside {before}..={after}",
        entry.timestamp
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_recover_from_terminated_connections() {
    let store = store().await;
    store.append("s", b"a", 0).await.unwrap();
    store.read_from("s", 0, 1).await.unwrap();
    let admin = raw_client().await;
    let terminated: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'atmostonce' AND pid <> pg_backend_pid() \
             AND query LIKE '%' || $1 || '%') AS killed",
            &[&store.table()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(terminated > 0, "no connection of the store was terminated");
    // Let the clients see their connections close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.read_from("s", 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.scan("s").await.unwrap().len(), 1);
}

/// Takes an exclusive lock on `table` in an open transaction of `client`,
/// so that the store's statements on it wait.
async fn lock_table(client: &tokio_postgres::Client, table: &str) {
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
}

/// Waits until a backend of the store waits for a lock on `table`, and
/// returns its pid.
async fn backend_waiting_for_a_lock(admin: &tokio_postgres::Client, table: &str) -> i32 {
    for _ in 0..200 {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'atmostonce' \
                 AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
                &[&table],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no backend of the store waited for the lock within 2 s");
}

/// Waits until backend `pid` runs no statement any more.
async fn backend_done(admin: &tokio_postgres::Client, pid: i32) {
    for _ in 0..500 {
        let running: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backend {pid} still ran its statement 5 s after the lock was released");
}

/// After an indeterminate append at `sequence`, the stream holds 0..len with
/// len = `sequence` or `sequence + 1`, and the store appends at its head.
async fn stream_is_whole_and_writable(store: &PostgresStore, stream: &str, sequence: u64) {
    let entries = store.read_from(stream, 0, 100).await.unwrap();
    let length = entries.len() as u64;
    assert!(
        length == sequence || length == sequence + 1,
        "after an indeterminate append at {sequence} the stream holds {length} entries"
    );
    assert_eq!(store.append(stream, b"after", length).await, Ok(length));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_times_out_is_an_indeterminate_store_error() {
    let options = PostgresOptions::default()
        .with_table(fresh_table())
        .with_call_timeout(Duration::from_millis(500));
    let store = PostgresStore::connect_with_options(&server_url(), options)
        .await
        .unwrap();
    store.append("s", b"0", 0).await.unwrap();
    let locker = raw_client().await;
    lock_table(&locker, store.table()).await;
    let appending = {
        let store = store.clone();
        tokio::spawn(async move { store.append("s", b"1", 1).await })
    };
    let admin = raw_client().await;
    let pid = backend_waiting_for_a_lock(&admin, store.table()).await;
    match appending.await.unwrap() {
        Err(DurabilityError::StoreError(message)) => {
            assert!(message.contains("no answer within 500 ms"), "{message}");
        }
        other => panic!("an append blocked past its timeout gave {other:?}"),
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    // The server does not notice the client gave up while its statement
    // waits for the lock: the insert runs once the lock is free, and may
    // land after the caller was told "indeterminate". Judge the stream
    // once that statement has ended.
    backend_done(&admin, pid).await;
    stream_is_whole_and_writable(&store, "s", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_during_an_append_is_an_indeterminate_store_error() {
    let store = store().await;
    store.append("s", b"0", 0).await.unwrap();
    let locker = raw_client().await;
    lock_table(&locker, store.table()).await;
    let appending = {
        let store = store.clone();
        tokio::spawn(async move { store.append("s", b"1", 1).await })
    };
    let admin = raw_client().await;
    let pid = backend_waiting_for_a_lock(&admin, store.table()).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    match appending.await.unwrap() {
        Err(error @ DurabilityError::StoreError(_)) => assert!(error.is_indeterminate()),
        other => panic!("an append whose connection was terminated gave {other:?}"),
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    stream_is_whole_and_writable(&store, "s", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_store_error_naming_the_problem() {
    // Port 1 on the loopback has no PostgreSQL server.
    let options = PostgresOptions::default().with_call_timeout(Duration::from_secs(2));
    match PostgresStore::connect_with_options("postgres://nobody@127.0.0.1:1/none", options).await {
        Err(DurabilityError::StoreError(message)) => {
            assert!(message.contains("could not get a connection"), "{message}");
        }
        other => panic!("connecting to a closed port gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused_before_connecting() {
    for table in ["Robert'); DROP TABLE students;--", "", "UPPER"] {
        let options = PostgresOptions::default().with_table(table.to_owned());
        assert!(matches!(
            PostgresStore::connect_with_options(&server_url(), options).await,
            Err(DurabilityError::ConfigError(_))
        ));
    }
    assert!(matches!(
        PostgresStore::connect("not a connection string =").await,
        Err(DurabilityError::ConfigError(_))
    ));
    for call_timeout in [Duration::ZERO, Duration::MAX] {
        let options = PostgresOptions::default()
            .with_table(fresh_table())
            .with_call_timeout(call_timeout);
        assert!(matches!(
            PostgresStore::connect_with_options(&server_url(), options).await,
            Err(DurabilityError::ConfigError(_))
        ));
    }
}

#[test]
fn connecting_outside_a_tokio_runtime_is_a_config_error_not_a_panic() {
    let outcome = futures::executor::block_on(PostgresStore::connect(&server_url()));
    assert!(matches!(outcome, Err(DurabilityError::ConfigError(_))));
}

#[test]
fn the_store_serves_callers_on_any_executor() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(store());
    futures::executor::block_on(async {
        assert_eq!(store.append("s", b"a", 0).await, Ok(0));
        assert_eq!(store.read_from("s", 0, 10).await.unwrap().len(), 1);
    });
}

async fn cache() -> DedupCache {
    DedupCache::new(Arc::new(store().await), "orders")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_key_answers_duplicates_with_its_receipt() {
    common::a_completed_key_answers_duplicates_with_its_receipt(&cache().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_key_can_be_claimed_again_and_receipts_survive_release() {
    common::a_released_key_can_be_claimed_again_and_receipts_survive_release(&cache().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_old_entries_and_keeps_young_ones() {
    common::the_sweeper_expires_old_entries_and_keeps_young_ones(&cache().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_key_grant_it_once() {
    common::concurrent_claims_of_one_key_grant_it_once(&cache().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fenced_api_keeps_its_promises_on_postgres() {
    let store: Arc<dyn DurableStore> = Arc::new(store().await);
    common::fenced::the_fenced_api_keeps_its_promises_on(store).await;
}
