#!/usr/bin/env bash
# Compares what two ckpt binaries print for the read-only inspection commands
# (info, tensors, cfg, scan; text and --json; stdout, stderr and exit status)
# on every file given, or by default on the bench file, examples/,
# tests/unit/data and the shared corpora: a change meant to make these
# commands faster must leave their output byte for byte as it was.
#
#   scripts/compare_outputs.sh BEFORE_CKPT AFTER_CKPT [FILE ...]
#
# Prints each difference and ends with the count of runs compared; exit 1
# when any run differs.
set -u
before=$1 after=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  files=()
  [ -e "$root/bench/out/musicgen_small.th" ] && files+=("$root/bench/out/musicgen_small.th")
  while IFS= read -r -d '' f; do files+=("$f"); done < <(
    find "$root/examples" "$root/tests/unit/data" "$root/../shared/corpora" "$root/../shared/fixtures" \
      -type f -size -64M -print0 2>/dev/null | sort -z)
  set -- "${files[@]}"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=0 diffs=0
for f in "$@"; do
  for cmd in "info" "info --json" "tensors" "tensors --json" "cfg" "cfg --json" "scan" "scan --json"; do
    # shellcheck disable=SC2086
    "$before" $cmd "$f" >"$tmp/b.out" 2>"$tmp/b.err"; echo "rc=$?" >>"$tmp/b.err"
    # shellcheck disable=SC2086
    "$after" $cmd "$f" >"$tmp/a.out" 2>"$tmp/a.err"; echo "rc=$?" >>"$tmp/a.err"
    runs=$((runs + 1))
    if ! cmp -s "$tmp/b.out" "$tmp/a.out" || ! cmp -s "$tmp/b.err" "$tmp/a.err"; then
      diffs=$((diffs + 1))
      echo "DIFFERS: ckpt $cmd $f"
      diff "$tmp/b.out" "$tmp/a.out" | head -5
      diff "$tmp/b.err" "$tmp/a.err" | head -5
    fi
  done
done
echo "$runs runs on $# files compared, $diffs differ"
[ "$diffs" -eq 0 ]
