#!/usr/bin/env bash
# A/B of two revisions on a noisy machine: builds `mpbench` at each (in
# throwaway worktrees, one target dir each under target/ab/), then runs
# them alternately (A B, B A, A B, ...: neither side always runs right
# after the other; four runs of A-then-B once put B 13 % ahead with the
# same source on both sides) and prints
# each run and the means. Alternating spreads the machine's drift over both
# sides; compare the means, and trust only a difference larger than the
# spread of one side's runs. Two builds of the same source in different
# directories measure the same within that spread.
#   benches/ab.sh REV_A [REV_B] [-- mpbench args]   (REV_B: the working tree)
#   benches/ab.sh HEAD~1 -- --procs 1 --secs 2 --get-pct 100
# Environment: RUNS (alternations, default 6).
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?usage: benches/ab.sh REV_A [REV_B] [-- mpbench args]}
shift
b=
if [[ $# -gt 0 && $1 != -- ]]; then
  b=$1
  shift
fi
[[ ${1:-} == -- ]] && shift
args=("$@")
((${#args[@]})) || args=(--procs 1 --secs 2 --get-pct 100)
runs=${RUNS:-6}
root=$PWD
mkdir -p target/ab
build() { # rev -> path of its mpbench
  local rev=$1 tag=$2
  if [[ -z $rev ]]; then
    cargo build --release -q -p memshelf-benches --bin mpbench
    cp target/release/mpbench "target/ab/mpbench-$tag"
  else
    local wt
    wt=$(mktemp -d)
    git worktree add -q --detach "$wt" "$rev"
    (cd "$wt" && CARGO_TARGET_DIR="$root/target/ab/target-$tag" \
      cargo build --release -q -p memshelf-benches --bin mpbench)
    git worktree remove --force "$wt"
    cp "target/ab/target-$tag/release/mpbench" "target/ab/mpbench-$tag"
  fi
  echo "target/ab/mpbench-$tag"
}
bin_a=$(build "$a" A)
bin_b=$(build "$b" B)
echo "A = $a, B = ${b:-working tree}; mpbench ${args[*]}; $runs alternations (total Mops/s)"
sa=() sb=()
for ((i = 1; i <= runs; i++)); do
  one() { "$1" "${args[@]}" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}'; }
  if ((i % 2)); then
    ra=$(one "$bin_a")
    rb=$(one "$bin_b")
  else
    rb=$(one "$bin_b")
    ra=$(one "$bin_a")
  fi
  printf 'run %d: A %s  B %s\n' "$i" "$ra" "$rb"
  sa+=("$ra") sb+=("$rb")
done
stats() { printf '%s\n' "$@" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1}
  END {printf "mean %.3f (min %.3f, max %.3f)", s / NR, lo, hi}'; }
echo "A: $(stats "${sa[@]}")"
echo "B: $(stats "${sb[@]}")"
