#!/usr/bin/env bash
# The one test command, for a new Debian machine: installs the Debian and Python packages the
# tests need when they are missing, then runs every test of the workspace and the Python client
# test. Needs the Rust toolchain (cargo); runs apt-get as root, or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: real services for the tests (they start private instances of their own).
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in redis-server postgresql pcscd vsmartcard-vpcd libpcsclite-dev pkg-config python3-venv; do
  have_pkg "$pkg" || missing+=("$pkg")
done
# A toolchain-managed python3 may stand in for Debian's venv package.
if [[ " ${missing[*]} " == *" python3-venv "* ]] && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
# Debian's redis and postgresql may be installed from elsewhere: trust the binaries too.
command -v redis-server >/dev/null && missing=("${missing[@]/redis-server}")
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && missing=("${missing[@]/postgresql}")
read -ra missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Exactly one rustls crypto provider (ring) in the build graph: with two compiled in, rustls
# panics at start-up.
if cargo tree --workspace --all-features -i aws-lc-rs 2>/dev/null | grep -q .; then
  echo "aws-lc-rs is in the build graph; only ring may provide rustls's cryptography:" >&2
  cargo tree --workspace --all-features -i aws-lc-rs >&2
  exit 1
fi

cargo test --workspace --all-features

# A client written from the .proto alone, with Python's grpcio.
venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check grpcio grpcio-tools grpcio-health-checking
"$venv/bin/python" tests/python/test_client.py target/debug/bhyt-verify
echo "all tests passed"
