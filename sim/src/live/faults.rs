//! Live mode's fault controllers: tasks that abort producers, crash the
//! store's server (and read the restarted store back), and close the
//! store's connections, until the quiet phase begins.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use atmostonce::DurableStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::env::{LiveWorld, Losses, fingerprint, record_failure};
use super::plant::WipeableStore;
use super::postgres::PgControl;
use super::remote::RemoteStore;
use super::server::HaematiteServer;
use crate::config::Draw;
use crate::history::{Event, FaultEvent, Process};
use crate::workload::NAMESPACE;
use crate::world::Env;
use crate::world::actors::{pick_producer, producer};
use crate::world::janitor::janitor_below;

/// How long an aborted producer stays down before it restarts (as in the
/// simulation).
pub(crate) const PRODUCER_DOWN_MS: (u64, u64) = (10, 500);

/// Read-back attempts after a store restart, 100 ms apart: a restarted
/// server that cannot answer a scan for a minute is an internal error.
const READ_BACK_ATTEMPTS: u32 = 600;
const READ_BACK_RETRY: Duration = Duration::from_millis(100);

/// Sleeps `ms`, or less if the faults are switched off meanwhile; false
/// when they were.
pub(crate) async fn pause(off: &mut watch::Receiver<bool>, ms: u64) -> bool {
    if *off.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => !*off.borrow(),
        _ = off.changed() => false,
    }
}

/// The producer tasks, by index, and when each incarnation of a producer
/// was killed.
#[derive(Default)]
pub(crate) struct Producers {
    pub(crate) tasks: Mutex<Vec<Option<JoinHandle<()>>>>,
    /// `(producer, incarnation)` → when it was killed.
    pub(crate) killed_us: Mutex<HashMap<(u16, u32), u64>>,
    /// A producer task that panicked: a harness bug, reported as an
    /// internal error.
    pub(crate) panicked: Mutex<Option<String>>,
}

impl Producers {
    pub(crate) fn spawn(world: &Arc<LiveWorld>) -> Producers {
        let producers = Producers::default();
        for index in 0..world.config.shape.producers {
            producers
                .tasks
                .lock()
                .push(Some(tokio::spawn(producer(world.clone(), index))));
        }
        producers
    }

    pub(crate) fn note_panic(&self, error: &tokio::task::JoinError) {
        if error.is_panic() {
            self.panicked
                .lock()
                .get_or_insert_with(|| format!("a producer task panicked: {error}"));
        }
    }
}

/// Aborts a producer task now and then, at whatever await point it is at,
/// and restarts it after a while with no memory. Half the crashes hit a
/// producer holding a claim, if one does (the worst moment: its claim is
/// left to expire); the others a random producer.
pub(crate) async fn crash_producers(
    world: Arc<LiveWorld>,
    producers: Arc<Producers>,
    mut off: watch::Receiver<bool>,
) {
    let mut rng = world.env.rng();
    let every_ms = world.config.producer_crash_every_ms;
    loop {
        if !pause(&mut off, rng.around(every_ms)).await || !world.faults_on() {
            return;
        }
        let holders = world.holders();
        let index = if !holders.is_empty() && rng.chance(500) {
            holders[usize::try_from(rng.range(0, holders.len() as u64 - 1)).unwrap_or(0)]
        } else {
            pick_producer(&world, &mut rng)
        };
        if world.is_finished(index) {
            continue;
        }
        let Some(task) = producers.tasks.lock()[usize::from(index)].take() else {
            continue;
        };
        task.abort();
        if let Err(error) = task.await {
            producers.note_panic(&error);
        }
        if world.is_finished(index) {
            continue; // it finished before the abort landed
        }
        let process = Process::Producer(index);
        world.set_current(process, None);
        let at_us = world.now_us();
        // The incarnation the abort ended (a task aborted before it began
        // one ended nothing new: the earlier time stands).
        if let Some(incarnation) = world.incarnation(index) {
            producers
                .killed_us
                .lock()
                .entry((index, incarnation))
                .or_insert(at_us);
        }
        world.history().event(Event::Fault {
            at_us,
            fault: FaultEvent::ProducerCrash(process),
        });
        world
            .env
            .sleep_ms(rng.range(PRODUCER_DOWN_MS.0, PRODUCER_DOWN_MS.1))
            .await;
        world
            .history()
            .event(world.fault(FaultEvent::ProducerRestart(process)));
        producers.tasks.lock()[usize::from(index)] =
            Some(tokio::spawn(producer(world.clone(), index)));
    }
}

/// What crashes the store and brings it back.
pub(crate) enum Crasher {
    /// haematite's server process: SIGKILL, then start it on its database.
    Haematite {
        server: Arc<Mutex<HaematiteServer>>,
        remote: Arc<RemoteStore>,
    },
    /// PostgreSQL: `pg_ctl stop -m immediate`, then `pg_ctl start`.
    Postgres(PgControl),
    /// The `wipe-on-crash` plant: the memory store forgets everything.
    Wipe(Arc<WipeableStore>),
}

impl Crasher {
    async fn crash(&self) -> Result<(), String> {
        match self {
            Crasher::Haematite { server, remote } => {
                let server = server.clone();
                blocking(move || server.lock().kill()).await?;
                remote.set_server(None);
                Ok(())
            }
            Crasher::Postgres(control) => {
                let control = control.clone();
                blocking(move || control.crash()).await
            }
            Crasher::Wipe(store) => {
                store.wipe();
                Ok(())
            }
        }
    }

    async fn restart(&self) -> Result<(), String> {
        match self {
            Crasher::Haematite { server, remote } => {
                let server = server.clone();
                let addr = blocking(move || server.lock().restart()).await?;
                remote.set_server(Some(addr));
                Ok(())
            }
            Crasher::Postgres(control) => {
                let control = control.clone();
                blocking(move || control.start()).await
            }
            Crasher::Wipe(_) => Ok(()),
        }
    }

    /// A failure of the server that the run did not cause.
    pub(crate) fn unexpected_exit(&self) -> Option<String> {
        match self {
            Crasher::Haematite { server, .. } => server.lock().exited(),
            _ => None,
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("a store control task failed: {error}"))?
}

/// Every store crash of a run and what reading the store back found.
#[derive(Debug, Default)]
pub(crate) struct Crashes {
    /// `(when, what was lost)`, one per crash.
    pub(crate) found: Mutex<Vec<(u64, Losses)>>,
}

/// Crashes the store about every `every_ms`, brings it back after
/// `down_ms`, and reads it back against the ledger.
pub(crate) async fn crash_store(
    world: Arc<LiveWorld>,
    crasher: Arc<Crasher>,
    store: Arc<dyn DurableStore>,
    down_ms: (u64, u64),
    every_ms: u64,
    crashes: Arc<Crashes>,
    mut off: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut rng = world.env.rng();
    loop {
        if !pause(&mut off, rng.around(every_ms)).await || !world.faults_on() {
            return Ok(());
        }
        if let Some(error) = crasher.unexpected_exit() {
            return Err(error);
        }
        crasher.crash().await?;
        let at_us = world.now_us();
        let event = {
            let mut history = world.history();
            history.event(Event::Fault {
                at_us,
                fault: FaultEvent::StoreCrash {
                    dropped: Vec::new(),
                },
            });
            history.events.len() - 1
        };
        world.env.sleep_ms(rng.range(down_ms.0, down_ms.1)).await;
        crasher.restart().await?;
        world.history().event(world.fault(FaultEvent::StoreRestart));
        let mark = world.env.ledger.mark();
        let present = read_back(&*store).await?;
        let losses = world.env.ledger.losses(mark, &present);
        {
            let mut history = world.history();
            history.crash_losses(event, losses.slots.clone());
            for reader in &losses.dirty_readers {
                history.flag_dirty(*reader);
            }
        }
        crashes.found.lock().push((at_us, losses));
    }
}

/// Every stream of the run in the store now: payload fingerprints by
/// sequence.
async fn read_back(store: &dyn DurableStore) -> Result<HashMap<String, Vec<u64>>, String> {
    let prefix = format!("{NAMESPACE}:");
    let mut last_error = String::new();
    for _ in 0..READ_BACK_ATTEMPTS {
        match store.scan(&prefix).await {
            Ok(entries) => {
                let mut present: HashMap<String, Vec<u64>> = HashMap::new();
                for scanned in entries {
                    let Ok(index) = usize::try_from(scanned.entry.sequence) else {
                        continue;
                    };
                    let payloads = present.entry(scanned.stream).or_default();
                    if payloads.len() <= index {
                        payloads.resize(index + 1, 0);
                    }
                    payloads[index] = fingerprint(&scanned.entry.payload);
                }
                return Ok(present);
            }
            Err(error) => {
                last_error = error.to_string();
                tokio::time::sleep(READ_BACK_RETRY).await;
            }
        }
    }
    Err(format!(
        "the store did not come back after a crash: its scans kept failing ({last_error})"
    ))
}

/// The janitor (`compaction`): about every `every_ms`, compacts a random
/// stream of the run below a sequence drawn under its head
/// ([`janitor_below`]), with the store's own `compact` (haematite's
/// delete-below, PostgreSQL's `DELETE`), racing every operation. Half its
/// picks are among the workload's keys, half among the fresh keys handed
/// out so far (if any). The ledger is told first, so the read-back after a
/// store crash takes what the compaction may have removed for no loss.
pub(crate) async fn compact_streams(
    world: Arc<LiveWorld>,
    every_ms: u64,
    mut off: watch::Receiver<bool>,
) {
    let mut rng = world.env.rng();
    let keys = u64::from(world.config.shape.keys.max(1));
    loop {
        if !pause(&mut off, rng.around(every_ms)).await || !world.faults_on() {
            return;
        }
        let fresh = u64::from(world.fresh_used());
        let index = if fresh > 0 && rng.chance(500) {
            keys + rng.range(0, fresh - 1)
        } else {
            rng.range(0, keys - 1)
        };
        let Some(stream) = u16::try_from(index)
            .ok()
            .and_then(|key| world.stream_of(key))
            .map(str::to_owned)
        else {
            continue;
        };
        let store = &world.env.store;
        // A store that is down answers neither: the janitor waits for the
        // next round (a failed head read is no fault of the run's).
        let Ok(head) = store.read_head(&stream).await else {
            continue;
        };
        let Some(below_seq) = janitor_below(head.length, &mut rng) else {
            continue;
        };
        world.env.ledger.compacting(&stream, below_seq);
        match store.compact(&stream, below_seq).await {
            Ok(removed) => world.history().event(world.fault(FaultEvent::Compaction {
                stream,
                below_seq,
                removed,
            })),
            Err(error) => record_failure(&world, None, "compact", &error),
        }
    }
}

/// Closes the run's PostgreSQL connections now and then.
pub(crate) async fn disconnect(
    world: Arc<LiveWorld>,
    control: PgControl,
    every_ms: u64,
    mut off: watch::Receiver<bool>,
) {
    let mut rng = world.env.rng();
    loop {
        if !pause(&mut off, rng.around(every_ms)).await || !world.faults_on() {
            return;
        }
        // While a store crash has the server down this fails: nothing to
        // close then.
        if let Ok(count) = control.terminate().await {
            world
                .history()
                .event(world.fault(FaultEvent::ConnectionsTerminated { count }));
        }
    }
}
