//! Running seeds (madsim build only): one madsim runtime per seed, each on
//! a fresh OS thread, spread over a rayon pool of `jobs` worker threads;
//! and the calibration workload.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, mpsc};

use parking_lot::Mutex;

use rayon::iter::{IntoParallelIterator, ParallelIterator};
use std::time::{Duration, Instant};

use super::handler::Workload;
use super::rng::{sim_rng, sleep_ms};
use super::run::simulate;
use crate::check::check;
use crate::config::{Config, Draw, FaultSet, FaultSpec};
use crate::outcome::{ConfigSource, InternalError, RunOptions, SeedRun, Summary};

/// The result of one seed.
pub type SeedResult = Result<SeedRun, InternalError>;

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
}

/// Runs one seed on a fresh OS thread (madsim seeds thread-local state such
/// as std's hash seeds per runtime; a fresh thread keeps seeds independent)
/// and checks its history.
pub fn run_seed(seed: u64, source: &ConfigSource, options: RunOptions) -> SeedResult {
    run_seed_of(seed, source, options, &Workload::Standard)
}

/// [`run_seed`] with the producers running `workload`.
pub(crate) fn run_seed_of(
    seed: u64,
    source: &ConfigSource,
    options: RunOptions,
    workload: &Workload,
) -> SeedResult {
    let source = source.clone();
    let workload = workload.clone();
    let thread = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || simulate_and_check(seed, &source, options, workload));
    let joined = match thread {
        Ok(thread) => thread.join(),
        Err(error) => {
            return Err(InternalError {
                seed,
                message: format!("could not start a thread for the seed: {error}"),
            });
        }
    };
    match joined {
        Ok(result) => result,
        Err(payload) => Err(InternalError {
            seed,
            message: format!("the simulation panicked: {}", panic_text(&*payload)),
        }),
    }
}

fn simulate_and_check(
    seed: u64,
    source: &ConfigSource,
    options: RunOptions,
    workload: Workload,
) -> SeedResult {
    let started = Instant::now();
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let source_in = source.clone();
    let simulated = runtime.block_on(async move {
        let config = match source_in {
            // Consume the draws a drawn run makes, so that a drawn run's
            // configuration, pinned, replays that very run.
            ConfigSource::Fixed(config) => {
                let _ = Config::draw(
                    config.api,
                    config.shape,
                    &FaultSpec::Exact(FaultSet::default()),
                    &mut sim_rng(),
                );
                config
            }
            ConfigSource::Draw { api, shape, faults } => {
                Config::draw(api, shape, &faults, &mut sim_rng())
            }
        };
        let begin = madsim::time::Instant::now();
        let history = simulate(config.clone(), workload).await;
        (config, history, begin.elapsed())
    });
    drop(runtime);
    let (config, history, sim_elapsed) = simulated;
    let history = history.map_err(|message| InternalError { seed, message })?;
    let wall_sim = started.elapsed();
    let checking = Instant::now();
    let verdict = check(&history, options.check);
    let wall_check = checking.elapsed();
    let keep = options.keep_history || !verdict.passed();
    Ok(SeedRun {
        seed,
        trace_hash: history.trace_hash(),
        ops: history.ops.len(),
        sim_us: u64::try_from(sim_elapsed.as_micros()).unwrap_or(u64::MAX),
        config,
        verdict,
        wall_sim,
        wall_check,
        history: keep.then_some(history),
    })
}

/// Runs `seeds` on `jobs` worker threads, calling `report` with each result
/// as it arrives (on the calling thread). With `check_determinism` each
/// seed runs twice and a trace-hash difference is recorded in the summary.
pub fn run_seeds(
    seeds: Range<u64>,
    jobs: usize,
    source: &ConfigSource,
    options: RunOptions,
    check_determinism: bool,
    report: impl FnMut(&SeedResult),
) -> Summary {
    run_seeds_of(
        seeds,
        jobs,
        source,
        options,
        check_determinism,
        &Workload::Standard,
        report,
    )
}

/// [`run_seeds`] with the producers running `workload`.
pub(crate) fn run_seeds_of(
    seeds: Range<u64>,
    jobs: usize,
    source: &ConfigSource,
    options: RunOptions,
    check_determinism: bool,
    workload: &Workload,
    mut report: impl FnMut(&SeedResult),
) -> Summary {
    let started = Instant::now();
    let source = source.clone();
    let mut summary = Summary::default();
    for_each_seed(
        seeds,
        jobs,
        move |seed| {
            let first = run_seed_of(seed, &source, options, workload);
            let rerun = check_determinism
                .then(|| {
                    run_seed_of(seed, &source, options, workload)
                        .ok()
                        .map(|run| run.trace_hash)
                })
                .flatten();
            (first, rerun)
        },
        |(result, rerun): (SeedResult, Option<u64>)| {
            match &result {
                Ok(run) => {
                    summary.add(run);
                    if check_determinism && rerun != Some(run.trace_hash) {
                        summary.nondeterministic.push(run.seed);
                    }
                }
                Err(_) => summary.add_error(),
            }
            report(&result);
        },
    );
    summary.nondeterministic.sort_unstable();
    summary.elapsed = started.elapsed();
    summary
}

/// Runs `work` for every seed of `seeds` on a rayon pool of `jobs` worker
/// threads and hands every result to `sink` on the calling thread, in the
/// order they finish. Which worker runs a seed cannot change its trace:
/// `work` runs every seed's runtime on a fresh OS thread of its own.
fn for_each_seed<T: Send>(
    seeds: Range<u64>,
    jobs: usize,
    work: impl Fn(u64) -> T + Send + Sync,
    mut sink: impl FnMut(T),
) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .thread_name(|index| format!("sweep-{index}"))
        .build();
    let Ok(pool) = pool else {
        // No worker threads to be had: run the seeds here, one by one.
        for seed in seeds {
            sink(work(seed));
        }
        return;
    };
    let (sender, receiver) = mpsc::channel::<T>();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            pool.install(|| {
                seeds.into_par_iter().for_each_with(sender, |sender, seed| {
                    // The receiver lives until every sender is gone.
                    let _ = sender.send(work(seed));
                });
            });
        });
        for result in receiver {
            sink(result);
        }
    });
}

/// The calibration workload's shape: the standard scenario's 8 producers
/// and 400 operations, with no engine (8 tasks x 50 iterations).
const CALIBRATION_TASKS: u64 = 8;
const CALIBRATION_ITERATIONS: u64 = 50;

/// One seed of the bare madsim workload: 8 tasks x 50 iterations, each two
/// random sleeps and an update of a shared map. Returns its simulated time.
fn calibration_seed(seed: u64) -> Duration {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async {
        let begin = madsim::time::Instant::now();
        let map = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
        let tasks: Vec<_> = (0..CALIBRATION_TASKS)
            .map(|task| {
                let map = map.clone();
                madsim::task::spawn(async move {
                    let mut rng = sim_rng();
                    for iteration in 0..CALIBRATION_ITERATIONS {
                        sleep_ms(rng.range(0, 5)).await;
                        *map.lock().entry(rng.range(0, 15)).or_default() += task + iteration;
                        sleep_ms(rng.range(0, 5)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        begin.elapsed()
    })
}

/// Calibration result.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// Seeds run.
    pub seeds: u64,
    /// Real time taken.
    pub elapsed: Duration,
    /// Simulated time in all.
    pub simulated: Duration,
}

impl Calibration {
    /// Seeds per second.
    #[must_use]
    pub fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the calibration workload for `seeds` seeds on `jobs` threads, each
/// seed on a fresh thread as the simulator's seeds are.
pub fn calibrate(seeds: Range<u64>, jobs: usize) -> Calibration {
    let started = Instant::now();
    let count = seeds.end.saturating_sub(seeds.start);
    let mut simulated = Duration::ZERO;
    for_each_seed(
        seeds,
        jobs,
        |seed| {
            std::thread::spawn(move || calibration_seed(seed))
                .join()
                .unwrap_or_default()
        },
        |elapsed| simulated += elapsed,
    );
    Calibration {
        seeds: count,
        elapsed: started.elapsed(),
        simulated,
    }
}

/// Seeds tried for each candidate configuration while shrinking: a smaller
/// configuration changes the whole schedule, so the same seed rarely fails
/// again; a few dozen seeds usually find one that does.
const SHRINK_SEEDS_PER_CANDIDATE: u64 = 96;

/// Most candidate runs one shrink may make: about a minute of one core at
/// the standard scenario's speed, far less as the run gets smaller.
const MAX_SHRINK_RUNS: u64 = 20_000;

/// Seeds of one candidate run in parallel before the shrink looks at them.
const SHRINK_BATCH: u64 = 16;

/// A shrunk failure: a smaller configuration and a seed that fail the same
/// invariant.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The seed.
    pub seed: u64,
    /// The configuration.
    pub config: Config,
    /// Its run.
    pub run: SeedRun,
    /// Candidate runs made.
    pub runs: u64,
}

/// The operations budget that still reaches the violation of `run`: every
/// producer needs as many operations as it invoked until the violation's
/// last operation. With the same seed and draws, a run with that budget
/// follows the same schedule up to there.
fn ops_needed(run: &SeedRun) -> Option<u32> {
    let history = run.history.as_ref()?;
    let last = run.verdict.first()?.ops.iter().copied().max()?;
    let mut counts = vec![0u32; usize::from(run.config.shape.producers)];
    for op in history.ops.iter().take(last as usize + 1) {
        if let crate::history::Process::Producer(index) = op.process {
            counts[usize::from(index)] += 1;
        }
    }
    let most = counts.into_iter().max()?;
    Some(most.saturating_mul(u32::from(run.config.shape.producers)))
}

fn smaller_configs(config: &Config, ops_hint: Option<u32>) -> Vec<Config> {
    let mut candidates = Vec::new();
    let shape = config.shape;
    let mut push = |change: &dyn Fn(&mut Config)| {
        let mut candidate = config.clone();
        change(&mut candidate);
        if candidate != *config && candidate.validate().is_ok() {
            candidates.push(candidate);
        }
    };
    if let Some(ops) = ops_hint {
        push(&move |c| c.shape.ops = ops.min(shape.ops));
    }
    push(&|c| c.shape.ops /= 2);
    push(&|c| c.shape.producers = (shape.producers / 2).max(1));
    push(&|c| c.shape.keys = (shape.keys / 2).max(1));
    for fault in config.faults.0.iter().copied() {
        push(&move |c| *c = disable(c, fault));
    }
    push(&|c| c.shape.ops = shape.ops * 3 / 4);
    push(&|c| c.shape.ops = shape.ops * 7 / 8);
    push(&|c| c.shape.producers = shape.producers.saturating_sub(1).max(1));
    push(&|c| c.shape.keys = shape.keys.saturating_sub(1).max(1));
    candidates
}

/// `config` with `fault` switched off (its rates zeroed, its knobs reset).
fn disable(config: &Config, fault: crate::config::Fault) -> Config {
    use crate::config::Fault;
    let mut c = config.clone();
    c.faults.0.remove(&fault);
    match fault {
        Fault::Contention => {
            c.hot_keys = c.shape.keys;
            c.hot_pm = 0;
        }
        Fault::Latency => {
            c.latency_pm = 0;
            c.latency_max_ms = 0;
        }
        Fault::ErrorApplied => c.error_applied_pm = 0,
        Fault::ErrorLost => c.error_lost_pm = 0,
        Fault::StaleReads => c.stale_pm = 0,
        Fault::ProducerCrash => c.producer_crash_every_ms = 0,
        Fault::StoreCrash => c.store_crash_every_ms = 0,
        Fault::ClockSkew => {
            c.max_skew_ms = 0;
            c.clock_jump_every_ms = 0;
        }
        Fault::Corruption => c.corruption_every_ms = 0,
        Fault::Collisions => c.hash_bits = 64,
        Fault::LongStreams => c.read_batch = atmostonce::limits::DEFAULT_READ_BATCH,
        Fault::Pause => c.pause_every_ms = 0,
        Fault::Compaction => c.compact_every_ms = 0,
        // Not a simulator fault (`Config::validate` refuses it): the
        // simulator's deliveries fail at a drawn rate in every run.
        Fault::DeliveryFailure => {}
    }
    c
}

/// Shrinks a failing run of `invariant`: repeatedly tries smaller
/// configurations (fewer producers, operations, keys, faults), each with a
/// few dozen seeds (run `jobs` at a time), and keeps the first that still
/// violates `invariant`. `progress` hears the candidate runs made so far,
/// with a line when a smaller failure is found.
pub fn shrink(
    run: &SeedRun,
    invariant: crate::check::Invariant,
    options: RunOptions,
    jobs: usize,
    progress: impl FnMut(u64, Option<&str>),
) -> Option<Shrunk> {
    let limits = ShrinkLimits {
        jobs,
        max_runs: MAX_SHRINK_RUNS,
    };
    shrink_of(
        run,
        invariant,
        options,
        limits,
        &Workload::Standard,
        progress,
    )
}

/// How much a shrink may do: worker threads and candidate runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShrinkLimits {
    pub(crate) jobs: usize,
    pub(crate) max_runs: u64,
}

/// [`shrink`] with the producers running `workload`, within `limits`.
pub(crate) fn shrink_of(
    run: &SeedRun,
    invariant: crate::check::Invariant,
    options: RunOptions,
    limits: ShrinkLimits,
    workload: &Workload,
    mut progress: impl FnMut(u64, Option<&str>),
) -> Option<Shrunk> {
    let ShrinkLimits { jobs, max_runs } = limits;
    let mut runs = 0;
    // The drawn configuration, pinned, replays the very run it was drawn
    // in (see `simulate_and_check`), so the search starts from it.
    let (mut seed, mut config, mut found) = first_failure(
        run.seed,
        &run.config,
        invariant,
        options,
        jobs,
        workload,
        &mut runs,
        &mut progress,
    )?;
    progress(
        runs,
        Some(&format!("pinned: seed {seed}, {}", shrink_size(&config))),
    );
    'outer: while runs < max_runs {
        for candidate in smaller_configs(&config, ops_needed(&found)) {
            if runs >= max_runs {
                break 'outer;
            }
            if let Some(smaller) = first_failure(
                seed,
                &candidate,
                invariant,
                options,
                jobs,
                workload,
                &mut runs,
                &mut progress,
            ) {
                (seed, config, found) = smaller;
                progress(
                    runs,
                    Some(&format!("smaller: seed {seed}, {}", shrink_size(&config))),
                );
                continue 'outer;
            }
        }
        break;
    }
    Some(Shrunk {
        seed,
        config,
        run: found,
        runs,
    })
}

/// The smallest seed from `from` on (within the per-candidate budget) whose
/// run of `config` violates `invariant`.
#[allow(clippy::too_many_arguments)]
fn first_failure(
    from: u64,
    config: &Config,
    invariant: crate::check::Invariant,
    options: RunOptions,
    jobs: usize,
    workload: &Workload,
    runs: &mut u64,
    progress: &mut impl FnMut(u64, Option<&str>),
) -> Option<(u64, Config, SeedRun)> {
    let source = ConfigSource::Fixed(config.clone());
    let mut offset = 0;
    while offset < SHRINK_SEEDS_PER_CANDIDATE {
        let start = from.wrapping_add(offset);
        let batch = start..start.saturating_add(SHRINK_BATCH);
        let mut failing: Vec<SeedRun> = Vec::new();
        for_each_seed(
            batch,
            jobs,
            |seed| run_seed_of(seed, &source, options, workload),
            |result| {
                *runs += 1;
                progress(*runs, None);
                if let Ok(run) = result
                    && run.verdict.invariants().contains(&invariant)
                {
                    failing.push(run);
                }
            },
        );
        if let Some(run) = failing.into_iter().min_by_key(|run| run.seed) {
            return Some((run.seed, config.clone(), run));
        }
        offset += SHRINK_BATCH;
    }
    None
}

/// The size of a configuration, as shrinking sees it.
#[must_use]
pub fn shrink_size(config: &Config) -> String {
    format!(
        "{} producers, {} keys, {} ops, faults {}",
        config.shape.producers, config.shape.keys, config.shape.ops, config.faults
    )
}

/// Runs every regression entry; returns each with its result.
pub fn run_regressions(
    entries: &[crate::replay::Regression],
) -> Vec<(&crate::replay::Regression, SeedResult)> {
    entries
        .iter()
        .map(|entry| {
            let options = RunOptions {
                check: crate::check::CheckOptions {
                    strict_reads: entry.strict_reads,
                },
                keep_history: true,
            };
            (entry, run_seed(entry.seed, &entry.source, options))
        })
        .collect()
}
