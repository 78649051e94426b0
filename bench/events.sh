#!/usr/bin/env bash
# Benchmarks KafkaTriggers, NATSTriggers and KinesisTriggers on `kelp up`: messages per second
# delivered at least once to a Python hello function, and (Kafka, NATS) publish → function latency
# at 1,000 msg/s, each beside the broker's own produce → consume (Kinesis: put → get) rate measured
# in the same run. Prints one Markdown table.
#
#   bench/events.sh                                   # full run, ~2-3 min
#   MESSAGES=5000 RATE_SECONDS=3 bench/events.sh      # quick check
#
# What runs: crates/kelp-events/examples/bench.rs (release build) starts a private Kafka 4.1.1,
# nats-server and moto (kelp-brokers, from scripts/brokers), `kelp up` (release build) with one
# KafkaTrigger, one NATSTrigger and one KinesisTrigger on a Python hello function
# (bench/functions/events.py), publishes, and
# measures. Knobs (environment): MESSAGES (per throughput run, default 20000), PARTITIONS (of the
# Kafka topic, default 8), RATE_SECONDS (seconds at 1,000 msg/s, default 10), KINESIS_RECORDS
# (records through the Kinesis trigger, default 2000), KELP_KAFKA_JVM_OPTS
# (the broker's JVM, default -Xms512m -Xmx1g -XX:+UseG1GC), SKIP_BUILD=1,
# KEEP_WORK=1 (keep the temporary directory: kelp up's log, the function's latencies).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cd "$ROOT"

eval "$(scripts/brokers)"
export KELP_KAFKA_LIB KELP_NATS_SERVER KELP_MOTO_SERVER
# The tests' broker starts fast with a small heap and the C1 JIT only; a benchmark wants it warm.
export KELP_KAFKA_JVM_OPTS="${KELP_KAFKA_JVM_OPTS:--Xms512m -Xmx1g -XX:+UseG1GC}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building kelp, kelp-runtime and the benchmark (release)"
    cargo build --release -q -p kelp-cli -p kelp-runtime
    cargo build --release -q -p kelp-events --example bench
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kelp-events-bench.XXXXXX")
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg)
"$CARGO_TARGET_DIR/release/examples/bench" "$CARGO_TARGET_DIR/release/kelp" "$WORK"
echo
echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $load."
echo "Versions: Kafka 4.1.1, $("$KELP_NATS_SERVER" --version), moto $("$(dirname "$KELP_MOTO_SERVER")/python" -c 'import moto; print(moto.__version__)'), $(python3 --version), kelp $("$CARGO_TARGET_DIR/release/kelp" version | sed 's/.*: //')."
echo "Full run: $(( $(date +%s) - started )) s."
