#!/usr/bin/env bash
# Tests of observability/ and of the CLI's live views, end to end:
#  1. promtool check rules / test rules (a unit test for every alert), and
#     the dashboard JSON is what its generator writes;
#  2. a real Prometheus (random loopback port) scrapes a real memshelf-agent
#     (against a real redis-server it starts) while a workload runs; every
#     PromQL expression of the dashboard and the rules is evaluated through
#     Prometheus' HTTP API and must return data (observability/tests/
#     check_queries.py; metrics SPEC 7 names but nobody serves yet are
#     listed as PENDING);
#  3. the CLI: `memshelf ls` lists the test's segments, `memshelf top` runs
#     in tmux and its counters move between two capture-pane reads,
#     `stats --watch`, `ttl`, `incr`, `dump`/`load`, `hot`, and output piped into
#     `head` ends quietly.
# Needs (scripts/setup.sh installs them): prometheus (promtool), redis-server,
# tmux, python3 with PyYAML (.venv).
#   scripts/test-observability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
root=$PWD

for tool in promtool prometheus redis-server tmux curl; do
    command -v "$tool" >/dev/null || {
        echo "$tool is not on PATH: run scripts/setup.sh (apt-get install -y prometheus redis-server tmux curl)" >&2
        exit 1
    }
done
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
say() { printf '[observability] %s\n' "$*"; }
fail() { printf '[observability] FAIL %s\n' "$*" >&2; exit 1; }
"$PY" -c 'import yaml' 2>/dev/null || fail "$PY has no PyYAML: run scripts/setup.sh (it installs scripts/requirements-dev.txt into .venv)"

say "promtool check rules"
promtool check rules observability/prometheus/memshelf-recording.yml observability/prometheus/memshelf-alerts.yml
say "promtool test rules"
promtool test rules observability/prometheus/tests/alerts-test.yml
say "dashboard JSON is current"
"$PY" observability/grafana/generate.py --check

cargo build -p memshelf-agent -p memshelf-cli --quiet
bin="${CARGO_TARGET_DIR:-target}/debug"
ms="$bin/memshelf"
[[ $ms = /* ]] || ms="$root/$ms"

work=$(mktemp -d "${TMPDIR:-/tmp}/memshelf-obs.XXXXXX")
tag="obs-$$-$RANDOM"
seg_a="$tag-a"
seg_b="$tag-b"
tmux_sock="$work/tmux.sock"
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    tmux -S "$tmux_sock" kill-server 2>/dev/null || true
    for s in "$seg_a" "$seg_b" "$tag-copy" "$tag-pipe" "$tag-hot" "$tag-ees" "$tag-ees-default"; do "$ms" unlink "$s" 2>/dev/null || true; done
    if [[ $rc -ne 0 ]]; then
        for f in "$work"/*.log; do
            [[ -f $f ]] && { echo "--- $f (last lines)"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # URL WHAT (30 s: a loaded CI machine starts Prometheus slowly)
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "$2 did not answer $1 within 30 s"
}

# --- the exporter: a redis-server and a memshelf-agent ----------------------
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.05
done
"$ms" put "$seg_a" warm 1 --capacity 1MiB
"$ms" put "$seg_b" warm 1 --capacity 2MiB
mport=$(free_port)
"$bin/memshelf-agent" --segment "$seg_a" --segment "$seg_b" --broker "redis://127.0.0.1:$rport" \
    --feed pubsub --metrics-addr "127.0.0.1:$mport" >"$work/agent.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$mport/metrics" memshelf-agent
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$mport/metrics" | grep -q '^memshelf_agent_connected 1' && break
    sleep 0.05
done

# --- Prometheus -------------------------------------------------------------
pport=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $root/observability/prometheus/memshelf-recording.yml
  - $root/observability/prometheus/memshelf-alerts.yml
scrape_configs:
  - job_name: memshelf
    static_configs:
      - targets: ["127.0.0.1:$mport"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$pport/-/ready" prometheus

# --- a workload: gets (hits and misses), puts that evict, short TTLs that
# expire, heartbeats with a ts (agent lag) --------------------------------
big=$(head -c 3000 /dev/zero | tr '\0' x)
workload() {
    local i=0
    while :; do
        i=$((i + 1))
        "$ms" put "$seg_a" "k$((i % 50))" "v$i" >/dev/null
        "$ms" get "$seg_a" "k$((i % 50))" >/dev/null || true
        "$ms" get "$seg_a" "absent$i" >/dev/null || true
        "$ms" put "$seg_a" "big$i" "$big" >/dev/null
        "$ms" put "$seg_b" "short$i" x --ttl 0.05 >/dev/null
        "$ms" get "$seg_b" "short$((i - 2))" >/dev/null || true
        if ((i % 5 == 0)); then
            "$ms" publish --broker "redis://127.0.0.1:$rport" hb >/dev/null
        fi
    done
}
workload >"$work/workload.log" 2>&1 &
workload_pid=$!
pids+=($workload_pid)

# --- CLI: ls and top, while the workload runs ------------------------------
say "memshelf ls lists the test's segments"
"$ms" ls >"$work/ls.out"
head -n 1 "$work/ls.out" | grep -q 'NAME.*OWNER.*MODE.*CAPACITY.*USED.*ENTRIES.*AGE' || fail "ls header: $(head -n 1 "$work/ls.out")"
grep -q "^$seg_a  *$(id -un)  *0600  *1.0 MiB " "$work/ls.out" || fail "ls: no line for $seg_a: $(cat "$work/ls.out")"
grep -q "^$seg_b  *$(id -un)  *0600  *2.0 MiB " "$work/ls.out" || fail "ls: no line for $seg_b"
"$ms" ls --json | grep -q "\"name\":\"$seg_a\"" || fail "ls --json"

say "memshelf top in tmux: counters move"
tmux -S "$tmux_sock" new-session -d -s top -x 120 -y 40 "$ms top $seg_a --interval 0.5 --agent 127.0.0.1:$mport"
screen() { tmux -S "$tmux_sock" capture-pane -p -t top; }
hits_on_screen() { screen | sed -n 's/.* hits .* \([0-9][0-9]*\) total.*/\1/p' | head -n 1; }
first=""
for _ in $(seq 1 100); do
    first=$(hits_on_screen)
    [[ -n $first ]] && break
    sleep 0.1
done
[[ -n $first ]] || fail "top shows no hits counter: $(screen)"
screen >"$work/top-1.txt"
second=$first
for _ in $(seq 1 100); do
    sleep 0.2
    second=$(hits_on_screen)
    [[ -n $second && $second -gt $first ]] && break
done
screen >"$work/top-2.txt"
[[ -n $second && $second -gt $first ]] || fail "top's hits did not move ($first then $second): $(cat "$work/top-2.txt")"
grep -q "$seg_a" "$work/top-2.txt" || fail "top does not name the segment"
grep -q 'hit ratio' "$work/top-2.txt" || fail "top shows no hit ratio"
grep -q 'p99' "$work/top-2.txt" || fail "top shows no latency line"
# Every CLI process samples its first get and put: the workload's show.
unit='[0-9.]+ (ns|µs|ms|s)'
grep -Eq "get  p50 +$unit +p99 +$unit +\([1-9][0-9]* samples\)" "$work/top-2.txt" || fail "top's get latency has no numbers: $(cat "$work/top-2.txt")"
grep -Eq "put  p50 +$unit +p99 +$unit +\([1-9][0-9]* samples\)" "$work/top-2.txt" || fail "top's put latency has no numbers: $(cat "$work/top-2.txt")"
grep -Eq 'hot keys \(top key [0-9.]+ % of sampled hits\)' "$work/top-2.txt" || fail "top shows no hot-key share"
grep -Eq '^│ +[0-9.]+ % +[0-9]+  k[0-9]+ ' "$work/top-2.txt" || fail "top lists no hot key: $(cat "$work/top-2.txt")"
grep -q 'connected .*serves this segment yes' "$work/top-2.txt" || fail "top shows no agent health: $(cat "$work/top-2.txt")"
tmux -S "$tmux_sock" send-keys -t top q
for _ in $(seq 1 50); do
    tmux -S "$tmux_sock" has-session -t top 2>/dev/null || break
    sleep 0.1
done
if tmux -S "$tmux_sock" has-session -t top 2>/dev/null; then fail "top did not quit on q"; fi
say "top: hits $first -> $second"

# --- every expression of the dashboard and the rules returns data ----------
sleep 5 # a few more scrapes and rule evaluations with the workload running
say "evaluating every PromQL expression through Prometheus' HTTP API"
"$PY" observability/tests/check_queries.py --prometheus "http://127.0.0.1:$pport" \
    --dashboard observability/grafana/memshelf-dashboard.json \
    --rules observability/prometheus/memshelf-recording.yml \
    --rules observability/prometheus/memshelf-alerts.yml \
    --alert-tests observability/prometheus/tests/alerts-test.yml

kill "$workload_pid" 2>/dev/null || true
wait "$workload_pid" 2>/dev/null || true

# --- CLI: stats --watch, ttl, incr, dump/load, pipes -----------------------
say "memshelf stats --watch, ttl, incr"
test "$("$ms" stats "$seg_a" --watch --interval 0.1 --count 3 | grep -c '^hits=')" = 3 || fail "stats --watch --count 3"
test "$("$ms" stats "$seg_a" --json --watch --interval 0.1 --count 2 | grep -c '"hits":')" = 2 || fail "stats --json --watch"
"$ms" put "$seg_b" t1 v --ttl 100
ttl=$("$ms" ttl "$seg_b" t1)
[[ $ttl =~ ^(99|100)\.[0-9]+$ ]] || fail "ttl printed $ttl"
"$ms" put "$seg_b" t2 v
test "$("$ms" ttl "$seg_b" t2)" = never || fail "ttl of an entry without expiry"
if "$ms" ttl "$seg_b" nope >/dev/null; then fail "ttl of an absent key exits 0"; fi
test "$("$ms" incr "$seg_b" n)" = 1 || fail "incr"
test "$("$ms" incr "$seg_b" n 41)" = 42 || fail "incr 41"
test "$("$ms" incr "$seg_b" n -- -50)" = -8 || fail "incr -50"
if "$ms" incr "$seg_b" t2 2>/dev/null; then fail "incr of a non-integer exits 0"; fi

say "memshelf put --expected-entry-size sizes a created segment's index"
"$ms" put "$tag-ees" k v --capacity 4MiB --expected-entry-size 24
"$ms" put "$tag-ees-default" k v --capacity 4MiB
small=$("$ms" stats "$tag-ees" | sed -n 's/^index_slots=//p')
default=$("$ms" stats "$tag-ees-default" | sed -n 's/^index_slots=//p')
# 4 slots per expected entry: 24-byte entries get ~1.9x the default's slots.
(( small * 10 > default * 18 )) || fail "index_slots $small (24-byte entries) vs $default (default)"
if "$ms" put "$tag" k v --expected-entry-size 0 2>/dev/null; then fail "expected-entry-size 0 accepted"; fi

say "memshelf dump / load across segments of other capacities"
"$ms" put "$seg_b" keep-ttl v --ttl 300
"$ms" dump "$seg_b" "$work/b.dump" | grep -q '^dumped [0-9]* entries' || fail "dump output"
"$ms" put "$tag-copy" n already-here --capacity 4MiB
"$ms" load "$tag-copy" "$work/b.dump" >"$work/load.out"
grep -q 'kept 1 newer' "$work/load.out" || fail "load: $(cat "$work/load.out")"
test "$("$ms" get "$tag-copy" t2)" = v || fail "load: t2"
test "$("$ms" get "$tag-copy" n)" = already-here || fail "load overwrote a newer entry"
ttl=$("$ms" ttl "$tag-copy" keep-ttl)
[[ $ttl =~ ^(29[0-9]|300)\.[0-9]+$ ]] || fail "load: remaining TTL $ttl"
head -c 100 "$work/b.dump" >"$work/cut.dump"
"$ms" load "$tag-copy" "$work/cut.dump" >"$work/cut.out" || fail "load of a truncated dump failed"
grep -q 'skipped' "$work/cut.out" || fail "truncated load does not say what it skipped: $(cat "$work/cut.out")"

say "memshelf hot lists the hottest keys with counts and shares"
"$ms" put "$tag-hot" hot 1 --capacity 1MiB
"$ms" put "$tag-hot" warm 1
"$ms" put "$tag-hot" cold 1
# Each process samples its first get (one in 64 per thread).
for _ in $(seq 1 20); do "$ms" get "$tag-hot" hot >/dev/null; done
for _ in $(seq 1 5); do "$ms" get "$tag-hot" warm >/dev/null; done
"$ms" get "$tag-hot" cold >/dev/null
"$ms" hot "$tag-hot" >"$work/hot.out"
head -n 1 "$work/hot.out" | grep -Eq '^ +COUNT +SHARE +KEY$' || fail "hot header: $(cat "$work/hot.out")"
sed -n 2p "$work/hot.out" | grep -Eq '^ +[0-9]+ +[0-9.]+%  hot$' || fail "hot: the hottest key is not first: $(cat "$work/hot.out")"
sed -n 3p "$work/hot.out" | grep -Eq '^ +[0-9]+ +[0-9.]+%  warm$' || fail "hot: warm is not second: $(cat "$work/hot.out")"
test "$("$ms" hot "$tag-hot" -n 1 | wc -l)" = 2 || fail "hot -n 1: $("$ms" hot "$tag-hot" -n 1)"
"$ms" unlink "$tag-hot"
"$ms" put "$tag-hot" x 1 --capacity 1MiB
"$ms" hot "$tag-hot" | grep -q 'no sampled hits yet' || fail "hot of a segment without hits"

say "output piped into head ends quietly"
long=$(head -c 4000 /dev/zero | tr '\0' k)
for i in $(seq 1 60); do "$ms" put "$tag-pipe" "$long$i" v --capacity 4MiB; done
lines=$("$ms" keys "$tag-pipe" 2>"$work/keys.err" | head -n 1 | wc -l)
test "$lines" = 1 || fail "keys | head -1 printed $lines lines"
[[ ! -s "$work/keys.err" ]] || fail "keys | head: $(cat "$work/keys.err")"
"$ms" keys "$tag-pipe" | head -n 1 >/dev/null || fail "keys | head -1 exit status (pipefail)"
"$ms" stats "$seg_a" --watch --interval 0.01 2>"$work/watch.err" | head -n 2 >/dev/null || fail "stats --watch | head"
[[ ! -s "$work/watch.err" ]] || fail "stats --watch | head: $(cat "$work/watch.err")"
"$ms" ls 2>"$work/ls.err" | head -n 1 >/dev/null || fail "ls | head"
[[ ! -s "$work/ls.err" ]] || fail "ls | head: $(cat "$work/ls.err")"
for i in $(seq 1 30); do "$ms" put "$tag-hot" "h$i" v; "$ms" get "$tag-hot" "h$i" >/dev/null; done
"$ms" hot "$tag-hot" -n 30 2>"$work/hot.err" | head -n 1 >/dev/null || fail "hot | head"
[[ ! -s "$work/hot.err" ]] || fail "hot | head: $(cat "$work/hot.err")"

say "passed"
