//! The built binary's command line: its help, its errors (which name the
//! bad flag and value, exit 2), environment defaults, completions, and in
//! the madsim build a sharded sweep merged back into one verdict.

use std::path::Path;
use std::process::{Command, Output};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atmostonce-sim"));
    for variable in [
        "ATMOSTONCE_SEEDS",
        "ATMOSTONCE_SHARD",
        "ATMOSTONCE_JOBS",
        "ATMOSTONCE_FAULTS",
        "ATMOSTONCE_API",
    ] {
        command.env_remove(variable);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_help_is_generated_and_exits_0() {
    let output = run(binary().arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for expected in [
        "--seeds <A..B>",
        "--shard <K/N>",
        "ATMOSTONCE_JOBS",
        "Exit status",
        "merge",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
    let live = run(binary().args(["live", "--help"]));
    assert_eq!(live.status.code(), Some(0));
    let live_help = text(&live.stdout);
    for expected in [
        "--store <STORE>",
        "--metrics-addr <HOST:PORT>",
        "--metrics-linger <D>",
    ] {
        assert!(
            live_help.contains(expected),
            "live --help lacks {expected}:\n{live_help}"
        );
    }
}

#[test]
fn a_bad_value_exits_2_naming_the_flag_and_the_value() {
    let output = run(binary().args(["--seeds", "0..10", "--api", "fencd"]));
    assert_eq!(output.status.code(), Some(2));
    let error = text(&output.stderr);
    assert!(
        error.contains("invalid value 'fencd' for '--api <API>'"),
        "{error}"
    );
    assert!(error.contains("[possible values: fenced, seed]"), "{error}");
    let output = run(binary().args(["--seeds", "0..10", "--faults", "swarm,-gremlins"]));
    assert_eq!(output.status.code(), Some(2));
    let error = text(&output.stderr);
    assert!(
        error.contains("'--faults <SPEC>'") && error.contains("gremlins"),
        "{error}"
    );
}

#[test]
fn an_environment_default_is_checked_like_the_flag() {
    let output = run(binary()
        .args(["--seeds", "0..10"])
        .env("ATMOSTONCE_API", "sed"));
    assert_eq!(output.status.code(), Some(2));
    let error = text(&output.stderr);
    assert!(
        error.contains("'sed'") && error.contains("--api"),
        "{error}"
    );
    let output = run(binary().env("ATMOSTONCE_JOBS", "0").args(["--seed", "1"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--jobs"));
}

#[test]
fn completions_are_generated_for_bash_and_zsh() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef atmostonce-sim")] {
        let output = run(binary().args(["completions", shell]));
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = text(&output.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker}");
        assert!(
            script.contains("--seeds") && script.contains("--shard"),
            "{shell}"
        );
    }
    let output = run(binary().args(["completions", "tcsh"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("'tcsh'"));
}

#[test]
fn merge_refuses_a_file_that_is_no_summary() {
    let dir = tempdir();
    let path = dir.join("not-a-summary.json");
    std::fs::write(&path, "10 seeds, 0 failed\n").unwrap();
    let output = run(binary().arg("merge").arg(&path));
    assert_eq!(output.status.code(), Some(2));
    let error = text(&output.stderr);
    assert!(
        error.contains("not-a-summary.json line 1: not JSON"),
        "{error}"
    );
}

/// A fresh directory under the target directory, for a test's files.
fn tempdir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(madsim)]
mod simulation {
    use super::*;

    /// `--seeds 0..24 --api seed` in `count` shards, each as CI would run it.
    fn shards(dir: &Path, count: u32) -> Vec<std::path::PathBuf> {
        (1..=count)
            .map(|index| {
                let output = run(binary()
                    .args(["--seeds", "0..24", "--api", "seed", "--jobs", "1", "--json"])
                    .env("ATMOSTONCE_SHARD", format!("{index}/{count}")));
                assert!(output.status.code().is_some_and(|code| code < 2));
                assert!(
                    output.stderr.is_empty(),
                    "stderr is not a terminal: no progress bar, got {:?}",
                    text(&output.stderr)
                );
                let path = dir.join(format!("shard-{index}.json"));
                std::fs::write(&path, &output.stdout).unwrap();
                path
            })
            .collect()
    }

    fn summary(stdout: &[u8]) -> serde_json::Value {
        let last = text(stdout)
            .lines()
            .last()
            .map(str::to_owned)
            .unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&last).unwrap()["summary"].clone()
    }

    #[test]
    fn shards_merged_give_the_verdict_of_the_whole_sweep() {
        let dir = tempdir();
        let whole =
            run(binary().args(["--seeds", "0..24", "--api", "seed", "--jobs", "2", "--json"]));
        let whole = summary(&whole.stdout);
        let files = shards(&dir, 3);
        let merged = run(binary().arg("merge").arg("--json").args(&files));
        let merged_summary = summary(&merged.stdout);
        assert_eq!(
            merged.status.code(),
            whole["exit"].as_i64().map(|code| code as i32)
        );
        for field in [
            "seeds",
            "failures",
            "violations",
            "failing_seeds",
            "exempt_stale_answers",
        ] {
            assert_eq!(merged_summary[field], whole[field], "{field}");
        }
        let incomplete = run(binary().arg("merge").args(&files[..2]));
        assert_eq!(incomplete.status.code(), Some(2));
        assert!(text(&incomplete.stderr).contains("shards missing: 3/3"));
    }

    #[test]
    fn the_environment_gives_the_sweep_and_a_named_mode_overrides_it() {
        let output = run(binary()
            .args(["--api", "seed", "--jobs", "1"])
            .env("ATMOSTONCE_SEEDS", "0..3"));
        assert!(text(&output.stdout).contains("3 seeds,"));
        let output = run(binary()
            .args(["--seed", "5", "--api", "seed"])
            .env("ATMOSTONCE_SEEDS", "0..3")
            .env("ATMOSTONCE_SHARD", "1/2"));
        assert!(text(&output.stdout).contains("seed 5 (0x5)"));
    }
}
