#!/usr/bin/env bash
# Instructions per operation (get hit, get miss, put) from callgrind: a
# repeatable budget for the hot paths, even on a loaded machine. The
# get-many rows are per key of 100-key batches.
#   benches/callgrind.sh [keys] [capacity]      (default 100000 256MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}
cap=${2:-256MiB}
cargo build --release -q -p memshelf-benches --bin opcount
bin=target/release/opcount
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-17s %12s\n' op 'instr/op'
for op in get-hit get-hit-unsampled get-miss put get-many get-many-with; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$op" \
    --toggle-collect='*measured*' "$bin" "$op" "$keys" "$cap" >/dev/null 2>"$out/$op.log"
  total=$(callgrind_annotate "$out/$op" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '%-17s %12.0f\n' "$op" "$(echo "$total / 100000" | bc -l)"
done
