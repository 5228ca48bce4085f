#!/usr/bin/env bash
# Runs every test of the workspace. This is the README's test command and the
# one .ci/run calls. Each block below belongs to one part of the product.
#
# Environment:
#   ATMOSTONCE_POSTGRES_URL  the PostgreSQL server the postgres tests use.
#                            When it is unset, this script starts a throwaway
#                            cluster (scripts/throwaway-postgres.sh; installs
#                            PostgreSQL with apt-get when run as root and it
#                            is missing) and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [[ -z "${ATMOSTONCE_POSTGRES_URL:-}" ]]; then
    step "no ATMOSTONCE_POSTGRES_URL: starting a throwaway PostgreSQL cluster"
    # shellcheck source=throwaway-postgres.sh
    source scripts/throwaway-postgres.sh
    throwaway_postgres_start
    trap throwaway_postgres_stop EXIT
fi

# --- engine (src/, tests/): unit, integration, conformance and doc tests ---
# Every feature, so that the haematite and PostgreSQL stores' tests always
# run (the PostgreSQL ones against ATMOSTONCE_POSTGRES_URL), as do the model's,
# the live mode's and the fuzz corpora's.
step "engine, stores, model, live mode and fuzz corpora (ordinary build, all features)"
cargo test --workspace --release --all-features

# --- simulator (sim/): live mode ---
# sim/tests/live.rs runs in the workspace tests above (the ordinary build):
# a short live run per store with its faults on (a haematite server process
# killed and restarted; the PostgreSQL server at ATMOSTONCE_POSTGRES_URL
# restarted with pg_ctl when THROWAWAY_POSTGRES_DIR is set, and its
# connections terminated), and every planted mistake caught by the checker.

# --- simulator (sim/): regression seeds under madsim ---
# The madsim build (`--cfg madsim`, target/madsim) of the simulator: its own
# tests (determinism, every fault's mark, A1's vacuity, shrinking, replay),
# the regression file (the seed API's findings must still be found, the
# passing seeds of both APIs must still pass), and a short sweep of the CI
# gate (the fenced API, every fault) with the determinism check.
step "simulator: tests in the madsim build"
cargo sim-test
step "simulator: regression seeds (sim/regressions.toml)"
cargo sim -- --regressions sim/regressions.toml
step "simulator: seeds 0..1000 of the gate, each run twice (determinism)"
cargo sim -- --seeds 0..1000 --check-determinism --api fenced --faults swarm

# --- the simulator for a user's own code (examples/payments) ---
# The example consumer's handlers swept by `atmostonce_sim::harness` in the
# madsim build (200 seeds each, every fault on): the correct handler must
# pass, the one that charges on InFlight after a timeout must be caught as
# A1 (with its reproduce line, timeline and shrunk run).
step "example consumer: its handlers under the simulator (cargo payments-test)"
cargo payments-test

# --- fuzz corpora are replayed by the ordinary tests above ---
# (fuzz-check/ is a workspace member: its tests replay fuzz/corpus/<target>/
# through the fuzz targets' checks and run the proptest properties.)

echo
echo "all tests passed"
