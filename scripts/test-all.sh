#!/usr/bin/env bash
# Runs every test of the workspace. This is the README's test command and the
# one .ci/run calls. Each block below belongs to one part of the product.
#
# Environment:
#   ATMOSTONCE_POSTGRES_URL  the PostgreSQL server the postgres tests use
#                            (.ci/run starts a throwaway one and sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- engine (src/, tests/): unit, integration, conformance and doc tests ---
step "engine, model and integration tests (ordinary build)"
cargo test --workspace --release
step "durable stores: the PostgreSQL store against the server at ATMOSTONCE_POSTGRES_URL"
cargo test --release -p atmostonce --features postgres --lib --test store_postgres

# --- simulator (sim/): regression seeds under madsim ---

# --- fuzz corpora are replayed by the ordinary tests above ---

echo
echo "all tests passed"
