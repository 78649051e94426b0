#!/usr/bin/env bash
# Profiles kelp-runtime's data path under load and writes CPU flame graphs (SVG), for the
# questions benchmarks cannot answer: where a request's CPU goes in the front, the workers, the
# kernel and the load generator (see bench/README.md and the README's "Where the time goes").
#
#   bench/profile.sh                      # Python hello and echo, Node.js hello, Python hello
#                                         # through kelp up's gateway, kelp up's API creates
#   OUT=docs/profiles bench/profile.sh    # where the SVGs, summaries and folded stacks go
#                                         # (default: a temp dir)
#
# Per scenario: kelp-runtime (release) serving the bench function with 2 workers (`hello`,
# `echo`: a POST of 1 KiB of JSON, in Python; `node-hello` in Node.js), or `kelp up` (release) with one instance of it called
# through the gateway (`gateway`: the short URL /default/gw/); wrk at 32
# connections (a warm-up, then DURATION s, default 5) while `perf record` samples every CPU
# (`api`: `kelp up` alone while bench/platform, the Go client, creates, gets, lists and deletes
# API_N Functions, default 1,000, with API_CLIENTS clients, default 1, sampled for the whole run)
# (-F FREQ, default 499) with DWARF call graphs; then the stacks folded and drawn by inferno
# (installed once, pinned, into ~/.cache/kelp/tools), and a summary: the context switches per
# request of each server process (/proc, over the whole wrk run), the share of samples per
# process and the top functions. Sampling with call graphs costs the servers some throughput:
# the req/s printed is not a benchmark figure (bench/runtime.sh and bench/platform.sh are). Needs root or perf_event_paranoid ≤ 1 (perf samples
# every process). Knobs: DURATION, FREQ, WARMUP, SKIP_BUILD=1, SCENARIOS (default "hello echo").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
FREQ=${FREQ:-499}
UP_TIMEOUT=${UP_TIMEOUT:-30}
SCENARIOS=${SCENARIOS:-hello echo node-hello gateway api}
API_N=${API_N:-1000}
API_CLIENTS=${API_CLIENTS:-1}
INFERNO_VERSION=0.12.8
TOOLS=$HOME/.cache/kelp/tools

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-profile.XXXXXX")
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_proc "$pid" 5; done
    # Everything but the results (binaries, perf data, caches: 170 MB a run).
    if [ "${OUT#"$WORK"/}" = "$OUT" ]; then
        rm -rf "$WORK"
    else
        find "$WORK" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
    fi
}
trap cleanup EXIT

ensure_wrk
if ! command -v perf >/dev/null 2>&1; then
    log "installing Debian's linux-perf (once)"
    apt-get install -y -qq linux-perf >/dev/null || die "cannot install linux-perf"
fi
if [ ! -x "$TOOLS/bin/inferno-flamegraph" ]; then
    log "installing inferno $INFERNO_VERSION into $TOOLS (once)"
    cargo install --quiet --locked --root "$TOOLS" inferno --version "$INFERNO_VERSION" >&2 || die "cannot install inferno"
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building kelp-runtime (release)"
    (cd "$ROOT" && cargo build --release -p kelp-runtime -p kelp-cli) >&2 || die "cargo build --release failed"
fi
cp "$CARGO_TARGET_DIR/release/kelp-runtime" "$CARGO_TARGET_DIR/release/kelp" "$WORK/"
if [[ " $SCENARIOS " == *" api "* ]]; then
    (cd "$BENCH/platform" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$WORK/platform-bench" .) >&2 ||
        die "go build of bench/platform failed"
fi
PY=$(python3 -c 'import sys; print(sys.executable)')
export KELP_PYTHON=${KELP_PYTHON:-$PY} KELP_NODE=${KELP_NODE:-$(readlink -f "$(command -v node)")}
export MOD_NAME=bench KUBELESS_INSTALL_VOLUME=$BENCH/functions KELP_CACHE_DIR=$WORK/cache
export KELP_ACCESS_LOG=1 KELP_LOG=warn KELP_WORKERS=2 KELP_MAX_WORKERS=2

# switches PID: the context switches (voluntary and not) of every thread of PID and its children,
# one "pid comm count" line per process.
switches() {
    local p
    for p in $1 $(ps -o pid= --ppid "$1"); do
        [ -d "/proc/$p" ] || continue
        printf '%s %s %s\n' "$p" "$(cat "/proc/$p/comm")" \
            "$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }')"
    done
}

# start SCENARIO: the server of the scenario on a free port; sets pid and URL.
start() {
    local t port
    port=$("$PY" "$BENCH/coldstart.py" freeport)
    if [ "$1" = gateway ] || [ "$1" = api ]; then
        rm -rf "$WORK/data"
        "$WORK/kelp" --kubeconfig "$WORK/kubeconfig" up --listen "127.0.0.1:$port" --data-dir "$WORK/data" \
            --no-dashboard --runtime-bin "$WORK/kelp-runtime" >"$WORK/$1.log" 2>&1 &
        URL=http://127.0.0.1:$port/default/gw/
        API=https://127.0.0.1:$port
    else
        local runtime=python3 handler=$1
        [ "$1" = node-hello ] && runtime=nodejs20 handler=hello
        FUNC_RUNTIME=$runtime FUNC_HANDLER=$handler FUNC_PORT=$port "$WORK/kelp-runtime" >/dev/null 2>"$WORK/$1.log" &
        URL=http://127.0.0.1:$port/
    fi
    pid=$!
    PIDS+=("$pid")
    for ((t = 0; t < UP_TIMEOUT * 100; t++)); do
        if [ "$1" = gateway ] || [ "$1" = api ]; then
            grep -q "^kelp up: ready (pid $pid)" "$WORK/$1.log" && break
        else
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/healthz")" = 200 ] && break
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$1.log" >&2; die "the server of $1 exited"; }
        sleep 0.01
    done
    if [ "$1" = gateway ]; then
        # One instance of 2 workers, as in bench/platform.sh's gateway rows.
        "$WORK/kelp" --kubeconfig "$WORK/kubeconfig" function deploy gw --runtime "python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
            --handler bench.hello --from-file "$BENCH/functions/bench.py" >/dev/null 2>&1 || die "kelp function deploy gw failed"
        "$WORK/kelp" --kubeconfig "$WORK/kubeconfig" autoscale create gw --min 1 --max 1 --value 1000 >/dev/null 2>&1 ||
            die "kelp autoscale create gw failed"
        for ((t = 0; t < UP_TIMEOUT * 10; t++)); do
            [ "$(curl -s --max-time 5 "$URL")" = "hello world" ] && return 0
            sleep 0.1
        done
        die "function gw did not answer through the gateway"
    fi
}

for scenario in $SCENARIOS; do
    start "$scenario"
    mkdir -p "$WORK/perf"
    if [ "$scenario" = api ]; then
        switches "$pid" >"$WORK/switches-before"
        token=$(kubeconfig_credentials "$WORK/kubeconfig" "$WORK/ca.pem") || die "cannot read kelp up's credentials"
        log "api: $API_N Functions created, got, listed, deleted by $API_CLIENTS clients under perf record -F $FREQ -a"
        perf record -q -F "$FREQ" -a --call-graph dwarf,16384 -o "$WORK/perf/$scenario.data" -- \
            "$WORK/platform-bench" api -clients "$API_CLIENTS" -n "$API_N" -lists 4 -prefix p -server "$API" -token "$token" \
            -ca "$WORK/ca.pem" -pids "$pid" >"$OUT/api-$API_CLIENTS-client-ops.json" 2>/dev/null || die "the API run failed"
        requests=$((API_N * 3 + 4))
        rate=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("; ".join("%s %.0f/s p50 %.2f ms" % (k, d[k]["ops_per_s"], d[k]["p50_ms"]) for k in ("create", "get", "list", "delete")))' "$OUT/api-$API_CLIENTS-client-ops.json")
    else
        script=()
        [ "$scenario" = echo ] && script=(-s "$BENCH/post.lua")
        export WRK_BODY_FILE=$BENCH/echo-1k.json
        log "$scenario: wrk warm-up ${WARMUP} s, then ${DURATION} s under perf record -F $FREQ -a"
        wrk -t1 -c32 -d"${WARMUP}s" "${script[@]}" "$URL" >/dev/null
        switches "$pid" >"$WORK/switches-before"
        wrk -t1 -c32 -d"$((DURATION + 2))s" "${script[@]}" "$URL" >"$OUT/$scenario-wrk.txt" &
        wrk_pid=$!
        sleep 1
        perf record -q -F "$FREQ" -a --call-graph dwarf,16384 -o "$WORK/perf/$scenario.data" -- sleep "$DURATION" 2>/dev/null
        wait "$wrk_pid"
        requests=$(awk '/requests in/ { print $1 }' "$OUT/$scenario-wrk.txt")
        rate=$(grep -m1 'Requests/sec' "$OUT/$scenario-wrk.txt")
    fi
    switches "$pid" >"$WORK/switches-after"
    per_request=$(awk -v n="$requests" 'NR == FNR { before[$1] = $3; next }
        { d = $3 - before[$1]; if (d > 0) printf "%s %s %.2f, ", $1, $2, d / n; total += d }
        END { printf "total %.2f", total / n }' "$WORK/switches-before" "$WORK/switches-after")
    procs="$(ps -o pid=,comm= -p "$pid" --ppid "$pid" | tr -s ' \n' ' ')"
    stop_proc "$pid" 5
    perf script --no-inline -F comm,pid,tid,cpu,time,event,ip,sym,dso -i "$WORK/perf/$scenario.data" 2>/dev/null >"$WORK/perf/$scenario.script"
    title="$scenario, 32 connections, 2 workers" base=$scenario-c32
    [ "$scenario" = api ] && title="kelp up API, $API_N Functions, $API_CLIENTS clients" base=api-$API_CLIENTS-client
    "$TOOLS/bin/inferno-collapse-perf" --all --pid "$WORK/perf/$scenario.script" >"$OUT/$base.folded"
    "$TOOLS/bin/inferno-flamegraph" --title "$title: every CPU" "$OUT/$base.folded" >"$OUT/$base.svg"
    {
        echo "# $title: $rate"
        echo "The server and its children (pid comm):$procs"
        echo "Context switches per request (pid comm switches; api: per create, get and delete), the client's not counted: $per_request"
        echo "## Samples per process"
        perf report --no-inline -i "$WORK/perf/$scenario.data" --no-children --sort pid -q --stdio -g none 2>/dev/null | grep -v '^$' | awk 'NR <= 8'
        echo "## Top functions (self), every process"
        perf report --no-inline -i "$WORK/perf/$scenario.data" --no-children --sort comm,sym -q --stdio -g none 2>/dev/null \
            | grep -v '^$' | awk 'NR <= 40'
    } >"$OUT/$base.txt"
    log "$scenario: $OUT/$base.svg and .txt"
done
echo "$OUT"
