#!/usr/bin/env bash
# Builds crate/ to WebAssembly (SIMD128 on) with wasm-pack into pkg/ (--target web: one build that
# Node loads from bytes and bundlers load by URL).
#
# Two paths:
#  - plain: the active rustc has a wasm32-unknown-unknown std (e.g. `rustup target add` worked).
#  - from source: Debian's rustc-web (whose LLVM has the wasm32 target but ships no wasm32 std)
#    builds std with `-Z build-std`, accepted on a stable compiler with RUSTC_BOOTSTRAP=1;
#    linked with Debian's wasm-ld. See ../shared/TOOLCHAIN.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

has_wasm_std() { # $1: rustc binary
  local libdir
  libdir=$("$1" --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) || return 1
  compgen -G "$libdir/libstd-*.rlib" >/dev/null
}

simd="-C target-feature=+simd128"
extra_cargo_args=()
if command -v rustc >/dev/null && has_wasm_std "$(command -v rustc)"; then
  echo "build-wasm: using $(rustc --version) with its installed wasm32 std"
  export RUSTFLAGS="$simd ${RUSTFLAGS_EXTRA:-}"
elif [ -x /usr/bin/rustc ] && [ -d /usr/src/rustc-"$(/usr/bin/rustc --version | awk '{print $2}')"/library ]; then
  export PATH="/usr/bin:$PATH" # Debian's cargo/rustc (rustc-web) before rustup's proxies
  export RUSTC_BOOTSTRAP=1
  linker=$(command -v wasm-ld-19 || command -v wasm-ld || true)
  [ -n "$linker" ] || { echo "build-wasm: no wasm-ld found (apt-get install lld-19)" >&2; exit 1; }
  export RUSTFLAGS="$simd -C linker=$linker ${RUSTFLAGS_EXTRA:-}"
  extra_cargo_args=(-Z build-std=std,panic_abort)
  echo "build-wasm: using $(rustc --version), std built from source (-Z build-std)"
else
  echo "build-wasm: no Rust toolchain with a wasm32 std or std source; run scripts/setup.sh" >&2
  exit 1
fi

# A target dir of its own: the wasm build may use a different rustc than native `cargo test`.
export CARGO_TARGET_DIR="$PWD/target/wasm"
wasm-pack build crate --release --target web --out-dir ../pkg --out-name bernoulli_diffusion_core \
  --mode force --no-pack -- "${extra_cargo_args[@]}" 2>&1 | grep -vE '^\s*$' || exit "${PIPESTATUS[0]}"
rm -f pkg/.gitignore pkg/package.json

# The relaxed-SIMD build (the kernels' multiply-adds as f32x4.relaxed_madd, src/wasm.ts chooses it
# at load time where the runtime has it): same exports, so the same glue; only its .wasm is kept.
# Its own target dir, since its RUSTFLAGS differ (sharing one would rebuild std at every switch).
relaxed_out=target/wasm-relaxed-pkg
RUSTFLAGS="$RUSTFLAGS -C target-feature=+relaxed-simd" CARGO_TARGET_DIR="$PWD/target/wasm-relaxed" \
  wasm-pack build crate --release --target web --out-dir "../$relaxed_out" --out-name bernoulli_diffusion_core \
  --mode force --no-pack -- "${extra_cargo_args[@]}" 2>&1 | { grep -vE '^\s*$|INFO' || true; } # pipefail: wasm-pack's failure stops the script
if ! cmp -s "$relaxed_out/bernoulli_diffusion_core.js" pkg/bernoulli_diffusion_core.js; then
  echo "build-wasm: the relaxed-SIMD build's glue differs from the plain build's (their exports must be the same)" >&2
  exit 1
fi
mv "$relaxed_out/bernoulli_diffusion_core_bg.wasm" pkg/bernoulli_diffusion_core_relaxed_bg.wasm

# wasm-opt from the npm package binaryen (a dev dependency; wasm-pack's own would download it).
# Only the name and debug sections are stripped (503 -> 451 KB): rustc's -O already optimised the
# code, and wasm-opt -O3 / -Os (428 / 426 KB) made a 300-step `train` take ~1.5x the CPU time
# (measured in the issue-14 work), so they are not used. SIMD is untouched. Skipped, with a note,
# before `npm ci` has installed binaryen.
wasm_opt=node_modules/.bin/wasm-opt
for wasm in pkg/bernoulli_diffusion_core_bg.wasm pkg/bernoulli_diffusion_core_relaxed_bg.wasm; do
  if [ -x "$wasm_opt" ]; then
    before=$(stat -c %s "$wasm")
    "$wasm_opt" --enable-relaxed-simd --strip-debug --strip-producers "$wasm" -o "$wasm.stripped"
    mv "$wasm.stripped" "$wasm"
    echo "build-wasm: wasm-opt --strip-debug: $before -> $(stat -c %s "$wasm") bytes"
  else
    echo "build-wasm: $wasm_opt not installed (npm ci first): the .wasm keeps its name section"
  fi
  echo "build-wasm: wrote $wasm ($(stat -c %s "$wasm") bytes)"
done
