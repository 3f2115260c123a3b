#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz/, seeds them from the project's fixtures and runs each for
# FUZZ_SECONDS (default 60). Crashes are kept in build-fuzz/crashes/<target>/;
# a fixed one belongs in tests/fuzz/regressions/<target>/ (replayed by the unit
# tests in every build). Prints executions per target; exits 1 on any crash.
# Environment: FUZZ_SECONDS, FUZZ_TARGETS (default "zip unpickle yaml override legacy
# safetensors"),
# CKPT_JOBS (build parallelism, default 2).
set -uo pipefail

cd "$(dirname "$0")/.."
source scripts/lib.sh

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TARGETS="${FUZZ_TARGETS:-zip unpickle yaml override legacy safetensors}"
BUILD=build-fuzz
PYTHON=/usr/bin/python3   # Debian's python: has torch (for the generated seeds)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

ckpt_log "fuzz: building $BUILD with clang (ASan + UBSan + libFuzzer)"
targets=()
for t in $FUZZ_TARGETS; do targets+=("fuzz_$t"); done
if ! CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCKPT_FUZZ=ON -DCKPT_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! cmake --build "$BUILD" -j"$CKPT_JOBS" --target "${targets[@]}"; then
  ckpt_log "fuzz: build failed"
  exit 1
fi

# Seeds: copied into a fresh folder per target (libFuzzer adds to its first
# corpus folder; the sources stay untouched).
seeds="$BUILD/seeds"
rm -rf "$seeds" "$BUILD/corpus"
mkdir -p "$seeds"/{zip,unpickle,yaml,override,legacy,safetensors} "$BUILD/corpus"
cp tests/unit/data/*.pt tests/unit/data/*.zip "$seeds/zip/" 2>/dev/null
cp tests/unit/data/pickle/*.pkl "$seeds/unpickle/" 2>/dev/null
cp tests/unit/data/omegaconf/*.yaml tests/fixtures/*.yaml "$seeds/yaml/" 2>/dev/null
shared=../shared/corpora/picklescan
if [ -d "$shared" ]; then
  cp "$shared"/*.pkl "$shared"/*.pickle "$seeds/unpickle/" 2>/dev/null
  cp "$shared"/*.zip "$seeds/zip/" 2>/dev/null
fi
# Small checkpoints torch writes (zip and legacy), their data.pkl, and the
# example's data.pkl and xp.cfg YAML.
"$PYTHON" - "$seeds" <<'EOF' || ckpt_log "fuzz: generated seeds skipped (no torch?)"
import collections, io, os, sys, zipfile
import torch
out = sys.argv[1]
sd = collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.zeros(2, dtype=torch.float16))
obj = {"best_state": {"model": sd}, "xp.cfg": "optim:\n  lr: 0.1\n", "version": "1.0", "n": [1, 2.5, None, True]}
for name, kw in (("small.pt", {}), ("legacy.pt", {"_use_new_zipfile_serialization": False})):
    torch.save(obj, os.path.join(out, "zip", name), **kw)
for src in [os.path.join(out, "zip", "small.pt"), "examples/musicgen_tiny_training.th"]:
    with zipfile.ZipFile(src) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
        with open(os.path.join(out, "unpickle", os.path.basename(src) + ".data.pkl"), "wb") as f:
            f.write(z.read(pkl))
# The legacy container in every pickle protocol torch writes.
for proto in (2, 3, 4, 5):
    torch.save(obj, os.path.join(out, "legacy", f"legacy_p{proto}.pt"),
               _use_new_zipfile_serialization=False, pickle_protocol=proto)
EOF
"$PYTHON" tests/fixtures/make_hostile.py "$BUILD/hostile" >/dev/null 2>&1 &&
  cp "$BUILD"/hostile/*.pt "$BUILD"/hostile/*.txt "$seeds/legacy/" 2>/dev/null
# safetensors headers: a few valid files in the reference's layout.
"$PYTHON" - "$seeds/safetensors" <<'EOF'
import json, struct, sys, os
def write(name, tensors, meta=True):
    header, data = {}, b""
    if meta:
        header["__metadata__"] = {"format": "pt"}
    for key, (dtype, shape, payload) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
write("one.safetensors", {"w": ("F32", [2, 2], bytes(16))})
write("mixed.safetensors", {"a": ("F16", [3], bytes(6)), "b": ("I64", [1], bytes(8)), "c": ("BOOL", [0], b"")}, meta=False)
write("nested.safetensors", {"x.y.z": ("BF16", [1, 1, 2], bytes(4)), "u": ("U8", [], b"\x01")})
EOF
printf '%s\n' "optim.lr=1e-4" "+dataset.train.path=/data/x" "++model.dims=[1,2,3]" "~optim.betas" \
  "a.b={c: 1, d: [x, 'y z']}" "name='quoted \\' str'" "x=\${oc.env:HOME}" "k=null" "k=nan" "k=-inf" \
  "k=true" "k=1_000" "list=[]" "d={}" "k=\"dq\"" "a.0.b=1" |
  while IFS= read -r line; do printf '%s' "$line" >"$seeds/override/$(printf '%s' "$line" | md5sum | cut -c1-12)"; done

declare -A max_len=([zip]=65536 [unpickle]=65536 [yaml]=16384 [override]=1024 [legacy]=65536 [safetensors]=4096)
# fuzz_target T: runs T's fuzzer for FUZZ_SECONDS; its exit status goes to
# $BUILD/fuzz_T.rc. The targets run CKPT_JOBS at a time (one core each).
fuzz_target() {
  local t="$1" corpus="$BUILD/corpus/$1" crashes="$BUILD/crashes/$1"
  mkdir -p "$corpus" "$crashes" "tests/fuzz/regressions/$t"
  "$BUILD/fuzz_$t" "$corpus" "$seeds/$t" "tests/fuzz/regressions/$t" \
    -max_total_time="$FUZZ_SECONDS" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$BUILD/fuzz_$t.log" 2>&1 </dev/null
  echo $? >"$BUILD/fuzz_$t.rc"
}
rm -f "$BUILD"/fuzz_*.rc
running=0
for t in $FUZZ_TARGETS; do
  ckpt_log "fuzz: $t for ${FUZZ_SECONDS}s"
  fuzz_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$CKPT_JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
status=0
summary=()
for t in $FUZZ_TARGETS; do
  log="$BUILD/fuzz_$t.log"
  rc=$(cat "$BUILD/fuzz_$t.rc" 2>/dev/null || echo 1)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  found=$(find "$BUILD/crashes/$t" -type f | wc -l)
  summary+=("$t: ${runs:-?} executions in ${FUZZ_SECONDS}s, $found crash/timeout/oom input(s), exit $rc")
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    tail -40 "$log" >&2
  fi
done
echo "== fuzz summary"
for line in "${summary[@]}"; do echo "   $line"; done
exit "$status"
