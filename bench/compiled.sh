#!/usr/bin/env bash
# Benchmarks the compiled languages (Go, Java, Rust) against Kelp's own Python, side by side in
# one run, and prints one Markdown table (see bench/README.md). `go-inproc` and `rust-inproc` are
# Go and Rust with the function in the front's own process (KELP_IN_PROCESS=1): the same code
# and build as `go` and `rust`.
#
#   bench/compiled.sh                     # full run, ~10 min (first builds included)
#   DURATION=3 RUNS=3 bench/compiled.sh   # quick check
#
# Per language, with the method of bench/runtime.sh (wrk on this machine, -t1 at 1 connection,
# -t$WRK_C32_THREADS at 32, a warm-up then DURATION s, rows disturbed by other processes measured
# again): hello at 1 and 32 connections, POST 1 KiB JSON echo at 32, p50/p99, each against
# Python's figure of the same run; idle RSS; cold start from spawn to first 200 with the build
# in the cache (and from a pre-warmed runtime where the language has one); deploy → first 200,
# that is a runtime started on code it has not built yet, with the build cache cold (new code,
# the toolchain's own caches as any earlier build leaves them) and warm (the build found), and
# the first build with the toolchain's caches empty too (one run).
#
# Knobs (environment): DURATION, WARMUP, RUNS, WRK_C32_THREADS, QUIET_MAX, QUIET_WAIT, RETRIES as
# in bench/runtime.sh; BUILD_RUNS (cold builds per median, default 3); LANGS (default "python go
# java rust go-inproc rust-inproc": python first, the baseline); SKIP_BUILD=1; KELP_WORKERS
# (default 2, the issue's "2 workers"); KELP_PYTHON, KELP_GO, KELP_JAVA, KELP_CARGO.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-10}
BUILD_RUNS=${BUILD_RUNS:-3}
WRK_C32_THREADS=${WRK_C32_THREADS:-1}
UP_TIMEOUT=${UP_TIMEOUT:-600}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-60}
RETRIES=${RETRIES:-2}
export KELP_WORKERS=${KELP_WORKERS:-2} KELP_MAX_WORKERS=${KELP_MAX_WORKERS:-${KELP_WORKERS:-2}}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-bench-compiled.XXXXXX")
PIDS=()
WARNINGS=()
BUSY_ROWS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_server "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM

ensure_wrk
for tool in curl python3 go javac cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (scripts/setup)"
done
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: using the kelp-runtime already built"
else
    log "building kelp-runtime (release)"
    (cd "$ROOT" && cargo build --release -p kelp-runtime) >&2 || die "cargo build --release -p kelp-runtime failed"
fi
cp "$CARGO_TARGET_DIR/release/kelp-runtime" "$WORK/kelp-runtime"
BIN=$WORK/kelp-runtime
PY=$(python3 -c 'import sys; print(sys.executable)')
export KELP_PYTHON=${KELP_PYTHON:-$PY} KELP_BIN=$BIN
# One cache for every runtime of the run: the builds and the toolchains' caches (KELP_DEPS_DIR).
export KELP_CACHE_DIR=$WORK/cache MOD_NAME=bench KELP_NAMESPACE=bench
export KELP_ACCESS_LOG=1 KELP_LOG=warn WRK_BODY_FILE=$BENCH/echo-1k.json
unset FUNC_PORT FUNC_HANDLER FUNC_RUNTIME

# shellcheck source=bench/measure.sh
. "$BENCH/measure.sh"

# Each language: its FUNC_RUNTIME, its code directory, its hello and echo handlers.
read -r -a LANGS <<<"${LANGS:-python go java rust go-inproc rust-inproc}"
COMPILED=("${LANGS[@]:1}")
[ "${LANGS[0]}" = python ] || die "LANGS starts with python, the baseline"
declare -A RUNTIME=([python]=python3 [go]=go1.14 [java]=java11 [rust]=rust1.95 [go-inproc]=go1.14
    [rust-inproc]=rust1.95)
declare -A CODE=([python]=$BENCH/functions [go]=$BENCH/functions/go [java]=$BENCH/functions/java
    [rust]=$BENCH/functions/rust [go-inproc]=$BENCH/functions/go [rust-inproc]=$BENCH/functions/rust)
declare -A HELLO=([python]=hello [go]=Hello [java]=hello [rust]=hello [go-inproc]=Hello [rust-inproc]=hello)
declare -A ECHO=([python]=echo [go]=Echo [java]=echo [rust]=echo [go-inproc]=Echo [rust-inproc]=echo)
declare -A SUFFIX=([go]=.go [java]=.java [rust]=.rs [go-inproc]=.go [rust-inproc]=.rs)
declare -A TITLE=([python]=Python [go]=Go [java]=Java [rust]=Rust [go-inproc]="Go, in process"
    [rust-inproc]="Rust, in process")
# in_process LANG: sets KELP_IN_PROCESS for LANG's runtimes (1 for the *-inproc ones).
in_process() {
    case $1 in
        *-inproc) export KELP_IN_PROCESS=1 ;;
        *) export KELP_IN_PROCESS=0 ;;
    esac
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)

# The first build of every language, with the toolchain's caches empty (one run each): a runtime
# started on code it has not built, spawn -> first 200. Then those caches are as any later build
# finds them.
declare -A FIRST
# first_200 LANG CODE_DIR: ms from starting a runtime on LANG's hello in CODE_DIR to its first 200,
# polled as the cold-start column is (bench/coldstart.py once: a socket every 0.5 ms; a shell loop
# of curl processes would take a core from the start it measures).
first_200() {
    local lang=$1 dir=$2 json
    json=$(KUBELESS_INSTALL_VOLUME=$dir FUNC_RUNTIME=${RUNTIME[$lang]} FUNC_HANDLER=${HELLO[$lang]} \
        TIMEOUT=$UP_TIMEOUT "$PY" "$BENCH/coldstart.py" once) || die "$lang: no 200 within ${UP_TIMEOUT}s"
    "$PY" -c 'import json, sys; print("%.0f" % json.loads(sys.argv[1])["ms"])' "$json"
}
# new_code LANG N: a copy of LANG's bench code with a line of its own (code never built before).
new_code() {
    local lang=$1 n=$2 dir=$WORK/code-$1-$2
    mkdir -p "$dir"
    cp -r "${CODE[$lang]}/." "$dir/"
    printf '\n// %s %s\n' "never built before" "$n-$(date +%s%N)" >>"$dir/bench${SUFFIX[$lang]}"
    echo "$dir"
}
for lang in "${COMPILED[@]}"; do
    if [[ $lang == *-inproc ]]; then
        FIRST[$lang]="${TITLE[${lang%-inproc}]}'s (the same build)"
        continue
    fi
    in_process "$lang"
    wait_quiet "$lang-first" || true
    log "$lang: first build with empty toolchain caches"
    FIRST[$lang]=$(first_200 "$lang" "$(new_code "$lang" first)")
    log "$lang: ${FIRST[$lang]} ms"
done

# Throughput, one language after the other, in the same conditions.
for lang in "${LANGS[@]}"; do
    export KUBELESS_INSTALL_VOLUME=${CODE[$lang]}
    in_process "$lang"
    start_server "${RUNTIME[$lang]}" "${HELLO[$lang]}"
    check_hello "$lang"
    bench_wrk "$lang-hello-1" 1 /
    bench_wrk "$lang-hello-32" 32 /
    stop_server "$PID"
    start_server "${RUNTIME[$lang]}" "${ECHO[$lang]}"
    check_echo "$lang"
    bench_wrk "$lang-echo-32" 32 / "$BENCH/post.lua"
    stop_server "$PID"
done

# Cold starts (the build in the cache), pre-warm where there is one, idle memory.
declare -A COLD
for lang in "${LANGS[@]}"; do
    export KUBELESS_INSTALL_VOLUME=${CODE[$lang]}
    in_process "$lang"
    kinds=(spawn rss)
    [ "$lang" = python ] && kinds=(spawn prewarm rss)
    for kind in "${kinds[@]}"; do
        wait_quiet "$lang-$kind" || true
        log "$lang: $kind"
        COLD[$lang-$kind]=$(coldstart "$kind" "${RUNTIME[$lang]}" "${HELLO[$lang]}")
    done
done

# Deploy -> first 200: new code (build cache cold, toolchain caches warm), median of BUILD_RUNS;
# the same code again (the build found), median of RUNS.
declare -A DEPLOY_COLD DEPLOY_WARM
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for lang in "${COMPILED[@]}"; do
    in_process "$lang"
    times=()
    for ((n = 0; n < BUILD_RUNS; n++)); do
        wait_quiet "$lang-deploy-cold" || true
        times+=("$(first_200 "$lang" "$(new_code "$lang" "$n")")")
    done
    DEPLOY_COLD[$lang]="$(printf '%s\n' "${times[@]}" | median) ms (${times[*]})"
    dir=$(new_code "$lang" warm)
    first_200 "$lang" "$dir" >/dev/null
    times=()
    for ((n = 0; n < RUNS; n++)); do times+=("$(first_200 "$lang" "$dir")"); done
    DEPLOY_WARM[$lang]="$(printf '%s\n' "${times[@]}" | median) ms (min $(printf '%s\n' "${times[@]}" | sort -n | head -n 1))"
    log "$lang: deploy -> first 200: cold build ${DEPLOY_COLD[$lang]}, warm ${DEPLOY_WARM[$lang]}"
done
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------------------------------------
# The table.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { # LANG ID LABEL TARGET
    local lang=$1 id=$2 label=$3 target=${4:-—}
    printf '| %s | %s | %s req/s | %s ms | %s ms | %s× | %s |\n' "${TITLE[$lang]}" "$label" \
        "$(thousands "${RPS[$lang-$id]}")" "${P50[$lang-$id]}" "${P99[$lang-$id]}" \
        "$(ratio "${RPS[$lang-$id]}" "${RPS[python-$id]}")" "$target"
}
c32_target() { # LANG
    case $1 in
        go | rust | go-inproc | rust-inproc) echo "≥ 1.5× Python: $(verdict "$(ratio "${RPS[$1-hello-32]}" "${RPS[python-hello-32]}") >= 1.5")" ;;
        java) echo "≥ 1× Python: $(verdict "$(ratio "${RPS[$1-hello-32]}" "${RPS[python-hello-32]}") >= 1")" ;;
        *) echo "baseline" ;;
    esac
}
first_target() { # LANG
    case $1 in
        rust | rust-inproc) echo "≤ 30 s: $(verdict "${DEPLOY_COLD[$1]%% *} <= 30000")" ;;
        *) echo "≤ 5 s: $(verdict "${DEPLOY_COLD[$1]%% *} <= 5000")" ;;
    esac
}

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
    echo
    echo "| Language | Benchmark | Result | p50 | p99 | vs Python | Target |"
    echo "|---|---|--:|--:|--:|--:|---|"
    for lang in "${LANGS[@]}"; do
        row "$lang" hello-1 "hello, GET, 1 conn"
        row "$lang" hello-32 "hello, GET, 32 conns" "$(c32_target "$lang")"
        row "$lang" echo-32 "echo, POST 1 KiB JSON, 32 conns"
    done
    echo
    echo "| Language | Cold start: spawn → first 200 (build cached) | Pre-warmed → first 200 | Idle RSS, front + ${KELP_WORKERS} workers | Deploy → first 200, new code (build cache cold, toolchain caches warm) | Deploy → first 200, build cached | First build, toolchain caches empty |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    for lang in "${LANGS[@]}"; do
        read -r med min max <<<"${COLD[$lang-spawn]}"
        read -r total front workers <<<"${COLD[$lang-rss]}"
        pre="—"
        [ -n "${COLD[$lang-prewarm]:-}" ] && pre="$(awk '{ print $1 }' <<<"${COLD[$lang-prewarm]}") ms"
        if [ "$lang" = python ]; then
            printf '| %s | %s ms (min %s) | %s | %s MiB | — | — | — |\n' "${TITLE[$lang]}" "$med" "$min" "$pre" "$total"
        else
            first=${FIRST[$lang]}
            [[ $first =~ ^[0-9]+$ ]] && first="$first ms"
            printf '| %s | %s ms (min %s) | %s | %s MiB | %s, %s | %s, ≤ 100 ms: %s | %s |\n' "${TITLE[$lang]}" "$med" "$min" \
                "$pre" "$total" "${DEPLOY_COLD[$lang]}" "$(first_target "$lang")" "${DEPLOY_WARM[$lang]}" \
                "$(verdict "${DEPLOY_WARM[$lang]%% *} <= 100")" "$first"
        fi
    done
    echo
    echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOAD_START."
    echo "Versions: $("$KELP_PYTHON" --version 2>&1), $(go version | awk '{ print $3 }'), $(javac -version 2>&1), $(cargo --version | awk '{ print $1, $2 }'), $("$BIN" --version)."
    echo "Method: as bench/runtime.sh (wrk -t1 at 1 connection, -t$WRK_C32_THREADS at 32, ${WARMUP} s warm-up, ${DURATION} s per row), KELP_WORKERS=$KELP_WORKERS;" \
        "cold start and RSS: bench/coldstart.py (median of $RUNS, KELP_WORKERS=1); deploy → first 200: kelp-runtime started on the code, polling GET / every 0.5 ms (bench/coldstart.py once)," \
        "median of $BUILD_RUNS new codes (a comment of its own appended) and of $RUNS starts of a built one."
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
