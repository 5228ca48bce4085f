//! The `live` command: from its flags to a run and its report.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::exporter;
use super::options::{LiveOptions, PostgresTarget};
use super::report;
use super::run::run;
use crate::check::CheckOptions;
use crate::cli::{LiveArgs, LiveFault, StoreKind};
use crate::config::{Api, Shape};
use crate::progress::{self, Progress};

/// The variable the PostgreSQL tests read the server's URL from.
pub const POSTGRES_URL_VARIABLE: &str = "ATMOSTONCE_POSTGRES_URL";

/// What `scripts/throwaway-postgres.sh` exports.
const THROWAWAY_DIR_VARIABLE: &str = "THROWAWAY_POSTGRES_DIR";
const THROWAWAY_BIN_VARIABLE: &str = "THROWAWAY_POSTGRES_BIN";

/// Where PostgreSQL is, from the flags or the environment.
#[must_use]
pub fn postgres_target(args: &LiveArgs) -> Option<PostgresTarget> {
    let url = args
        .postgres_url
        .clone()
        .or_else(|| std::env::var(POSTGRES_URL_VARIABLE).ok())?;
    let data = args.pg_data.clone().or_else(|| {
        std::env::var(THROWAWAY_DIR_VARIABLE)
            .ok()
            .map(|dir| PathBuf::from(dir).join("data"))
    });
    let bin = args.pg_bin.clone().or_else(|| {
        std::env::var(THROWAWAY_BIN_VARIABLE)
            .ok()
            .map(PathBuf::from)
    });
    Some(PostgresTarget { url, data, bin })
}

/// The options `args` ask for.
pub fn options(args: &LiveArgs) -> Result<LiveOptions, String> {
    let postgres = postgres_target(args);
    if args.store == StoreKind::Postgres && postgres.is_none() {
        return Err(format!(
            "--store postgres needs a server: --postgres-url URL or {POSTGRES_URL_VARIABLE} \
             (`source scripts/throwaway-postgres.sh && throwaway_postgres_start` starts one)"
        ));
    }
    let faults = match args.faults().map_err(|error| error.to_string())? {
        Some(faults) => faults,
        None => LiveFault::defaults(args.store)
            .into_iter()
            .filter(|fault| {
                // Crashing PostgreSQL needs its data directory; without it,
                // the default leaves the crash out and says so.
                let crashable = postgres
                    .as_ref()
                    .is_some_and(|target| target.data.is_some());
                // The seed API reads streams from sequence 0 and never
                // compacts: a janitor would only take its liveness (A2).
                if *fault == LiveFault::Compaction && args.api == Api::Seed {
                    return false;
                }
                let keep = !(args.store == StoreKind::Postgres
                    && *fault == LiveFault::StoreCrash
                    && !crashable);
                if !keep {
                    eprintln!(
                        "atmostonce-sim: live: no --pg-data (or THROWAWAY_POSTGRES_DIR): the \
                         PostgreSQL server will not be crashed"
                    );
                }
                keep
            })
            .collect(),
    };
    let seed = args
        .seed
        .unwrap_or_else(|| atmostonce::wall_clock_millis() ^ (u64::from(std::process::id()) << 40));
    let shape = Shape {
        producers: args.producers,
        keys: args.keys,
        ops: 0,
        fresh_pm: args.fresh_keys,
    };
    let mut options = LiveOptions::new(
        args.store,
        shape,
        Duration::from_millis(args.duration_ms),
        faults,
        seed,
        args.think_ms,
    );
    options.check = CheckOptions {
        strict_reads: args.strict_reads,
    };
    options.plant = args.plant;
    options.config.api = args.api;
    options.server_exe = std::env::current_exe()
        .map_err(|error| format!("cannot find this binary (for the haematite server): {error}"))?;
    options.haematite_path = args.path.clone();
    options.postgres = postgres;
    Ok(options)
}

/// Runs `live` and prints its report; returns the exit status.
pub fn run_command(args: &LiveArgs) -> i32 {
    let options = match options(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("atmostonce-sim: live: {error}");
            return 2;
        }
    };
    if !args.json {
        eprintln!(
            "live run against {} for {:.1} s ({} producers, {} keys, faults {}); then a quiet \
             phase of {:.1} s and the checker",
            options.store.name(),
            options.duration.as_secs_f64(),
            options.config.shape.producers,
            options.config.shape.keys,
            options
                .faults
                .iter()
                .map(|fault| fault.name())
                .collect::<Vec<_>>()
                .join(","),
            options.config.quiet_ms() as f64 / 1000.0
        );
    }
    if let Some(address) = args.metrics_addr {
        if let Err(error) = exporter::serve(address) {
            eprintln!("atmostonce-sim: live: --metrics-addr: {error}");
            return 2;
        }
        if !args.json {
            eprintln!("metrics at http://{address}/metrics");
        }
    }
    let progress = LiveProgress::start(&options, progress::wanted(args.json));
    let result = run(&options);
    progress.stop();
    match result {
        Ok(run) => {
            if args.json {
                println!("{}", report::json(&run));
            } else {
                print!("{}", report::text(&run, args.full_history));
            }
            if let Some(linger_ms) = args.metrics_linger_ms {
                // The report first, so that whoever reads it can scrape
                // the final counts while they are still served.
                let _ = std::io::stdout().flush();
                std::thread::sleep(Duration::from_millis(linger_ms));
            }
            run.exit_code()
        }
        Err(error) => {
            eprintln!("atmostonce-sim: live: internal error (not a verdict): {error}");
            2
        }
    }
}

/// How often the live progress bar follows the clock.
const LIVE_PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The live run's progress on a terminal: a bar over the main and quiet
/// phases, which run for fixed times, then "checking" until the run ends.
/// It follows the clock on a thread of its own, so the run is untouched.
struct LiveProgress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveProgress {
    fn start(options: &LiveOptions, enabled: bool) -> LiveProgress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return LiveProgress { stop, thread: None };
        }
        let main = options.duration;
        let quiet = Duration::from_millis(options.config.quiet_ms());
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("live-progress".into())
            .spawn(move || {
                let bar = Progress::timed(main + quiet, true);
                let started = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    let elapsed = started.elapsed();
                    bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                    bar.set_message(if elapsed < main {
                        "main phase: producers, sweeper and faults"
                    } else if elapsed < main + quiet {
                        "quiet phase: faults stopped, expiries catch up"
                    } else {
                        "probe and checker"
                    });
                    std::thread::sleep(LIVE_PROGRESS_EVERY);
                }
                bar.finish();
            })
            .ok();
        LiveProgress { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread {
            // The thread only draws; a panic there loses the bar, nothing else.
            let _ = thread.join();
        }
    }
}
