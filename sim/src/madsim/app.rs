//! What each mode of the command line does (madsim build).

use std::path::{Path, PathBuf};

use super::runner::{self, SeedResult};
use crate::check::Invariant;
use crate::cli::{Sim, SimMode};
use crate::config::FaultSpec;
use crate::outcome::{ConfigSource, RunOptions, SeedRun, Summary};
use crate::progress::{self, Progress};
use crate::replay::{ReplayFile, read_regressions};
use crate::report::{FailingSeed, SeedRange, SummaryRecord, SweepIdentity};
use crate::shard::Shard;
use crate::{report, timeline};

/// Failures of a sweep reported in full; the rest get one line each.
const FULL_REPORTS: usize = 3;

/// Runs the simulation mode `cli` asks for; returns the exit status.
pub fn run(cli: &Sim) -> i32 {
    let result = match &cli.mode {
        SimMode::Seed(seed) => one_seed(cli, *seed),
        SimMode::Seeds(seeds) => sweep(cli, seeds.clone()),
        SimMode::Replay(path) => replay(cli, path),
        SimMode::Regressions(path) => regressions(cli, path),
        SimMode::Calibrate => calibrate(cli),
    };
    result.unwrap_or_else(|error| {
        eprintln!("atmostonce-sim: {error}");
        2
    })
}

fn options(cli: &Sim, keep_history: bool) -> RunOptions {
    RunOptions {
        check: cli.check(),
        keep_history,
    }
}

/// 0 pass, 1 a violation, 2 the checker could not decide.
fn verdict_code(run: &SeedRun) -> i32 {
    if run.verdict.invariants().contains(&Invariant::Internal) {
        2
    } else {
        i32::from(!run.verdict.passed())
    }
}

fn print_run(cli: &Sim, run: &SeedRun, source: &ConfigSource) {
    if cli.json {
        println!("{}", report::seed_json(run, source, cli.check()));
    } else {
        print!("{}", report::seed_report(run, source, cli.check()));
    }
}

fn write_timeline(cli: &Sim, run: &SeedRun) -> Result<(), String> {
    if let (Some(path), Some(history)) = (&cli.timeline, &run.history) {
        let page = timeline::html(run, history);
        std::fs::write(path, page)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        eprintln!("timeline written to {}", path.display());
    }
    Ok(())
}

fn one_seed(cli: &Sim, seed: u64) -> Result<i32, String> {
    let source = cli.source();
    let run = runner::run_seed(seed, &source, options(cli, true))
        .map_err(|error| format!("seed {seed}: internal error: {}", error.message))?;
    print_run(cli, &run, &source);
    if cli.full_history
        && !cli.json
        && let Some(history) = &run.history
    {
        for (index, name) in history.keys.iter().enumerate() {
            let key = u16::try_from(index).map_err(|_| "too many keys")?;
            println!("  timeline of key {name}:");
            print!("{}", report::key_timeline(history, key, &[]));
        }
    }
    write_timeline(cli, &run)?;
    if cli.check_determinism {
        let again = runner::run_seed(seed, &source, options(cli, false))
            .map_err(|error| format!("seed {seed} rerun: {}", error.message))?;
        if again.trace_hash != run.trace_hash {
            eprintln!(
                "NONDETERMINISM: seed {seed} gave trace {:#018x}, then {:#018x}",
                run.trace_hash, again.trace_hash
            );
            return Ok(2);
        }
        eprintln!("determinism: rerun gave the same trace hash");
    }
    if cli.shrink && !run.verdict.passed() {
        shrink(cli, &run)?;
    }
    Ok(verdict_code(&run))
}

fn shrink(cli: &Sim, run: &SeedRun) -> Result<(), String> {
    let Some(first) = run.verdict.first() else {
        return Ok(());
    };
    let invariant = first.invariant;
    eprintln!(
        "shrinking seed {} ({invariant}; {})",
        run.seed,
        runner::shrink_size(&run.config)
    );
    let progress = Progress::shrinking(progress::wanted(cli.json));
    let shrunk = runner::shrink(
        run,
        invariant,
        options(cli, true),
        cli.jobs,
        |runs, found| {
            progress.set_position(runs);
            if let Some(line) = found {
                progress.set_message(line.to_owned());
                progress.suspend(|| eprintln!("  {line}"));
            }
        },
    );
    progress.finish();
    let shrunk = shrunk.ok_or_else(|| {
        format!(
            "could not shrink: the configuration of seed {} pinned as a replay did not fail \
                 {invariant} on any of the seeds tried",
            run.seed
        )
    })?;
    let path = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("sim-replay-{}.json", run.seed)));
    let file = ReplayFile {
        seed: shrunk.seed,
        config: shrunk.config.clone(),
        strict_reads: cli.strict_reads,
        expect: Some(invariant.to_string()),
        trace_hash: format!("{:#018x}", shrunk.run.trace_hash),
        origin: format!(
            "shrunk from seed {} ({}) in {} runs",
            run.seed,
            runner::shrink_size(&run.config),
            shrunk.runs
        ),
    };
    file.write(&path)?;
    let source = ConfigSource::Fixed(shrunk.config.clone());
    print!("{}", report::seed_report(&shrunk.run, &source, cli.check()));
    println!(
        "shrunk to {} (seed {}), replay file {}\n  reproduce: cargo sim -- --replay {}",
        runner::shrink_size(&shrunk.config),
        shrunk.seed,
        path.display(),
        path.display()
    );
    Ok(())
}

/// Which sweep this is, for its summary (what `merge` checks).
fn identity(cli: &Sim, seeds: &std::ops::Range<u64>) -> SweepIdentity {
    let shard = cli.shard.unwrap_or(Shard::WHOLE);
    SweepIdentity {
        range: SeedRange::from(cli.range.as_ref().unwrap_or(seeds)),
        shard: shard.to_string(),
        shard_seeds: SeedRange::from(seeds),
        api: cli.api.to_string(),
        faults: cli.faults.to_string(),
        producers: cli.shape.producers,
        keys: cli.shape.keys,
        ops: cli.shape.ops,
        strict_reads: cli.strict_reads,
        check_determinism: cli.check_determinism,
    }
}

/// Prints a failing seed: in full for the first few, then one line each.
fn print_failure(cli: &Sim, source: &ConfigSource, run: &SeedRun, reported: usize) {
    if cli.json {
        println!("{}", report::seed_json(run, source, cli.check()));
    } else if reported < FULL_REPORTS {
        print!("{}", report::seed_report(run, source, cli.check()));
    } else {
        let first = run
            .verdict
            .first()
            .map_or_else(String::new, |v| v.message.clone());
        println!(
            "seed {}: FAIL {:?}: {first}\n  reproduce: {}",
            run.seed,
            run.verdict.invariants(),
            report::reproduce_command(run.seed, source, cli.check())
        );
    }
}

fn sweep(cli: &Sim, seeds: std::ops::Range<u64>) -> Result<i32, String> {
    let source = cli.source();
    let identity = identity(cli, &seeds);
    let progress = Progress::seeds(seeds.end - seeds.start, progress::wanted(cli.json));
    let mut failing: Vec<FailingSeed> = Vec::new();
    let mut errors: Vec<u64> = Vec::new();
    let mut first_failure: Option<SeedRun> = None;
    let summary: Summary = runner::run_seeds(
        seeds,
        cli.jobs,
        &source,
        options(cli, false),
        cli.check_determinism,
        |result: &SeedResult| {
            match result {
                Ok(run) if !run.verdict.passed() => {
                    progress.suspend(|| print_failure(cli, &source, run, failing.len()));
                    failing.push(FailingSeed {
                        seed: run.seed,
                        invariants: run
                            .verdict
                            .invariants()
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        reproduce: report::reproduce_command(run.seed, &source, cli.check()),
                    });
                    if first_failure
                        .as_ref()
                        .is_none_or(|first| run.seed < first.seed)
                    {
                        first_failure = Some(run.clone());
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    progress.suspend(|| {
                        if cli.json {
                            println!("{}", report::error_json(error));
                        } else {
                            println!("seed {}: INTERNAL ERROR: {}", error.seed, error.message);
                        }
                    });
                    errors.push(error.seed);
                }
            }
            progress.seed_done(u64::try_from(failing.len() + errors.len()).unwrap_or(u64::MAX));
        },
    );
    progress.finish();
    failing.sort_by_key(|failing| failing.seed);
    errors.sort_unstable();
    let mut record = SummaryRecord::new(&summary);
    record.sweep = Some(identity);
    record.failing_seeds = failing;
    record.internal_error_seeds = errors;
    if cli.json {
        println!("{}", record.json());
    } else {
        println!("{}", record.line());
    }
    if cli.shrink
        && let Some(run) = &first_failure
    {
        shrink(cli, run)?;
    }
    Ok(summary.exit_code())
}

fn replay(cli: &Sim, path: &Path) -> Result<i32, String> {
    let file = ReplayFile::read(path)?;
    let source = ConfigSource::Fixed(file.config.clone());
    let mut options = options(cli, true);
    options.check.strict_reads |= file.strict_reads;
    let run = runner::run_seed(file.seed, &source, options).map_err(|error| {
        format!(
            "replay of seed {}: internal error: {}",
            file.seed, error.message
        )
    })?;
    print_run(cli, &run, &source);
    write_timeline(cli, &run)?;
    let hash = format!("{:#018x}", run.trace_hash);
    if hash != file.trace_hash {
        eprintln!(
            "replay diverged: trace {hash}, the file recorded {} (the engine or the simulator \
             changed since it was written)",
            file.trace_hash
        );
        return Ok(2);
    }
    eprintln!("replay matches the recorded trace hash {hash}");
    if !run.verdict.passed() {
        println!("  reproduce: cargo sim -- --replay {}", path.display());
    }
    Ok(verdict_code(&run))
}

fn regressions(cli: &Sim, path: &Path) -> Result<i32, String> {
    let entries = read_regressions(path)?;
    let mut mismatches = 0;
    let mut errors = 0;
    for (entry, result) in runner::run_regressions(&entries) {
        match result {
            Ok(run) => {
                let got = run.verdict.names();
                let status = if entry.expect.matches(&run.verdict) {
                    "ok"
                } else {
                    mismatches += 1;
                    "MISMATCH"
                };
                println!(
                    "{status:<9} {:<60} seed {:<6} expect {:<4} got {got}",
                    entry.name,
                    entry.seed,
                    entry.expect.to_string()
                );
                if status != "ok" {
                    let check = crate::check::CheckOptions {
                        strict_reads: entry.strict_reads,
                    };
                    print!("{}", report::seed_report(&run, &entry.source, check));
                }
            }
            Err(error) => {
                errors += 1;
                println!(
                    "ERROR     {:<60} seed {}: {}",
                    entry.name, entry.seed, error.message
                );
            }
        }
    }
    println!(
        "{} passed, {} failed",
        entries.len() - mismatches - errors,
        mismatches + errors
    );
    let _ = cli;
    Ok(if errors > 0 {
        2
    } else {
        i32::from(mismatches > 0)
    })
}

fn calibrate(cli: &Sim) -> Result<i32, String> {
    let seeds = 0..cli.calibrate_seeds;
    let bare = runner::calibrate(seeds.clone(), cli.jobs);
    let standard = runner::run_seeds(
        seeds,
        cli.jobs,
        &ConfigSource::standard(cli.api, FaultSpec::parse("swarm")?),
        RunOptions::default(),
        false,
        |_| {},
    );
    let bare_rate = bare.seeds_per_second();
    let standard_rate = standard.seeds_per_second();
    println!(
        "calibration (bare madsim workload, 8 tasks x 50 iterations, 2 random sleeps + a shared \
         map update each; {} seeds, {} jobs): {bare_rate:.0} seeds/s, {:.0} us/seed/job",
        bare.seeds,
        cli.jobs,
        1e6 * cli.jobs as f64 / bare_rate.max(1e-9)
    );
    println!(
        "standard scenario (8 producers, 16 keys, 400 ops, sweeper, swarm faults, checker on; \
         same seeds and jobs): {standard_rate:.0} seeds/s, {:.0} us/seed/job; cost ratio {:.1}x \
         the calibration; simulated/real {:.0}x; checker {:.1}% of seed time; {} failed",
        1e6 * cli.jobs as f64 / standard_rate.max(1e-9),
        bare_rate / standard_rate.max(1e-9),
        standard.sim_ratio(),
        standard.checker_share() * 100.0,
        standard.failures
    );
    Ok(0)
}
