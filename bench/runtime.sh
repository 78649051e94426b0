#!/usr/bin/env bash
# Benchmarks kelp-runtime on this machine and prints one Markdown table (see bench/README.md):
# Python and Node.js, and the plugin runtimes Ruby and PHP (runtimes/) where their interpreters
# are installed (scripts/setup installs them).
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

# shellcheck source=bench/measure.sh
. "$BENCH/measure.sh"

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

# The plugin runtimes (runtimes/ruby, runtimes/php), on the installed interpreters, when there are.
export KELP_RUNTIMES_PATH=$ROOT/runtimes
PLUGINS=()
command -v ruby >/dev/null 2>&1 && PLUGINS+=("ruby$(ruby -e 'print RUBY_VERSION.split(".")[0, 2].join(".")')")
command -v php >/dev/null 2>&1 && PLUGINS+=("php$(php -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')")
declare -A ECHO_HANDLER=([ruby]=echo [php]=echo_)
for runtime in "${PLUGINS[@]+"${PLUGINS[@]}"}"; do
    lang=${runtime%%[0-9]*}
    start_server "$runtime" hello
    check_hello "$lang"
    bench_wrk "$lang-hello-1" 1 /
    bench_wrk "$lang-hello-32" 32 /
    stop_server "$PID"
    start_server "$runtime" "${ECHO_HANDLER[$lang]}"
    check_echo "$lang"
    bench_wrk "$lang-echo-1" 1 / "$BENCH/post.lua"
    bench_wrk "$lang-echo-32" 32 / "$BENCH/post.lua"
    stop_server "$PID"
done

# Cold start and memory.
declare -A COLD
for lang in python3 nodejs20 "${PLUGINS[@]+"${PLUGINS[@]}"}"; do
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
    local verdict="$target: $(verdict "$med <= $limit")"
    [ "$target" = — ] && verdict=—
    printf '| %s | – | %s ms median (min %s, max %s) | | | | | %s |\n' "$label" "$med" "$min" "$max" "$verdict"
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
    for runtime in "${PLUGINS[@]+"${PLUGINS[@]}"}"; do
        lang=${runtime%%[0-9]*}
        title=$([ "$lang" = ruby ] && echo Ruby || echo PHP)
        throughput_row "$lang-hello-1" "$title hello, GET (plugin)" 1
        throughput_row "$lang-hello-32" "$title hello, GET (plugin)" 32 "≥ 10,000 req/s: $(verdict "${RPS[$lang-hello-32]} >= 10000")"
        throughput_row "$lang-echo-1" "$title echo, POST 1 KiB JSON (plugin)" 1
        throughput_row "$lang-echo-32" "$title echo, POST 1 KiB JSON (plugin)" 32
        cold_row "$title cold start: spawn → first 200" "—" 1000000 "${COLD[$runtime-spawn]}"
        cold_row "$title pre-warmed: stdin hand-off → first 200" "—" 1000000 "${COLD[$runtime-prewarm]}"
        rss_row "$title idle RSS, front + 1 worker" "${COLD[$runtime-rss]}"
    done
    echo
    echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOAD_START."
    echo "Versions: Python $PY_VERSION, Node.js $NODE_VERSION$(command -v ruby >/dev/null && echo ", $(ruby --version | cut -d' ' -f1-2)")$(command -v php >/dev/null && echo ", $(php --version | head -1 | cut -d' ' -f1-2)"), wrk $WRK_VERSION, $("$BIN" --version)."
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
