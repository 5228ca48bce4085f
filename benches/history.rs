//! The fenced API's claim against history: a claim on a key whose stream
//! has seen 1, 100, 10,000 and 1,000,000 operations, as a ratio to the
//! claim on a 1-record stream, on `MemoryStore`, an ephemeral
//! `HaematiteStore` and (feature `postgres`) `PostgresStore`. Target
//! (issue 14): at most 1.2 at every length.
//!
//! ```text
//! cargo bench --bench history -- --quick                       # memory, haematite
//! cargo bench --bench history --features postgres -- --quick   # and PostgreSQL
//! ```
//!
//! (`--quick` or `ATMOSTONCE_BENCH_QUICK=1`: fewer rounds and calls; the
//! lengths are the same.) PostgreSQL is the server at
//! `ATMOSTONCE_POSTGRES_URL`, or a throwaway cluster (`testpg`).
//!
//! What is measured is the same call at every length: the stream holds N
//! records of claims, each released by the next record, ending with a
//! release; the timed call is `FencedCache::claim` (granted: it appends),
//! and the bench releases the grant again outside the timing. Each claim
//! and release add two records, so a stream serves at most `N / 100`
//! measured claims (it grows by at most 2%) and a stream of fewer than 200
//! records serves one: every claim on the "1-record" side finds exactly one
//! record. The histories are encoded directly (`benches/support`) and
//! copied in with each store's bulk path before the store is opened: into
//! `MemoryStore`'s `StreamTable`, through haematite's `append_batch` (10,000
//! records per commit) on the database `HaematiteStore::open` created
//! (durable, on disk, its default buffered commits), one `INSERT ... SELECT
//! FROM unnest(...)` per 10,000 rows into the PostgreSQL store's table (a
//! table of its own, `history_bench_<pid>`, left behind; then `ANALYZE`).
//! Every length lives in the same store (one map, one tree, one table), so
//! the short side does not profit from a smaller store.
//!
//! There is no criterion report: criterion picks its iteration counts, and
//! each iteration here needs a freshly built stream. Rounds alternate
//! (N-record claims, 1-record claims) in this process; each line gives the
//! ratio of the median single claims of all rounds (the figure to read: on
//! the durable stores a claim waits for an fsync, whose outliers the median
//! ignores) and of the medians of the rounds' mean claims.

mod support;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atmostonce::fenced::{Claim, FencedCache, FencedOptions};
use atmostonce::{DurableStore, HaematiteStore, MemoryStore, StreamTable};
use support::{NOW_MILLIS, median, ratio, released_history};

/// The lengths measured (operations a key's stream has seen).
const LENGTHS: [u64; 4] = [1, 100, 10_000, 1_000_000];

/// Measured claims a stream of `records` records serves before the bench
/// moves to a fresh one (each claim + release appends two records).
fn uses_per_stream(records: u64) -> u64 {
    (records / 100).max(1)
}

/// How one store's rounds are sized.
#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    /// Most claims per round per side.
    calls: u32,
    /// A round stops early after this long (a claim that reads a long
    /// history can take a second).
    budget: Duration,
    /// A length's rounds stop early (after [`MIN_ROUNDS`]) after this long.
    length_budget: Duration,
}

/// Rounds per length however long they take.
const MIN_ROUNDS: usize = 5;

/// Runs a store's futures: the PostgreSQL store needs a tokio runtime.
enum Executor {
    Futures,
    #[cfg(feature = "postgres")]
    Tokio(Arc<tokio::runtime::Runtime>),
}

impl Executor {
    fn run<F: Future>(&self, future: F) -> F::Output {
        match self {
            Executor::Futures => futures::executor::block_on(future),
            #[cfg(feature = "postgres")]
            Executor::Tokio(runtime) => runtime.block_on(future),
        }
    }
}

/// A store being filled with histories, its bulk way, before it is opened
/// for the measured claims.
trait Backend {
    /// Copies one fresh stream's records in.
    fn load(&mut self, stream: &str, records: &[Vec<u8>]);
    /// The store, filled, under a fenced cache.
    fn open(self: Box<Self>) -> Subject;
}

/// One store under test.
struct Subject {
    name: &'static str,
    executor: Executor,
    cache: FencedCache,
}

/// The streams' names, as every store's cache names them.
fn namer() -> FencedCache {
    fenced_cache(Arc::new(MemoryStore::new()))
}

/// `MemoryStore`: the records go straight into its `StreamTable`.
struct Memory(StreamTable);

impl Backend for Memory {
    fn load(&mut self, stream: &str, records: &[Vec<u8>]) {
        for (sequence, payload) in (0u64..).zip(records) {
            self.0
                .append(stream, payload, sequence, support::HISTORY_MILLIS)
                .expect("a fresh stream");
        }
    }

    fn open(self: Box<Self>) -> Subject {
        Subject {
            name: "memory",
            executor: Executor::Futures,
            cache: fenced_cache(Arc::new(MemoryStore::from_table(self.0))),
        }
    }
}

/// haematite: a database created by `HaematiteStore::open` (so with its
/// configuration), filled through haematite's own `EventStore::append_batch`
/// (one tree commit per [`RECORDS_PER_BATCH`] records), closed, and opened
/// again as a `HaematiteStore`.
struct Haematite {
    dir: tempfile::TempDir,
    events: haematite::EventStore,
}

/// Records per haematite batch append while loading.
const RECORDS_PER_BATCH: usize = 10_000;

impl Haematite {
    fn new() -> Haematite {
        let dir = tempfile::tempdir().expect("a temporary directory");
        drop(HaematiteStore::open(dir.path().join("db")).expect("a haematite store"));
        let runtime_options = haematite::RuntimeOptions {
            long_wait_interval: Duration::from_secs(10),
            reclaim_start: haematite::ReclaimStart::AtOpen,
        };
        let database = haematite::Database::open(dir.path().join("db"), runtime_options)
            .expect("the database HaematiteStore created");
        Haematite {
            dir,
            events: haematite::EventStore::new(database),
        }
    }
}

impl Backend for Haematite {
    fn load(&mut self, stream: &str, records: &[Vec<u8>]) {
        // `HaematiteStore`'s stream key is the name with 0x00 and 0x01
        // escaped; these names have neither.
        assert!(!stream.bytes().any(|byte| byte <= 1), "a plain stream name");
        for (index, batch) in records.chunks(RECORDS_PER_BATCH).enumerate() {
            let payloads: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let first = (index * RECORDS_PER_BATCH) as u64;
            self.events
                .append_batch(stream.as_bytes(), &payloads, first)
                .expect("a batch append to a fresh stream");
        }
    }

    fn open(self: Box<Self>) -> Subject {
        let Haematite { dir, events } = *self;
        events.flush().expect("the loaded records are flushed");
        events
            .into_database()
            .close()
            .expect("the loading database closes");
        let store = HaematiteStore::open(dir.path().join("db")).expect("the loaded store");
        // The directory lives as long as the process: the subject is used
        // until the end of `main`.
        std::mem::forget(dir);
        Subject {
            name: "haematite",
            executor: Executor::Futures,
            cache: fenced_cache(Arc::new(store)),
        }
    }
}

/// Keys whose streams hold `records` records, each good for a few claims.
struct Shelf {
    /// Names this shelf's keys apart from another's of the same length.
    name: &'static str,
    records: u64,
    /// Keys ready, with the claims each has left.
    keys: VecDeque<(String, u64)>,
    built: u64,
}

impl Shelf {
    fn new(name: &'static str, records: u64) -> Shelf {
        Shelf {
            name,
            records,
            keys: VecDeque::new(),
            built: 0,
        }
    }

    /// Builds streams until `claims` claims are ready.
    fn stock(&mut self, namer: &FencedCache, backend: &mut dyn Backend, claims: u64) {
        let mut ready: u64 = self.keys.iter().map(|(_, left)| left).sum();
        while ready < claims {
            let key = format!("{}-{}-{}", self.name, self.records, self.built);
            self.built += 1;
            let history = released_history(&key, self.records);
            backend.load(&namer.stream_key_for(&key), &history);
            let uses = uses_per_stream(self.records);
            self.keys.push_back((key, uses));
            ready += uses;
        }
    }

    /// The next key to claim.
    fn take(&mut self) -> String {
        let (key, left) = self.keys.front_mut().expect("stocked before the round");
        let key = key.clone();
        *left -= 1;
        if *left == 0 {
            self.keys.pop_front();
        }
        key
    }
}

/// One round: up to `plan.calls` claims (each on a key of `shelf`), each
/// timed alone (into `times`) and released again untimed; the mean time
/// per claim.
fn round(subject: &Subject, shelf: &mut Shelf, plan: Plan, times: &mut Vec<Duration>) -> Duration {
    let started = Instant::now();
    let (mut timed, mut calls) = (Duration::ZERO, 0u32);
    while calls < plan.calls && (calls == 0 || started.elapsed() < plan.budget) {
        let key = shelf.take();
        let claim_started = Instant::now();
        let claim = subject.executor.run(subject.cache.claim(&key, NOW_MILLIS));
        let elapsed = claim_started.elapsed();
        timed += elapsed;
        times.push(elapsed);
        let token = match black_box(claim) {
            Ok(Claim::Granted(token)) => token,
            other => panic!("{}: key {key} was not granted: {other:?}", subject.name),
        };
        subject
            .executor
            .run(subject.cache.release(&token, NOW_MILLIS))
            .expect("the holder's release");
        calls += 1;
    }
    timed / calls
}

fn measure(backend: Box<dyn Backend>, plan: Plan) -> Subject {
    let mut backend = backend;
    let started = Instant::now();
    let namer = namer();
    let claims = (plan.rounds as u64) * u64::from(plan.calls);
    let mut base = Shelf::new("base", 1);
    base.stock(&namer, &mut *backend, claims * LENGTHS.len() as u64);
    let mut shelves: Vec<Shelf> = LENGTHS
        .iter()
        .map(|&records| {
            let mut shelf = Shelf::new("long", records);
            shelf.stock(&namer, &mut *backend, claims);
            shelf
        })
        .collect();
    let subject = backend.open();
    println!(
        "  {}: histories built in {:.1?} ({} rounds of at most {} claims per side)",
        subject.name,
        started.elapsed(),
        plan.rounds,
        plan.calls
    );
    for shelf in &mut shelves {
        let (mut long_claims, mut short_claims) = (Vec::new(), Vec::new());
        let (mut long_means, mut short_means) = (Vec::new(), Vec::new());
        let length_started = Instant::now();
        for done in 1..=plan.rounds {
            long_means.push(round(&subject, shelf, plan, &mut long_claims));
            short_means.push(round(&subject, &mut base, plan, &mut short_claims));
            if done >= MIN_ROUNDS && length_started.elapsed() >= plan.length_budget {
                break;
            }
        }
        let rounds = long_means.len();
        let (long, short) = (median(long_means), median(short_means));
        let (long_claim, short_claim) = (median(long_claims), median(short_claims));
        println!(
            "  {}: claim on a stream of {:>9} operations: median claim {long_claim:>9.1?} = \
             {:>8.2}x the 1-record claim's ({short_claim:.1?}); median round mean {long:.1?} = \
             {:.2}x ({short:.1?}); {} rounds",
            subject.name,
            shelf.records,
            ratio(long_claim, short_claim),
            ratio(long, short),
            rounds,
        );
    }
    subject
}

fn fenced_cache(store: Arc<dyn DurableStore>) -> FencedCache {
    FencedCache::new(store, "history", FencedOptions::default()).expect("a valid namespace")
}

#[cfg(feature = "postgres")]
mod postgres {
    //! PostgreSQL: the store's table, filled by multi-row inserts.

    use std::sync::Arc;

    use atmostonce::{PostgresOptions, PostgresStore};
    use tokio_postgres::NoTls;

    use super::{Backend, Executor, Subject, fenced_cache};

    /// Rows per bulk `INSERT`.
    const ROWS_PER_INSERT: usize = 10_000;

    pub(super) struct Postgres {
        runtime: Arc<tokio::runtime::Runtime>,
        store: PostgresStore,
        client: tokio_postgres::Client,
        insert: String,
    }

    impl Postgres {
        /// The store on a table of its own (`history_bench_<pid>`), at the
        /// server `testpg` gives (`ATMOSTONCE_POSTGRES_URL`'s, or a
        /// throwaway cluster).
        pub(super) fn new() -> Postgres {
            let server = testpg::server().expect("a PostgreSQL server");
            let url = server.url().to_owned();
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime"),
            );
            let table = format!("history_bench_{}", std::process::id());
            let options = PostgresOptions::default().with_table(table.clone());
            let store = runtime
                .block_on(PostgresStore::connect_with_options(&url, options))
                .expect("a PostgreSQL store");
            let client = runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, NoTls)
                    .await
                    .expect("a connection for the bulk loader");
                tokio::spawn(connection);
                client
            });
            Postgres {
                runtime,
                store,
                client,
                insert: format!(
                    "INSERT INTO \"{table}\" (stream, sequence, payload, stored_ms) \
                     SELECT $1::bytea, s, p, 0 FROM unnest($2::int8[], $3::bytea[]) AS u (s, p)"
                ),
            }
        }
    }

    impl Backend for Postgres {
        fn load(&mut self, stream: &str, records: &[Vec<u8>]) {
            self.runtime.block_on(async {
                let stream = stream.as_bytes().to_vec();
                for (index, chunk) in records.chunks(ROWS_PER_INSERT).enumerate() {
                    let first = (index * ROWS_PER_INSERT) as i64;
                    let sequences: Vec<i64> = (first..).take(chunk.len()).collect();
                    self.client
                        .execute(&self.insert, &[&stream, &sequences, &chunk])
                        .await
                        .expect("a bulk insert");
                }
            });
        }

        fn open(self: Box<Self>) -> Subject {
            let table = self.store.table().to_owned();
            self.runtime.block_on(async {
                self.client
                    .batch_execute(&format!("ANALYZE \"{table}\""))
                    .await
                    .expect("ANALYZE");
            });
            Subject {
                name: "postgres",
                executor: Executor::Tokio(Arc::clone(&self.runtime)),
                cache: fenced_cache(Arc::new(self.store)),
            }
        }
    }
}

fn main() {
    if support::is_test_run() {
        return;
    }
    let quick = support::quick();
    let plan = |rounds: usize, calls: u32, budget_ms: u64| Plan {
        rounds: if quick { rounds.div_ceil(2) } else { rounds },
        calls: if quick { calls.div_ceil(2) } else { calls },
        budget: Duration::from_millis(budget_ms),
        length_budget: Duration::from_secs(if quick { 10 } else { 30 }),
    };
    println!(
        "fenced claim against history: medians of interleaved rounds, ratios to the claim on a \
         1-record stream{} (load average {})",
        if quick { ", quick mode" } else { "" },
        support::load_average()
    );
    measure(Box::new(Memory(StreamTable::new())), plan(11, 400, 100));
    // On the durable stores a claim waits for an fsync, whose latency
    // drifts over seconds on a shared disk: the sides alternate claim by
    // claim.
    measure(Box::new(Haematite::new()), plan(600, 1, 200));
    #[cfg(feature = "postgres")]
    measure(Box::new(postgres::Postgres::new()), plan(400, 1, 500));
}
