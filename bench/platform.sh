#!/usr/bin/env bash
# Benchmarks `kelp up` on this machine, with each figure's baseline measured in the same run, and
# prints one Markdown table (see bench/README.md, "Platform benchmark").
#
#   bench/platform.sh                            # full run, ~6-8 min (plus ~6 min the first time:
#                                                # scripts/k8s-bins builds kube-apiserver and etcd)
#   DURATION=3 GW_ROUNDS=1 COLD_RUNS=5 DEPLOY_RUNS=3 API_N=200 bench/platform.sh   # quick check
#   SKIP_K8S=1 bench/platform.sh                 # without the kube-apiserver + etcd baseline
#
# What runs: two `kelp up` processes one after the other (`--prewarm 1`, then `--prewarm 0`), each on
# a free loopback port with a private data directory and kubeconfig, then etcd and kube-apiserver
# (built by scripts/k8s-bins) with Kelp's CRDs installed. The clients are wrk (gateway), and
# bench/platform (a Go program, stdlib only, built here: API, first calls, deploys).
#
# Knobs (environment): DURATION (s per measured wrk run, default 10), WARMUP (s of wrk before each,
# default 2), GW_ROUNDS (alternating direct/gateway wrk rounds, median kept, default 3),
# COLD_RUNS (first calls per median, default 20), DEPLOY_RUNS (deploys per median, default 10),
# MEM_FUNCTIONS (functions deployed for the memory row, default 10), API_N (Functions per API run,
# default 1000), API_LISTS (lists per API run, default 16), API_CLIENTS (default "1 8"),
# SKIP_BUILD=1 (use the binaries already built), SKIP_K8S=1 (no kube-apiserver baseline),
# QUIET_MAX / QUIET_WAIT (each row waits up to QUIET_WAIT s, default 60, for the machine's CPU use
# to fall below QUIET_MAX %, default 10), KEEP_WORK=1 (keep the temporary directory and its logs).
#
# Progress goes to stderr, the table to stdout. Exit status 1 if a build fails, a server does not
# come up, a request fails or answers wrongly, or wrk saw errors / non-2xx answers (the table is
# printed first in that last case). Targets are context: missing one never fails the run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
GW_ROUNDS=${GW_ROUNDS:-3}
COLD_RUNS=${COLD_RUNS:-20}
DEPLOY_RUNS=${DEPLOY_RUNS:-10}
MEM_FUNCTIONS=${MEM_FUNCTIONS:-10}
API_N=${API_N:-1000}
API_LISTS=${API_LISTS:-16}
API_CLIENTS=${API_CLIENTS:-"1 8"}
UP_TIMEOUT=${UP_TIMEOUT:-30}
K8S_TIMEOUT=${K8S_TIMEOUT:-180}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-60}
SKIP_K8S=${SKIP_K8S:-0}

# die_log FILE MESSAGE: the end of a server's log, then the error.
die_log() {
    [ -f "$1" ] && { printf '[bench] --- last lines of %s ---\n' "$1" >&2; tail -n 40 "$1" >&2; }
    die "$2"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-platform-bench.XXXXXX")
PIDS=() # servers started here, stopped on exit
WARNINGS=()
BUSY_ROWS=()


cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_proc "$pid"; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools and builds (all before any measurement: nothing compiles while the platform is measured).

ensure_wrk
for tool in curl python3 cargo go; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
[ "$SKIP_K8S" = 1 ] || command -v openssl >/dev/null 2>&1 || die "openssl is required (kube-apiserver certificates)"

TARGET=$CARGO_TARGET_DIR
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: using kelp and kelp-runtime already in $TARGET/release"
else
    log "building kelp and kelp-runtime (release)"
    (cd "$ROOT" && cargo build --release -p kelp-cli -p kelp-runtime) >&2 ||
        die "cargo build --release -p kelp-cli -p kelp-runtime failed"
fi
# Private copies, so that a rebuild running in parallel cannot swap a binary in the middle of a run.
mkdir -p "$WORK/bin"
for b in kelp kelp-runtime; do
    [ -x "$TARGET/release/$b" ] || die "$TARGET/release/$b is missing (build it, or unset SKIP_BUILD)"
    cp "$TARGET/release/$b" "$WORK/bin/$b"
done
KELP=$WORK/bin/kelp
RUNTIME=$WORK/bin/kelp-runtime

log "building the client (bench/platform, Go)"
(cd "$BENCH/platform" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$WORK/bin/platform-bench" .) >&2 ||
    die "go build of bench/platform failed"
PB=$WORK/bin/platform-bench

if [ "$SKIP_K8S" != 1 ]; then
    log "kube-apiserver and etcd: scripts/k8s-bins (the first build takes ~5-7 min)"
    K8S_BIN=$("$ROOT/scripts/k8s-bins" kube-apiserver etcd) || die "scripts/k8s-bins kube-apiserver etcd failed"
    for b in kube-apiserver etcd; do [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b is missing"; done
fi

# The instances' interpreters: the real ones, not pyenv/nvm shims (as bench/runtime.sh).
KELP_PYTHON=${KELP_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
[ -x "$KELP_PYTHON" ] || die "KELP_PYTHON=$KELP_PYTHON is not executable"
export KELP_PYTHON
if command -v node >/dev/null 2>&1; then
    KELP_NODE=${KELP_NODE:-$(readlink -f "$(command -v node)")}
    export KELP_NODE
fi
unset KUBECONFIG KELP_LOG

# ---------------------------------------------------------------------------------------------
# Measuring helpers.

freeport() { python3 "$BENCH/coldstart.py" freeport; }


# other_check ID PCT: notes a row during which other processes used more than QUIET_MAX % of the CPUs.
other_check() {
    awk -v p="$2" -v m="$QUIET_MAX" 'BEGIN { exit !(p > m) }' && BUSY_ROWS+=("$1 ($(printf '%.0f' "$2")%)")
    return 0
}

# json FILE EXPR: a value from a JSON file, EXPR in Python on `d`.
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# wrk latency (123.45us, 1.20ms, 1.02s) -> µs
to_us() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : -1;
        if (f < 0) { print "?"; exit } printf "%.1f", n * f }'
}

HZ=$(getconf CLK_TCK)
proc_ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
# "machine_busy machine_all tree own fronts" in ticks; tree = $1 and its descendants, own = $1
# alone (kelp up: its gateway), fronts = the descendants that are kelp-runtime (the rest of the
# tree are the language workers).
cpu_snapshot() {
    local d fronts=() others=()
    for d in $(descendants "$1"); do
        if [ "$(cat "/proc/$d/comm" 2>/dev/null)" = kelp-runtime ]; then fronts+=("$d"); else others+=("$d"); fi
    done
    echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)" \
        "$(proc_ticks "$1" "${fronts[@]+"${fronts[@]}"}" "${others[@]+"${others[@]}"}")" "$(proc_ticks "$1")" \
        "$(proc_ticks "${fronts[@]+"${fronts[@]}"}")"
}

# wrk_row ID CONNS URL: warm-up, then one measured run. Sets R_RPS R_P50 R_P99 (µs) R_CPU (µs/req
# of the kelp up tree) R_WRK (µs/req of wrk) R_OTHER (% of the CPUs used by other processes).
wrk_row() {
    local id=$1 conns=$2 url=$3 out=$WORK/wrk-$1.txt before after wrk_cpu
    wait_quiet "$id"
    log "$id: wrk -t1 -c$conns ${WARMUP}s warm-up + ${DURATION}s, $url"
    wrk -t1 -c"$conns" -d"${WARMUP}s" "$url" >/dev/null
    before=$(cpu_snapshot "$UP_PID")
    local TIMEFORMAT='%3U %3S'
    { time wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s --latency "$url" >"$out"; } 2>"$WORK/time-$id"
    after=$(cpu_snapshot "$UP_PID")
    kill -0 "$UP_PID" 2>/dev/null || die_log "$UP_LOG" "kelp up died during $id"
    R_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    [ -n "$R_RPS" ] || { cat "$out" >&2; die "could not read wrk's output for $id"; }
    R_P50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    R_P99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    wrk_cpu=$(awk '{ print $1 + $2 }' "$WORK/time-$id")
    read -r R_CPU R_WRK R_OTHER R_GW R_FRONT R_WORKERS < <(awk -v b="$before" -v a="$after" -v w="$wrk_cpu" -v hz="$HZ" -v out="$out" 'BEGIN {
        while ((getline line < out) > 0) if (line ~ /requests in/) { split(line, f); n = f[1] }
        split(b, x); split(a, y); us = 1e6 / hz / n
        other = 100 * ((y[1] - x[1]) - (y[3] - x[3]) - w * hz) / (y[2] - x[2])
        gw = y[4] - x[4]; front = y[5] - x[5]
        printf "%.0f %.0f %.1f %.0f %.0f %.0f\n", (y[3] - x[3]) * us, w * 1e6 / n, other < 0 ? 0 : other,
            gw * us, front * us, ((y[3] - x[3]) - gw - front) * us }')
    local errs non2xx
    errs=$(awk '/Socket errors/ { sub(/.*Socket errors: /, ""); print }' "$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$out")
    [ -n "$errs" ] && WARNINGS+=("$id: wrk socket errors: $errs")
    [ -n "$non2xx" ] && WARNINGS+=("$id: $non2xx non-2xx answers")
    other_check "$id" "$R_OTHER"
    log "$id: $R_RPS req/s, p50 $R_P50 µs, p99 $R_P99 µs; CPU µs/req kelp up tree $R_CPU (gateway $R_GW, front $R_FRONT, workers $R_WORKERS), wrk $R_WRK; other processes $R_OTHER%"
}

# mem_tree PID -> "rss_kib pss_kib processes" of PID and its descendants.
mem_tree() {
    local p rss=0 pss=0 n=0 r s
    for p in "$1" $(descendants "$1"); do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || s=0
        rss=$((rss + ${r:-0})) pss=$((pss + ${s:-0})) n=$((n + 1))
    done
    echo "$rss $pss $n"
}
mem_self() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------------
# Servers.

KUBECONFIG_FILE=$WORK/kubeconfig # kelp up writes its context here, never into the user's

# start_up NAME PREWARM: `kelp up` on a free port; sets UP_PID UP_LOG, UP_URL (the API, https),
# UP_CA and UP_TOKEN (its authority and token, from the kubeconfig) and GW (functions, http).
start_up() {
    local name=$1 prewarm=$2 attempt t
    for attempt in 1 2 3; do
        local port
        port=$(freeport)
        UP_LOG=$WORK/up-$name.log
        UP_URL=https://127.0.0.1:$port
        GW=http://127.0.0.1:$port
        UP_CA=$WORK/up-ca.pem
        "$KELP" --kubeconfig "$KUBECONFIG_FILE" up --listen "127.0.0.1:$port" --data-dir "$WORK/data-$name" \
            --prewarm "$prewarm" --runtime-bin "$RUNTIME" >"$UP_LOG" 2>&1 &
        UP_PID=$!
        PIDS+=("$UP_PID")
        for ((t = 0; t < UP_TIMEOUT * 20; t++)); do
            kill -0 "$UP_PID" 2>/dev/null || break
            # Ready once it says so (the kubeconfig has this run's authority and token by then).
            if grep -q "^kelp up: ready (pid $UP_PID)" "$UP_LOG"; then
                kubeconfig_credentials "$KUBECONFIG_FILE" "$UP_CA" >"$WORK/up-token" ||
                    die_log "$UP_LOG" "cannot read the authority and token of kelp up from $KUBECONFIG_FILE"
                UP_TOKEN=$(cat "$WORK/up-token")
                if [ "$(api_curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$UP_URL/version")" = 200 ]; then
                    log "kelp up ($name, --prewarm $prewarm) on $UP_URL, pid $UP_PID"
                    return 0
                fi
            fi
            sleep 0.05
        done
        stop_proc "$UP_PID"
        if grep -q 'Address already in use' "$UP_LOG" && [ "$attempt" -lt 3 ]; then
            log "port $port was taken meanwhile; retrying"
            continue
        fi
        die_log "$UP_LOG" "kelp up ($name) did not answer /version within ${UP_TIMEOUT}s"
    done
}

# api_curl CURL_ARGS...: curl with the authority and token of the current kelp up.
api_curl() { curl --cacert "$UP_CA" -H "Authorization: Bearer $UP_TOKEN" "$@"; }

# pb SUBCOMMAND ARGS...: the Go client against the current kelp up; JSON on stdout.
pb() {
    local sub=$1
    shift
    "$PB" "$sub" -server "$UP_URL" -token "$UP_TOKEN" -ca "$UP_CA" "$@" || die_log "$UP_LOG" "platform-bench $sub failed against kelp up (its log above)"
}

# fn_call NAME: GET through the gateway; fails unless it answers 200 "hello world". A 404 is
# retried for UP_TIMEOUT s: the gateway knows a Function once the controller's next round ran.
fn_call() {
    local got t code
    for ((t = 0; ; t++)); do
        code=$(curl -sS --max-time 60 -o "$WORK/call.out" -w '%{http_code}' "$GW/default/$1/") || code=000
        got=$(cat "$WORK/call.out" 2>/dev/null || true)
        [ "$code" = 404 ] && [ "$t" -lt $((UP_TIMEOUT * 20)) ] && { sleep 0.05; continue; }
        [ "$code" = 200 ] || die_log "$UP_LOG" "GET /default/$1/ answered $code: $got"
        break
    done
    [ "$got" = "hello world" ] || die_log "$UP_LOG" "function $1 answered '$got', expected 'hello world'"
}

# delete_fn NAME: deletes the Function and waits until its instances are gone.
delete_fn() {
    api_curl -sS -o /dev/null --fail -X DELETE "$UP_URL/apis/kubeless.io/v1beta1/namespaces/default/functions/$1" ||
        die_log "$UP_LOG" "deleting function $1 failed"
    pb wait-gone -name "$1" >/dev/null
}

CODE=$BENCH/functions/bench.py # hello() returns "hello world"

declare -A R # results, by key

# ---------------------------------------------------------------------------------------------
# Platform A: kelp up --prewarm 1 (the default).

# What an fsync costs where the data directories are (Kelp's writes wait for one).
FSYNC_US=$(python3 -c '
import os, statistics, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync-probe"), os.O_WRONLY | os.O_CREAT)
xs = []
for i in range(200):
    os.pwrite(fd, os.urandom(4096), 0)
    t = time.perf_counter(); os.fdatasync(fd); xs.append((time.perf_counter() - t) * 1e6)
print("%.0f" % statistics.median(xs))' "$WORK")

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)

start_up pool 1
sleep 2 # the pre-warmed runtimes start
wait_quiet "idle memory"

# Idle memory: kelp up alone, then MEM_FUNCTIONS functions each holding one instance.
read -r m0_rss m0_pss m0_n <<<"$(mem_tree "$UP_PID")"
R[up_rss]=$(mem_self "$UP_PID")
log "kelp up idle: process $((R[up_rss] / 1024)) MiB; tree (with the pre-warmed runtimes) $((m0_rss / 1024)) MiB RSS, $m0_n processes"
for ((i = 0; i < MEM_FUNCTIONS; i++)); do
    pb function -name "mem-$i" -code "$CODE" -handler bench.hello -idle 0 >/dev/null
done
for ((i = 0; i < MEM_FUNCTIONS; i++)); do fn_call "mem-$i"; done
sleep 3 # the pool refills, the instances settle
wait_quiet "idle memory"
read -r m1_rss m1_pss m1_n <<<"$(mem_tree "$UP_PID")"
R[up_rss_n]=$(mem_self "$UP_PID")
R[mem_rss]=$(awk -v a="$m0_rss" -v b="$m1_rss" -v n="$MEM_FUNCTIONS" 'BEGIN { printf "%.1f", (b - a) / n / 1024 }')
R[mem_pss]=$(awk -v a="$m0_pss" -v b="$m1_pss" -v n="$MEM_FUNCTIONS" 'BEGIN { printf "%.1f", (b - a) / n / 1024 }')
R[mem_procs]=$(awk -v a="$m0_n" -v b="$m1_n" -v n="$MEM_FUNCTIONS" 'BEGIN { printf "%g", (b - a) / n }')
log "idle memory per function: ${R[mem_rss]} MiB RSS, ${R[mem_pss]} MiB PSS, ${R[mem_procs]} processes"
for ((i = 0; i < MEM_FUNCTIONS; i++)); do delete_fn "mem-$i"; done

# Gateway overhead: one instance (autoscaler min 1, max 1), called through the gateway and directly.
pb function -name gw -code "$CODE" -handler bench.hello -max 1 -idle 0 >/dev/null
fn_call gw
INSTANCE_PORT=$(api_curl -sS "$UP_URL/api/v1/namespaces/default/pods?labelSelector=function%3Dgw" | python3 -c '
import json, sys
pods = json.load(sys.stdin)["items"]
ports = [p["spec"]["containers"][0]["ports"][0]["containerPort"] for p in pods if p["spec"]["containers"][0].get("ports")]
if len(ports) != 1:
    sys.exit("expected one pod with a port, got %d pods: %s" % (len(pods), ports))
print(ports[0])') || die_log "$UP_LOG" "cannot find the instance port of function gw"
got=$(curl -sS --max-time 10 "http://127.0.0.1:$INSTANCE_PORT/") || die "the instance of gw on port $INSTANCE_PORT does not answer"
[ "$got" = "hello world" ] || die "the instance of gw answered '$got'"
GW_URL=$GW/default/gw/
DIRECT_URL=http://127.0.0.1:$INSTANCE_PORT/
for conns in 1 32; do
    for ((round = 1; round <= GW_ROUNDS; round++)); do
        order="direct gw"
        [ $((round % 2)) = 0 ] && order="gw direct"
        for way in $order; do
            if [ "$way" = gw ]; then url=$GW_URL; else url=$DIRECT_URL; fi
            wrk_row "$way-$conns-r$round" "$conns" "$url"
            for k in RPS P50 P99 CPU GW FRONT WORKERS WRK; do
                v=R_$k
                R[$way-$conns-$k]="${R[$way-$conns-$k]:-} ${!v}"
            done
        done
    done
done
pods=$(api_curl -sS "$UP_URL/api/v1/namespaces/default/pods?labelSelector=function%3Dgw" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$pods" = 1 ] || WARNINGS+=("function gw had $pods instances after the wrk runs (expected 1)")
delete_fn gw

# First call to a Python function scaled to zero, with the pool.
pb function -name cold -code "$CODE" -handler bench.hello -idle 1s >/dev/null
wait_quiet "first call, pool"
log "first call with the pool: $COLD_RUNS calls (+1 discarded), each after scale to zero (~2 s each)"
pb cold -name cold -url "$GW/default/cold/" -runs "$COLD_RUNS" >"$WORK/cold-pool.json"
delete_fn cold

# Deploy to first 200, with the pool.
wait_quiet "deploy, pool"
log "deploy -> first 200 with the pool: $DEPLOY_RUNS deploys (+1 discarded)"
pb deploy -name d2f -code "$CODE" -handler bench.hello -gateway "$GW" -runs "$DEPLOY_RUNS" >"$WORK/deploy-pool.json"

# API against kelp up.
api_runs() { # api_runs SERVER_KEY PB_ARGS...: ceiling and API runs at each client count
    local key=$1 c
    shift
    for c in $API_CLIENTS; do
        wait_quiet "$key ceiling, $c clients"
        log "$key: GET /version, $c clients"
        "$PB" ceiling -clients "$c" "$@" >"$WORK/ceiling-$key-$c.json" || return 1
        other_check "$key GET /version $c clients" "$(json "$WORK/ceiling-$key-$c.json" 'd["get"]["other_pct"]')"
        wait_quiet "$key API, $c clients"
        log "$key: create / get / list / delete $API_N Functions, $c clients"
        "$PB" api -clients "$c" -n "$API_N" -lists "$API_LISTS" -prefix "c$c" "$@" >"$WORK/api-$key-$c.json" || return 1
        log "$key, $c clients: $(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("; ".join("%s %.0f/s p50 %.2f ms p99 %.2f ms, server CPU %.0f us/op, other %.0f%%" % (k, d[k]["ops_per_s"], d[k]["p50_ms"], d[k]["p99_ms"], d[k]["server_cpu_us_per_op"], d[k]["other_pct"])
for k in ("create", "get", "list", "delete")))' "$WORK/api-$key-$c.json")"
        for op in create get list delete; do
            other_check "$key $op $c clients" "$(json "$WORK/api-$key-$c.json" "d['$op']['other_pct']")"
        done
    done
}
api_runs kelp -server "$UP_URL" -token "$UP_TOKEN" -ca "$UP_CA" -pids "$UP_PID" || die_log "$UP_LOG" "the API benchmark failed against kelp up"
stop_proc "$UP_PID"

# ---------------------------------------------------------------------------------------------
# Platform B: kelp up --prewarm 0.

start_up nopool 0
pb function -name cold -code "$CODE" -handler bench.hello -idle 1s >/dev/null
wait_quiet "first call, no pool"
log "first call without the pool: $COLD_RUNS calls (+1 discarded)"
pb cold -name cold -url "$GW/default/cold/" -runs "$COLD_RUNS" >"$WORK/cold-nopool.json"
delete_fn cold
wait_quiet "deploy, no pool"
log "deploy -> first 200 without the pool: $DEPLOY_RUNS deploys (+1 discarded)"
pb deploy -name d2f -code "$CODE" -handler bench.hello -gateway "$GW" -runs "$DEPLOY_RUNS" >"$WORK/deploy-nopool.json"
stop_proc "$UP_PID"

# ---------------------------------------------------------------------------------------------
# Baseline: etcd (fsync off, as the reference figure) + kube-apiserver, Kelp's CRDs installed.

if [ "$SKIP_K8S" != 1 ]; then
    K=$WORK/k8s
    mkdir -p "$K/certs"
    log "kube-apiserver: certificates and token"
    (
        cd "$K/certs"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=kelp-bench-ca
        openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext
        openssl genrsa -out sa.key 2048
        openssl rsa -in sa.key -pubout -out sa.pub
    ) >"$K/openssl.log" 2>&1 || die_log "$K/openssl.log" "openssl failed"
    TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s,kelp-bench,kelp-bench,"system:masters"\n' "$TOKEN" >"$K/tokens.csv"

    ETCD_PORT=$(freeport) ETCD_PEER=$(freeport)
    "$K8S_BIN/etcd" --name bench --data-dir "$K/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
        --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync=true --log-level warn \
        >"$K/etcd.log" 2>&1 &
    ETCD_PID=$!
    PIDS+=("$ETCD_PID")
    for ((t = 0; ; t++)); do
        kill -0 "$ETCD_PID" 2>/dev/null || die_log "$K/etcd.log" "etcd exited"
        curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"' && break
        [ "$t" -lt $((K8S_TIMEOUT * 10)) ] || die_log "$K/etcd.log" "etcd not healthy within ${K8S_TIMEOUT}s"
        sleep 0.1
    done
    log "etcd on 127.0.0.1:$ETCD_PORT (--unsafe-no-fsync), pid $ETCD_PID"

    API_PORT=$(freeport)
    "$K8S_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --cert-dir "$K/certs" --tls-cert-file "$K/certs/apiserver.crt" --tls-private-key-file "$K/certs/apiserver.key" \
        --token-auth-file "$K/tokens.csv" --authorization-mode RBAC \
        --service-account-issuer "https://127.0.0.1:$API_PORT/" \
        --service-account-key-file "$K/certs/sa.pub" --service-account-signing-key-file "$K/certs/sa.key" \
        --service-cluster-ip-range 10.0.0.0/16 --allow-privileged=true --endpoint-reconciler-type none \
        --disable-admission-plugins ServiceAccount >"$K/kube-apiserver.log" 2>&1 &
    APISERVER_PID=$!
    PIDS+=("$APISERVER_PID")
    K8S_URL=https://127.0.0.1:$API_PORT
    for ((t = 0; ; t++)); do
        kill -0 "$APISERVER_PID" 2>/dev/null || die_log "$K/kube-apiserver.log" "kube-apiserver exited"
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$K/certs/ca.crt" \
            -H "Authorization: Bearer $TOKEN" "$K8S_URL/readyz")" = 200 ] && break
        [ "$t" -lt $((K8S_TIMEOUT * 5)) ] || die_log "$K/kube-apiserver.log" "kube-apiserver not ready within ${K8S_TIMEOUT}s"
        sleep 0.2
    done
    log "kube-apiserver on $K8S_URL, pid $APISERVER_PID; installing Kelp's CRDs"
    K8S_ARGS=(-server "$K8S_URL" -token "$TOKEN" -ca "$K/certs/ca.crt" -pids "$ETCD_PID,$APISERVER_PID")
    "$PB" crds "${K8S_ARGS[@]}" "$ROOT"/deploy/crds/*.yaml >/dev/null ||
        die_log "$K/kube-apiserver.log" "installing the CRDs failed"
    sleep 5 # the apiserver's start-up work (bootstrap policies, priority levels, CRD discovery)
    api_runs k8s "${K8S_ARGS[@]}" || die_log "$K/kube-apiserver.log" "the API benchmark failed against kube-apiserver"
    R[k8s_rss]=$(($(mem_self "$APISERVER_PID") + $(mem_self "$ETCD_PID")))
    stop_proc "$APISERVER_PID"
    stop_proc "$ETCD_PID"
fi
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------------------------------------
# The table.

# median "X Y Z" [DECIMALS]
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk -v d="${2:-1}" '{ v[NR] = $1 }
    END { printf "%." d "f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
f1() { printf '%.1f' "$1"; }
f2() { printf '%.2f' "$1"; }

gw_rows() {
    local c=$1 gp50 dp50 gp99 dp99 grps drps gcpu dcpu
    gp50=$(median "${R[gw-$c-P50]}" 0) dp50=$(median "${R[direct-$c-P50]}" 0)
    gp99=$(median "${R[gw-$c-P99]}" 0) dp99=$(median "${R[direct-$c-P99]}" 0)
    grps=$(median "${R[gw-$c-RPS]}") drps=$(median "${R[direct-$c-RPS]}")
    gcpu=$(median "${R[gw-$c-CPU]}" 0) dcpu=$(median "${R[direct-$c-CPU]}" 0)
    local add50 add99 target=—
    add50=$(awk -v a="$gp50" -v b="$dp50" 'BEGIN { printf "%+.0f", a - b }')
    add99=$(awk -v a="$gp99" -v b="$dp99" 'BEGIN { printf "%+.0f", a - b }')
    [ "$c" = 1 ] && target="gateway adds ≤ 30 µs at p50: $(verdict "$gp50 - $dp50 <= 30")"
    printf '| Gateway: Python hello, %s conn, p50 | %s µs (%s µs) | %s µs | %s× | %s / %s | %s |\n' "$c" "$gp50" "$add50" "$dp50" \
        "$(awk -v a="$gp50" -v b="$dp50" 'BEGIN { printf "%.2f", a / b }')" "$gcpu" "$dcpu" "$target"
    printf '| Gateway: Python hello, %s conn, p99 | %s µs (%s µs) | %s µs | %s× | | — |\n' "$c" "$gp99" "$add99" "$dp99" \
        "$(awk -v a="$gp99" -v b="$dp99" 'BEGIN { printf "%.2f", a / b }')"
    local rps_target=—
    [ "$c" = 32 ] && rps_target="≥ 0.95× direct: $(verdict "$grps >= 0.95 * $drps")"
    printf '| Gateway: Python hello, %s conn, req/s | %s | %s | %s× | | %s |\n' "$c" "$(thousands "$grps")" "$(thousands "$drps")" \
        "$(awk -v a="$grps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')" "$rps_target"
}

# gw_costs CONNS: where a request's CPU goes, through the gateway and directly.
gw_costs() {
    local c=$1 way parts=()
    for way in gw direct; do
        parts+=("$way: gateway $(median "${R[$way-$c-GW]}" 0), front $(median "${R[$way-$c-FRONT]}" 0), workers $(median "${R[$way-$c-WORKERS]}" 0), wrk $(median "${R[$way-$c-WRK]}" 0)")
    done
    echo "CPU µs per request at $c connection(s), $(IFS=';'; echo "${parts[*]}" | sed 's/;/; /g') (the gateway is the \`kelp up\` process; direct calls do not pass it)."
}

api_cell() { # api_cell FILE OP -> "2,345/s · p50 0.41 · p99 1.20 ms"
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))[sys.argv[2]]
print("{:,.0f}/s · p50 {:.2f} · p99 {:.2f} ms".format(d["ops_per_s"], d["p50_ms"], d["p99_ms"]))' "$1" "$2"
}
api_rows() {
    local op=$1 label=$2 c kf kf8 base ratio cpu target
    for c in $API_CLIENTS; do
        kf=$WORK/api-kelp-$c.json kf8=$WORK/api-k8s-$c.json
        base="not run" ratio="" cpu="$(printf '%.0f' "$(json "$kf" "d['$op']['server_cpu_us_per_op']")") / –"
        if [ -f "$kf8" ]; then
            base=$(api_cell "$kf8" "$op")
            ratio="$(f2 "$(json "$kf" "d['$op']['ops_per_s'] / $(json "$kf8" "d['$op']['ops_per_s']")")")×"
            cpu="$(printf '%.0f' "$(json "$kf" "d['$op']['server_cpu_us_per_op']")") / $(printf '%.0f' "$(json "$kf8" "d['$op']['server_cpu_us_per_op']")")"
        fi
        target=—
        if [ "$op" = create ] && [ "$c" = 1 ]; then
            target="p50 ≤ 0.5 ms: $(verdict "$(json "$kf" "d['create']['p50_ms']") <= 0.5")"
        elif [ "$op" = create ] && [ "$c" = 8 ] && [ -f "$kf8" ]; then
            target="≥ 3× kube-apiserver: $(verdict "${ratio%×} >= 3")"
        elif [ "$op" = create ] && [ "$c" = 8 ]; then
            target="≥ 3× kube-apiserver: not measured"
        fi
        printf '| API %s, %s client%s | %s | %s | %s | %s | %s |\n' "$label" "$c" "$([ "$c" = 1 ] || echo s)" \
            "$(api_cell "$kf" "$op")" "$base" "$ratio" "$cpu" "$target"
    done
}
ceiling_rows() {
    local c kf kf8 base ratio
    for c in $API_CLIENTS; do
        kf=$WORK/ceiling-kelp-$c.json kf8=$WORK/ceiling-k8s-$c.json base="not run" ratio=""
        if [ -f "$kf8" ]; then
            base=$(api_cell "$kf8" get)
            ratio="$(f2 "$(json "$kf" "d['get']['ops_per_s'] / $(json "$kf8" "d['get']['ops_per_s']")")")×"
        fi
        printf '| Client ceiling: GET /version, %s client%s | %s | %s | %s | %s / %s | — (client CPU: %s µs/op) |\n' "$c" "$([ "$c" = 1 ] || echo s)" \
            "$(api_cell "$kf" get)" "$base" "$ratio" "$(printf '%.0f' "$(json "$kf" "d['get']['server_cpu_us_per_op']")")" \
            "$([ -f "$kf8" ] && printf '%.0f' "$(json "$kf8" "d['get']['server_cpu_us_per_op']")" || echo –)" \
            "$(printf '%.0f' "$(json "$kf" "d['get']['client_cpu_us_per_op']")")"
    done
}
ms_row() { # ms_row LABEL FILE TARGET LIMIT_MS
    local med min max
    read -r med min max < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("%.1f %.1f %.1f" % (d["median_ms"], d["min_ms"], d["max_ms"]))' "$2")
    printf '| %s | %s ms median (min %s, max %s) | | | | %s: %s |\n' "$1" "$med" "$min" "$max" "$3" "$(verdict "$med <= $4")"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
PY_VERSION=$("$KELP_PYTHON" -c 'import platform; print(platform.python_version())')
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
GO_VERSION=$(go env GOVERSION)
K8S_VERSIONS="kube-apiserver + etcd not run (SKIP_K8S=1)"
if [ "$SKIP_K8S" != 1 ]; then
    K8S_VERSIONS="$("$K8S_BIN/kube-apiserver" --version 2>&1 | head -1), etcd $("$K8S_BIN/etcd" --version 2>&1 | awk '/etcd Version/ { print $3 }')"
fi
# The file system's type only: the device's name is this machine's business.
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 }')

{
    echo
    echo "| Benchmark | Kelp (\`kelp up\`) | Baseline | Ratio Kelp / baseline | Server CPU µs/op: Kelp / baseline | Target |"
    echo "|---|--:|--:|--:|--:|---|"
    gw_rows 1
    gw_rows 32
    ceiling_rows
    api_rows create "create (POST) $API_N Functions"
    api_rows get "get $API_N Functions one by one"
    api_rows list "list the $API_N Functions"
    api_rows delete "delete $API_N Functions"
    ms_row "First call, Python function scaled to zero, with the pool (\`--prewarm 1\`)" "$WORK/cold-pool.json" "≤ 5 ms" 5
    ms_row "First call, Python function scaled to zero, without the pool (\`--prewarm 0\`)" "$WORK/cold-nopool.json" "≤ 50 ms" 50
    ms_row "Deploy → first 200, Python function without deps, with the pool" "$WORK/deploy-pool.json" "≤ 1 s" 1000
    ms_row "Deploy → first 200, Python function without deps, without the pool" "$WORK/deploy-nopool.json" "≤ 1 s" 1000
    printf '| Idle memory per deployed function (1 instance: %s processes) | %s MiB RSS (%s MiB PSS) | | | | — |\n' \
        "${R[mem_procs]}" "${R[mem_rss]}" "${R[mem_pss]}"
    printf '| `kelp up` process RSS, idle: nothing deployed / %s functions | %s MiB / %s MiB | %s | | | — |\n' "$MEM_FUNCTIONS" \
        "$(f1 "$(awk -v k="${R[up_rss]}" 'BEGIN { print k / 1024 }')")" "$(f1 "$(awk -v k="${R[up_rss_n]}" 'BEGIN { print k / 1024 }')")" \
        "$([ -n "${R[k8s_rss]:-}" ] && echo "kube-apiserver + etcd after the API runs: $(f1 "$(awk -v k="${R[k8s_rss]}" 'BEGIN { print k / 1024 }')") MiB" || echo –)"
    echo
    echo "Machine: $(nproc) CPUs ($CPU_MODEL), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOAD_START; data directories on $FS (fdatasync of 4 KiB there: $FSYNC_US µs median)."
    echo "Versions: $("$KELP" --version 2>&1 | head -1), $("$RUNTIME" --version 2>&1 | head -1), Python $PY_VERSION, $K8S_VERSIONS, wrk $WRK_VERSION, client built with $GO_VERSION."
    echo "Method: gateway rows: wrk -t1, ${WARMUP} s warm-up + ${DURATION} s, median of $GW_ROUNDS alternating rounds; one instance (autoscaler min 1, max 1, $(nproc) workers) called through" \
        "\`/default/gw/\` and on its own port; server CPU = the \`kelp up\` process tree (baseline: the instance alone is inside that tree too)."
    gw_costs 1
    gw_costs 32
    echo "API rows: bench/platform (Go net/http, HTTP/1.1 keep-alive, one connection per client, gzip accepted), each op timed to the last byte; $API_N Functions of ~330 bytes created, got, listed" \
        "($API_LISTS lists by label selector) and deleted, 1 s pause between phases, after 50 warm-up creates; both over TLS with a bearer token (kube-apiserver: system:masters, RBAC)," \
        "**etcd with \`--unsafe-no-fsync\`** (as the reference figure: 1.6 ms p50 sequential, ~1,100 creates/s at 8 clients), while \`kelp up\` answers each write after its fsync;" \
        "\`kelp up\`'s own controller reconciles (and writes the status of) every Function created, kube-apiserver has no controller. Server CPU = kelp up's tree / etcd + kube-apiserver."
    echo "First calls: median of $COLD_RUNS (after 1 discarded), each once the function has no pod (idle timeout 1 s) and 0.5 s more; wall time of one GET on a fresh connection through the gateway to the 200." \
        "Deploy: POST of the Function → first 200 on its URL (polled every 1 ms), median of $DEPLOY_RUNS (after 1 discarded), each Function deleted before the next." \
        "Memory: \`kelp up\` tree after $MEM_FUNCTIONS functions each called once (idle timeout 0), minus before, / $MEM_FUNCTIONS (RSS counts shared pages in every process, PSS splits them)."
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
