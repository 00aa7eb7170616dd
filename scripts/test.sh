#!/usr/bin/env bash
# The project's whole test suite, as CI runs it. Installs what it needs itself:
# the pinned npm packages of the interop harness (tests/interop/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are required for the interop tests (apt-get install nodejs npm)" >&2
  exit 1
fi
# The real daemons some tests run (tests/upnp_gateway.rs: miniupnpd in network
# namespaces, nftables for its rules, upnpc to list them; tests/stun.rs: coturn as a STUN
# server; tests/prometheus.rs: Prometheus scraping a node; tests/testnet.rs and
# tests/upnp_gateway.rs: `ip` from iproute2). Installed only as root (those
# tests skip, saying why, otherwise); apt lists are refreshed only when a first install
# attempt fails.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt_pkgs=()
  command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || apt_pkgs+=(iproute2)
  command -v miniupnpd >/dev/null || [ -x /usr/sbin/miniupnpd ] || apt_pkgs+=(miniupnpd-nftables)
  command -v upnpc >/dev/null || apt_pkgs+=(miniupnpc)
  command -v nft >/dev/null || [ -x /usr/sbin/nft ] || apt_pkgs+=(nftables)
  command -v turnserver >/dev/null || apt_pkgs+=(coturn)
  command -v prometheus >/dev/null || apt_pkgs+=(prometheus)
  if [ ${#apt_pkgs[@]} -gt 0 ]; then
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
    apt_install "${apt_pkgs[@]}" || { apt-get update -q >/dev/null && apt_install "${apt_pkgs[@]}"; } ||
      echo "could not install ${apt_pkgs[*]}: the tests that need them will skip" >&2
  fi
fi

# Formatting and lints first: they fail in seconds, before the long build.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)

# The interop harness's own self-tests (its peers against each other, eth/68 and eth/69),
# so a broken harness fails here rather than making the interop tests prove nothing. Run
# side by side (about 10 s); their output is shown only if one fails.
selftest() {
  local log
  log=$(mktemp)
  if (cd tests/interop && node "$1") >"$log" 2>&1; then
    echo "$1: PASS"
    rm -f "$log"
  else
    cat "$log" >&2
    echo "$1: FAIL" >&2
    rm -f "$log"
    return 1
  fi
}
selftest selftest.mjs &
rlpx_js=$!
selftest eth_selftest.mjs &
eth_js=$!
selftest discv5_selftest.mjs &
discv5_js=$!
wait "$rlpx_js"
wait "$eth_js"
wait "$discv5_js"

# Unit, integration, interop and fuzz-corpus tests and the doc examples. (Not
# `--all-targets`: it would run the libFuzzer target binaries, which fuzz forever.)
cargo test --workspace --locked
# Benchmarks must keep compiling; these also do a quick smoke pass that fails if what
# they time does not work.
cargo test --workspace --benches --no-run --locked
cargo test -p rlpx --bench rlpx --locked
cargo test -p discovery --bench discv4 --locked
cargo test --bench server --locked
cargo test --bench sync --locked
cargo test --bench flood --locked
cargo test --bench txingest --locked
