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
step "engine, model and integration tests (ordinary build)"
cargo test --workspace --release
step "durable stores: the PostgreSQL store against the server at ATMOSTONCE_POSTGRES_URL"
cargo test --release -p atmostonce --features postgres --lib --test store_postgres

# --- simulator (sim/): regression seeds under madsim ---

# --- fuzz corpora are replayed by the ordinary tests above ---
# (fuzz-check/ is a workspace member: its tests replay fuzz/corpus/<target>/
# through the fuzz targets' checks and run the proptest properties.)

echo
echo "all tests passed"
