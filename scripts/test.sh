#!/usr/bin/env bash
# The single test command (also what CI runs, via .ci/run):
#   1. installs missing Debian packages (scripts/lib.sh),
#   2. sets up the torch 2.x virtual environment (tests/requirements-torch2.txt),
#   3. builds build/ and runs its unit tests (ctest) and the e2e suite (pytest)
#      twice: with Debian's torch 1.13 + omegaconf 2.2 and with the venv's
#      torch 2.13 + omegaconf 2.3 (each makes its own fixtures),
#   4. builds build-asan/ (-DCKPT_SANITIZE=ON) and runs both again there,
#   5. builds the Python package's wheel (pip wheel .), makes it self-contained
#      (auditwheel repair: scripts/repair_wheel.py), checks that (ldd, auditwheel
#      show) and runs tests/python against it under torch 2.13 (the venv), torch
#      1.13 (Debian's python, the wheel on PYTHONPATH) and without torch (a
#      numpy-only venv).
# Exits non-zero if any step failed; the last line is a summary.
# Environment: CKPT_JOBS (build parallelism, default 2), CKPT_SUITES (default
# "release asan python"; e.g. "release" for steps 3 only), CKPT_PYTEST_ARGS (extra
# pytest arguments).
set -uo pipefail

cd "$(dirname "$0")/.."
source scripts/lib.sh

PYTHON=/usr/bin/python3   # Debian's python: has torch 1.13 and omegaconf 2.2
export CI="${CI:-true}"
export PYTHONDONTWRITEBYTECODE=1
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# LeakSanitizer needs ptrace, which some containers deny: keep leak checks on
# only where a leak-free probe program passes under them.
choose_asan_options() {
  if [ -n "${ASAN_OPTIONS:-}" ]; then return; fi
  local probe_dir
  probe_dir="$(mktemp -d)"
  printf 'int main() { return 0; }\n' > "$probe_dir/probe.cc"
  if g++ -fsanitize=address "$probe_dir/probe.cc" -o "$probe_dir/probe" 2>/dev/null &&
     ASAN_OPTIONS=detect_leaks=1 "$probe_dir/probe" >/dev/null 2>&1; then
    export ASAN_OPTIONS=detect_leaks=1
  else
    ckpt_log "LeakSanitizer unusable here: leak checks off"
    export ASAN_OPTIONS=detect_leaks=0
  fi
  rm -rf "$probe_dir"
}

results=()
failed=0
record() {  # record NAME STATUS
  if [ "$2" -eq 0 ]; then
    results+=("$1: ok")
  else
    results+=("$1: FAILED ($2)")
    failed=1
  fi
}

summary() {
  echo
  echo "== summary"
  local line
  for line in "${results[@]}"; do echo "   $line"; done
  if [ "$failed" -eq 0 ]; then
    echo "ALL PASSED"
  else
    echo "SOME FAILED"
  fi
}

ckpt_install_deps </dev/null
record "install" $?
ckpt_setup_torch2_venv </dev/null
record "torch 2.x venv" $?
TORCH2_PYTHON="$(ckpt_torch2_python)"
# Cross-torch tests (tests/e2e/test_dialects.py) load ckpt's outputs in the
# torch the suite is not running under.
export CKPT_TORCH1_PYTHON="$PYTHON" CKPT_TORCH2_PYTHON="$TORCH2_PYTHON"

# run_suite NAME BUILD_DIR PYTHONS [cmake args...]: build, ctest, pytest with
# each of PYTHONS ("both" or "torch2"). The multi-GiB round trip (marker
# `large`, minutes) runs once: in the release suite, with torch 1.13.
run_suite() {
  local name="$1" dir="$2" pythons="$3"
  shift 3
  CKPT_KEEP_GOING=1 ckpt_build "$dir" "$@"
  record "$name build" $?
  if [ ! -f "$dir/CTestTestfile.cmake" ]; then
    return  # not even configured
  fi
  # Even after a failed build: run what did build, so the report shows it.
  ckpt_log "$name: unit tests (ctest)"
  ctest --test-dir "$dir" --output-on-failure -j"$CKPT_JOBS" </dev/null
  record "$name unit tests" $?
  # The e2e matrix: every comparison with torch runs against both torches.
  # A pytest run is one Python process driving ckpt processes one at a time,
  # so on two cores two runs go side by side (the CI budget): the two torches'
  # runs, or with one torch (the venv's, which has pytest-xdist) its test files
  # shared by CKPT_JOBS workers, a file each at a time. Outputs are printed one
  # after the other when all are done.
  local py label markers pys=("$PYTHON" "$TORCH2_PYTHON") logs=() labels=() pids=() i
  local -a spread=()
  [ "$pythons" = torch2 ] && pys=("$TORCH2_PYTHON")
  if [ "${#pys[@]}" = 1 ] && "${pys[0]}" -c 'import xdist' 2>/dev/null; then
    spread=(-n "$CKPT_JOBS" --dist loadfile)
  fi
  for i in "${!pys[@]}"; do
    py="${pys[$i]}"
    markers="not large"
    [ "$name" = release ] && [ "$py" = "$PYTHON" ] && markers=""
    label="$("$py" -c 'import torch; print("torch " + torch.__version__.split("+")[0])' 2>/dev/null || echo "$py")"
    [ "${#spread[@]}" != 0 ] && label="$label, $CKPT_JOBS workers"
    ckpt_log "$name: end-to-end tests with $label (pytest, CKPT_BIN=$dir/ckpt), started"
    logs+=("$(mktemp)")
    labels+=("$label")
    # shellcheck disable=SC2086
    CKPT_BIN="$PWD/$dir/ckpt" "$py" -m pytest -q -p no:cacheprovider "${spread[@]}" tests/e2e \
      ${markers:+-m "$markers"} ${CKPT_PYTEST_ARGS:-} </dev/null >"${logs[-1]}" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    local rc=$?
    ckpt_log "$name: end-to-end tests with ${labels[$i]} (pytest, CKPT_BIN=$dir/ckpt)"
    cat "${logs[$i]}"
    rm -f "${logs[$i]}"
    record "$name e2e tests (${labels[$i]})" "$rc"
  done
}

# run_python_suite: the wheel once, installed into each Python of the matrix.
# shellcheck disable=SC2086
run_python_suite() {
  local out=build-wheel
  local wheel
  wheel="$(ckpt_build_wheel "$TORCH2_PYTHON" "$out/dist")"
  record "python wheel" $?
  [ -f "$wheel" ] || return
  # The wheel every suite below installs is the self-contained one: libcurl (and its tree),
  # libyaml, libisal and zlib grafted in by auditwheel (scripts/repair_wheel.py).
  wheel="$(ckpt_repair_wheel "$wheel" "$out/repaired")"
  record "python wheel repaired (auditwheel)" $?
  [ -f "$wheel" ] || return
  ckpt_check_wheel "$wheel"
  record "python wheel self-contained (ldd, auditwheel show)" $?
  # tests/python/test_wheel.py: the installed package runs with the machine's copies of
  # those libraries hidden.
  export CKPT_WHEEL_SELF_CONTAINED=1
  ckpt_setup_numpy_venv </dev/null
  record "numpy-only venv" $?
  local numpy_python site="$out/site" fixtures="$out/fixtures-torch1"
  numpy_python="$(ckpt_numpy_python)"
  "$TORCH2_PYTHON" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel" </dev/null
  ckpt_log "python: tests/python with torch 2.x (venv)"
  "$TORCH2_PYTHON" -m pytest -q -p no:cacheprovider tests/python ${CKPT_PYTEST_ARGS:-} </dev/null
  record "python tests (torch 2.x)" $?
  # Debian's python 3.11 imports the same wheel from a --target folder.
  rm -rf "$site" "$fixtures"
  "$TORCH2_PYTHON" -m pip install -q --disable-pip-version-check --no-deps --target "$site" "$wheel" </dev/null
  ckpt_log "python: tests/python with torch 1.13 (Debian, PYTHONPATH=$site)"
  PYTHONPATH="$PWD/$site" "$PYTHON" -m pytest -q -p no:cacheprovider tests/python ${CKPT_PYTEST_ARGS:-} </dev/null
  record "python tests (torch 1.13)" $?
  # Without torch: fixtures made by Debian's torch beforehand.
  "$PYTHON" tests/fixtures/make_fixtures.py "$fixtures" >/dev/null </dev/null
  "$numpy_python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel" </dev/null
  ckpt_log "python: tests/python without torch (numpy only)"
  CKPT_FIXTURES="$PWD/$fixtures" "$numpy_python" -m pytest -q -p no:cacheprovider tests/python \
    ${CKPT_PYTEST_ARGS:-} </dev/null
  record "python tests (numpy only)" $?
}

suites=" ${CKPT_SUITES:-release asan python} "
if [ "$failed" -eq 0 ]; then
  if [[ "$suites" == *" release "* ]]; then
    run_suite "release" build both
  fi
  if [[ "$suites" == *" asan "* ]]; then
    choose_asan_options
    # Under the sanitizers the binary is what is checked: one torch (2.13, what
    # users run) is enough there; the release suite covers both torches.
    run_suite "asan" build-asan torch2 -DCKPT_SANITIZE=ON
  fi
  if [[ "$suites" == *" python "* ]]; then
    run_python_suite
  fi
fi

# ---- Fuzzing (scripts/fuzz.sh): the six libFuzzer targets with clang, ASan
# and UBSan, seeded from the fixtures, FUZZ_SECONDS each (30 here: about 3 min
# plus the clang build). CKPT_SKIP_FUZZ=1 skips it.
if [ "${CKPT_SKIP_FUZZ:-0}" != 1 ]; then
  ckpt_log "fuzz: scripts/fuzz.sh (FUZZ_SECONDS=${FUZZ_SECONDS:-30} per target)"
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash scripts/fuzz.sh </dev/null
  record "fuzz" $?
fi

summary
exit "$failed"
