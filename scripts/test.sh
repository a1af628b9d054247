#!/usr/bin/env bash
# The one test command, for a new Debian machine (CI runs it as root; otherwise it uses sudo for
# apt-get): installs what the tests need when it is missing (Debian packages, the Rust toolchain,
# Python's grpcio in a venv under target/), checks the build graph, then runs every test of the
# workspace and the Python client test. The tests start private instances of redis-server,
# PostgreSQL and pcscd themselves; the machine's own services are neither needed nor touched.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "need root (or sudo) for: $*" >&2
    exit 1
  fi
}

# ---- Debian packages --------------------------------------------------------------------------
# Required: real services for the tests, the C toolchain and headers the build links against,
# Python for the grpcio client, and OpenPACE's library (libeac-dev, whose headers need
# libssl-dev): the independent PACE implementation the chip tests check against.
# redis-tools brings redis-cli, which joins the private nodes of the Redis Cluster tests; procps
# brings pkill, which freezes a test's PostgreSQL to play a hung store.
required=(build-essential pkg-config ca-certificates curl redis-server redis-tools postgresql pcscd
  vsmartcard-vpcd libpcsclite-dev python3 python3-venv libeac-dev libssl-dev openssl procps)
# The agent's Windows type-check needs MinGW's C compiler (ring's build script runs it).
optional=(openpace gcc-mingw-w64-x86-64)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Present although not from Debian's package (e.g. a toolchain-managed python3 with venv).
provided() {
  case "$1" in
    redis-server) command -v redis-server >/dev/null ;;
    redis-tools) command -v redis-cli >/dev/null ;;
    postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    python3 | python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null ;;
    *) false ;;
  esac
}
available() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }

missing=()
for pkg in "${required[@]}"; do
  installed "$pkg" || provided "$pkg" || missing+=("$pkg")
done
updated=
if ((${#missing[@]})); then
  # A fresh machine: its package lists may be empty or stale.
  say "apt-get update"
  as_root apt-get update -qq
  updated=1
fi
for pkg in "${optional[@]}"; do
  installed "$pkg" && continue
  if available "$pkg"; then missing+=("$pkg"); else say "not in the apt sources, skipped: $pkg"; fi
done
if ((${#missing[@]})); then
  [ -n "$updated" ] || as_root apt-get update -qq
  say "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- Rust toolchain ---------------------------------------------------------------------------
# Debian's rustc is older than the workspace's rust-version: use rustup's stable toolchain.
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    say "installing the Rust toolchain (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y -q --profile minimal --default-toolchain stable
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# ---- One rustls crypto provider ---------------------------------------------------------------
# ring is the provider; with a second one compiled in, rustls panics at start-up. `cargo tree -i`
# fails with "did not match any packages" when a crate is absent; any other failure is an error.
for crate in aws-lc-rs aws-lc-sys; do
  if tree=$(cargo tree --workspace --all-features --target all -i "$crate" 2>&1); then
    echo "$crate is in the build graph; only ring may provide rustls's cryptography:" >&2
    echo "$tree" >&2
    exit 1
  elif ! grep -q "did not match any packages" <<<"$tree"; then
    echo "cannot check the build graph for $crate:" >&2
    echo "$tree" >&2
    exit 1
  fi
done

# ---- Rust tests -------------------------------------------------------------------------------
# Every crate, every feature (the emrtd virtual card included); every failing test is reported.
say "cargo test"
# The OpenPACE cross-check must run here, not skip.
EMRTD_REQUIRE_OPENPACE=1 cargo test --workspace --all-features --no-fail-fast

# ---- A client written from the .proto alone, in another language ------------------------------
venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
# `cargo test` built the server binary (integration tests need it) with the same profile.
say "python grpcio client"
"$venv/bin/python" tests/python/test_client.py "${CARGO_TARGET_DIR:-target}/debug/bhyt-verify"

# ---- The agent on Windows clinic PCs ----------------------------------------------------------
# Type-checks the agent for Windows. The target's standard library comes from rustup's own server,
# which some machines cannot reach, and ring's build script needs MinGW's C compiler: without
# either this step says so and is skipped (by hand: `apt-get install gcc-mingw-w64-x86-64;
# rustup target add x86_64-pc-windows-gnu; cargo check -p reader-agent --target x86_64-pc-windows-gnu`).
windows=x86_64-pc-windows-gnu
if command -v x86_64-w64-mingw32-gcc >/dev/null && command -v rustup >/dev/null &&
  { rustup target list --installed | grep -qx "$windows" ||
    rustup target add "$windows" >/dev/null 2>&1; }; then
  say "cargo check -p reader-agent --target $windows"
  cargo check -q -p reader-agent --all-targets --target "$windows"
else
  say "skipped: no MinGW compiler, or the $windows target could not be installed (no access to rustup's server?)"
fi

say "all tests passed"
