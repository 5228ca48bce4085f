//! One live run: the store set up, the tasks, the main and quiet phases,
//! the probe, the cut-off of killed producers' operations and the check.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use atmostonce::{DurableStore, MemoryStore, PostgresOptions, PostgresStore};
use tokio::sync::watch;

use super::env::Live;
use super::faults::{Crasher, Crashes, Producers};
use super::options::{LiveOptions, STORE_DOWN_MS, WIPE_EVERY_MS};
use super::plant::{PlantedStore, WipeableStore};
use super::postgres::PgControl;
use super::remote::RemoteStore;
use super::server::HaematiteServer;
use super::storage::{StorageSample, sample_storage};
use crate::check::{Invariant, Verdict, Violation, check};
use crate::cli::{LiveFault, Plant, StoreKind};
use crate::config::SplitMix;
use crate::history::{Event, FaultEvent, History, Process};
use crate::world::actors::{draw_offset, jump_clocks, probe, sweeper};
use crate::world::{WorkloadPlant, World, new_history};

/// How often the run looks at the clock and the producers.
const POLL: Duration = Duration::from_millis(50);
/// How long producers may take to finish the message in hand once the
/// main phase is over, before the run is declared stuck (A2): a message is
/// at most a few claims, a delivery and a few completions, each bounded by
/// a store call's timeout.
const FINISH_CAP: Duration = Duration::from_secs(120);
/// Bound on one PostgreSQL store call: long past any outage the run causes,
/// so that a call's effect never comes after its answer (see `server.rs`).
const POSTGRES_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Fault counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Producer tasks aborted.
    pub producer_crashes: u64,
    /// Store crashes (server killed or stopped, or a wipe).
    pub store_crashes: u64,
    /// `pg_terminate_backend` rounds, and connections they closed.
    pub disconnects: u64,
    /// Connections closed by them.
    pub connections_terminated: u64,
    /// Store calls that failed (indeterminate errors).
    pub store_call_errors: u64,
    /// Store calls delayed by `latency`.
    pub delayed_calls: u64,
    /// Clock jumps.
    pub clock_jumps: u64,
    /// The janitor's compactions (`compaction`), and the records they
    /// removed.
    pub compactions: u64,
    /// Records the janitor's compactions removed.
    pub compacted_records: u64,
    /// Acknowledged appends a restarted store no longer had.
    pub acknowledged_lost: u64,
    /// Unacknowledged entries a restarted store no longer had.
    pub unacknowledged_lost: u64,
    /// Operations whose read was of an entry a crash then dropped.
    pub dirty_readers: u64,
}

/// The result of a live run.
#[derive(Debug, Clone)]
pub struct LiveRun {
    /// What ran.
    pub options: LiveOptions,
    /// The history.
    pub history: History,
    /// The checker's verdict (with the store's broken durability promises
    /// as S4 violations).
    pub verdict: Verdict,
    /// How long the main phase ran, until the last producer finished.
    pub main_phase: Duration,
    /// How long the whole run took, quiet phase and probe included.
    pub elapsed: Duration,
    /// How long the checker took.
    pub checker: Duration,
    /// Fault counts.
    pub faults: FaultCounts,
    /// The main phase ended early because the history reached its bound.
    pub capped: bool,
    /// Where the store's data was kept for a look after a violation.
    pub kept: Option<String>,
    /// The store's records and keys, sampled during the main phase.
    pub storage: Vec<StorageSample>,
}

/// The store under test and what the run needs to crash it and clean up.
struct Setup {
    /// What the producers' handles call (the store, with a plant if any).
    store: Arc<dyn DurableStore>,
    /// The store without a read plant, to read it back after a crash.
    plain: Arc<dyn DurableStore>,
    crasher: Option<Arc<Crasher>>,
    postgres: Option<(PgControl, String)>,
    haematite_dir: Option<tempfile::TempDir>,
    track_reads: bool,
}

async fn setup(options: &LiveOptions) -> Result<Setup, String> {
    let crashes = options.has(LiveFault::StoreCrash);
    let mut setup = match options.store {
        StoreKind::Memory => {
            if options.plant == Some(Plant::WipeOnCrash) {
                let store = Arc::new(WipeableStore::default());
                Setup {
                    store: store.clone(),
                    plain: store.clone(),
                    crasher: Some(Arc::new(Crasher::Wipe(store))),
                    postgres: None,
                    haematite_dir: None,
                    track_reads: true,
                }
            } else {
                let store: Arc<dyn DurableStore> = Arc::new(MemoryStore::new());
                Setup {
                    plain: store.clone(),
                    store,
                    crasher: None,
                    postgres: None,
                    haematite_dir: None,
                    track_reads: false,
                }
            }
        }
        StoreKind::Haematite => {
            let (dir, path) = match &options.haematite_path {
                Some(path) => (None, path.clone()),
                None => {
                    let dir = tempfile::Builder::new()
                        .prefix("atmostonce-live-")
                        .tempdir()
                        .map_err(|error| format!("no temporary directory: {error}"))?;
                    let path = dir.path().join("db");
                    (Some(dir), path)
                }
            };
            let log = path.with_extension("server.log");
            let (server, addr) = HaematiteServer::start(&options.server_exe, &path, &log)?;
            let remote = Arc::new(RemoteStore::default());
            remote.set_server(Some(addr));
            Setup {
                store: remote.clone(),
                plain: remote.clone(),
                crasher: Some(Arc::new(Crasher::Haematite {
                    server: Arc::new(Mutex::new(server)),
                    remote,
                })),
                postgres: None,
                haematite_dir: dir,
                track_reads: crashes,
            }
        }
        StoreKind::Postgres => {
            let target = options
                .postgres
                .as_ref()
                .ok_or("--store postgres needs --postgres-url or ATMOSTONCE_POSTGRES_URL")?;
            let control = PgControl::new(&target.url, target.data.clone(), target.bin.clone());
            if crashes {
                control.check_control()?;
            }
            let table = format!(
                "live_{}_{}",
                std::process::id(),
                atmostonce::wall_clock_millis()
            );
            let store_options = PostgresOptions::default()
                .with_table(table.clone())
                .with_pool_size(usize::from(options.config.shape.producers) + 4)
                .with_call_timeout(POSTGRES_CALL_TIMEOUT);
            let store = PostgresStore::connect_with_options(&control.url, store_options)
                .await
                .map_err(|error| format!("cannot use PostgreSQL at {}: {error}", target.url))?;
            let store: Arc<dyn DurableStore> = Arc::new(store);
            Setup {
                plain: store.clone(),
                store,
                crasher: crashes.then(|| Arc::new(Crasher::Postgres(control.clone()))),
                postgres: Some((control, table)),
                haematite_dir: None,
                track_reads: crashes,
            }
        }
    };
    setup.store = PlantedStore::wrap(setup.store, options.plant);
    Ok(setup)
}

/// Runs `options` on a fresh multi-threaded tokio runtime.
pub fn run(options: &LiveOptions) -> Result<LiveRun, String> {
    options.config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("no tokio runtime: {error}"))?;
    runtime.block_on(run_async(options))
}

async fn run_async(options: &LiveOptions) -> Result<LiveRun, String> {
    let started = Instant::now();
    let config = options.config.clone();
    let mut setup = setup(options).await?;
    let mut history = new_history(&config)?;
    history.hash_in(&options.seed);
    let mut rng = SplitMix(options.seed ^ 0x6c69_7665);
    let offsets_ms = (0..=config.shape.producers)
        .map(|_| draw_offset(&config, &mut rng))
        .collect();
    let latency = (config.latency_pm, config.latency_max_ms);
    let env = Live::new(
        options.seed,
        setup.store.clone(),
        latency,
        setup.track_reads,
    );
    let budgets = vec![u32::MAX; usize::from(config.shape.producers)];
    let mut world = World::new(config.clone(), env, history, offsets_ms, budgets);
    if options.plant == Some(Plant::DeliverWithoutClaim) {
        world.plant = Some(WorkloadPlant::DeliverWithoutClaim);
    }
    let world = Arc::new(world);

    let producers = Arc::new(Producers::spawn(&world));
    let sweeper_task =
        (options.plant != Some(Plant::NoSweeper)).then(|| tokio::spawn(sweeper(world.clone())));
    let (off, off_receiver) = watch::channel(false);
    let crashes = Arc::new(Crashes::default());
    let mut controllers = Vec::new();
    if options.has(LiveFault::ProducerCrash) {
        let task =
            super::faults::crash_producers(world.clone(), producers.clone(), off_receiver.clone());
        controllers.push(tokio::spawn(async move {
            task.await;
            Ok(())
        }));
    }
    // The clock jumps change nothing outside the world, so the quiet phase
    // just aborts them.
    let clock_jumps = options
        .has(LiveFault::ClockSkew)
        .then(|| tokio::spawn(jump_clocks(world.clone())));
    if let Some(crasher) = &setup.crasher {
        let wipes = options.plant == Some(Plant::WipeOnCrash);
        if options.has(LiveFault::StoreCrash) || wipes {
            let every_ms = if wipes {
                WIPE_EVERY_MS
            } else {
                config.store_crash_every_ms
            };
            controllers.push(tokio::spawn(super::faults::crash_store(
                world.clone(),
                crasher.clone(),
                setup.plain.clone(),
                STORE_DOWN_MS,
                every_ms,
                crashes.clone(),
                off_receiver.clone(),
            )));
        }
    }
    if let (true, Some((control, _))) = (options.has(LiveFault::Disconnect), &setup.postgres) {
        let task = super::faults::disconnect(
            world.clone(),
            control.clone(),
            options.disconnect_every_ms,
            off_receiver.clone(),
        );
        controllers.push(tokio::spawn(async move {
            task.await;
            Ok(())
        }));
    }

    if options.has(LiveFault::Compaction) && config.compact_every_ms > 0 {
        let task = super::faults::compact_streams(
            world.clone(),
            config.compact_every_ms,
            off_receiver.clone(),
        );
        controllers.push(tokio::spawn(async move {
            task.await;
            Ok(())
        }));
    }

    let storage = Arc::new(Mutex::new(Vec::new()));
    let workload_streams = (0..config.shape.keys)
        .filter_map(|key| world.stream_of(key).map(str::to_owned))
        .collect();
    let storage_task = tokio::spawn(sample_storage(
        setup.plain.clone(),
        workload_streams,
        started,
        storage.clone(),
        off_receiver.clone(),
    ));

    // Main phase: until the duration is up (or the history is full), then
    // until every producer has finished the message in hand.
    let mut capped = false;
    loop {
        tokio::time::sleep(POLL).await;
        if started.elapsed() >= options.duration {
            break;
        }
        if world.history().ops.len() >= crate::config::MAX_OPS as usize {
            capped = true;
            break;
        }
    }
    world.end_budgets();
    let finishing = Instant::now();
    let mut stuck = false;
    loop {
        tokio::time::sleep(POLL).await;
        let unfinished = world.unfinished();
        if unfinished.is_empty() {
            break;
        }
        if finishing.elapsed() > FINISH_CAP {
            let at_us = world.now_us();
            world.history().event(Event::Stuck {
                at_us,
                producers: unfinished,
            });
            stuck = true;
            break;
        }
    }
    let main_phase = started.elapsed();

    // Quiet phase: faults stop (a store that is down comes back first);
    // every abandoned claim must then expire.
    world.quiet();
    let _ = off.send(true);
    let _ = storage_task.await;
    if let Some(task) = clock_jumps {
        task.abort();
    }
    let mut internal = None;
    for controller in controllers {
        match controller.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => internal = internal.or(Some(error)),
            Err(error) => {
                internal = internal.or(Some(format!("a fault controller failed: {error}")))
            }
        }
    }
    if let Some(error) = setup
        .crasher
        .as_ref()
        .and_then(|crasher| crasher.unexpected_exit())
    {
        internal = internal.or(Some(error));
    }
    world.history().event(world.fault(FaultEvent::QuietPhase));
    if internal.is_none() && !stuck {
        tokio::time::sleep(Duration::from_millis(config.quiet_ms())).await;
        probe(&world).await?;
    }
    world.stop();
    if let Some(task) = sweeper_task {
        if stuck {
            task.abort();
        }
        let _ = task.await;
    }
    let tasks: Vec<_> = producers.tasks.lock().drain(..).flatten().collect();
    for task in tasks {
        task.abort();
        if let Err(error) = task.await {
            producers.note_panic(&error);
        }
    }
    if let Some(error) = producers.panicked.lock().take() {
        internal = internal.or(Some(error));
    }
    if let Some(error) = internal {
        return Err(error);
    }
    let elapsed = started.elapsed();

    // The operations of killed producers: effects before the kill and the
    // end of their last store call.
    let killed_us = producers.killed_us.lock().clone();
    let mut history = std::mem::take(&mut *world.history());
    let unanswered: Vec<(u32, Process, u32)> = history
        .ops
        .iter()
        .filter(|op| op.result.is_none())
        .map(|op| (op.id, op.process, op.incarnation))
        .collect();
    for (id, process, incarnation) in unanswered {
        let Process::Producer(index) = process else {
            continue;
        };
        let killed_us = killed_us.get(&(index, incarnation));
        if let (Some(killed_us), Some(calls_end_us)) = (killed_us, world.env.ledger.calls_done(id))
        {
            history.cut_off(id, (*killed_us).max(calls_end_us));
        }
    }

    let checking = Instant::now();
    let mut verdict = check(&history, options.check);
    let found = std::mem::take(&mut *crashes.found.lock());
    let mut counts = FaultCounts {
        delayed_calls: world
            .env
            .delayed_calls
            .load(std::sync::atomic::Ordering::Relaxed),
        ..FaultCounts::default()
    };
    store_losses(&history, &found, &mut verdict, &mut counts);
    verdict
        .violations
        .sort_by_key(|violation| (violation.invariant, violation.key));
    let checker = checking.elapsed();
    count_faults(&history, &mut counts);

    let kept = clean_up(&mut setup, verdict.passed()).await;
    Ok(LiveRun {
        options: options.clone(),
        history,
        verdict,
        main_phase,
        elapsed,
        checker,
        faults: counts,
        capped,
        kept,
        storage: std::mem::take(&mut *storage.lock()),
    })
}

/// The store's broken promises: every acknowledged append a restarted
/// store no longer had is an S4 violation (the store's, not the engine's).
fn store_losses(
    history: &History,
    found: &[(u64, super::env::Losses)],
    verdict: &mut Verdict,
    counts: &mut FaultCounts,
) {
    for (at_us, losses) in found {
        counts.acknowledged_lost += losses.acknowledged.len() as u64;
        counts.unacknowledged_lost += (losses.slots.len() - losses.acknowledged.len()) as u64;
        counts.dirty_readers += losses.dirty_readers.len() as u64;
        for (stream, sequence, op) in &losses.acknowledged {
            let record = op.and_then(|op| history.ops.get(op as usize));
            verdict.violations.push(Violation {
                invariant: Invariant::S4,
                key: record.map(|op| op.key),
                ops: op.iter().copied().collect(),
                message: format!(
                    "the store acknowledged {} at {stream}#{sequence}, and after the store crash \
                     at {} ms it was gone: the store broke its promise that acknowledged appends \
                     are durable (the store's fault, not the engine's)",
                    record.map_or_else(
                        || "an append".to_owned(),
                        |op| format!("op {}'s append ({} by {})", op.id, op.name(), op.process)
                    ),
                    at_us / 1000
                ),
            });
        }
    }
}

fn count_faults(history: &History, counts: &mut FaultCounts) {
    for event in &history.events {
        let Event::Fault { fault, .. } = event else {
            continue;
        };
        match fault {
            FaultEvent::ProducerCrash(_) => counts.producer_crashes += 1,
            FaultEvent::StoreCrash { .. } => counts.store_crashes += 1,
            FaultEvent::ConnectionsTerminated { count } => {
                counts.disconnects += 1;
                counts.connections_terminated += count;
            }
            FaultEvent::StoreCallFailed { .. } => counts.store_call_errors += 1,
            FaultEvent::ClockJump { .. } => counts.clock_jumps += 1,
            FaultEvent::Compaction { removed, .. } => {
                counts.compactions += 1;
                counts.compacted_records += removed;
            }
            _ => {}
        }
    }
}

/// Removes the run's data after a pass; keeps it (and says where) after a
/// violation.
async fn clean_up(setup: &mut Setup, passed: bool) -> Option<String> {
    if let Some(Crasher::Haematite { server, .. }) = setup.crasher.as_deref() {
        // The server holds the database's lock: stop it before the
        // directory goes.
        let _ = server.lock().kill();
    }
    if let Some((control, table)) = &setup.postgres {
        if passed {
            // Best effort: a leftover table of a passing run harms nothing.
            let _ = control.drop_table(table).await;
            return None;
        }
        return Some(format!("PostgreSQL table {table}"));
    }
    let dir = setup.haematite_dir.take()?;
    if passed {
        return None;
    }
    let path = dir.keep();
    Some(format!("haematite database {}", path.join("db").display()))
}
