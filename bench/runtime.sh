#!/usr/bin/env bash
# Benchmarks kelp-runtime on this machine and prints one Markdown table (see bench/README.md).
#
#   bench/runtime.sh                     # full run, ~3-5 min
#   DURATION=3 RUNS=3 bench/runtime.sh   # quick check
#
# The load generator shares the machine, so other work skews the numbers: before each row the
# script waits (up to QUIET_WAIT s, default 60) until the machine's CPU use over 1 s is below
# QUIET_MAX % (default 10); a throughput row during which other processes used more than
# QUIET_MAX % of the CPUs is measured again (up to RETRIES times, default 2), keeping the least
# disturbed run, and the table names the rows that stayed disturbed.
#
# Knobs (environment): DURATION (s per measured wrk run, default 10), WARMUP (s of wrk before
# each measured run, default 2), RUNS (cold starts per median, default 10), WRK_C32_THREADS (wrk
# threads at 32 connections, default 1: see README), SKIP_BUILD=1 (use the binary already in
# target/release), KELP_WORKERS / KELP_MAX_WORKERS (passed to the throughput runs; cold start
# and RSS always use KELP_WORKERS=1), KELP_PYTHON, KELP_NODE.
#
# Progress goes to stderr, the table to stdout. Exit status 1 if a server does not come up, a
# function answers wrongly, or wrk saw errors / non-2xx answers (the table is printed first).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-10}
WRK_C32_THREADS=${WRK_C32_THREADS:-1}
UP_TIMEOUT=${UP_TIMEOUT:-30}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-60}
RETRIES=${RETRIES:-2}


WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-bench.XXXXXX")
PIDS=()
WARNINGS=()


# Stops one runtime: SIGTERM (it stops its workers), up to 5 s, then SIGKILL of whatever is left.
stop_server() { stop_proc "$1" 5; }

cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_server "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools, binary, interpreters.

ensure_wrk
for tool in curl python3 node cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
for w in "$ROOT/runtimes/python/kelp_worker.py" "$ROOT/runtimes/nodejs/kelp_worker.js"; do
    [ -s "$w" ] || die "$w is missing or empty (the worker is embedded at build time)"
done

if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: using the kelp-runtime already built"
else
    log "building kelp-runtime (release)"
    (cd "$ROOT" && cargo build --release -p kelp-runtime) >&2 || die "cargo build --release -p kelp-runtime failed"
fi
# A private copy, so a rebuild running in parallel cannot swap the binary in the middle of a run.
cp "$CARGO_TARGET_DIR/release/kelp-runtime" "$WORK/kelp-runtime"
BIN=$WORK/kelp-runtime

# The real interpreter behind `python3` (which may be a pyenv shim script): for the workers unless
# KELP_PYTHON is set, and for this script's helpers (a shim costs ~20 ms a call).
PY=$(python3 -c 'import sys; print(sys.executable)')
KELP_PYTHON=${KELP_PYTHON:-$PY}
KELP_NODE=${KELP_NODE:-$(readlink -f "$(command -v node)")}
[ -x "$KELP_PYTHON" ] || die "KELP_PYTHON=$KELP_PYTHON is not executable"
[ -x "$KELP_NODE" ] || die "KELP_NODE=$KELP_NODE is not executable"
export KELP_PYTHON KELP_NODE KELP_BIN=$BIN
export MOD_NAME=bench KUBELESS_INSTALL_VOLUME=$BENCH/functions KELP_CACHE_DIR=$WORK/cache
export KELP_ACCESS_LOG=1 KELP_LOG=warn WRK_BODY_FILE=$BENCH/echo-1k.json
unset FUNC_PORT FUNC_HANDLER FUNC_RUNTIME

# ---------------------------------------------------------------------------------------------
# Servers.

# start_server RUNTIME HANDLER: starts the runtime on a free port and waits for /healthz 200.
# Sets PORT and PID.
start_server() {
    local runtime=$1 handler=$2 attempt t
    for attempt in 1 2 3; do
        PORT=$("$PY" "$BENCH/coldstart.py" freeport)
        local log=$WORK/server-$runtime-$handler-$PORT.log
        FUNC_RUNTIME=$runtime FUNC_HANDLER=$handler FUNC_PORT=$PORT "$BIN" >/dev/null 2>"$log" &
        PID=$!
        PIDS+=("$PID")
        for ((t = 0; t < UP_TIMEOUT * 100; t++)); do
            if ! kill -0 "$PID" 2>/dev/null; then break; fi
            if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/healthz")" = 200 ]; then
                return 0
            fi
            sleep 0.01
        done
        stop_server "$PID"
        if grep -q 'Address already in use' "$log" && [ "$attempt" -lt 3 ]; then
            log "port $PORT was taken meanwhile; retrying"
            continue
        fi
        cat "$log" >&2
        die "$runtime runtime ($handler) did not answer /healthz 200 within ${UP_TIMEOUT}s (log above)"
    done
}

# check BODY_EXPECTED ARGS...: the function answers 200 with the expected body.
check_hello() {
    local got
    got=$(curl -sS --fail-with-body --max-time 10 "http://127.0.0.1:$PORT/") || die "GET / failed on $1: $got"
    [ "$got" = "hello world" ] || die "$1 hello answered '$got', expected 'hello world'"
}
check_echo() {
    local got
    got=$(curl -sS --fail-with-body --max-time 10 -H 'Content-Type: application/json' \
        --data-binary "@$WRK_BODY_FILE" "http://127.0.0.1:$PORT/") || die "POST / failed on $1: $got"
    "$PY" -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.load(open(sys.argv[2])))' \
        "$got" "$WRK_BODY_FILE" || die "$1 echo did not return the posted JSON: ${got:0:200}"
}

# ---------------------------------------------------------------------------------------------
# Measurements. Results are kept in associative arrays keyed by row id.

declare -A RPS P50 P99 NOTE


# wait_quiet ID: waits until the machine is idle enough to measure; fails when it never is.
BUSY_ROWS=()
wait_quiet() {
    local id=$1 busy waited=0
    while busy=$(cpu_busy); [ "$busy" -gt "$QUIET_MAX" ]; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            log "$id: the machine is still ${busy}% busy after ${QUIET_WAIT}s; measuring anyway"
            return 1
        fi
        [ "$waited" -eq 0 ] && log "$id: waiting for the machine to be idle (${busy}% CPU busy)"
        waited=$((waited + 1))
    done
}

# wrk latency (123.45us, 1.20ms, 1.02s, 1.50m) -> ms
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1;
        if (f < 0) { print "?"; exit } printf "%.2f", n * f }'
}

# CPU time in clock ticks: "machine_busy machine_all front workers" (busy = user, nice, system,
# irq and softirq of all CPUs, as a task's own times include its irq work; front = the runtime's threads; workers = its descendants, as they are now).
HZ=$(getconf CLK_TCK)
proc_ticks() { # utime+stime of the pids given; fields after the ") " that ends the command name
    local p sum=0 t
    for p in "$@"; do
        t=$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
cpu_snapshot() {
    local pid=$1
    # shellcheck disable=SC2046
    echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)" \
        "$(proc_ticks "$pid")" "$(proc_ticks $(descendants "$pid"))"
}

# wrk_once ID CONNS PATH [lua]: warm-up, then one measured run; sets R_RPS R_P50 R_P99 R_CPU R_WORKERS.
wrk_once() {
    local id=$1 conns=$2 path=$3 lua=${4:-} threads=1 out=$WORK/wrk-$1.txt args=() before after wrk_cpu
    [ "$conns" -gt 1 ] && threads=$WRK_C32_THREADS
    [ -n "$lua" ] && args=(-s "$lua")
    wait_quiet "$id" || true
    log "$id: wrk -t$threads -c$conns ${WARMUP}s warm-up + ${DURATION}s"
    wrk -t"$threads" -c"$conns" -d"${WARMUP}s" "${args[@]}" "http://127.0.0.1:$PORT$path" >/dev/null
    before=$(cpu_snapshot "$PID")
    local TIMEFORMAT='%3U %3S'
    { time wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 5s --latency "${args[@]}" \
        "http://127.0.0.1:$PORT$path" >"$out"; } 2>"$WORK/time-$id"
    after=$(cpu_snapshot "$PID")
    kill -0 "$PID" 2>/dev/null || die "the runtime died during $id"
    R_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    R_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    R_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    [ -n "$R_RPS" ] || { cat "$out" >&2; die "could not read wrk's output for $id"; }
    # CPU per request (us) of the front, the workers and wrk, and the share of the machine used by
    # other processes during the run (clamped at 0: tick sampling makes it slightly negative at
    # 1 connection): "front workers wrk other%".
    wrk_cpu=$(awk '{ print $1 + $2 }' "$WORK/time-$id")
    R_CPU=$(awk -v b="$before" -v a="$after" -v w="$wrk_cpu" -v hz="$HZ" -v out="$out" 'BEGIN {
        while ((getline line < out) > 0) if (line ~ /requests in/) { split(line, f); n = f[1] }
        split(b, x); split(a, y); us = 1e6 / hz / n
        other = (y[1] - x[1]) - (y[3] - x[3]) - (y[4] - x[4]) - w * hz
        other = 100 * other / (y[2] - x[2])
        printf "%.0f %.0f %.0f %.0f", (y[3] - x[3]) * us, (y[4] - x[4]) * us, w * 1e6 / n, other < 0 ? 0 : other }')
    local errs non2xx
    errs=$(awk '/Socket errors/ { sub(/.*Socket errors: /, ""); print }' "$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$out")
    [ -n "$errs" ] && WARNINGS+=("$id: wrk socket errors: $errs")
    [ -n "$non2xx" ] && WARNINGS+=("$id: $non2xx non-2xx answers")
    R_WORKERS=$(descendants "$PID" | wc -l)
    log "$id: $R_RPS req/s, p50 $R_P50 ms, p99 $R_P99 ms, $R_WORKERS workers," \
        "CPU us/req front/workers/wrk, other processes %: $R_CPU"
}

# bench_wrk ID CONNS PATH [lua]: measures a row; when other processes used more than QUIET_MAX %
# of the machine during the run, measures it again (up to RETRIES times) and keeps the run they
# disturbed least. Fills RPS/P50/P99/CPU/NOTE[ID].
declare -A CPU
bench_wrk() {
    local id=$1 attempt best_other=1000 other
    for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        wrk_once "$@"
        other=${R_CPU##* }
        if [ "$other" -lt "$best_other" ]; then
            best_other=$other
            RPS[$id]=$R_RPS P50[$id]=$R_P50 P99[$id]=$R_P99 CPU[$id]=$R_CPU NOTE[$id]=$R_WORKERS
        fi
        [ "$other" -le "$QUIET_MAX" ] && return 0
        [ "$attempt" -lt "$RETRIES" ] && log "$id: other processes used ${other}% of the CPUs; measuring again"
    done
    BUSY_ROWS+=("$id (${best_other}%)")
}

# coldstart KIND RUNTIME -> "median min max" (ms), or "total front workers" MiB for rss
coldstart() {
    local kind=$1 runtime=$2 json
    json=$(FUNC_RUNTIME=$runtime FUNC_HANDLER=hello "$PY" "$BENCH/coldstart.py" "$kind" "$RUNS") ||
        die "coldstart.py $kind failed for $runtime"
    "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
keys = ("total_mib", "front_mib", "workers_mib") if "total_mib" in d else ("median", "min", "max")
print(" ".join("%.1f" % d[k] for k in keys))' "$json"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)

# Ceiling and Python throughput.
start_server python3 hello
check_hello python
bench_wrk ceil-1 1 /healthz
bench_wrk ceil-32 32 /healthz
bench_wrk py-hello-1 1 /
bench_wrk py-hello-32 32 /
stop_server "$PID"
start_server python3 echo
check_echo python
bench_wrk py-echo-1 1 / "$BENCH/post.lua"
bench_wrk py-echo-32 32 / "$BENCH/post.lua"
stop_server "$PID"

# Node.js throughput.
start_server nodejs20 hello
check_hello nodejs
bench_wrk node-hello-1 1 /
bench_wrk node-hello-32 32 /
stop_server "$PID"
start_server nodejs20 echo
check_echo nodejs
bench_wrk node-echo-1 1 / "$BENCH/post.lua"
bench_wrk node-echo-32 32 / "$BENCH/post.lua"
stop_server "$PID"

# Cold start and memory.
declare -A COLD
for lang in python3 nodejs20; do
    for kind in spawn prewarm rss; do
        wait_quiet "$lang-$kind" || BUSY_ROWS+=("$lang $kind (${QUIET_MAX}%+ before)")
        log "$lang: $kind"
        COLD[$lang-$kind]=$(coldstart "$kind" "$lang")
        log "$lang: $kind: ${COLD[$lang-$kind]}"
    done
done
wait_quiet floor || true
FLOOR=$("$PY" "$BENCH/coldstart.py" floor "$RUNS" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print("python3 -c pass: %.1f ms, %.1f MiB; node -e 0: %.1f ms, %.1f MiB" % (
    d["python"]["start_ms"], d["python"]["rss_mib"], d["node"]["start_ms"], d["node"]["rss_mib"]))') ||
    die "coldstart.py floor failed"
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------------------------------------
# The table.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# verdict COND: "met" / "missed"

throughput_row() {
    local id=$1 label=$2 conns=$3 target=${4:-—} ceil workers
    ceil=${RPS[ceil-$conns]}
    workers=${NOTE[$id]}
    case $id in ceil-*) ;; *) label="$label, $workers workers" ;; esac
    local front workers_us wrk_us
    read -r front workers_us wrk_us _ <<<"${CPU[$id]}"
    printf '| %s | %s | %s req/s | %s ms | %s ms | %s | %s / %s / %s | %s |\n' "$label" "$conns" \
        "$(thousands "${RPS[$id]}")" "${P50[$id]}" "${P99[$id]}" "$(ratio "${RPS[$id]}" "$ceil")" \
        "$front" "$workers_us" "$wrk_us" "$target"
}
hello_target() {
    local id=$1
    echo "≥ 20,000 req/s, p99 ≤ 5 ms: $(verdict "${RPS[$id]} >= 20000 && ${P99[$id]} <= 5")"
}
cold_row() {
    local label=$1 target=$2 limit=$3 med min max
    read -r med min max <<<"$4"
    printf '| %s | – | %s ms median (min %s, max %s) | | | | | %s: %s |\n' "$label" "$med" "$min" "$max" \
        "$target" "$(verdict "$med <= $limit")"
}
rss_row() {
    local label=$1 total front workers
    read -r total front workers <<<"$2"
    printf '| %s | – | %s MiB (front %s + worker %s) | | | | | ≤ 20 MiB: %s |\n' "$label" "$total" "$front" "$workers" \
        "$(verdict "$total <= 20")"
}

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
PY_VERSION=$("$KELP_PYTHON" -c 'import platform; print(platform.python_version())')
NODE_VERSION=$("$KELP_NODE" --version)
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')

{
    echo
    echo "| Benchmark | Conns | Result | p50 | p99 | vs ceiling | CPU µs/req: front / workers / wrk | Target |"
    echo "|---|--:|--:|--:|--:|--:|--:|---|"
    throughput_row ceil-1 "Ceiling: GET /healthz (front only)" 1
    throughput_row ceil-32 "Ceiling: GET /healthz (front only)" 32
    throughput_row py-hello-1 "Python hello, GET" 1
    throughput_row py-hello-32 "Python hello, GET" 32 "$(hello_target py-hello-32)"
    throughput_row py-echo-1 "Python echo, POST 1 KiB JSON" 1
    throughput_row py-echo-32 "Python echo, POST 1 KiB JSON" 32
    throughput_row node-hello-1 "Node.js hello, GET" 1
    throughput_row node-hello-32 "Node.js hello, GET" 32 "$(hello_target node-hello-32)"
    throughput_row node-echo-1 "Node.js echo, POST 1 KiB JSON" 1
    throughput_row node-echo-32 "Node.js echo, POST 1 KiB JSON" 32
    cold_row "Python cold start: spawn → first 200" "≤ 50 ms" 50 "${COLD[python3-spawn]}"
    cold_row "Python pre-warmed: stdin hand-off → first 200" "≤ 5 ms" 5 "${COLD[python3-prewarm]}"
    cold_row "Node.js cold start: spawn → first 200" "≤ 50 ms" 50 "${COLD[nodejs20-spawn]}"
    cold_row "Node.js pre-warmed: stdin hand-off → first 200" "≤ 5 ms" 5 "${COLD[nodejs20-prewarm]}"
    rss_row "Python idle RSS, front + 1 worker" "${COLD[python3-rss]}"
    rss_row "Node.js idle RSS, front + 1 worker" "${COLD[nodejs20-rss]}"
    echo
    echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOAD_START."
    echo "Versions: Python $PY_VERSION, Node.js $NODE_VERSION, wrk $WRK_VERSION, $("$BIN" --version)."
    echo "Method: wrk on the same machine, -t1 at 1 connection and -t$WRK_C32_THREADS at 32, ${WARMUP} s warm-up then ${DURATION} s per row;" \
        "KELP_WORKERS=${KELP_WORKERS:-default ($(nproc))} for throughput (workers running at the end of the row are shown), access log on (stdout to /dev/null);" \
        "cold starts: median of $RUNS with KELP_WORKERS=1 after 1 discarded run, polling GET every 0.5 ms; RSS: VmRSS after 20 requests and 1 s idle."
    echo "Interpreter floor (bare start, median of $RUNS, and its RSS): $FLOOR."
    if [ "${#BUSY_ROWS[@]}" -gt 0 ]; then
        echo "Caution: other processes used more than ${QUIET_MAX}% of the CPUs during: ${BUSY_ROWS[*]}; those rows are pessimistic."
    fi
    echo "Full run: ${ELAPSED} s."
}

if [ "${#WARNINGS[@]}" -gt 0 ]; then
    echo
    for w in "${WARNINGS[@]}"; do echo "WARNING: $w"; done
    exit 1
fi
