#!/usr/bin/env bash
# A testnet of N real node processes, each in its own network namespace (docs/simulation.md):
#   scripts/testnet.sh [N] [devp2p testnet flags…]      e.g. scripts/testnet.sh 200 --out /tmp/tn
# A thin wrapper over `devp2p testnet --netns N`: builds the binary, then runs it as root
# (through sudo when not root already), since namespaces need root.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
[ $# -gt 0 ] && shift
cargo build --release --bin devp2p
bin="$(pwd)/target/release/devp2p"
if [ "$(id -u)" = 0 ]; then
  exec "$bin" testnet --netns "$n" "$@"
fi
exec sudo "$bin" testnet --netns "$n" "$@"
