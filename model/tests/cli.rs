//! The `atmostonce-model` command line: exit codes, help, and the Explorer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn model() -> Command {
    Command::new(env!("CARGO_BIN_EXE_atmostonce-model"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = model().args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_exits_0_and_reports_when_every_property_passes() {
    let (code, out, _) = run(&[
        "check",
        "--producers",
        "2",
        "--faults",
        "crash,delivery-failure",
    ]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "configuration: producers=2",
        "unique states:",
        "states/s:",
        "elapsed:",
        "HOLDS",
        "witnessed",
        "verdict: PASS",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_exits_1_and_prints_a_numbered_counterexample_on_a_violation() {
    let (code, out, _) = run(&[
        "check",
        "--producers",
        "2",
        "--faults",
        "indeterminate",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VIOLATED"), "{out}");
    assert!(out.contains("counterexample to \"S1 one winner"), "{out}");
    assert!(
        out.contains("   1. producer 0 calls claim_or_get(k0, 0 ms)"),
        "{out}"
    );
    assert!(out.contains("returns Claimed"), "{out}");
    assert!(out.contains("store: model:"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["check", "--producers", "0"][..],
        &["check", "--api", "fenced-nonexistent"],
        &["check", "--faults", "meteor"],
        &["check", "--keys", "1", "--faults", "collision"],
        &["frobnicate"],
        &[],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_the_commands_options_and_exit_codes() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "check",
        "explore",
        "--producers",
        "--faults",
        "store-crash",
        "--no-symmetry",
        "EXIT STATUS",
    ] {
        assert!(out.contains(needle), "missing {needle:?}");
    }
}

#[test]
fn explore_serves_the_explorer_page_over_loopback() {
    // A free port: bind, read the port, release it for the Explorer.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = model()
        .args([
            "explore",
            "--addr",
            &addr,
            "--producers",
            "2",
            "--faults",
            "none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        if let Ok(mut stream) = TcpStream::connect(&addr) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                .unwrap();
            let mut page = String::new();
            let _ = stream.read_to_string(&mut page);
            break Some(page);
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let states = TcpStream::connect(&addr).ok().map(|mut stream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"GET /.states HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body);
        body
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let page = page.expect("the Explorer answered on loopback");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(page.to_lowercase().contains("<html"), "{page}");
    let states = states.unwrap_or_default();
    assert!(
        states.contains("producers"),
        "the initial state is served: {states}"
    );
}
