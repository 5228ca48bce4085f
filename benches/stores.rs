//! The durable stores under load: claim + complete per second with 16
//! concurrent producers, each against what a user could write instead.
//!
//! - haematite: the engine on `HaematiteStore` against haematite's bare
//!   `EventStore` calls that a claim + complete needs (read, append, read,
//!   append), from 16 threads, on an identically configured database.
//! - PostgreSQL: the engine on `PostgresStore` against a hand-written
//!   idempotency table (`INSERT ... ON CONFLICT DO NOTHING`, then an
//!   `UPDATE` with the receipt), on the same server, pool size and
//!   durability (`synchronous_commit = on`).
//! - The same for the fenced API (`FencedCache::claim`, then `complete`
//!   with the token): on PostgreSQL against the same hand-written table, on
//!   haematite against the `EventStore` calls the fenced claim + complete
//!   makes on a fresh key, recorded from one probe run on a `HaematiteStore`
//!   at start-up (so they follow the engine) and printed. Targets
//!   (issue 14): at least 1.0x on both.
//!
//! Criterion reports each figure; the ratios are measured afterwards in the
//! same process by alternating rounds of the engine and its baseline, so
//! that the shared machine's noise hits both alike.
//!
//! ```text
//! source scripts/throwaway-postgres.sh && throwaway_postgres_start
//! cargo bench --bench stores --features postgres
//! cargo bench --bench stores --features postgres -- --quick   # a few minutes
//! ```
//!
//! `--quick` (or `ATMOSTONCE_BENCH_QUICK=1`) also halves the alternating
//! rounds behind the ratios.

mod support;

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atmostonce::core::StoreRequest;
use atmostonce::fenced::{Claim, FencedCache, FencedOptions};
use atmostonce::store::haematite::{
    DEFAULT_BUFFERED_COMMIT_BYTES, DEFAULT_NODE_CACHE_BYTES, DEFAULT_SHARD_COUNT,
};
use atmostonce::{
    DedupCache, DedupDecision, DurableStore, HaematiteStore, PostgresOptions, PostgresStore,
    ProcessingReceipt,
};
use criterion::{Criterion, Throughput};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use support::calls::{Call, names, recording, take};
use tokio_postgres::NoTls;

/// Concurrent producers, as the issue asks.
const PRODUCERS: usize = 16;
/// Alternating rounds of engine and baseline behind each ratio.
const RATIO_ROUNDS: usize = 6;
/// Claim + complete pairs per round, per side.
const RATIO_KEYS_PER_ROUND: u64 = 1_600;
/// Receipt size: an id and a status.
const RECEIPT_BYTES: usize = 32;

/// Something that performs `keys` claim + complete pairs on fresh keys with
/// 16 concurrent producers and says how long that took.
trait Workload {
    fn run(&self, keys: u64) -> Duration;
}

/// Fresh key ids, unique across workloads.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// The keys of one producer when `keys` are split among all of them.
fn share(keys: u64, producer: usize) -> u64 {
    let producers = PRODUCERS as u64;
    keys / producers + u64::from((producer as u64) < keys % producers)
}

fn tokio_runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    )
}

/// A fresh key.
fn next_key() -> String {
    format!("key-{}", NEXT_KEY.fetch_add(1, Ordering::Relaxed))
}

/// Runs `pair` on `keys` fresh keys, split among 16 tokio tasks, and says
/// how long they took.
fn time_tokio_producers<F, Fut>(runtime: &tokio::runtime::Runtime, keys: u64, pair: F) -> Duration
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let started = Instant::now();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let pair = pair.clone();
                tokio::spawn(async move {
                    for _ in 0..share(keys, producer) {
                        pair(next_key()).await;
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        started.elapsed()
    })
}

/// The engine: `claim_or_get` then `complete_receipt_at`.
struct Engine {
    runtime: Arc<tokio::runtime::Runtime>,
    cache: DedupCache,
}

impl Workload for Engine {
    fn run(&self, keys: u64) -> Duration {
        let cache = self.cache.clone();
        time_tokio_producers(&self.runtime, keys, move |key| {
            let cache = cache.clone();
            async move {
                let receipt = ProcessingReceipt::new(vec![7; RECEIPT_BYTES]);
                let decision = cache.claim_or_get(&key, 1_000).await.unwrap();
                assert_eq!(decision, DedupDecision::Claimed);
                cache
                    .complete_receipt_at(&key, &receipt, 1_000)
                    .await
                    .unwrap();
            }
        })
    }
}

/// The fenced engine: `claim` then `complete` with the token.
struct Fenced {
    runtime: Arc<tokio::runtime::Runtime>,
    cache: FencedCache,
}

impl Workload for Fenced {
    fn run(&self, keys: u64) -> Duration {
        let cache = self.cache.clone();
        time_tokio_producers(&self.runtime, keys, move |key| {
            let cache = cache.clone();
            async move {
                let receipt = ProcessingReceipt::new(vec![7; RECEIPT_BYTES]);
                let Claim::Granted(token) = cache.claim(&key, 1_000).await.unwrap() else {
                    panic!("a fresh key is granted");
                };
                cache.complete(&token, &receipt, 1_000).await.unwrap();
            }
        })
    }
}

fn fenced_cache(store: Arc<dyn DurableStore>) -> FencedCache {
    FencedCache::new(store, "fenced", FencedOptions::default()).expect("a valid namespace")
}

/// The store calls one fenced claim + complete of a fresh key makes on
/// `store` (the probe's key is left in the store).
fn fenced_calls(
    runtime: &Arc<tokio::runtime::Runtime>,
    store: impl DurableStore + 'static,
) -> Vec<Call> {
    let store = Arc::new(recording(store));
    let probe = Fenced {
        runtime: Arc::clone(runtime),
        cache: fenced_cache(Arc::clone(&store) as Arc<dyn DurableStore>),
    };
    probe.run(1);
    take(&store)
}

/// haematite's bare calls for a fenced claim + complete: the recorded
/// calls, made on `EventStore` for a fresh key, from 16 threads.
struct FencedHaematiteBare {
    events: Arc<haematite::EventStore>,
    calls: Vec<Call>,
}

impl Workload for FencedHaematiteBare {
    fn run(&self, keys: u64) -> Duration {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for producer in 0..PRODUCERS {
                let (events, calls) = (&self.events, &self.calls);
                scope.spawn(move || {
                    for _ in 0..share(keys, producer) {
                        let key = next_key();
                        replay_on_events(events, calls, key.as_bytes());
                    }
                });
            }
        });
        started.elapsed()
    }
}

/// `calls` on haematite's `EventStore` at `key`, as `HaematiteStore` makes
/// them (a head read: the sequence counter, then a one-entry page).
fn replay_on_events(events: &haematite::EventStore, calls: &[Call], key: &[u8]) {
    let page = NonZeroUsize::new(256).unwrap();
    for call in calls {
        match call {
            StoreRequest::Append {
                payload,
                expected_seq,
                ..
            } => {
                events.append(key, payload, *expected_seq).unwrap();
            }
            StoreRequest::Read { offset, .. } => {
                std::hint::black_box(events.read_page(key, *offset, page).unwrap());
            }
            StoreRequest::ReadHead { .. } => {
                if let Some(length) = events.read_stream_next_seq(key).unwrap()
                    && length > 0
                {
                    std::hint::black_box(
                        events
                            .read_page(key, length - 1, NonZeroUsize::MIN)
                            .unwrap(),
                    );
                }
            }
            StoreRequest::Flush => events.flush().unwrap(),
            StoreRequest::Scan { .. }
            | StoreRequest::ScanHeads { .. }
            | StoreRequest::Compact { .. } => {}
        }
    }
}

/// haematite's bare calls for a claim + complete: read the stream, append
/// the claim, read it again, append the completion.
struct HaematiteBare {
    events: Arc<haematite::EventStore>,
}

impl Workload for HaematiteBare {
    fn run(&self, keys: u64) -> Duration {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for producer in 0..PRODUCERS {
                let events = &self.events;
                scope.spawn(move || {
                    // Records of the engine's sizes: a claim, a completion.
                    let (claim, completion) = ([1u8; 48], [2u8; 48 + RECEIPT_BYTES + 8]);
                    let page = NonZeroUsize::new(256).unwrap();
                    for _ in 0..share(keys, producer) {
                        let key = next_key();
                        let key = key.as_bytes();
                        assert!(events.read_page(key, 0, page).unwrap().events.is_empty());
                        events.append(key, &claim, 0).unwrap();
                        assert_eq!(events.read_page(key, 0, page).unwrap().events.len(), 1);
                        events.append(key, &completion, 1).unwrap();
                    }
                });
            }
        });
        started.elapsed()
    }
}

/// What a user might write instead of the engine on PostgreSQL.
struct PostgresBaseline {
    runtime: Arc<tokio::runtime::Runtime>,
    pool: Pool,
    claim: Arc<str>,
    complete: Arc<str>,
}

impl Workload for PostgresBaseline {
    fn run(&self, keys: u64) -> Duration {
        let (pool, claim, complete) =
            (self.pool.clone(), self.claim.clone(), self.complete.clone());
        time_tokio_producers(&self.runtime, keys, move |key| {
            let (pool, claim, complete) = (pool.clone(), claim.clone(), complete.clone());
            async move {
                let client = pool.get().await.unwrap();
                let statement = client.prepare_cached(&claim).await.unwrap();
                let claimed = client.execute(&statement, &[&key, &1_000i64]).await;
                assert_eq!(claimed.unwrap(), 1);
                drop(client); // the delivery happens here
                let client = pool.get().await.unwrap();
                let statement = client.prepare_cached(&complete).await.unwrap();
                let receipt = vec![7u8; RECEIPT_BYTES];
                let completed = client.execute(&statement, &[&key, &receipt]).await;
                assert_eq!(completed.unwrap(), 1);
            }
        })
    }
}

/// The haematite workloads: the seed engine, its bare calls, the fenced
/// engine (on the same store, another namespace), its bare calls (on the
/// same database as the seed's).
struct HaematiteWorkloads {
    engine: Engine,
    bare: HaematiteBare,
    fenced: Fenced,
    fenced_bare: FencedHaematiteBare,
}

fn haematite_workloads(dir: &std::path::Path) -> HaematiteWorkloads {
    let store = Arc::new(HaematiteStore::open(dir.join("engine")).expect("a haematite store"));
    let runtime = tokio_runtime();
    let fenced = Fenced {
        runtime: Arc::clone(&runtime),
        cache: fenced_cache(Arc::clone(&store) as Arc<dyn DurableStore>),
    };
    let calls = fenced_calls(&runtime, Arc::clone(&store));
    println!(
        "fenced claim+complete on HaematiteStore makes: {}",
        names(&calls)
    );
    let engine = Engine {
        runtime,
        cache: DedupCache::new(store, "bench"),
    };
    // The configuration `HaematiteStore::open` creates with.
    let config = haematite::DatabaseConfig {
        data_dir: dir.join("bare"),
        shard_count: DEFAULT_SHARD_COUNT,
        distributed: None,
        executor_threads: None,
        node_cache_budget: Some(
            haematite::NodeCacheBudget::bytes(DEFAULT_NODE_CACHE_BYTES).unwrap(),
        ),
        retention: haematite::Retention::default(),
    };
    let runtime_options = haematite::RuntimeOptions {
        long_wait_interval: Duration::from_secs(10),
        reclaim_start: haematite::ReclaimStart::AtOpen,
    };
    let database = haematite::Database::create(config, runtime_options).unwrap();
    let policy =
        haematite::CommitPolicy::buffered(NonZeroU64::new(DEFAULT_BUFFERED_COMMIT_BYTES).unwrap());
    let events = Arc::new(haematite::EventStore::with_commit_policy(database, policy));
    HaematiteWorkloads {
        engine,
        bare: HaematiteBare {
            events: Arc::clone(&events),
        },
        fenced,
        fenced_bare: FencedHaematiteBare { events, calls },
    }
}

fn postgres_workloads() -> (Engine, Fenced, PostgresBaseline) {
    let url = std::env::var("ATMOSTONCE_POSTGRES_URL").expect(
        "ATMOSTONCE_POSTGRES_URL is not set: the PostgreSQL benchmarks need a server \
         (source scripts/throwaway-postgres.sh && throwaway_postgres_start)",
    );
    let runtime = tokio_runtime();
    let table = format!("bench_{}", std::process::id());
    let options = PostgresOptions::default().with_table(table.clone());
    let store = Arc::new(
        runtime
            .block_on(PostgresStore::connect_with_options(&url, options))
            .expect("a PostgreSQL store at ATMOSTONCE_POSTGRES_URL"),
    );
    let fenced = Fenced {
        runtime: Arc::clone(&runtime),
        cache: fenced_cache(Arc::clone(&store) as Arc<dyn DurableStore>),
    };
    println!(
        "fenced claim+complete on PostgresStore makes: {}",
        names(&fenced_calls(&runtime, Arc::clone(&store)))
    );
    let engine = Engine {
        runtime: Arc::clone(&runtime),
        cache: DedupCache::new(store, "bench"),
    };
    let baseline_table = format!("bench_baseline_{}", std::process::id());
    let manager = Manager::from_config(
        url.parse().expect("a valid ATMOSTONCE_POSTGRES_URL"),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(atmostonce::store::postgres::DEFAULT_POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .build()
        .unwrap();
    runtime.block_on(async {
        pool.get()
            .await
            .unwrap()
            .batch_execute(&format!(
                "CREATE TABLE {baseline_table} \
                 (key text PRIMARY KEY, receipt bytea, claimed_ms bigint NOT NULL)"
            ))
            .await
            .unwrap();
    });
    let baseline = PostgresBaseline {
        runtime,
        pool,
        claim: format!(
            "INSERT INTO {baseline_table} (key, claimed_ms) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING"
        )
        .into(),
        complete: format!("UPDATE {baseline_table} SET receipt = $2 WHERE key = $1").into(),
    };
    (engine, fenced, baseline)
}

fn bench(criterion: &mut Criterion, group: &str, workloads: &[(&str, &dyn Workload)]) {
    let mut group = criterion.benchmark_group(group);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for &(name, workload) in workloads {
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|keys| workload.run(keys))
        });
    }
    group.finish();
}

/// Throughput of `engine` as a fraction of `baseline`'s, from alternating
/// rounds.
fn ratio(what: &str, engine: &dyn Workload, baseline: &dyn Workload) {
    let rounds = if support::quick() {
        RATIO_ROUNDS / 2
    } else {
        RATIO_ROUNDS
    };
    let (mut engine_time, mut baseline_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        engine_time += engine.run(RATIO_KEYS_PER_ROUND);
        baseline_time += baseline.run(RATIO_KEYS_PER_ROUND);
    }
    let keys = (rounds as u64 * RATIO_KEYS_PER_ROUND) as f64;
    let engine_rate = keys / engine_time.as_secs_f64();
    let baseline_rate = keys / baseline_time.as_secs_f64();
    println!(
        "ratio {what}: engine {engine_rate:.0} claim+complete/s, baseline {baseline_rate:.0}/s, \
         engine/baseline = {:.2} ({rounds} alternating rounds of {RATIO_KEYS_PER_ROUND} keys, \
         {PRODUCERS} producers)",
        engine_rate / baseline_rate
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let haematite = haematite_workloads(dir.path());
    let (postgres_engine, postgres_fenced, postgres_baseline) = postgres_workloads();
    bench(
        &mut criterion,
        "haematite claim+complete, 16 producers",
        &[
            ("engine on HaematiteStore", &haematite.engine),
            ("bare haematite read+append calls", &haematite.bare),
            ("fenced engine on HaematiteStore", &haematite.fenced),
            (
                "bare haematite calls of the fenced engine",
                &haematite.fenced_bare,
            ),
        ],
    );
    bench(
        &mut criterion,
        "postgres claim+complete, 16 producers",
        &[
            ("engine on PostgresStore", &postgres_engine),
            ("fenced engine on PostgresStore", &postgres_fenced),
            (
                "hand-written INSERT ON CONFLICT + UPDATE",
                &postgres_baseline,
            ),
        ],
    );
    criterion.final_summary();
    println!("load average {}", support::load_average());
    ratio("haematite", &haematite.engine, &haematite.bare);
    ratio(
        "haematite fenced",
        &haematite.fenced,
        &haematite.fenced_bare,
    );
    ratio("postgres", &postgres_engine, &postgres_baseline);
    ratio("postgres fenced", &postgres_fenced, &postgres_baseline);
}
