#!/usr/bin/env bash
# Multi-process scaling in one command, for a machine with many cores: the
# issue-11 run `mpbench --procs 1,2,4,8,16`, for read-only, 90/10 and 50/50
# mixes, as one Markdown report (stdout, and $OUT/scaling.md when OUT is
# set). Process counts above the machine's cores are dropped.
#   benches/scaling.sh                  # builds mpbench (cargo) first
#   MPBENCH=path/to/mpbench benches/scaling.sh   # a binary built elsewhere
# Environment: PROCS (default 1,2,4,8,16), SECS (default 3), MIXES (get
# percentages, default "100 90 50"), KEYS, VALUE, CAPACITY_MIB.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MPBENCH:-}
if [[ -z $bin ]]; then
  cargo build --release -q -p memshelf-benches --bin mpbench
  bin=target/release/mpbench
fi
cores=$(nproc)
procs=()
IFS=, read -ra want <<<"${PROCS:-1,2,4,8,16}"
for p in "${want[@]}"; do ((p <= cores)) && procs+=("$p"); done
list=$(IFS=,; echo "${procs[*]}")
report() {
  echo "# mpbench scaling: $(date -u +%FT%TZ), $(uname -n), $cores cores"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  for mix in ${MIXES:-100 90 50}; do
    echo "## $mix % gets"
    echo
    echo "\`mpbench --procs $list --secs ${SECS:-3} --get-pct $mix --keys ${KEYS:-100000} --value ${VALUE:-100} --capacity-mib ${CAPACITY_MIB:-256}\`"
    echo
    "$bin" --procs "$list" --secs "${SECS:-3}" --get-pct "$mix" --keys "${KEYS:-100000}" \
      --value "${VALUE:-100}" --capacity-mib "${CAPACITY_MIB:-256}" | sed -n '/^|/p'
    echo
  done
}
if [[ -n ${OUT:-} ]]; then
  report | tee "$OUT/scaling.md"
else
  report
fi
