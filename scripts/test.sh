#!/usr/bin/env bash
# The project's whole test suite, as CI runs it. Installs what it needs itself:
# the pinned npm packages of the interop harness (tests/interop/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are required for the interop tests (apt-get install nodejs npm)" >&2
  exit 1
fi
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)

# Unit, integration, interop and fuzz-corpus tests and the doc examples. (Not
# `--all-targets`: it would run the libFuzzer target binaries, which fuzz forever.)
cargo test --workspace --locked
# Benchmarks must keep compiling; the RLPx one also does a quick smoke pass.
cargo test --workspace --benches --no-run --locked
cargo test -p rlpx --bench rlpx --locked
cargo test --bench server --locked
cargo test --bench sync --locked
