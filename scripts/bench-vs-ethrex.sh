#!/usr/bin/env bash
# One-session throughput of ethrex-p2p 24.0.0 (../shared/anchors/ethrex, its own harness,
# public API only) beside ours (rlpx bench `--e2e --tcp`), in one sitting; the table in
# docs/benchmarks.md ("Against ethrex-p2p") is made from this output. Not part of the test
# command: ethrex's cold build takes 9 to 30 minutes here.
#   scripts/bench-vs-ethrex.sh            builds both (release) if needed, then runs
# Env: ANCHOR (default ../shared/anchors/ethrex), TARGET_DIR (default /tmp/ethrex-anchor/target)
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHOR="${ANCHOR:-../shared/anchors/ethrex}"
TARGET_DIR="${TARGET_DIR:-/tmp/ethrex-anchor/target}"
(cd "$ANCHOR" && nice -n 19 cargo build --release --locked -j 1 --target-dir "$TARGET_DIR")
E="$TARGET_DIR/release/ethrex-anchor-bench"
O=$(cargo bench -p rlpx --bench rlpx --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
ulimit -n 20000 2>/dev/null || true
date -u
for size in 1024 65536 1048576; do
  for comp in random half; do
    echo "ethrex $size $comp $("$E" tput --size "$size" --comp "$comp" --secs 5 2>/dev/null | grep RESULT)"
  done
  case $size in 1024) n=100000 ;; 65536) n=1500 ;; *) n=100 ;; esac
  echo "ours $size tcp $("$O" --e2e "$size" "$n" --tcp)"
  echo "ours $size task $("$O" --e2e "$size" "$n" --task)"
  echo "ours $size tcp-compressible $("$O" --e2e "$size" "$n" --tcp --compressible)"
done
date -u
