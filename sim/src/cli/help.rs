//! The prose of `--help` that no single flag owns: what the simulator is,
//! the exit status, the fault lists, what live mode does, and what each
//! build says when asked for the mode it lacks.

use std::fmt::Write as _;

use clap::ValueEnum;

use super::live::{LiveFault, StoreKind};

pub(super) const LONG_ABOUT: &str = "\
atmostonce-sim: the deterministic simulator of the atmostonce engine.

The real engine runs under madsim against a fault-injecting store; every
operation, delivery and fault goes into a history that a checker judges
against the invariants S1-S7, A1 and A2 (docs/spec.md, Invariants). The same
seed and configuration always give the same trace hash.

Usage (the madsim build, via the cargo alias in .cargo/config.toml):
  cargo sim -- --seed N [OPTIONS]        run one seed; print config, verdict, trace hash
  cargo sim -- --seeds A..B [OPTIONS]    sweep seeds A (inclusive) to B (exclusive)
  cargo sim -- --seeds A..B --shard K/N --json > shard-K.json
                                         one shard of a sweep spread over N runners
  cargo sim -- merge shard-*.json        the shards' summaries as one verdict
  cargo sim -- --replay FILE             rerun a replay file (written by --shrink) exactly
  cargo sim -- --regressions FILE        rerun every entry of a regression file
  cargo sim -- --calibrate               the speed of a bare madsim workload
  cargo run -p atmostonce-sim --release -- live --store STORE [LIVE OPTIONS]
                                         live mode (the ordinary build; `live --help`)
  atmostonce-sim completions bash|zsh|fish
                                         a shell completion script

A failure prints the violated invariant, the key, the operations, a timeline
of the key and the one-line command that reproduces it.";

const EXIT_STATUS: &str = "\
Exit status:
  0  every seed passed (regressions: every verdict as expected)
  1  a violation was found (regressions: a verdict differs)
  2  usage error, internal error, nondeterminism, a replay whose trace hash
     changed, or a build without madsim; an internal error is never
     reported as a pass

Environment (each a default the flag overrides):
  ATMOSTONCE_SEEDS   --seeds (ignored when another mode is named)
  ATMOSTONCE_SHARD   --shard
  ATMOSTONCE_JOBS    --jobs
  ATMOSTONCE_FAULTS  --faults (the simulator's; live mode has its own list)
  ATMOSTONCE_API     --api (the simulator's and live mode's)";

/// What follows the flags in `--help`: the exit status, the environment,
/// and in the ordinary build where the simulator is.
pub(super) fn after_long_help() -> String {
    let mut text = EXIT_STATUS.to_owned();
    if cfg!(not(madsim)) {
        let _ = write!(text, "\n\n{}", ordinary_build_notice());
    }
    text
}

/// `--faults`'s long help: the grammar and every fault the simulator
/// injects, from the harness's fault vocabulary.
pub(super) fn faults_long_help() -> String {
    let mut text = "Which faults may be drawn; rates are drawn from the seed. SPEC is one of
  swarm   each seed enables a random half of every fault but pause (and
          but compaction with --api seed: the seed API reads a stream
          from sequence 0 and never compacts)
  all     every fault but pause (`standard` too)
  none    contention only (no injected faults)
  LIST    exactly these, comma-separated
optionally followed by ,-NAME (remove) or ,NAME (add), e.g. swarm,-corruption
or all,pause. `indeterminate` means error-applied,error-lost. Faults:"
        .to_owned();
    for fault in crate::config::simulator_faults() {
        let _ = write!(text, "\n  {:<15} {}", fault.name(), fault.meaning());
    }
    text
}

pub(super) const LIVE_LONG_ABOUT: &str = "\
Live mode: the simulator's workload, run for real (the ordinary build).

The same producers, sweeper and probe as the simulation, as real tokio tasks
on real threads against a real store, with real faults; the recorded history
goes to the same checker (S1-S7, A1, and A2 after a quiet phase). Not
deterministic: a failure cannot be replayed by seed, so its report carries
the whole timeline of the keys involved.

  cargo run -p atmostonce-sim --release -- live --store memory|haematite|postgres \\
      [--producers N] [--keys K] [--duration D] [LIVE OPTIONS]

Stores:
  memory      MemoryStore in this process
  haematite   HaematiteStore in a child process of this binary, over a
              loopback socket; store-crash SIGKILLs it and starts it again
              on the same database (--path DIR, default a temporary one)
  postgres    PostgresStore on --postgres-url (default ATMOSTONCE_POSTGRES_URL),
              in a fresh table; store-crash runs `pg_ctl stop -m immediate`
              and `pg_ctl start` on --pg-data (default
              $THROWAWAY_POSTGRES_DIR/data, as scripts/throwaway-postgres.sh
              exports it) with --pg-bin (default $THROWAWAY_POSTGRES_BIN, else
              PATH); as root, pg_ctl runs as the data directory's owner";

pub(super) const LIVE_AFTER_HELP: &str = "\
The report gives operations per second, p50/p99/max latency per operation
kind, the faults injected (and, after every store crash, what the restarted
store had lost), the checker's verdict, and on a violation the invariant,
the key, the operations and the key's timeline. After a store crash the run
reads the store back: an acknowledged append that is gone is an S4
violation of the store's durability promise; a record that an operation
read and that is gone makes that operation's read dirty (exempt as in the
simulator, and counted). Per minute it gives the claims' p50/p99 latency
and the store's storage: the records it holds divided by the streams it
holds (every key seen, fresh keys included: each of those ends with one or
two records), and the records of the --keys keys' streams divided by those
streams (the hot keys' history, which compaction keeps bounded). On a
terminal a progress bar shows the phase.

Exit status as for the simulator: 0 pass, 1 a violation, 2 a usage or
internal error (a store that cannot be reached, a server that does not come
back, a checker that gives up); never a pass on an internal error.";

/// Live `--faults`'s long help: the grammar and every live fault with the
/// stores that support it.
pub(super) fn live_faults_long_help() -> String {
    let mut text = "Which faults to inject: all (every fault the store supports), none
(contention only) or a list, with ,-NAME to remove and ,NAME to add;
default: all but collisions and long-streams (and but compaction with
--api seed, whose reads need a stream from sequence 0). Faults [stores]:"
        .to_owned();
    for fault in LiveFault::ALL {
        let stores: Vec<&str> = StoreKind::ALL
            .iter()
            .filter(|store| fault.supported_by(**store))
            .map(|store| store.name())
            .collect();
        let _ = write!(
            text,
            "\n  {:<15} {} [{}]",
            fault.name(),
            fault.meaning(),
            stores.join(", ")
        );
    }
    text
}

pub(super) const MERGE_LONG_ABOUT: &str = "\
Combine the JSON summaries of a sharded sweep into one verdict.

Each shard runs `cargo sim -- --seeds A..B --shard K/N --json > shard-K.json`
(the same range, faults, API, workload and checker flags on every runner);
`merge` reads the files (a whole --json output, or just its summary line),
checks that they are shards of one sweep (same range, shard count and
configuration; no shard twice), and prints the totals, every failing seed
with its reproduce command, and the verdict. A missing shard is reported
and fails the merge (exit 2): the verdict covers the whole range or none.

Exit status as for a sweep: 0 every seed passed, 1 a violation, 2 an
internal error, nondeterminism, or summaries that do not belong together.";

/// The names of `T`'s values, `a|b|c`.
pub(super) fn value_names<T: ValueEnum>() -> String {
    T::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .map(|value| value.get_name().to_owned())
        .collect::<Vec<_>>()
        .join("|")
}

/// What the ordinary build (without `--cfg madsim`) prints when asked to
/// simulate.
#[must_use]
pub fn ordinary_build_notice() -> String {
    format!(
        "atmostonce-sim: this binary was built without `--cfg madsim`, so it cannot simulate.
Run the simulator through the cargo alias, which builds with madsim in target/madsim:

  cargo sim -- --seeds 0..10000
  cargo sim -- --seed 7
  cargo sim -- --help

This build runs live mode, the workload against a real store:

  cargo run -p atmostonce-sim --release -- live --store {}",
        value_names::<StoreKind>()
    )
}

/// What the madsim build prints when asked for live mode.
#[must_use]
pub fn madsim_build_notice() -> String {
    format!(
        "atmostonce-sim: this is the madsim build (`cargo sim`), which simulates and has no
real stores, threads or clocks. Live mode runs in the ordinary build:

  cargo run -p atmostonce-sim --release -- live --store {} \\
      --producers 8 --keys 16 --duration 60s
  cargo run -p atmostonce-sim --release -- live --help",
        value_names::<StoreKind>()
    )
}
