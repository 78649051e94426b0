#!/usr/bin/env bash
# Benchmarks the cluster half on a real node (kelp-control-plane --real-node: a control plane
# with containerd, a kubelet, kube-proxy and CoreDNS in a network namespace of its own, Kelp's
# images imported; root only), and prints one Markdown table:
#   - `kelp install` until both Deployments are Ready;
#   - one Function created until its first 200 through its Service (the API server's service
#     proxy), against a bare pod of the same runtime image serving HTTP (python3 -m http.server)
#     until its first 200 through the pod proxy: the node's own floor, measured in the same run;
#   - N Functions created at once (default 20) until every one answers 200, against N bare pods.
# Kubeless's published anchor for a function's first answer is 10-30 s.
#
#   bench/node.sh            # about 2 minutes once the images and binaries are built
#   N=50 bench/node.sh
#
# Progress goes to stderr, the table to stdout. Targets are context: missing one never fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
N=${N:-20}
READY_TIMEOUT=${READY_TIMEOUT:-300}
[ "$(id -u)" = 0 ] || die "a real node needs root"

cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(scripts/target-dir)}
log "building kelp and kelp-control-plane"
cargo build -q --locked -p kelp-cli -p kelp-controller -p kelp-testenv --bin kelp --bin kelp-control-plane
KELP_NODE_IMAGES=$(scripts/images save)
KELP_K8S_BIN_DIR=$(scripts/k8s-bins kubectl kube-apiserver kube-controller-manager kube-scheduler etcd kwok \
  kubelet kube-proxy coredns)
export KELP_NODE_IMAGES KELP_K8S_BIN_DIR
KELP="$CARGO_TARGET_DIR/debug/kelp"
KUBECTL="$KELP_K8S_BIN_DIR/kubectl"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-node-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do stop_proc "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting a control plane with a real node"
# exec: SIGTERM must reach kelp-control-plane itself, which then tears its node down (the
# containers, mounts, cgroups and network namespace a SIGKILL would leave behind).
coproc PLANE { exec "$CARGO_TARGET_DIR/debug/kelp-control-plane" --real-node 2>"$WORK/plane.log"; }
PIDS+=("$PLANE_PID")
read -r -t 300 KUBECONFIG <&"${PLANE[0]}" || { tail -n 30 "$WORK/plane.log" >&2; die "the control plane did not start"; }
export KUBECONFIG
PROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$KUBECTL" proxy --port="$PROXY_PORT" >"$WORK/proxy.log" 2>&1 &
PIDS+=("$!")
API="http://127.0.0.1:$PROXY_PORT"
until curl -sf "$API/healthz" >/dev/null; do sleep 0.1; done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# wait_200 URL...: until every URL answers 200 (READY_TIMEOUT at most).
wait_200() {
  local deadline=$(($(date +%s) + READY_TIMEOUT)) url pending=("$@") left
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for url in "${pending[@]}"; do
      [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$url")" = 200 ] || left+=("$url")
    done
    pending=("${left[@]}")
    [ ${#pending[@]} -eq 0 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "${#pending[@]} URLs still not answering 200 after ${READY_TIMEOUT} s"
    sleep 0.05
  done
}

log "kelp install"
start=$(now)
"$KELP" install --wait-timeout "$READY_TIMEOUT" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; die "kelp install failed"; }
INSTALL=$(since "$start")
"$KUBECTL" create namespace bench >/dev/null
until "$KUBECTL" -n bench get serviceaccount default >/dev/null 2>&1; do sleep 0.1; done
IMAGE="kelp/runtime-python:$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"

# bare_pods COUNT PREFIX: COUNT pods of the runtime image serving HTTP on 8080, created at once.
bare_pods() {
  local i urls=()
  for i in $(seq 1 "$1"); do
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $2-$i, namespace: bench}
spec:
  containers:
  - name: http
    image: $IMAGE
    imagePullPolicy: IfNotPresent
    command: [python3, -m, http.server, "8080"]
EOF
  done >"$WORK/$2.yaml"
  for i in $(seq 1 "$1"); do urls+=("$API/api/v1/namespaces/bench/pods/$2-$i:8080/proxy/"); done
  "$KUBECTL" apply -f "$WORK/$2.yaml" >/dev/null
  local deadline=$(($(date +%s) + READY_TIMEOUT)) url pending=("${urls[@]}") left
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for url in "${pending[@]}"; do [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] || left+=("$url"); done
    pending=("${left[@]}")
    [ ${#pending[@]} -eq 0 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "bare pods not serving after ${READY_TIMEOUT} s"
    sleep 0.05
  done
}

# functions COUNT PREFIX: COUNT Kubeless Functions (Python hello) created at once.
functions() {
  local i urls=()
  for i in $(seq 1 "$1"); do
    cat <<EOF
---
apiVersion: kubeless.io/v1beta1
kind: Function
metadata: {name: $2-$i, namespace: bench}
spec:
  runtime: python3.11
  handler: hello.hello
  function-content-type: text
  function: |
    def hello(event, context):
        return "hello world"
  deployment:
    spec:
      template:
        spec:
          containers:
          - name: $2-$i
            imagePullPolicy: IfNotPresent
EOF
  done >"$WORK/$2.yaml"
  for i in $(seq 1 "$1"); do urls+=("$API/api/v1/namespaces/bench/services/$2-$i:http-function-port/proxy/"); done
  "$KUBECTL" apply -f "$WORK/$2.yaml" >/dev/null
  wait_200 "${urls[@]}"
}

log "one bare pod, then one Function"
start=$(now); bare_pods 1 bare; BARE1=$(since "$start")
start=$(now); functions 1 one; FN1=$(since "$start")
log "$N bare pods at once, then $N Functions at once"
start=$(now); bare_pods "$N" bares; BAREN=$(since "$start")
start=$(now); functions "$N" many; FNN=$(since "$start")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOF
| Real node ($(nproc) cores) | Kelp | Bare pods, same image, same run | Ratio |
|---|---|---|---|
| \`kelp install\` → both Deployments Ready | $INSTALL s | | |
| 1 Function created → first 200 via its Service (target ≤ 3 s; Kubeless 10-30 s) | $FN1 s | $BARE1 s | $(ratio "$FN1" "$BARE1") |
| $N Functions at once → all answering 200 | $FNN s | $BAREN s | $(ratio "$FNN" "$BAREN") |
EOF
