#!/usr/bin/env bash
# Instructions per operation (get hit, get miss, put) from callgrind: a
# repeatable budget for the hot paths, even on a loaded machine. The
# get-many rows are per key of 100-key batches; the last row is the peer,
# a std HashMap get + copy of the same keys in the same order
# (opcount_std). With CACHE_SIM=1 it also simulates a 32 KiB L1d and a
# 32 MiB last-level cache (this VM's sizes) and prints their read misses
# per op: memory touched beyond the caches, which instructions do not show.
#   benches/callgrind.sh [keys] [capacity]      (default 100000 256MiB)
#   CACHE_SIM=1 benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}
cap=${2:-256MiB}
cargo build --release -q -p memshelf-benches --bin opcount --bin opcount_std
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sim=()
if [[ ${CACHE_SIM:-0} == 1 ]]; then
  sim=(--cache-sim=yes --D1=32768,8,64 --LL=33554432,16,64)
  printf '%-17s %12s %12s %12s\n' op 'instr/op' 'L1d miss/op' 'LL miss/op'
else
  printf '%-17s %12s\n' op 'instr/op'
fi
row() {
  local name=$1
  shift
  valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$out/$name" \
    --toggle-collect='*measured*' "$@" >/dev/null 2>"$out/$name.log"
  # PROGRAM TOTALS: Ir (and with the simulation Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw).
  local totals
  totals=$(callgrind_annotate "$out/$name" 2>/dev/null | awk '/PROGRAM TOTALS/ {
    n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9][0-9,]*$/) { v = $i; gsub(",", "", v); t[++n] = v }
    printf "%s %s %s", t[1], (n >= 9 ? t[5] : 0), (n >= 9 ? t[8] : 0) }')
  read -r ir d1 ll <<<"$totals"
  if ((${#sim[@]})); then
    printf '%-17s %12.0f %12.2f %12.2f\n' "$name" "$(echo "$ir / 100000" | bc -l)" \
      "$(echo "$d1 / 100000" | bc -l)" "$(echo "$ll / 100000" | bc -l)"
  else
    printf '%-17s %12.0f\n' "$name" "$(echo "$ir / 100000" | bc -l)"
  fi
}
for op in get-hit get-hit-unsampled get-miss put get-many get-many-with; do
  row "$op" target/release/opcount "$op" "$keys" "$cap"
done
row hashmap-get target/release/opcount_std "$keys"
