//! The simulator for a user's own code (madsim build only): a seed sweep
//! in which N simulated producers run the user's [`Handler`] over the
//! fault-injecting store, with the sweeper, the faults and the checker of
//! `cargo sim`, from the user's own `cargo test`.
//!
//! ```text
//! use atmostonce_sim::harness::{Handler, HandlerCtx, HandlerFuture, Invariant, Sweep};
//!
//! struct Charge;
//! impl Handler for Charge {
//!     fn handle<'a>(&'a self, ctx: &'a mut HandlerCtx, _key: &'a str) -> HandlerFuture<'a> {
//!         Box::pin(async move {
//!             // claim; on Granted: charge, ctx.effect(), complete
//!         })
//!     }
//! }
//!
//! #[test]
//! fn charges_at_most_once() {
//!     Sweep::new(Charge).producers(4).seeds(0..200).faults("all").run().unwrap().assert_passed();
//! }
//! ```
//!
//! The test must be built as the simulator is, with `--cfg madsim` (see
//! README, "Gate your own consumer in CI"). A failure carries what a `cargo
//! sim` failure prints: the verdict with the violations and the involved
//! keys' timelines, the line that reruns the failing seed
//! (`ATMOSTONCE_SEED`), the HTML timeline, and a shrunk counterexample
//! pinned in a replay file (`ATMOSTONCE_REPLAY`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::handler::Workload;
pub use super::handler::{Handler, HandlerCtx, HandlerFuture};
use super::runner::{ShrinkLimits, Shrunk, run_seeds_of, shrink_of, shrink_size};
pub use crate::check::Invariant;
use crate::config::{Api, Config, FaultSpec, Shape, SplitMix};
use crate::outcome::{ConfigSource, InternalError, RunOptions, SeedRun, Summary};
use crate::replay::ReplayFile;
use crate::{report, timeline};

/// The workload's size unless set: small enough for a few hundred seeds
/// in seconds, large enough for producers to race on keys.
const DEFAULT_SHAPE: Shape = Shape {
    producers: 4,
    keys: 4,
    ops: 160,
    fresh_pm: 0,
};

/// Candidate runs a shrink may make unless set: a few seconds at the
/// default shape.
const DEFAULT_SHRINK_RUNS: u64 = 1_000;

/// Environment: run only this seed (the reproduce line of a failure).
pub const SEED_VAR: &str = "ATMOSTONCE_SEED";
/// Environment: run only the pinned run of this replay file (a shrunk
/// failure's reproduce line).
pub const REPLAY_VAR: &str = "ATMOSTONCE_REPLAY";
/// Environment: worker threads (as `cargo sim`'s `--jobs`).
pub const JOBS_VAR: &str = "ATMOSTONCE_JOBS";

/// What was wrong with a sweep's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// A seed sweep of a user's handler.
#[derive(Clone)]
pub struct Sweep {
    handler: Arc<dyn Handler>,
    shape: Shape,
    seeds: Range<u64>,
    faults: String,
    jobs: Option<usize>,
    shrink_runs: u64,
    out_dir: Option<PathBuf>,
    command: String,
}

impl fmt::Debug for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sweep")
            .field("shape", &self.shape)
            .field("seeds", &self.seeds)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Sweep {
    /// A sweep of `handler`: 4 producers, 4 keys, 160 operations, seeds
    /// `0..100`, every fault of the simulator on (`all`).
    pub fn new(handler: impl Handler) -> Sweep {
        Sweep {
            handler: Arc::new(handler),
            shape: DEFAULT_SHAPE,
            seeds: 0..100,
            faults: "all".to_owned(),
            jobs: None,
            shrink_runs: DEFAULT_SHRINK_RUNS,
            out_dir: None,
            command: "cargo test".to_owned(),
        }
    }

    /// Simulated producers, each running the handler (1..=256).
    #[must_use]
    pub fn producers(mut self, producers: u16) -> Sweep {
        self.shape.producers = producers;
        self
    }

    /// Idempotency keys the messages carry (1..=4096).
    #[must_use]
    pub fn keys(mut self, keys: u16) -> Sweep {
        self.shape.keys = keys;
        self
    }

    /// Cache calls the producers make in all, shared out evenly.
    #[must_use]
    pub fn ops(mut self, ops: u32) -> Sweep {
        self.shape.ops = ops;
        self
    }

    /// The seeds to run.
    #[must_use]
    pub fn seeds(mut self, seeds: Range<u64>) -> Sweep {
        self.seeds = seeds;
        self
    }

    /// The faults, in `cargo sim --faults` grammar: `all`, `swarm` (each
    /// seed a random half), `none`, or a list such as `pause,store-crash`.
    #[must_use]
    pub fn faults(mut self, spec: &str) -> Sweep {
        spec.clone_into(&mut self.faults);
        self
    }

    /// Worker threads (default: `ATMOSTONCE_JOBS`, else the machine's
    /// cores). Which worker runs a seed cannot change its run.
    #[must_use]
    pub fn jobs(mut self, jobs: usize) -> Sweep {
        self.jobs = Some(jobs);
        self
    }

    /// Candidate runs the shrink of a failure may make (0: no shrinking).
    #[must_use]
    pub fn shrink_runs(mut self, runs: u64) -> Sweep {
        self.shrink_runs = runs;
        self
    }

    /// Where timelines and replay files go (default: `atmostonce-sim/` in
    /// the target directory the test binary was built in).
    #[must_use]
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Sweep {
        self.out_dir = Some(dir.into());
        self
    }

    /// The command that runs this test, for reproduce lines (default
    /// `cargo test`; say the madsim alias your project uses).
    #[must_use]
    pub fn command(mut self, command: &str) -> Sweep {
        command.clone_into(&mut self.command);
        self
    }

    /// Runs the sweep (only `ATMOSTONCE_SEED`'s seed, or
    /// `ATMOSTONCE_REPLAY`'s pinned run, when set). An error is a setting
    /// that cannot run, never a verdict.
    pub fn run(&self) -> Result<SweepReport, HarnessError> {
        let (source, seeds, replay) = self.source()?;
        let jobs = match self.jobs {
            Some(jobs) => jobs,
            None => jobs_from_env()?,
        };
        let workload = Workload::Handler(self.handler.clone());
        let options = RunOptions::default();
        let mut first: Option<SeedRun> = None;
        let mut traces = Vec::new();
        let mut internal_errors = Vec::new();
        let summary =
            run_seeds_of(
                seeds,
                jobs,
                &source,
                options,
                false,
                &workload,
                |result| match result {
                    Ok(run) => {
                        traces.push(run.trace_hash);
                        if !run.verdict.passed()
                            && first.as_ref().is_none_or(|first| run.seed < first.seed)
                        {
                            first = Some(run.clone());
                        }
                    }
                    Err(error) => internal_errors.push(error.clone()),
                },
            );
        internal_errors.sort_by_key(|error| error.seed);
        let failure = first
            .map(|run| self.failure(run, &source, jobs, &workload))
            .transpose()?;
        // A replay must follow the very run it pinned.
        let replay_diverged = replay.and_then(|file| {
            let got = traces.first().map(|trace| format!("{trace:#018x}"))?;
            (got != file.trace_hash).then(|| {
                format!(
                    "the replay gave trace {got}, its file recorded {} (the handler, the engine \
                     or the simulator changed since it was written)",
                    file.trace_hash
                )
            })
        });
        Ok(SweepReport {
            summary,
            failure,
            internal_errors,
            replay_diverged,
        })
    }

    /// The configuration source and seeds to run.
    fn source(&self) -> Result<(ConfigSource, Range<u64>, Option<ReplayFile>), HarnessError> {
        if let Some(path) = std::env::var_os(REPLAY_VAR) {
            let file = ReplayFile::read(Path::new(&path)).map_err(HarnessError)?;
            let seed = file.seed;
            return Ok((
                ConfigSource::Fixed(file.config.clone()),
                seed..seed.saturating_add(1),
                Some(file),
            ));
        }
        let faults = FaultSpec::parse(&self.faults)
            .map_err(|error| HarnessError(format!("faults {:?}: {error}", self.faults)))?;
        // The shape's bounds are the simulator's own (`Config::validate`).
        Config::draw(Api::Fenced, self.shape, &faults, &mut SplitMix(0))
            .validate()
            .map_err(|error| HarnessError(format!("invalid sweep: {error}")))?;
        let seeds = match std::env::var(SEED_VAR) {
            Ok(text) => {
                let seed: u64 = text.trim().parse().map_err(|_| {
                    HarnessError(format!("{SEED_VAR}={text:?} is not a seed (a u64)"))
                })?;
                seed..seed.saturating_add(1)
            }
            Err(_) => self.seeds.clone(),
        };
        let source = ConfigSource::Draw {
            api: Api::Fenced,
            shape: self.shape,
            faults,
        };
        Ok((source, seeds, None))
    }

    /// Reports the smallest failing seed: its timeline, its reproduce line,
    /// and its shrunk counterexample.
    fn failure(
        &self,
        run: SeedRun,
        source: &ConfigSource,
        jobs: usize,
        workload: &Workload,
    ) -> Result<Failure, HarnessError> {
        let test = test_name();
        let dir = self.out_dir.clone().unwrap_or_else(default_out_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|error| HarnessError(format!("cannot create {}: {error}", dir.display())))?;
        let stem = format!("{}-seed-{}", file_stem(&test), run.seed);
        let reproduce = match source {
            ConfigSource::Fixed(_) => self.reproduce(
                &test,
                REPLAY_VAR,
                &std::env::var(REPLAY_VAR).unwrap_or_default(),
            ),
            ConfigSource::Draw { .. } => self.reproduce(&test, SEED_VAR, &run.seed.to_string()),
        };
        let timeline = write_timeline(&run, &dir.join(format!("{stem}.html")))?;
        let shrunk = match run.verdict.first() {
            // A replayed run is shrunk already.
            Some(violation)
                if self.shrink_runs > 0 && !matches!(source, ConfigSource::Fixed(_)) =>
            {
                let limits = ShrinkLimits {
                    jobs,
                    max_runs: self.shrink_runs,
                };
                shrink_of(
                    &run,
                    violation.invariant,
                    RunOptions::default(),
                    limits,
                    workload,
                    |_, _| {},
                )
                .map(|shrunk| self.shrunk(&run, shrunk, violation.invariant, &dir, &stem, &test))
                .transpose()?
            }
            _ => None,
        };
        Ok(Failure {
            report: report::seed_report_reproduced(&run, &reproduce),
            run,
            reproduce,
            timeline,
            shrunk,
        })
    }

    fn shrunk(
        &self,
        original: &SeedRun,
        shrunk: Shrunk,
        invariant: Invariant,
        dir: &Path,
        stem: &str,
        test: &str,
    ) -> Result<ShrunkFailure, HarnessError> {
        let replay = dir.join(format!("{stem}-shrunk.json"));
        ReplayFile {
            seed: shrunk.seed,
            config: shrunk.config.clone(),
            strict_reads: false,
            expect: Some(invariant.to_string()),
            trace_hash: format!("{:#018x}", shrunk.run.trace_hash),
            origin: format!(
                "shrunk from seed {} ({}) of {test} in {} runs",
                original.seed,
                shrink_size(&original.config),
                shrunk.runs
            ),
        }
        .write(&replay)
        .map_err(HarnessError)?;
        let reproduce = self.reproduce(test, REPLAY_VAR, &replay.display().to_string());
        let timeline = write_timeline(&shrunk.run, &dir.join(format!("{stem}-shrunk.html")))?;
        Ok(ShrunkFailure {
            report: report::seed_report_reproduced(&shrunk.run, &reproduce),
            size: shrink_size(&shrunk.config),
            run: shrunk.run,
            runs: shrunk.runs,
            replay,
            reproduce,
            timeline,
        })
    }

    fn reproduce(&self, test: &str, var: &str, value: &str) -> String {
        format!("{var}={value} {} -- --exact {test}", self.command)
    }
}

/// What a sweep found.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// The counts, as `cargo sim` sums a sweep up.
    pub summary: Summary,
    /// The smallest failing seed, if any seed failed.
    pub failure: Option<Failure>,
    /// Seeds that could not be run or checked (a harness error, never a
    /// pass).
    pub internal_errors: Vec<InternalError>,
    /// When `ATMOSTONCE_REPLAY` replayed a run whose trace is not the one
    /// its file recorded: what differs (a harness error, as for `cargo sim
    /// --replay`).
    pub replay_diverged: Option<String>,
}

impl SweepReport {
    /// True when every seed ran and passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.summary.exit_code() == 0 && self.replay_diverged.is_none()
    }

    /// Panics with the whole report unless every seed passed (for a test).
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "{self}");
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(diverged) = &self.replay_diverged {
            writeln!(f, "REPLAY DIVERGED: {diverged}")?;
        }
        for error in &self.internal_errors {
            writeln!(f, "seed {}: INTERNAL ERROR: {}", error.seed, error.message)?;
        }
        if let Some(failure) = &self.failure {
            write!(f, "{failure}")?;
        }
        write!(f, "{}", report::summary_line(&self.summary))
    }
}

/// The smallest failing seed of a sweep.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Its run, with its history and verdict.
    pub run: SeedRun,
    /// The report `cargo sim` prints for it: verdict, violations, the
    /// involved keys' timelines, the reproduce line.
    pub report: String,
    /// The command that reruns this seed alone.
    pub reproduce: String,
    /// The HTML timeline written for it.
    pub timeline: PathBuf,
    /// A smaller run failing the same invariant, if shrinking found one.
    pub shrunk: Option<ShrunkFailure>,
}

impl Failure {
    /// The invariants the run violated.
    #[must_use]
    pub fn invariants(&self) -> Vec<Invariant> {
        self.run.verdict.invariants()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        writeln!(f, "  timeline: {}", self.timeline.display())?;
        if let Some(shrunk) = &self.shrunk {
            writeln!(
                f,
                "shrunk in {} runs to {} (seed {}):",
                shrunk.runs, shrunk.size, shrunk.run.seed
            )?;
            write!(f, "{}", shrunk.report)?;
            writeln!(f, "  replay file: {}", shrunk.replay.display())?;
            writeln!(f, "  timeline: {}", shrunk.timeline.display())?;
        }
        Ok(())
    }
}

/// A shrunk counterexample: fewer producers, keys, operations or faults.
#[derive(Debug, Clone)]
pub struct ShrunkFailure {
    /// Its run (the configuration is `run.config`).
    pub run: SeedRun,
    /// Its size, as shrinking counts it.
    pub size: String,
    /// Candidate runs the shrink made.
    pub runs: u64,
    /// Its report.
    pub report: String,
    /// The replay file pinning it.
    pub replay: PathBuf,
    /// The command that reruns it.
    pub reproduce: String,
    /// Its HTML timeline.
    pub timeline: PathBuf,
}

fn write_timeline(run: &SeedRun, path: &Path) -> Result<PathBuf, HarnessError> {
    let page = run
        .history
        .as_ref()
        .map(|history| timeline::html(run, history))
        .ok_or_else(|| HarnessError(format!("seed {} failed without its history", run.seed)))?;
    std::fs::write(path, page)
        .map_err(|error| HarnessError(format!("cannot write {}: {error}", path.display())))?;
    Ok(path.to_path_buf())
}

fn jobs_from_env() -> Result<usize, HarnessError> {
    match std::env::var(JOBS_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| HarnessError(format!("{JOBS_VAR}={text:?} is not a thread count"))),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

/// The running test's name: libtest names each test's thread after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("<test name>")
        .to_owned()
}

fn file_stem(test: &str) -> String {
    test.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// `atmostonce-sim/` in the target directory of the running test binary
/// (`<target>/<profile>/deps/<binary>`), else in the system's temporary
/// directory.
fn default_out_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
        .join("atmostonce-sim")
}
