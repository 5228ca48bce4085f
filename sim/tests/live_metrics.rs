//! Live mode's `--metrics-addr` end to end (ordinary build only): the
//! binary serves the engine's metrics over HTTP while it runs, and the
//! counters scraped at the end agree with the run's own history, as its
//! `--json` report counts it (claim decisions by kind, expiries).
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the test waits for the endpoint to answer during the run.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(60);

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_atmostonce-sim"))
}

/// A loopback address nobody listens on right now.
fn free_address() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The body of `GET /metrics` at `address` (HTTP/1.0, so the answer is
/// neither chunked nor kept alive), or `None` when nothing answers.
fn scrape(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.")
        .then(|| head.contains(" 200 "))
        .filter(|ok| *ok)
        .map(|_| body.to_owned())
}

/// The sum of every sample of counter `name` whose labels include
/// `labels`, in Prometheus's text format.
fn counter(body: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let found: BTreeMap<&str, &str> = series_labels
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key, value.trim_matches('"')))
                })
                .collect();
            let wanted = series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| found.get(key) == Some(value));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .map(|value| value as u64)
        .sum()
}

/// Kills the run when the test ends, however it ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count(report: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(report, |value, key| &value[key])
        .as_u64()
        .unwrap_or_else(|| panic!("the report has no count at {path:?}: {report}"))
}

#[test]
fn the_scraped_counters_agree_with_the_runs_history() {
    let address = free_address();
    let child = binary()
        .args([
            "live",
            "--store",
            "memory",
            "--duration",
            "3s",
            "--faults",
            "contention,latency,clock-skew",
            "--seed",
            "7",
            "--json",
            "--metrics-linger",
            "60s",
        ])
        .arg("--metrics-addr")
        .arg(address.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut run = Run(child);

    // During the run: the endpoint answers, with the engine's counters.
    let started = Instant::now();
    let during = loop {
        match scrape(address) {
            Some(body) if body.contains("atmostonce_operations_total") => break body,
            _ if started.elapsed() > SCRAPE_DEADLINE => {
                panic!("{address} served no engine metrics within {SCRAPE_DEADLINE:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };

    // The report (printed before the endpoint stops), then the final counts.
    let stdout = run.0.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the report is read");
    let report: Value = serde_json::from_str(&line)
        .unwrap_or_else(|error| panic!("the report is not JSON ({error}): {line}"));
    assert_eq!(report["verdict"], "pass", "{report}");
    let after = scrape(address).expect("the endpoint still serves after the report");

    let claims = |outcome| {
        counter(
            &after,
            "atmostonce_operations_total",
            &[("operation", "claim"), ("outcome", outcome)],
        )
    };
    let granted = count(&report, &["decisions", "claimed"]);
    assert!(granted > 0, "nothing was claimed: {report}");
    assert!(
        claims("granted")
            >= counter(
                &during,
                "atmostonce_operations_total",
                &[("operation", "claim"), ("outcome", "granted")]
            ),
        "a counter went down"
    );
    assert_eq!(claims("granted"), granted, "granted claims\n{after}");
    assert_eq!(
        claims("in_flight"),
        count(&report, &["decisions", "in_flight"]),
        "in-flight answers\n{after}"
    );
    assert_eq!(
        claims("completed"),
        count(&report, &["decisions", "completed"]),
        "completed answers\n{after}"
    );
    let expiries = count(&report, &["expiries"]);
    assert!(expiries > 0, "nothing expired: {report}");
    assert_eq!(
        counter(&after, "atmostonce_expiries_total", &[]),
        expiries,
        "expiries\n{after}"
    );
}

#[test]
fn an_address_in_use_exits_2_naming_it() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback port");
    let address = taken.local_addr().expect("its address");
    let output = binary()
        .args(["live", "--duration", "1s", "--json", "--metrics-addr"])
        .arg(address.to_string())
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "atmostonce-sim: live: --metrics-addr: cannot serve the metrics at {address}: \
             failed to create HTTP listener"
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "a run was reported");
}
