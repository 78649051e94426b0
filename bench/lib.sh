# Helpers shared by the benchmark scripts (sourced, not run).

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# The cargo target directory the scripts build into: the checkout's own, in the cache
# (scripts/target-dir), unless CARGO_TARGET_DIR says otherwise.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    CARGO_TARGET_DIR=$("$(dirname "${BASH_SOURCE[0]}")/../scripts/target-dir") || die "no target directory"
fi
export CARGO_TARGET_DIR

# descendants PID...: every process below the given ones, from /proc.
descendants() {
    local p kids k
    for p in "$@"; do
        kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || true)
        for k in $kids; do
            echo "$k"
            descendants "$k"
        done
    done
}

# stop_proc PID [SECONDS]: SIGTERM, up to SECONDS (default 20) to exit (kelp up drains its
# instances, the control plane stops its components, a runtime its workers), then SIGKILL of it
# and of whatever it had started; PID leaves the array PIDS of the processes a script started.
stop_proc() {
    local pid=$1 wait_s=${2:-20} kids i left=()
    kids=$(descendants "$pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < wait_s * 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -n "$kids" ] && kill -KILL $kids 2>/dev/null || true
    for i in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$i" != "$pid" ] && left+=("$i"); done
    PIDS=("${left[@]+"${left[@]}"}")
}

# cpu_busy: the machine's CPU use over the next second, in percent.
cpu_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); busy = y[1] - x[1]; all = busy + y[2] - x[2];
        printf "%.0f", (all > 0) ? 100 * busy / all : 0 }'
}

# thousands N: N rounded, with thousands separators (12,345).
thousands() { printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }
# verdict AWK_CONDITION: "met" or "missed".
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo missed; fi; }

# ensure_wrk: installs wrk from Debian's packages when it is missing.
ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    log "installing wrk (Debian package)"
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; } ||
        die "could not install wrk with apt-get"
    command -v wrk >/dev/null 2>&1 || die "wrk is still not on PATH after apt-get install"
}

# wait_quiet ID: waits (up to $QUIET_WAIT seconds) until the machine is under $QUIET_MAX % busy;
# when it never is, measures anyway and adds ID to BUSY_ROWS, which the caution line reports.
wait_quiet() {
    local id=$1 busy waited=0
    while busy=$(cpu_busy); [ "$busy" -gt "$QUIET_MAX" ]; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            log "$id: the machine is still ${busy}% busy after ${QUIET_WAIT}s; measuring anyway"
            BUSY_ROWS+=("$id (${busy}% before)")
            return 0
        fi
        [ "$waited" -eq 0 ] && log "$id: waiting for the machine to be idle (${busy}% CPU busy)"
        waited=$((waited + 1))
    done
}

# kubeconfig_credentials KUBECONFIG CA_FILE: writes the first cluster's certificate authority
# (certificate-authority-data, decoded) to CA_FILE and prints the first user's token.
kubeconfig_credentials() {
    python3 -c 'import base64, re, sys
text = open(sys.argv[1]).read()
def value(key):
    # A plain scalar, or a folded/literal block (">-") on the lines indented under the key.
    m = re.search(r"^( *)" + key + r": *(.*)$", text, re.M)
    v = m.group(2).strip()
    if v[:1] in (">", "|"):
        lines = text[m.end():].splitlines()[1:]
        block = [l.strip() for l in lines[:next((i for i, l in enumerate(lines)
                 if len(l) - len(l.lstrip()) <= len(m.group(1))), len(lines))]]
        v = "".join(block)
    return v
open(sys.argv[2], "wb").write(base64.b64decode(value("certificate-authority-data")))
print(value("token"))' "$1" "$2"
}
