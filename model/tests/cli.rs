//! The `atmostonce-model` command line: exit codes, the errors that name
//! what was wrong, help, environment defaults, completions, progress, and
//! the Explorer.

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

/// Runs `args` and checks it is a usage error (exit 2) whose message
/// contains every one of `needles` and points to `--help`.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {out}{err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: {needle:?} missing in: {err}"
        );
    }
    assert!(err.contains("--help"), "{args:?}: {err}");
}

#[test]
fn a_number_out_of_range_is_refused_naming_the_flag_value_and_range() {
    assert_usage_error(
        &["check", "--producers", "0"],
        &["'0'", "--producers", "1..=6"],
    );
    assert_usage_error(
        &["check", "--producers", "7"],
        &["'7'", "--producers", "1..=6"],
    );
    assert_usage_error(&["check", "--keys", "4"], &["'4'", "--keys", "1..=3"]);
    assert_usage_error(&["check", "--bound", "5"], &["'5'", "--bound", "0..=4"]);
    assert_usage_error(&["check", "--ticks", "0"], &["'0'", "--ticks", "1..=4"]);
    assert_usage_error(&["check", "--threads", "many"], &["'many'", "--threads"]);
}

#[test]
fn an_unknown_api_is_refused_with_the_apis_listed() {
    assert_usage_error(
        &["check", "--api", "fenced-nonexistent"],
        &["'fenced-nonexistent'", "--api", "seed", "fenced"],
    );
}

#[test]
fn a_bad_fault_list_is_refused_naming_the_word_and_why() {
    assert_usage_error(
        &["check", "--faults", "meteor"],
        &["--faults", "\"meteor\"", "store-crash", "delivery-failure"],
    );
    assert_usage_error(
        &["check", "--faults", "standard,latency"],
        &["\"latency\"", "not supported by model", "simulator"],
    );
    assert_usage_error(
        &["check", "--faults", "error-applied"],
        &["error-applied and error-lost", "indeterminate"],
    );
    assert_usage_error(&["check", "--faults", "swarm"], &["swarm", "simulator"]);
}

#[test]
fn a_named_fault_the_configuration_cannot_have_is_a_usage_error() {
    assert_usage_error(
        &["check", "--keys", "1", "--faults", "collision"],
        &["--faults collisions", "not applicable", "needs --keys 2+"],
    );
    assert_usage_error(
        &["explore", "--faults", "all,collisions"],
        &["--faults collisions", "needs --keys 2+"],
    );
}

#[test]
fn all_leaves_out_a_fault_the_configuration_cannot_have_and_says_so() {
    let (code, out, err) = run(&[
        "check",
        "--producers",
        "2",
        "--faults",
        "all,-pause,-indeterminate,-store-crash,-compaction,-corruption",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("fault collisions: not applicable (needs --keys 2+), left out"),
        "{out}"
    );
    assert!(
        out.contains("faults=producer-crash,delivery-failure "),
        "{out}"
    );
    assert!(out.contains("verdict: PASS"), "{out}");
}

#[test]
fn commands_and_arguments_clap_does_not_know_are_usage_errors() {
    assert_usage_error(&["frobnicate"], &["'frobnicate'"]);
    assert_usage_error(&["check", "--frobnicate"], &["'--frobnicate'"]);
    assert_usage_error(&[], &["Usage"]);
}

#[test]
fn environment_variables_set_threads_faults_and_api_and_a_flag_wins() {
    let output = model()
        .args(["check", "--producers", "1"])
        .env("ATMOSTONCE_MODEL_API", "fenced")
        .env("ATMOSTONCE_MODEL_FAULTS", "none,store-crash")
        .env("ATMOSTONCE_MODEL_THREADS", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(2), "not a usage error: {out}");
    assert!(out.contains("api=fenced faults=store-crash "), "{out}");
    assert!(out.contains(", 1 thread(s)"), "{out}");

    let output = model()
        .args(["check", "--producers", "1", "--api", "seed"])
        .env("ATMOSTONCE_MODEL_API", "fenced")
        .env("ATMOSTONCE_MODEL_FAULTS", "none")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("api=seed faults=none "), "{out}");

    let output = model()
        .args(["check"])
        .env("ATMOSTONCE_MODEL_FAULTS", "meteor")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--faults") && err.contains("\"meteor\""),
        "{err}"
    );
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "check",
        "explore",
        "completions",
        "S1-S7",
        "standard configuration: 3 producers",
        "EXIT STATUS",
        "EXIT STATUS: 0 when every invariant holds",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_help_explains_every_flag_its_limits_and_environment() {
    let (code, out, _) = run(&["check", "--help"]);
    assert_eq!(code, 0);
    for needle in [
        "--producers",
        "(1-6;",
        "2 with --api fenced",
        "--keys",
        "(1-3)",
        "--api",
        "fenced",
        "claim_or_get",
        "--faults",
        "producer-crash",
        "store-crash",
        "indeterminate",
        "delivery-failure",
        "pause",
        "collisions",
        "(needs --keys 2+)",
        "--bound",
        "(0-4)",
        "--total-faults",
        "--ticks",
        "(1-4",
        "--no-symmetry",
        "--threads",
        "--progress",
        "ATMOSTONCE_MODEL_THREADS",
        "ATMOSTONCE_MODEL_FAULTS",
        "ATMOSTONCE_MODEL_API",
        "OUTPUT",
        "EXIT STATUS",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn completions_are_generated_for_bash_and_zsh() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef atmostonce-model"),
    ] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("--producers") && out.contains("--faults"),
            "{shell}"
        );
    }
    assert_usage_error(&["completions", "cmd.exe"], &["'cmd.exe'", "bash", "zsh"]);
}

#[test]
fn progress_is_silent_when_standard_error_is_not_a_terminal() {
    let (code, out, err) = run(&["check", "--producers", "2", "--faults", "none"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(err, "", "nothing on a piped standard error");
}

/// Runs the model under `script`, which gives it a terminal, and returns
/// what the terminal showed.
fn on_a_terminal(args: &str) -> String {
    let binary = env!("CARGO_BIN_EXE_atmostonce-model");
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{binary} {args}"))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux, Essential on Debian) runs the model on a terminal");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn progress_shows_states_rate_depth_and_elapsed_on_a_terminal() {
    // Long enough (about a second) for a few redraws.
    let screen = on_a_terminal("check --producers 3 --faults producer-crash,delivery-failure");
    assert!(screen.contains("verdict: PASS"), "{screen}");
    for needle in [
        "checking: ",
        "unique states (",
        "generated), ",
        " states/s, depth ",
    ] {
        assert!(screen.contains(needle), "missing {needle:?} in:\n{screen}");
    }
    let quiet = on_a_terminal(
        "check --producers 3 --faults producer-crash,delivery-failure --progress never",
    );
    assert!(
        quiet.contains("verdict: PASS") && !quiet.contains("checking: "),
        "{quiet}"
    );
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
