# Measurements shared by bench/runtime.sh and bench/compiled.sh (sourced after bench/lib.sh, once
# the caller has set BIN, PY, BENCH, WORK, PIDS, WARNINGS, DURATION, WARMUP, RUNS, RETRIES,
# QUIET_MAX, QUIET_WAIT, WRK_C32_THREADS, UP_TIMEOUT and exported the function's environment).

# Stops one runtime: SIGTERM (it stops its workers), up to 5 s, then SIGKILL of whatever is left.
stop_server() { stop_proc "$1" 5; }

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

# coldstart KIND RUNTIME [HANDLER] -> "median min max" (ms), or "total front workers" MiB for rss
coldstart() {
    local kind=$1 runtime=$2 handler=${3:-hello} json
    json=$(FUNC_RUNTIME=$runtime FUNC_HANDLER=$handler "$PY" "$BENCH/coldstart.py" "$kind" "$RUNS") ||
        die "coldstart.py $kind failed for $runtime"
    "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
keys = ("total_mib", "front_mib", "workers_mib") if "total_mib" in d else ("median", "min", "max")
print(" ".join("%.1f" % d[k] for k in keys))' "$json"
}

