use super::*;

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn a_seed_parses_in_decimal_and_hex() {
    assert_eq!(parse(&args("--seed 42")).unwrap().mode, Mode::Seed(42));
    assert_eq!(parse(&args("--seed 0x2a")).unwrap().mode, Mode::Seed(42));
    assert!(parse(&args("--seed forty")).is_err());
}

#[test]
fn a_sweep_parses_its_range_jobs_and_faults() {
    let cli = parse(&args(
        "--seeds 0..100 --jobs 2 --faults=swarm,-corruption --json",
    ))
    .unwrap();
    assert_eq!(cli.mode, Mode::Seeds(0..100));
    assert_eq!(cli.jobs, 2);
    assert!(cli.json);
    assert_eq!(cli.faults.to_string(), "swarm,-corruption");
    assert!(parse(&args("--seeds 5..5")).is_err());
}

#[test]
fn conflicting_or_unknown_arguments_are_refused() {
    assert!(parse(&args("--seed 1 --seeds 0..2")).is_err());
    assert!(parse(&args("--frobnicate")).is_err());
    assert!(parse(&args("--api fenced-ish")).is_err());
    assert!(parse(&args("--seeds 0..9 --timeline x.html")).is_err());
    assert!(parse(&args("--jobs 0 --seed 1")).is_err());
}

#[test]
fn live_mode_parses_its_flags_and_refuses_faults_its_store_lacks() {
    let cli = parse(&args(
        "live --store haematite --producers 4 --keys 3 --duration 90s --faults none,store-crash \
         --seed 0x10 --think-ms 5 --json --plant drop-appends",
    ))
    .unwrap();
    let Mode::Live(live) = cli.mode else {
        panic!("not live mode: {:?}", cli.mode)
    };
    assert_eq!(live.store, StoreKind::Haematite);
    assert_eq!((live.producers, live.keys), (4, 3));
    assert_eq!(live.duration_ms, 90_000);
    assert_eq!(
        live.faults,
        Some(vec![LiveFault::Contention, LiveFault::StoreCrash])
    );
    assert_eq!((live.seed, live.think_ms, live.json), (Some(16), 5, true));
    assert_eq!(live.plant, Some(Plant::DropAppends));
    assert!(parse(&args("live --store memory --faults none,store-crash")).is_err());
    assert!(parse(&args("live --store haematite --faults disconnect")).is_err());
    assert!(parse(&args("live --store sqlite")).is_err());
    assert!(parse(&args("live --store postgres --plant wipe-on-crash")).is_err());
    let Mode::Live(all) = parse(&args("live --faults all,-latency --store postgres"))
        .unwrap()
        .mode
    else {
        panic!("not live mode")
    };
    let all = all.faults.unwrap();
    assert!(all.contains(&LiveFault::Disconnect) && !all.contains(&LiveFault::Latency));
}

#[test]
fn a_duration_parses_in_seconds_milliseconds_and_minutes() {
    assert_eq!(parse_duration_ms("60s"), Ok(60_000));
    assert_eq!(parse_duration_ms("500ms"), Ok(500));
    assert_eq!(parse_duration_ms("2m"), Ok(120_000));
    assert_eq!(parse_duration_ms("7"), Ok(7_000));
    assert!(parse_duration_ms("0s").is_err());
    assert!(parse_duration_ms("2h").is_err());
    assert!(parse_duration_ms("61m").is_err());
}

#[test]
fn the_default_live_faults_are_what_each_store_supports_but_the_workload_shapers() {
    assert_eq!(
        LiveFault::defaults(StoreKind::Memory),
        vec![
            LiveFault::Contention,
            LiveFault::Latency,
            LiveFault::ProducerCrash,
            LiveFault::ClockSkew
        ]
    );
    let postgres = LiveFault::defaults(StoreKind::Postgres);
    assert!(postgres.contains(&LiveFault::StoreCrash));
    assert!(postgres.contains(&LiveFault::Disconnect));
    assert!(!postgres.contains(&LiveFault::Collisions));
}

#[test]
fn each_build_names_the_command_for_the_mode_it_lacks() {
    assert!(ordinary_build_notice().contains("cargo sim -- "));
    assert!(madsim_build_notice().contains("cargo run -p atmostonce-sim --release -- live"));
    assert_eq!(parse(&args("live --help")).unwrap().mode, Mode::Help);
    assert_eq!(
        parse(&args("live-server --path /tmp/db")).unwrap().mode,
        Mode::LiveServer {
            path: PathBuf::from("/tmp/db")
        }
    );
}

#[test]
fn the_help_names_every_flag_and_every_fault() {
    let help = help();
    for flag in [
        "--seed ",
        "--seeds",
        "--replay",
        "--regressions",
        "--calibrate",
        "--faults",
        "--api",
        "--jobs",
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
        "--store",
        "--duration",
        "--think-ms",
        "--plant",
        "--postgres-url",
        "--pg-data",
        "--pg-bin",
        "--path",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    for fault in crate::config::simulator_faults() {
        assert!(help.contains(fault.name()), "help lacks {fault}");
    }
    for fault in LiveFault::ALL {
        assert!(help.contains(fault.name()), "help lacks {}", fault.name());
    }
    for plant in Plant::ALL {
        assert!(help.contains(plant.name()), "help lacks {}", plant.name());
    }
}
