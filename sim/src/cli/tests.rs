use super::*;
use crate::config::Shape;

fn parse_text(text: &str) -> Result<Action, clap::Error> {
    parse(std::iter::once(BINARY).chain(text.split_whitespace()))
}

fn sim(text: &str) -> Sim {
    match parse_text(text) {
        Ok(Action::Simulate(sim)) => sim,
        other => panic!("{text:?} is not a simulation: {other:?}"),
    }
}

fn live(text: &str) -> LiveArgs {
    match parse_text(text) {
        Ok(Action::Live(live)) => live,
        other => panic!("{text:?} is not live mode: {other:?}"),
    }
}

/// The error of `text`, rendered as clap prints it.
fn error(text: &str) -> String {
    match parse_text(text) {
        Err(error) => {
            assert_eq!(error.exit_code(), 2, "{text:?}: a usage error exits 2");
            error.to_string()
        }
        Ok(action) => panic!("{text:?} was accepted: {action:?}"),
    }
}

#[test]
fn a_seed_parses_in_decimal_and_hex() {
    assert_eq!(sim("--seed 42").mode, SimMode::Seed(42));
    assert_eq!(sim("--seed 0x2a").mode, SimMode::Seed(42));
    let refused = error("--seed forty");
    assert!(refused.contains("--seed <N>") && refused.contains("\"forty\" is not a seed"));
}

#[test]
fn a_sweep_parses_its_range_jobs_and_faults() {
    let cli = sim("--seeds 0..100 --jobs 2 --faults=swarm,-corruption --json");
    assert_eq!(cli.mode, SimMode::Seeds(0..100));
    assert_eq!(cli.jobs, 2);
    assert!(cli.json);
    assert_eq!(cli.faults.to_string(), "swarm,-corruption");
    assert_eq!(cli.shape, Shape::STANDARD);
    assert!(error("--seeds 5..5").contains("the range 5..5 is empty"));
    let minus = sim("--seed 1 --faults -contention");
    assert_eq!(minus.faults.to_string(), "-contention");
}

#[test]
fn no_mode_asks_for_the_help() {
    assert_eq!(parse_text("--api seed").unwrap(), Action::Help);
    let help = parse_text("--help").unwrap_err();
    assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    assert_eq!(help.exit_code(), 0);
}

#[test]
fn each_bad_value_is_refused_naming_the_flag_and_the_value() {
    let bad_api = error("--seed 1 --api fenced-ish");
    assert!(bad_api.contains("'fenced-ish'") && bad_api.contains("--api"));
    assert!(
        bad_api.contains("fenced") && bad_api.contains("seed"),
        "{bad_api}"
    );
    let bad_fault = error("--seed 1 --faults swarm,-gremlins");
    assert!(
        bad_fault.contains("--faults") && bad_fault.contains("gremlins"),
        "{bad_fault}"
    );
    let model_only = error("--seed 1 --faults delivery-failure");
    assert!(model_only.contains("delivery-failure"), "{model_only}");
    let no_jobs = error("--jobs 0 --seed 1");
    assert!(
        no_jobs.contains("--jobs") && no_jobs.contains('0'),
        "{no_jobs}"
    );
    let producers = error("--seed 1 --producers 0");
    assert!(producers.contains("--producers"), "{producers}");
    assert!(error("--seed 1 --keys 5000").contains("--keys"));
    assert!(error("--frobnicate").contains("--frobnicate"));
}

#[test]
fn conflicting_modes_and_misplaced_flags_are_refused() {
    assert!(error("--seed 1 --seeds 0..2").contains("give one of --seed, --seeds"));
    assert!(error("--seeds 0..9 --timeline x.html").contains("--timeline goes with"));
    assert!(error("--replay r.json --shrink").contains("--shrink goes with"));
    assert!(error("--seed 3 --shard 1/2").contains("--shard K/N goes with --seeds"));
    assert!(error("--seed 3 --out x.json").contains("--shrink"));
}

#[test]
fn a_shard_runs_its_block_of_the_range() {
    let cli = sim("--seeds 0..2000 --shard 2/4");
    assert_eq!(cli.mode, SimMode::Seeds(500..1000));
    assert_eq!(cli.range, Some(0..2000));
    assert_eq!(
        cli.shard.map(|shard| shard.to_string()).as_deref(),
        Some("2/4")
    );
    assert!(error("--seeds 0..10 --shard 0/4").contains("numbered from 1"));
    assert!(error("--seeds 0..10 --shard 5/4").contains("--shard <K/N>"));
}

#[test]
fn live_mode_parses_its_flags_and_refuses_faults_its_store_lacks() {
    let args = live(
        "live --store haematite --producers 4 --keys 3 --duration 90s --faults none,store-crash \
         --seed 0x10 --think-ms 5 --json --plant drop-appends",
    );
    assert_eq!(args.store, StoreKind::Haematite);
    assert_eq!((args.producers, args.keys), (4, 3));
    assert_eq!(args.duration_ms, 90_000);
    assert_eq!(
        args.faults().unwrap(),
        Some(vec![LiveFault::Contention, LiveFault::StoreCrash])
    );
    assert_eq!((args.seed, args.think_ms, args.json), (Some(16), 5, true));
    assert_eq!(args.plant, Some(Plant::DropAppends));
    let memory_crash = error("live --store memory --faults none,store-crash");
    assert!(
        memory_crash.contains("cannot inject store-crash into the memory store"),
        "{memory_crash}"
    );
    assert!(error("live --store haematite --faults disconnect").contains("disconnect"));
    let sqlite = error("live --store sqlite");
    assert!(
        sqlite.contains("'sqlite'") && sqlite.contains("--store"),
        "{sqlite}"
    );
    assert!(
        error("live --store postgres --plant wipe-on-crash")
            .contains("wipe-on-crash goes with --store memory")
    );
    assert!(error("live --plant gremlins").contains("--plant"));
    assert!(error("live --faults none,gremlins").contains("unknown live fault \"gremlins\""));
    let all = live("live --faults all,-latency --store postgres")
        .faults()
        .unwrap()
        .unwrap();
    assert!(all.contains(&LiveFault::Disconnect) && !all.contains(&LiveFault::Latency));
}

#[test]
fn a_duration_parses_by_humantime_or_as_bare_seconds() {
    assert_eq!(parse_duration_ms("60s"), Ok(60_000));
    assert_eq!(parse_duration_ms("500ms"), Ok(500));
    assert_eq!(parse_duration_ms("2m"), Ok(120_000));
    assert_eq!(parse_duration_ms("1m 30s"), Ok(90_000));
    assert_eq!(parse_duration_ms("7"), Ok(7_000));
    assert_eq!(parse_duration_ms("10s"), Ok(LIVE_DEFAULT_DURATION_MS));
    assert!(parse_duration_ms("0s").unwrap_err().contains("more than 0"));
    assert!(
        parse_duration_ms("2h")
            .unwrap_err()
            .contains("at most 60 minutes")
    );
    assert!(
        parse_duration_ms("soon")
            .unwrap_err()
            .contains("not a duration")
    );
    assert!(error("live --duration 61m").contains("--duration <D>"));
}

#[test]
fn the_default_live_faults_are_what_each_store_supports_but_the_workload_shapers() {
    assert_eq!(
        LiveFault::defaults(StoreKind::Memory),
        vec![
            LiveFault::Contention,
            LiveFault::Latency,
            LiveFault::ProducerCrash,
            LiveFault::ClockSkew,
            LiveFault::Compaction
        ]
    );
    let postgres = LiveFault::defaults(StoreKind::Postgres);
    assert!(postgres.contains(&LiveFault::Compaction));
    assert!(postgres.contains(&LiveFault::StoreCrash));
    assert!(postgres.contains(&LiveFault::Disconnect));
    assert!(!postgres.contains(&LiveFault::Collisions));
    assert_eq!(live("live").faults().unwrap(), None);
}

#[test]
fn each_build_names_the_command_for_the_mode_it_lacks() {
    assert!(ordinary_build_notice().contains("cargo sim -- "));
    assert!(madsim_build_notice().contains(
        "cargo run -p atmostonce-sim --release -- live --store memory|haematite|postgres"
    ));
    assert_eq!(
        parse_text("live-server --path /tmp/db").unwrap(),
        Action::LiveServer {
            path: PathBuf::from("/tmp/db")
        }
    );
    assert!(error("live-server").contains("--path"));
}

#[test]
fn merge_and_completions_are_subcommands() {
    assert_eq!(
        parse_text("merge a.json b.json --json").unwrap(),
        Action::Merge {
            files: vec![PathBuf::from("a.json"), PathBuf::from("b.json")],
            json: true
        }
    );
    assert!(error("merge").contains("<FILE>"));
    assert_eq!(
        parse_text("completions zsh").unwrap(),
        Action::Completions(clap_complete::Shell::Zsh)
    );
    assert!(error("completions tcsh").contains("'tcsh'"));
    let mut script = Vec::new();
    completions(clap_complete::Shell::Bash, &mut script);
    let script = String::from_utf8(script).unwrap();
    assert!(
        script.contains("--seeds") && script.contains("live"),
        "{script}"
    );
}

#[test]
fn the_help_names_every_flag_every_fault_and_the_exit_status() {
    let help = long_help();
    for flag in [
        "--seed ",
        "--seeds",
        "--replay",
        "--regressions",
        "--calibrate",
        "--faults",
        "--api",
        "--jobs",
        "--shard",
        "--check-determinism",
        "--strict-reads",
        "--json",
        "--shrink",
        "--out",
        "--timeline",
        "--history",
        "--producers",
        "--keys",
        "--ops",
        "--calibrate-seeds",
        "ATMOSTONCE_SEEDS",
        "ATMOSTONCE_JOBS",
        "ATMOSTONCE_FAULTS",
        "ATMOSTONCE_API",
        "ATMOSTONCE_SHARD",
        "Exit status",
        "merge",
        "completions",
        "--fresh-keys",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    for fault in crate::config::simulator_faults() {
        assert!(help.contains(fault.name()), "help lacks {fault}");
    }
    let mut live_help = Cli::command();
    let live_help = live_help
        .find_subcommand_mut("live")
        .map(|live| live.render_long_help().to_string())
        .unwrap_or_default();
    for flag in [
        "--store",
        "--duration",
        "--think-ms",
        "--plant",
        "--postgres-url",
        "--pg-data",
        "--pg-bin",
        "--path",
        "--fresh-keys",
    ] {
        assert!(live_help.contains(flag), "live help lacks {flag}");
    }
    for fault in LiveFault::ALL {
        assert!(
            live_help.contains(fault.name()),
            "live help lacks {}",
            fault.name()
        );
    }
    for plant in Plant::ALL {
        assert!(
            live_help.contains(plant.name()),
            "live help lacks {}",
            plant.name()
        );
    }
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}
