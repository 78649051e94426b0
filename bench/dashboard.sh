#!/usr/bin/env bash
# The dashboard's figures: the page's size (each file gzipped, as a browser could fetch them) and
# the time to first render of the function list in headless Chromium with 10 and 1,000 Functions,
# on loopback: `kelp dashboard` in front of a real kube-apiserver (kelp-control-plane, no
# controller: the Functions are objects only, so 1,000 of them cost no process). Prints one
# Markdown table (see README.md, "The dashboard").
#
#   bench/dashboard.sh                 # N = 10 and 1000, 5 page loads each (after one warm-up)
#   N=1000 RUNS=10 bench/dashboard.sh
#   LOG_MINUTES=10 bench/dashboard.sh  # also the page's memory after 10 minutes following a log
#
# First render is the page's `kelp-list-rendered` mark (the first rows in the table), measured from
# the start of the navigation to /ui/ (the login redirect included); "all pages" is
# `kelp-list-complete` (every page of limit=250 arrived). Median of RUNS loads, each a new page.
# The log row (LOG_MINUTES > 0): a real `kelp up` with a function printing 20 lines a call,
# called CALLS_PER_S (20) times a second while the page follows its pod's log; the proportional
# resident memory (Pss) of the browser's renderers and the page's JavaScript heap, every minute
# (bench/dashboard-logs.cjs).
# Knobs: N (" " for none), RUNS, LOG_MINUTES (default 0: no log row), PROFILE (cargo profile of
# kelp, kelp-runtime and kelp-control-plane, default release), SKIP_BUILD=1. Needs scripts/k8s-bins'
# control plane tools, Chromium and scripts/browser.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
N=${N:-"10 1000"}
RUNS=${RUNS:-5}
LOG_MINUTES=${LOG_MINUTES:-0}
PROFILE=${PROFILE:-release}
PLANE_TIMEOUT=${PLANE_TIMEOUT:-180}
TARGET=${CARGO_TARGET_DIR:-$("$ROOT/scripts/target-dir")}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-dashboard-bench.XXXXXX")
PIDS=()
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_proc "${PIDS[$i]}"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building kelp and kelp-control-plane ($PROFILE)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --profile "$PROFILE" -p kelp-cli -p kelp-runtime -p kelp-testenv --bin kelp --bin kelp-runtime \
        --bin kelp-control-plane) >&2 ||
        die "cargo build failed"
fi
KELP=$TARGET/$DIR/kelp
PLANE_BIN=$TARGET/$DIR/kelp-control-plane
[ -x "$KELP" ] && [ -x "$PLANE_BIN" ] || die "$KELP or $PLANE_BIN is missing"
K8S_BIN=$("$ROOT/scripts/k8s-bins" kubectl kube-apiserver kube-controller-manager kube-scheduler etcd kwok) ||
    die "scripts/k8s-bins failed"
export KELP_K8S_BIN_DIR=$K8S_BIN
KUBECTL=$K8S_BIN/kubectl
TOOLS=$("$ROOT/scripts/browser")
CHROMIUM=$(command -v chromium) || die "chromium is missing: run scripts/setup"
unset KUBECONFIG

# The page's size: each file as served, and gzipped (-9).
raw=0
gz=0
for f in "$ROOT"/crates/kelp-cli/ui/*; do
    raw=$((raw + $(wc -c <"$f")))
    gz=$((gz + $(gzip -9 -c "$f" | wc -c)))
done

# A control plane; its stdin is a FIFO only this script holds open.
mkfifo "$WORK/stdin"
exec {PLANE_STDIN}<>"$WORK/stdin"
"$PLANE_BIN" <"$WORK/stdin" {PLANE_STDIN}>&- >"$WORK/kubeconfig-path" 2>"$WORK/plane.log" &
PIDS+=("$!")
for ((t = 0; ; t++)); do
    [ -s "$WORK/kubeconfig-path" ] && break
    [ "$t" -lt $((PLANE_TIMEOUT * 10)) ] || { tail -20 "$WORK/plane.log" >&2; die "no control plane"; }
    sleep 0.1
done
KC=$(head -1 "$WORK/kubeconfig-path")
log "control plane ready"

rows=()
for n in $N; do
    ns=bench-$n
    "$KUBECTL" --kubeconfig "$KC" create namespace "$ns" >/dev/null
    python3 - "$n" "$ns" >"$WORK/functions-$n.json" <<'PY'
import json, sys
n, ns = int(sys.argv[1]), sys.argv[2]
code = "def hello(event, context):\n    return 'hello'\n"
items = [{
    "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
    "metadata": {"name": f"fn-{i:04d}", "namespace": ns, "labels": {"created-by": "kubeless", "function": f"fn-{i:04d}"}},
    "spec": {"runtime": "python3.11", "handler": "hello.hello", "function": code, "function-content-type": "text",
             "deps": "", "timeout": "180"},
} for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
    log "creating $n Functions"
    "$KUBECTL" --kubeconfig "$KC" create -f "$WORK/functions-$n.json" >/dev/null
    "$KELP" --kubeconfig "$KC" -n "$ns" dashboard --listen 127.0.0.1:0 2>"$WORK/dashboard-$n.log" &
    PIDS+=("$!")
    for ((t = 0; t < 100; t++)); do grep -qs 'login?token=' "$WORK/dashboard-$n.log" && break; sleep 0.1; done
    url=$(grep -o 'http://[^ ]*login?token=[0-9a-f]*' "$WORK/dashboard-$n.log") || die "no login URL"
    result=$(KELP_BROWSER_TOOLS=$TOOLS KELP_CHROMIUM=$CHROMIUM node "$BENCH/dashboard-render.cjs" "$url" "$n" "$RUNS") ||
        die "the page did not render $n functions"
    first=$(echo "$result" | awk '{print $1}')
    all=$(echo "$result" | awk '{print $2}')
    target=""
    [ "$n" -ge 1000 ] && target=" (target ≤ 300 ms: $(verdict "$first <= 300"))"
    rows+=("| first render, $(thousands "$n") functions | ${first} ms$target | every page: ${all} ms |")
done

if [ "$LOG_MINUTES" -gt 0 ]; then
    port=$(python3 "$BENCH/coldstart.py" freeport)
    up=("$KELP" --kubeconfig "$WORK/up.kubeconfig")
    "${up[@]}" up --listen "127.0.0.1:$port" --data-dir "$WORK/up" --runtime-bin "$TARGET/$DIR/kelp-runtime" 2>"$WORK/up.log" &
    PIDS+=("$!")
    for ((t = 0; t < 600; t++)); do grep -qs '^kelp up: ready' "$WORK/up.log" && break; sleep 0.1; done
    grep -qs '^kelp up: ready' "$WORK/up.log" || { tail -20 "$WORK/up.log" >&2; die "kelp up did not start"; }
    printf 'def hello(event, context):\n    for i in range(20):\n        print("line", i, "of", event["data"], "x" * 60)\n    return "ok"\n' >"$WORK/chatty.py"
    "${up[@]}" function deploy chatty --runtime python3 --from-file "$WORK/chatty.py" --handler chatty.hello >/dev/null 2>&1 ||
        die "deploying the chatty function failed"
    for ((t = 0; t < 600; t++)); do curl -fs "http://127.0.0.1:$port/default/chatty/" >/dev/null && break; sleep 0.1; done
    "${up[@]}" dashboard --listen 127.0.0.1:0 2>"$WORK/dashboard-logs.log" &
    PIDS+=("$!")
    for ((t = 0; t < 100; t++)); do grep -qs 'login?token=' "$WORK/dashboard-logs.log" && break; sleep 0.1; done
    url=$(grep -o 'http://[^ ]*login?token=[0-9a-f]*' "$WORK/dashboard-logs.log") || die "no login URL"
    log "following a log for $LOG_MINUTES minutes"
    mem=$(KELP_BROWSER_TOOLS=$TOOLS KELP_CHROMIUM=$CHROMIUM node "$BENCH/dashboard-logs.cjs" "$url" \
        "${url%%/ui/*}/ui/#/function/default/chatty" "http://127.0.0.1:$port/default/chatty/" "$LOG_MINUTES") ||
        die "the log run failed"
    read -r rss0 rss1 rssmax heap0 heap1 printed shown <<<"$mem"
    growth=$(awk "BEGIN { printf \"%.1f\", $rssmax - $rss0 }")
    rows+=("| page memory after $LOG_MINUTES min following a log | renderer Pss ${rss1} MiB (start ${rss0}, max ${rssmax}: growth ${growth} MiB, target ≤ 50: $(verdict "$growth <= 50")) | JS heap ${heap0} → ${heap1} MiB; $(thousands "$printed") lines printed, the last $shown shown |")
fi

echo "| Dashboard ($PROFILE build, headless Chromium, loopback) | Measured | Note |"
echo "|---|---|---|"
echo "| page size, gzip -9 of each file | $(awk "BEGIN { printf \"%.1f\", $gz / 1024 }") KiB (target ≤ 150 KiB: $(verdict "$gz <= 150 * 1024")) | $(awk "BEGIN { printf \"%.1f\", $raw / 1024 }") KiB as served, $(ls "$ROOT"/crates/kelp-cli/ui | wc -l) files, no library |"
for row in "${rows[@]}"; do echo "$row"; done
