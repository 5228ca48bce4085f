//! `PostgresStore` over TLS: every `sslmode`, against a throwaway cluster
//! that serves TLS with a self-signed root (the `testpg` crate starts it
//! whatever `ATMOSTONCE_POSTGRES_URL` says, so none of these is skipped).
//! Whether a connection really is TLS is asked of the server
//! (`pg_stat_ssl`), by the `application_name` each test gives its store.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use atmostonce::{DurabilityError, DurableStore, PostgresStore, conformance};

/// A name in no certificate of the cluster (its server certificate names
/// `localhost` and `127.0.0.1`), which is never looked up: `hostaddr`
/// gives the address.
const NAME_NOT_IN_THE_CERTIFICATE: &str = "not-the-server.invalid";

fn server() -> &'static testpg::Server {
    testpg::tls_server().unwrap_or_else(|error| panic!("the TLS tests have no server: {error}"))
}

fn root_cert() -> &'static Path {
    server()
        .root_cert()
        .expect("a cluster testpg started has a root certificate")
}

/// A name no other test uses, for the store's table and its connections'
/// `application_name`.
fn fresh_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "tls_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The server's URL with `parameters` and `application_name=name` added.
fn url_with(name: &str, parameters: &str) -> String {
    format!("{}?application_name={name}&{parameters}", server().url())
}

/// Connects with `url` to a table called `name`.
async fn connect(url: &str, name: &str) -> Result<PostgresStore, DurabilityError> {
    let options = atmostonce::PostgresOptions::default().with_table(name.to_owned());
    PostgresStore::connect_with_options(url, options).await
}

async fn connected(url: &str, name: &str) -> PostgresStore {
    connect(url, name)
        .await
        .unwrap_or_else(|error| panic!("could not connect with {url}: {error}"))
}

/// Whether each connection the store named `name` holds is TLS, as the
/// server sees it (asked over a plain connection of its own).
async fn tls_of_connections(name: &str) -> Vec<bool> {
    let url = format!("{}?sslmode=disable", server().url());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("could not connect to the TLS cluster: {error}"));
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_stat_ssl can be read");
    rows.iter().map(|row| row.get(0)).collect()
}

async fn assert_all_tls(name: &str, tls: bool) {
    let connections = tls_of_connections(name).await;
    assert!(
        !connections.is_empty(),
        "the server has no connection named {name}"
    );
    assert!(
        connections.iter().all(|&is_tls| is_tls == tls),
        "connections named {name} are TLS: {connections:?}; expected all {tls}"
    );
}

/// Asserts that a store connected with `url` appends, over connections
/// that are TLS or not as `tls` says.
async fn assert_serves(url: &str, name: &str, tls: bool) {
    let store = connected(url, name).await;
    assert_eq!(store.append("s", b"x", 0).await, Ok(0));
    assert_all_tls(name, tls).await;
}

fn refused(outcome: Result<PostgresStore, DurabilityError>) -> String {
    match outcome {
        Ok(store) => panic!("the connection was accepted: {store:?}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_passes_the_conformance_suite_over_verify_full() {
    let name = fresh_name();
    let parameters = format!("sslmode=verify-full&sslrootcert={}", root_cert().display());
    let store = connected(&url_with(&name, &parameters), &name).await;
    let report = conformance::run_all(&store, "conformance").await;
    assert!(report.passed(), "{report}");
    assert_all_tls(&name, true).await;
}

/// Asserts that `mode` with the unrelated root as `sslrootcert` refuses the
/// server's certificate, as an unknown issuer.
async fn assert_another_root_is_refused_under(mode: &str) {
    let name = fresh_name();
    let unrelated = server()
        .unrelated_root_cert()
        .expect("a cluster testpg started has an unrelated root");
    let parameters = format!("sslmode={mode}&sslrootcert={}", unrelated.display());
    let error = refused(connect(&url_with(&name, &parameters), &name).await);
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{mode}: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_server_certificate_from_another_root() {
    assert_another_root_is_refused_under("verify-full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_refuses_a_server_certificate_from_another_root() {
    assert_another_root_is_refused_under("verify-ca").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_with_a_root_checks_the_chain_like_verify_ca() {
    assert_another_root_is_refused_under("require").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_without_a_root_is_tls_without_a_check() {
    let name = fresh_name();
    assert_serves(&url_with(&name, "sslmode=require"), &name, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_is_the_default_and_is_tls_when_the_server_has_it() {
    let name = fresh_name();
    let url = format!("{}?application_name={name}", server().url());
    assert_serves(&url, &name, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_is_plain() {
    let name = fresh_name();
    assert_serves(&url_with(&name, "sslmode=disable"), &name, false).await;
}

/// The server's URL with its host replaced by a name the certificate does
/// not hold, reached at the server's address through `hostaddr`.
fn url_with_a_name_not_in_the_certificate(name: &str, mode: &str) -> String {
    let url = url_with(
        name,
        &format!(
            "hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            root_cert().display()
        ),
    );
    assert!(url.contains("@127.0.0.1:"), "testpg's URL changed: {url}");
    url.replacen(
        "@127.0.0.1:",
        &format!("@{NAME_NOT_IN_THE_CERTIFICATE}:"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_hold() {
    let name = fresh_name();
    let url = url_with_a_name_not_in_the_certificate(&name, "verify-full");
    let error = refused(connect(&url, &name).await);
    assert!(
        error.contains(&format!(
            "invalid peer certificate: certificate not valid for name \
             \"{NAME_NOT_IN_THE_CERTIFICATE}\""
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_accepts_a_host_name_the_certificate_does_not_hold() {
    let name = fresh_name();
    let url = url_with_a_name_not_in_the_certificate(&name, "verify-ca");
    assert_serves(&url, &name, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sslmode_is_an_error_naming_it_and_the_accepted_ones() {
    let name = fresh_name();
    let outcome = connect(&url_with(&name, "sslmode=verify_full"), &name).await;
    assert_eq!(
        outcome.map(|_| ()),
        Err(DurabilityError::ConfigError(
            "the PostgreSQL connection string has sslmode=\"verify_full\"; the accepted values \
             are disable, prefer, require, verify-ca, verify-full"
                .to_owned()
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_a_missing_root_file_is_an_error_naming_the_path() {
    let name = fresh_name();
    let missing = root_cert().with_file_name("no-such-root.crt");
    let parameters = format!("sslmode=verify-full&sslrootcert={}", missing.display());
    let outcome = connect(&url_with(&name, &parameters), &name).await;
    assert_eq!(
        outcome.map(|_| ()),
        Err(DurabilityError::ConfigError(format!(
            "sslrootcert={} names no file; pass sslrootcert=PATH naming the PEM file of the \
             root that signed the server's certificate",
            missing.display()
        )))
    );
}
