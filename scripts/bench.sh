#!/usr/bin/env bash
# The benchmark comparison in one command (issue 7, items 1, 2 and 4): builds once in release
# mode, runs the micro-benchmarks (criterion), then bench-compare, which starts its own
# redis-server, PostgreSQL, the bare tonic server and the backend, drives each with the load
# generator pinned to another core, and prints the table (also target/bench/compare.md and
# compare.json). A few minutes on a 2-core machine. Options are passed to bench-compare
# (e.g. --duration 15, --skip-postgres); `target/release/bench-growth` is the growth run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) for: $*" >&2; exit 1; fi
}

# redis-server and redis-benchmark (redis-tools), PostgreSQL, taskset (util-linux).
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  say "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

say "cargo build --release -p bhyt-bench -p bhyt-verify"
cargo build --release -p bhyt-bench -p bhyt-verify
say "micro-benchmarks (criterion)"
CRITERION_HOME="$PWD/target/criterion" cargo bench -p bhyt-bench --bench hot_paths -- --noplot
say "load comparison"
exec target/release/bench-compare --criterion-dir target/criterion "$@"
