#!/usr/bin/env bash
# Why ckpt copies a record with copy_file_range only where source and output
# share their offset within a page, and through a 1 MiB pipe otherwise
# (docs/PERFORMANCE.md, session 10): cp + sync of FILE, then
# bench/copy_offset.c copying FILE with copy_file_range from byte 0 and from
# byte 64 (a page-offset mismatch, as a rewritten data.pkl makes), through a
# 1 MiB pipe from byte 64 and through a 1 MiB buffer from byte 64, in turn,
# REPS rounds; prints each one's times and the median of its ratios to
# cp + sync's, round by round. The output
# goes beside FILE (same file system); each run starts after the previous
# output is removed, as bench.py's do.
#
#   bash bench/copy_offset.sh [FILE] [REPS]   (default bench/out/musicgen_small.th, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-bench/out/musicgen_small.th}"
reps="${2:-5}"
out="$(dirname "$file")/copy_offset.out"
bin="$(mktemp -d)/copy_offset"
trap 'rm -f "$out"; rm -rf "$(dirname "$bin")"' EXIT
gcc -O2 -Wall -Wextra -o "$bin" bench/copy_offset.c -lpthread
cat "$file" >/dev/null  # the source in the page cache, as for every row
echo "load $(cut -d' ' -f1-3 /proc/loadavg); $(stat -c %s "$file") bytes"
for _ in $(seq "$reps"); do
  for variant in cp "kernel 0" "kernel 64" "pipe 64" "buffer 64"; do
    rm -f "$out"
    start=$(date +%s.%N)
    if [ "$variant" = cp ]; then cp "$file" "$out" && sync "$out"; else "$bin" $variant "$file" "$out" 2>/dev/null; fi
    echo "$variant $(echo "$(date +%s.%N) - $start" | bc)"
  done
done | awk '
  { name = $1 ($2 != "" && NF == 3 ? " " $2 : ""); t = $NF; times[name] = times[name] sprintf(" %.2f", t)
    if (name == "cp") { cp = t } else { r[name, ++n[name]] = t / cp } }
  END {
    print "cp + sync:" times["cp"]
    split("kernel 0|kernel 64|pipe 64|buffer 64", v, "|")
    for (i = 1; i <= 4; i++) {
      k = v[i]; m = n[k]; for (j = 1; j <= m; j++) s[j] = r[k, j]
      for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (s[b] < s[a]) { x = s[a]; s[a] = s[b]; s[b] = x }
      med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
      printf "%-9s:%s   median %.3fx cp + sync\n", k, times[k], med
    }
  }'
