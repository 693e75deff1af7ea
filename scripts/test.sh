#!/usr/bin/env bash
# Sets up (idempotent), then runs the linters (rustfmt, clippy, biome) and every test: Rust (cargo test),
# TypeScript (vitest) and the Python reference against the wasm core (python/test_reference.py), and ends
# with one line counting all of them: "N passed, M failed" (each failed lint counts as one failure).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p test-output

echo "== lint =="
lint_failed=0
lint() { "$@" || { echo "lint failed: $* (cargo fmt --all / npx biome check --write . fix the formatting)"; lint_failed=$((lint_failed + 1)); }; }
lint cargo fmt --all --check
lint cargo clippy --workspace --all-targets -- -D warnings
lint npx biome ci .

echo "== cargo test =="
cargo test --release --workspace 2>&1 | tee test-output/cargo.log
cargo_status=${PIPESTATUS[0]}

echo "== vitest =="
npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json
vitest_status=$?

echo "== python reference =="
python3 python/test_reference.py 2>&1 | tee test-output/python.log
python_status=${PIPESTATUS[0]}

read -r rust_passed rust_failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' test-output/cargo.log)
read -r ts_passed ts_failed < <(node -e '
  const r = JSON.parse(require("fs").readFileSync("test-output/vitest.json", "utf8"));
  const unrun = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length; // files that failed to load
  console.log(r.numPassedTests, r.numFailedTests + unrun);
' 2>/dev/null || echo "0 1")
read -r py_passed py_failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3 } END { print p + 0, (p + f == 0) ? 1 : f + 0 }' test-output/python.log)
echo "rust: $rust_passed passed, $rust_failed failed; typescript: $ts_passed passed, $ts_failed failed; python: $py_passed passed, $py_failed failed"
failed=$((rust_failed + ts_failed + py_failed))
status=0
[ "$lint_failed" -eq 0 ] || echo "lint: $lint_failed failed"
if [ "$cargo_status" -ne 0 ] || [ "$vitest_status" -ne 0 ] || [ "$python_status" -ne 0 ]; then
  status=1
  [ "$failed" -gt 0 ] || failed=1 # a runner failed without counting a test (e.g. a build error)
fi
if [ "$lint_failed" -gt 0 ]; then
  status=1
  failed=$((failed + lint_failed))
fi
echo "$((rust_passed + ts_passed + py_passed)) passed, $failed failed"
exit $status
