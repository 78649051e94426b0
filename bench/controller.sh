#!/usr/bin/env bash
# Benchmarks kelp-controller on a real control plane with kwok nodes: N Functions created, time
# until every one has its children and is Ready, with the original Kubeless v1.0.8 function
# controller measured the same way in the same run; prints one Markdown table (see
# bench/README.md, "Controller benchmark").
#
#   bench/controller.sh                  # full run: N = 100 and 1,000, ~12-16 min (7 of them the
#                                        # Kubeless baseline, which does ~2.5 Functions/s)
#   N=100 bench/controller.sh            # quick check, ~2 min
#   SKIP_KUBELESS=1 bench/controller.sh  # Kelp only (no Go build of Kubeless)
#
# What runs, for each N and each controller, one after the other: a fresh control plane
# (kelp-control-plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# with one fake Node, from scripts/k8s-bins), the controller out of cluster against it, and
# bench/platform's `controller` subcommand (Go), which opens watches on Functions, ConfigMaps,
# Services and Deployments of the namespace, creates the N Functions and waits until all are Ready.
# Ready is the Function's `Ready` condition for Kelp; Kubeless writes no status, so for it Ready
# is its Deployment having an available replica (which Kelp's condition also waits for).
# Each controller runs as the control plane's audited user (`kubeconfig-audited`), so kube-apiserver's
# audit log (`logs/audit.log` beside it) counts its own requests, apart from the control plane's.
#
# Knobs (environment): N (Function counts, default "100 1000"), CLIENTS (concurrent clients
# creating the Functions, default 4), CONCURRENCY (kelp-controller --concurrency, default 16, its
# own default), SKIP_KUBELESS=1 (no baseline), KUBELESS_UNTHROTTLED=0 (skip the second Kubeless
# row, run with client-go's rate limit lifted), READY_TIMEOUT (s, default 1800), SKIP_BUILD=1 (use
# the binaries already built), QUIET_MAX / QUIET_WAIT (each run waits up to QUIET_WAIT s, default
# 60, for the machine's CPU use to fall below QUIET_MAX %, default 10), KEEP_WORK=1 (keep the
# temporary directory: control plane and controller logs, the client's JSON).
#
# Progress goes to stderr, the table to stdout. Exit status 1 if a build fails, a control plane
# or controller does not come up, or the Functions are not all Ready within READY_TIMEOUT.
# Targets are context: missing one never fails the run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
N=${N:-"100 1000"}
CLIENTS=${CLIENTS:-4}
CONCURRENCY=${CONCURRENCY:-16}
SKIP_KUBELESS=${SKIP_KUBELESS:-0}
KUBELESS_UNTHROTTLED=${KUBELESS_UNTHROTTLED:-1}
READY_TIMEOUT=${READY_TIMEOUT:-1800}
PLANE_TIMEOUT=${PLANE_TIMEOUT:-180}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-60}
NS=bench # the Functions' namespace
# What "unthrottled" gives Kubeless's client-go (requests/s and burst per API group).
UNTHROTTLED_QPS=1000

# die_log FILE MESSAGE: the end of a log, then the error.
die_log() {
    [ -f "$1" ] && { printf '[bench] --- last lines of %s ---\n' "$1" >&2; tail -n 40 "$1" >&2; }
    die "$2"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-controller-bench.XXXXXX")
PIDS=() # processes started here, stopped on exit
BUSY_ROWS=()   # runs that started on a busy machine
BUSY_DURING=() # runs during which other processes used more than QUIET_MAX % of the CPUs

cleanup() {
    local i
    # Controllers before control planes: the last started first.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_proc "${PIDS[$i]}"; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools and builds (all before any measurement).

for tool in curl python3 cargo go; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

TARGET=$CARGO_TARGET_DIR
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: using kelp-controller and kelp-control-plane already in $TARGET/release"
else
    # Together: kelp-testenv takes its k8s-openapi version feature from kelp-controller.
    log "building kelp-controller and kelp-control-plane (release)"
    (cd "$ROOT" && cargo build --release -p kelp-controller -p kelp-testenv --bin kelp-controller --bin kelp-control-plane) >&2 ||
        die "cargo build --release -p kelp-controller -p kelp-testenv failed"
fi
# Private copies, so that a rebuild running in parallel cannot swap a binary in the middle of a run.
mkdir -p "$WORK/bin"
for b in kelp-controller kelp-control-plane; do
    [ -x "$TARGET/release/$b" ] || die "$TARGET/release/$b is missing (build it, or unset SKIP_BUILD)"
    cp "$TARGET/release/$b" "$WORK/bin/$b"
done
KELP_CONTROLLER=$WORK/bin/kelp-controller
PLANE_BIN=$WORK/bin/kelp-control-plane

log "building the client (bench/platform, Go)"
(cd "$BENCH/platform" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$WORK/bin/platform-bench" .) >&2 ||
    die "go build of bench/platform failed"
PB=$WORK/bin/platform-bench

TOOLS=(kubectl kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
[ "$SKIP_KUBELESS" = 1 ] || TOOLS+=(kubeless-function-controller)
log "Kubernetes tools and the Kubeless controller: scripts/k8s-bins (first builds take minutes)"
K8S_BIN=$("$ROOT/scripts/k8s-bins" "${TOOLS[@]}") || die "scripts/k8s-bins ${TOOLS[*]} failed"
for b in "${TOOLS[@]}"; do [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b is missing"; done
export KELP_K8S_BIN_DIR=$K8S_BIN
KUBECTL=$K8S_BIN/kubectl
unset KUBECONFIG KELP_LOG

# ---------------------------------------------------------------------------------------------
# Helpers.

freeport() { python3 "$BENCH/coldstart.py" freeport; }
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# start_plane DIR: a fresh control plane; sets PLANE_PID and KC (its kubeconfig). Its stdin is a
# FIFO only this script holds open (every child started while it is open closes it): if the
# script dies, the control plane sees end of file and stops.
PLANE_STDIN=
start_plane() {
    local dir=$1 t
    mkdir -p "$dir"
    mkfifo "$dir/stdin"
    exec {PLANE_STDIN}<>"$dir/stdin"
    "$PLANE_BIN" <"$dir/stdin" {PLANE_STDIN}>&- >"$dir/kubeconfig-path" 2>"$dir/kelp-control-plane.log" &
    PLANE_PID=$!
    PIDS+=("$PLANE_PID")
    for ((t = 0; ; t++)); do
        kill -0 "$PLANE_PID" 2>/dev/null || die_log "$dir/kelp-control-plane.log" "kelp-control-plane exited"
        [ -s "$dir/kubeconfig-path" ] && break
        [ "$t" -lt $((PLANE_TIMEOUT * 10)) ] || die_log "$dir/kelp-control-plane.log" "no control plane within ${PLANE_TIMEOUT}s"
        sleep 0.1
    done
    KC=$(head -1 "$dir/kubeconfig-path")
    log "control plane ready (pid $PLANE_PID): $(tail -1 "$dir/kelp-control-plane.log")"
}

stop_plane() {
    stop_proc "$PLANE_PID"
    exec {PLANE_STDIN}>&-
    PLANE_STDIN=
}

k() { "$KUBECTL" --kubeconfig "$KC" "$@"; }

# namespace NAME: creates it and waits for its default ServiceAccount (pods need it).
namespace() {
    local t
    k create namespace "$1" >/dev/null
    for ((t = 0; t < 300; t++)); do
        k -n "$1" get serviceaccount default >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "namespace $1 has no default ServiceAccount after 30 s"
}

# Kubeless's kubeless-config, minimal: the Python runtime the Functions use, and the keys its
# controller reads (the images are never pulled: kwok runs nothing).
kubeless_config() {
    k create namespace kubeless >/dev/null
    k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: kubeless-config
  namespace: kubeless
data:
  deployment: "{}"
  enable-build-step: "false"
  function-registry-tls-verify: "true"
  functions-namespace: "$NS"
  provision-image: kubeless/unzip:latest
  provision-image-secret: ""
  builder-image: kubeless/function-image-builder:latest
  builder-image-secret: ""
  service-type: ClusterIP
  runtime-images: |-
    [{"ID": "python", "depName": "requirements.txt", "fileNameSuffix": ".py",
      "versions": [{"name": "python38", "version": "3.8", "images": [
        {"phase": "installation", "image": "python:3.8",
         "command": "pip install --prefix=\$KUBELESS_INSTALL_VOLUME -r \$KUBELESS_DEPS_FILE"},
        {"phase": "runtime", "image": "kubeless/python:3.8",
         "env": {"PYTHONPATH": "\$(KUBELESS_INSTALL_VOLUME)/lib/python3.8/site-packages:\$(KUBELESS_INSTALL_VOLUME)"}}]}]}]
YAML
}

HZ=$(getconf CLK_TCK)
# plane_ticks PLANE_PID: "name=ticks ..." of each component (comm name) of the control plane.
plane_ticks() {
    local p name t
    for p in $(descendants "$1"); do
        name=$(cat "/proc/$p/comm" 2>/dev/null) || continue
        t=$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || continue
        echo "$name=${t:-0}"
    done
}

# requests DIR: kube-apiserver's request counts (apiserver_request_total, every client) now.
requests() { k get --raw /metrics | grep '^apiserver_request_total{' >"$1" || true; }
# request_summary BEFORE AFTER: "total T; resource[/sub] VERB count, ..." (no WATCH), largest first.
request_summary() {
    python3 - "$1" "$2" <<'PY'
import re, sys
def load(path):
    out = {}
    for line in open(path):
        labels, value = line.rsplit(" ", 1)
        l = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if l.get("verb") in ("WATCH", "CONNECT"):
            continue
        key = l.get("resource", "") + ("/" + l["subresource"] if l.get("subresource") else "") + " " + l.get("verb", "")
        out[key] = out.get(key, 0) + float(value)
    return out
before, after = load(sys.argv[1]), load(sys.argv[2])
diff = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
top = sorted(diff.items(), key=lambda kv: -kv[1])
print("total {:,.0f}; ".format(sum(diff.values())) + ", ".join("{} {:,.0f}".format(k, v) for k, v in top[:14]))
PY
}

# own_requests AUDIT_LOG FROM_LINE N: the requests the controller made (it runs as the control
# plane's audited user, whose every request kube-apiserver's audit log records) from line
# FROM_LINE on, watches aside: "P|T (P per Function): resource[/sub] verb count, ..." (P: requests
# per Function).
own_requests() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts = {}
with open(path) as f:
    for i, line in enumerate(f):
        if i < start:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("verb") == "watch":
            continue
        o = e.get("objectRef", {})
        key = o.get("resource", "") + ("/" + o["subresource"] if o.get("subresource") else "") + " " + e.get("verb", "")
        counts[key] = counts.get(key, 0) + 1
total = sum(counts.values())
top = sorted(counts.items(), key=lambda kv: -kv[1])
print("{:.2f}|{:,} ({:.2f} per Function): ".format(total / n, total, total / n) + ", ".join("{} {:,}".format(k, v) for k, v in top))
PY
}

declare -A R # results: R[<n>-<key>-<field>]

# run_one N KEY: one run of controller KEY (kelp, kubeless, kubeless-nolimit) with N Functions.
run_one() {
    local n=$1 key=$2 dir=$WORK/$1-$2 port ready=status ctl_pid ctl_log t before after other
    wait_quiet "$key, N=$n"
    log "$key, N=$n: starting a control plane"
    start_plane "$dir"
    namespace "$NS"
    # The controller runs as the audited user: the audit log counts its own requests.
    local akc audit audit_from
    akc=$(dirname "$KC")/kubeconfig-audited
    audit=$(dirname "$KC")/logs/audit.log
    [ -f "$akc" ] || die "no audited kubeconfig beside $KC"
    ctl_log=$dir/controller.log
    case "$key" in
        kelp)
            port=$(freeport)
            KUBECONFIG=$akc "$KELP_CONTROLLER" --listen "127.0.0.1:$port" --leader-elect=false \
                --functions-namespace "$NS" --concurrency "$CONCURRENCY" {PLANE_STDIN}>&- >"$ctl_log" 2>&1 &
            ctl_pid=$!
            PIDS+=("$ctl_pid")
            for ((t = 0; ; t++)); do
                kill -0 "$ctl_pid" 2>/dev/null || die_log "$ctl_log" "kelp-controller exited"
                curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null && break
                [ "$t" -lt 300 ] || die_log "$ctl_log" "kelp-controller did not serve /healthz within 30 s"
                sleep 0.1
            done
            ;;
        kubeless*)
            ready=deployment
            kubeless_config
            local limit=()
            [ "$key" = kubeless-nolimit ] && limit=(KUBELESS_CLIENT_QPS=$UNTHROTTLED_QPS KUBELESS_CLIENT_BURST=$UNTHROTTLED_QPS)
            env KUBECONFIG="$akc" KUBELESS_NAMESPACE=kubeless KUBELESS_CONFIG=kubeless-config "${limit[@]+"${limit[@]}"}" \
                "$K8S_BIN/kubeless-function-controller" {PLANE_STDIN}>&- >"$ctl_log" 2>&1 &
            ctl_pid=$!
            PIDS+=("$ctl_pid")
            for ((t = 0; ; t++)); do
                kill -0 "$ctl_pid" 2>/dev/null || die_log "$ctl_log" "the Kubeless controller exited"
                grep -qs "Function controller synced and ready" "$ctl_log" && break
                [ "$t" -lt 300 ] || die_log "$ctl_log" "the Kubeless controller was not ready within 30 s"
                sleep 0.1
            done
            ;;
    esac
    sleep 1 # the controller's start-up work (initial lists) out of the measurement
    log "$key, N=$n: creating $n Functions ($CLIENTS clients), waiting until all are Ready ($ready)"
    requests "$dir/requests-before"
    audit_from=$(wc -l <"$audit" 2>/dev/null || echo 0)
    before=$(plane_ticks "$PLANE_PID")
    "$PB" controller -kubeconfig "$KC" -ns "$NS" -n "$n" -clients "$CLIENTS" -ready "$ready" \
        -timeout "${READY_TIMEOUT}s" -pids "$ctl_pid" -plane-pids "$PLANE_PID" \
        -name fn -code "$BENCH/functions/bench.py" -handler bench.hello -runtime python3.8 \
        {PLANE_STDIN}>&- >"$dir/result.json" 2> >(tee "$dir/client.log" >&2) ||
        die_log "$ctl_log" "$key, N=$n: the Functions did not all become Ready (see the controller's log above)"
    after=$(plane_ticks "$PLANE_PID")
    other=$(json "$dir/result.json" 'd.get("other_pct", 0)')
    awk -v p="$other" -v m="$QUIET_MAX" 'BEGIN { exit !(p > m) }' && BUSY_DURING+=("$key, N=$n ($(printf '%.0f' "$other")%)")
    requests "$dir/requests-after"
    R[$n-$key-requests]=$(request_summary "$dir/requests-before" "$dir/requests-after")
    local own
    own=$(own_requests "$audit" "$audit_from" "$n")
    R[$n-$key-per]=${own%%|*}
    R[$n-$key-own]=${own#*|}
    kill -0 "$ctl_pid" 2>/dev/null || die_log "$ctl_log" "$key died during the run"
    R[$n-$key-hwm]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$ctl_pid/status")
    R[$n-$key-rss]=$(awk '/^VmRSS:/ { print $2 }' "/proc/$ctl_pid/status")
    if [ "$key" = kelp ]; then
        R[$n-$key-reconciles]=$(curl -sf "http://127.0.0.1:$port/metrics" |
            awk '/^kelp_controller_reconciles_total/ { s += $NF } END { printf "%.0f", s }')
    fi
    # Control plane CPU per component during the run (s).
    R[$n-$key-plane]=$(awk -v hz="$HZ" -v b="$before" -v a="$after" 'BEGIN {
        nb = split(b, x, "[ \n]"); for (i = 1; i <= nb; i++) { split(x[i], kv, "="); t0[kv[1]] += kv[2] }
        na = split(a, y, "[ \n]"); for (i = 1; i <= na; i++) { split(y[i], kv, "="); t1[kv[1]] += kv[2] }
        for (c in t1) if (c != "sh" && c != "sleep") printf "%s%s %.1f", sep, c, (t1[c] - t0[c]) / hz, sep = ", "
    }')
    log "$key, N=$n: $(json "$dir/result.json" '"created in %.1f s, last child %s s, all Ready %.1f s, controller CPU %.1f s, control plane CPU %.1f s" % (d["created_s"], d["last_child_s"], d["all_ready_s"], d["controller_cpu_s"], d["plane_cpu_s"])'); peak RSS $((R[$n-$key-hwm] / 1024)) MiB (at the end $((R[$n-$key-rss] / 1024)) MiB); control plane CPU s: ${R[$n-$key-plane]}"
    stop_proc "$ctl_pid"
    if [ "${KEEP_WORK:-0}" = 1 ]; then # the control plane removes its directory when it stops
        local logs
        logs=$(sed -n 's/.*(logs: \(.*\))$/\1/p' "$dir/kelp-control-plane.log" | head -1)
        [ -d "$logs" ] && cp -r "$logs" "$dir/control-plane-logs"
    fi
    stop_plane
}

# ---------------------------------------------------------------------------------------------
# The runs.

STARTED=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
KEYS=(kelp)
if [ "$SKIP_KUBELESS" != 1 ]; then
    KEYS+=(kubeless)
    [ "$KUBELESS_UNTHROTTLED" = 1 ] && KEYS+=(kubeless-nolimit)
fi
for n in $N; do
    for key in "${KEYS[@]}"; do run_one "$n" "$key"; done
done
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------------------------------------
# The table.

label() {
    case "$1" in
        kelp) echo "Kelp (\`kelp-controller\`, --concurrency $CONCURRENCY)" ;;
        kubeless) echo "Kubeless v1.0.8 function controller" ;;
        kubeless-nolimit) echo "Kubeless v1.0.8, client rate limit lifted ($UNTHROTTLED_QPS/s)" ;;
    esac
}
f1() { printf '%.1f' "$1"; }
joined() { # joined A B C -> "A; B; C", "none" without arguments
    local out=none x
    for x in "$@"; do if [ "$out" = none ]; then out=$x; else out="$out; $x"; fi; done
    echo "$out"
}

{
    echo
    echo "| N | Controller | Functions created (s) | Last child created (s) | All Ready (s) | Functions/s | Ratio vs Kubeless | Controller CPU (s) | Peak RSS (MiB) | Target |"
    echo "|--:|---|--:|--:|--:|--:|--:|--:|--:|---|"
    for n in $N; do
        for key in "${KEYS[@]}"; do
            f=$WORK/$n-$key/result.json
            all=$(json "$f" 'd["all_ready_s"]')
            rate=$(awk -v n="$n" -v s="$all" 'BEGIN { printf "%.1f", n / s }')
            ratio="—"
            if [ -f "$WORK/$n-kubeless/result.json" ]; then
                base=$(json "$WORK/$n-kubeless/result.json" 'd["all_ready_s"]')
                ratio="$(awk -v a="$all" -v b="$base" 'BEGIN { printf "%.2f", b / a }')×"
                if [ "$key" = kelp ] && [ -f "$WORK/$n-kubeless-nolimit/result.json" ]; then
                    base=$(json "$WORK/$n-kubeless-nolimit/result.json" 'd["all_ready_s"]')
                    ratio="$ratio ($(awk -v a="$all" -v b="$base" 'BEGIN { printf "%.2f", b / a }')× vs lifted limit)"
                fi
            fi
            hwm=$(awk -v k="${R[$n-$key-hwm]}" 'BEGIN { printf "%.1f", k / 1024 }')
            target="—"
            if [ "$key" = kelp ]; then
                target="own API requests ≤ 5 per Function: $(verdict "${R[$n-$key-per]} <= 5") (${R[$n-$key-per]}); RSS ≤ 64 MiB: $(verdict "$hwm <= 64")"
                [ "$n" = 1000 ] && target="all Ready ≤ 30 s: $(verdict "$all <= 30"); $target"
            fi
            lc=$(json "$f" '"%.1f" % d["last_child_s"] if d["last_child_s"] is not None else "—"')
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(thousands "$n")" "$(label "$key")" \
                "$(f1 "$(json "$f" 'd["created_s"]')")" "$lc" "$(f1 "$all")" "$rate" "$ratio" \
                "$(f1 "$(json "$f" 'd["controller_cpu_s"]')")" "$hwm" "$target"
        done
    done
    echo
    CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "Machine: $(nproc) CPUs ($CPU_MODEL), Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $LOAD_START; the control plane, the controller and the client share the machine."
    kv=$("$K8S_BIN/kube-apiserver" --version 2>&1 | head -1)
    ev=$("$K8S_BIN/etcd" --version 2>&1 | awk '/etcd Version/ { print $3 }')
    echo "Versions: $("$KELP_CONTROLLER" --version 2>&1 | head -1); $kv (kube-apiserver, kube-controller-manager, kube-scheduler), etcd $ev, kwok $("$K8S_BIN/kwok" --version 2>&1 | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^v?[0-9]+\.[0-9]+\.[0-9]+/) { print $i; exit } }'); $([ "$SKIP_KUBELESS" = 1 ] && echo "Kubeless not run (SKIP_KUBELESS=1)" || echo "Kubeless function controller v1.0.8 (client-go v7) built by scripts/k8s-bins"); client built with $(go env GOVERSION)."
    echo "Method: per N and controller, a fresh control plane (kelp-testenv: etcd with --unsafe-no-fsync, kube-apiserver, kube-controller-manager with --kube-api-qps 500 --kube-api-burst 1000, kube-scheduler, kwok with one fake Node whose pods become Running and Ready at once) and the controller out of cluster, watching namespace \`$NS\`;" \
        "bench/platform \`controller\` opens watches (Functions, ConfigMaps, Services, Deployments), then POSTs N Python Functions (text, no deps, ~300 bytes of code) with $CLIENTS clients; the clock starts at the first POST." \
        "Functions created: the last POST answered. Last child created: the last of the N ConfigMaps, Services and Deployments owned by a Function seen by the watches. All Ready: Kelp, every Function's \`Ready\` condition True (for its generation);" \
        "Kubeless (no status), every Function's Deployment with an available replica. Controller CPU: user + system of the controller process from the first POST to all Ready; peak RSS: its VmHWM at the end." \
        "Kelp runs with its default configuration (no kubeless-config); Kubeless with a minimal kubeless-config (its Python 3.8 runtime) and client-go's default client-side rate limit (5 requests/s, bursts of 10, per API group), and again with it lifted to $UNTHROTTLED_QPS/s (KUBELESS_CLIENT_QPS/BURST, see scripts/k8s-bins)."
    for n in $N; do
        for key in "${KEYS[@]}"; do
            extra=""
            [ -n "${R[$n-$key-reconciles]:-}" ] && extra="; reconciles ${R[$n-$key-reconciles]}"
            echo "Control plane CPU s during the run, N=$(thousands "$n"), $key: ${R[$n-$key-plane]}; client $(json "$WORK/$n-$key/result.json" '"%.1f" % d["client_cpu_s"]') s$extra."
            echo "API requests during the run (kube-apiserver's apiserver_request_total, every client, no watches), N=$(thousands "$n"), $key: ${R[$n-$key-requests]}."
            echo "The controller's own requests during the run (kube-apiserver's audit log, no watches), N=$(thousands "$n"), $key: ${R[$n-$key-own]}."
        done
    done
    if [ "${#BUSY_ROWS[@]}" -gt 0 ] || [ "${#BUSY_DURING[@]}" -gt 0 ]; then
        echo "Caution: the machine was busy (over ${QUIET_MAX}% CPU) before: $(joined "${BUSY_ROWS[@]+"${BUSY_ROWS[@]}"}");" \
            "other processes used more than ${QUIET_MAX}% of the CPUs during: $(joined "${BUSY_DURING[@]+"${BUSY_DURING[@]}"}"); those runs are pessimistic."
    fi
    echo "Full run: ${ELAPSED} s."
}
