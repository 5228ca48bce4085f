//! `--metrics-addr`: the engine's metrics (the `metrics` facade,
//! `docs/metrics.md`) served for Prometheus while a live run goes on.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the Prometheus recorder as the process's `metrics` recorder and
/// serves it over HTTP at `address` (any path answers; Prometheus asks for
/// `/metrics`) on a thread of its own, for the rest of the process.
pub fn serve(address: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .map_err(|error| format!("cannot serve the metrics at {address}: {error}"))
}
