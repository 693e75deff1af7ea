#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine of this kind, then builds it.
# Idempotent: each step checks first and skips work already done (a warm run takes seconds).
#   1. Debian packages: Rust for wasm32 (rustc-web + std source + wasm-ld) unless a wasm32 std is
#      already installed; chromium for browser tests; wabt to inspect the .wasm; fonts for charts.
#   2. wasm-bindgen-cli (exactly the crate's wasm-bindgen version) and wasm-pack, from crates.io.
#   3. Python's safetensors (interoperability tests) and numpy (the reference in python/); npm
#      dependencies (npm ci, when package-lock.json changed).
#   4. The wasm build (pkg/) and the TypeScript build (dist/), when their sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "setup: $*"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- 1. Debian packages -------------------------------------------------------------------------
has_wasm_std() {
  local libdir
  libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) || return 1
  compgen -G "$libdir/libstd-*.rlib" >/dev/null
}
missing=()
if ! has_wasm_std; then
  [ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q . && [ -d /usr/lib/rustlib/src/rust/library ] \
    || missing+=(rustc-web cargo-web rust-web-src)
  command -v wasm-ld-19 >/dev/null || missing+=(lld-19)
fi
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wasm-objdump >/dev/null || missing+=(wabt)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. wasm-bindgen-cli and wasm-pack -----------------------------------------------------------
wasm_bindgen_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' crate/Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  say "installing wasm-bindgen-cli $wasm_bindgen_version (a few minutes, once)"
  # Not --locked: its lock file pins a webpki-roots release the registry here does not serve.
  cargo install -q wasm-bindgen-cli --version "$wasm_bindgen_version" --force
fi
if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack (a few minutes, once)"
  cargo install -q wasm-pack --locked
fi

# Python's safetensors, for the tests that check our checkpoints load unchanged in Python.
if command -v python3 >/dev/null && ! python3 -c "import safetensors" 2>/dev/null; then
  say "installing Python's safetensors (for interoperability tests)"
  python3 -m pip install -q --disable-pip-version-check safetensors==0.8.0
fi
# numpy, for the reference implementation in python/ and its test against the wasm core.
if command -v python3 >/dev/null && ! python3 -c "import numpy" 2>/dev/null; then
  say "installing numpy (for the Python reference in python/)"
  python3 -m pip install -q --disable-pip-version-check numpy==2.4.6
fi

# --- 3. npm dependencies ------------------------------------------------------------------------
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.setup-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-lock-hash
fi

# --- 4. builds ----------------------------------------------------------------------------------
newer_than() { # is any file under the given paths newer than $1 (or $1 missing)?
  local stamp=$1; shift
  [ ! -e "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -type f -print -quit 2>/dev/null)" ]
}
if newer_than pkg/bernoulli_diffusion_core_relaxed_bg.wasm crate Cargo.toml Cargo.lock scripts/build-wasm.sh; then
  say "building wasm"
  bash scripts/build-wasm.sh
fi
if newer_than dist/.build-stamp src pkg tsconfig.json tsconfig.build.json scripts/bundle-yargs-browser.mjs; then
  say "building TypeScript"
  npm run --silent build:ts
  touch dist/.build-stamp
fi
say "ready"
