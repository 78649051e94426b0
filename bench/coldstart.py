#!/usr/bin/env python3
"""Timing helper for bench/runtime.sh (standard library only).

Subcommands (the runtime binary is $KELP_BIN; the function is described by the FUNC_*, MOD_NAME,
KUBELESS_INSTALL_VOLUME, KELP_* variables of this process's environment). All runtimes started
here use KELP_WORKERS=1 and print one JSON object on stdout (times in ms):

  freeport      print a free TCP port on 127.0.0.1
  spawn RUNS    process spawn -> first 200 on GET /; median/min/max of RUNS (after 1 discarded run)
  once          process spawn -> first 200 on GET / of one runtime, as started (a build it must
                make first included: set TIMEOUT to allow for it)
  prewarm RUNS  `kelp-runtime --prewarm`, once /healthz answers 503: writing the JSON line of
                env vars on stdin -> first 200 on GET / (after 1 discarded run)
  rss           VmRSS of the front + its descendants after 20 requests and 1 s idle, in MiB
  floor RUNS    the interpreters alone ($KELP_PYTHON -c pass, $KELP_NODE -e 0): median start
                time (ms) and VmRSS (MiB), the floor under cold start and idle RSS

Polling is a tight loop: connect, send one GET, read the status line, sleep 0.5 ms, repeat.
Every runtime started here is stopped (SIGTERM, then SIGKILL of it and its descendants) before
the next one starts, also on Ctrl-C. A runtime that does not come up within TIMEOUT seconds
(default 30) is an error: its stderr is printed and the exit status is 1.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

POLL_SLEEP = 0.0005
TIMEOUT = float(os.environ.get("TIMEOUT", "30"))


class BenchError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(port, path):
    """One GET over a fresh connection; the status code, or None if nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            line = b""
            while b"\r\n" not in line:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                line += chunk
            return int(line.split(b" ", 2)[1])
    except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
        return None


def descendants(pid):
    """Every process below pid, from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Runtime:
    """One kelp-runtime process, stopped (with its workers) when the block ends."""

    def __init__(self, prewarm=False, extra_env=None):
        self.port = free_port()
        env = dict(os.environ, FUNC_PORT=str(self.port), **(extra_env or {}))
        self.log = tempfile.TemporaryFile()
        args = [os.environ["KELP_BIN"]] + (["--prewarm"] if prewarm else [])
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log,
                                     stdin=subprocess.PIPE if prewarm else subprocess.DEVNULL)

    def wait_for(self, path, status):
        """Polls until GET path answers status; returns perf_counter() at that moment."""
        deadline = time.perf_counter() + TIMEOUT
        while True:
            got = status_of(self.port, path)
            if got == status:
                return time.perf_counter()
            if self.proc.poll() is not None:
                raise BenchError("kelp-runtime exited with status %s before GET %s answered %d:\n%s"
                                 % (self.proc.returncode, path, status, self.stderr()))
            if time.perf_counter() > deadline:
                raise BenchError("GET %s did not answer %d within %.0f s (last: %s):\n%s"
                                 % (path, status, TIMEOUT, got, self.stderr()))
            time.sleep(POLL_SLEEP)

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        kids = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for k in kids + descendants(self.proc.pid):
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.stdin:
            self.proc.stdin.close()
        self.log.close()


def summary(samples_ms):
    return {"median": statistics.median(samples_ms), "min": min(samples_ms), "max": max(samples_ms),
            "samples": [round(s, 2) for s in samples_ms]}


def time_spawn(runs):
    samples = []
    for i in range(runs + 1):  # the first run warms the page cache and the worker-script cache
        with Runtime(extra_env={"KELP_WORKERS": "1"}) as rt:
            took = (rt.wait_for("/", 200) - rt.started) * 1000
        if i:
            samples.append(took)
    return summary(samples)


def time_once():
    with Runtime(extra_env={"KELP_WORKERS": "1", "KELP_MAX_WORKERS": "1"}) as rt:
        return {"ms": (rt.wait_for("/", 200) - rt.started) * 1000}


def time_prewarm(runs):
    line = json.dumps({k: os.environ[k] for k in ("FUNC_HANDLER", "MOD_NAME")}).encode() + b"\n"
    # The function arrives on stdin only.
    env_off = {"FUNC_HANDLER": "", "MOD_NAME": "", "KELP_WORKERS": "1"}
    samples = []
    for i in range(runs + 1):
        with Runtime(prewarm=True, extra_env=env_off) as rt:
            # The front binds its port only once its workers have said hello, so a 503 here means
            # the runtime is pre-warmed and waiting for its function.
            rt.wait_for("/healthz", 503)
            t0 = time.perf_counter()
            rt.proc.stdin.write(line)
            rt.proc.stdin.flush()
            took = (rt.wait_for("/", 200) - t0) * 1000
        if i:
            samples.append(took)
    return summary(samples)


def idle_rss():
    with Runtime(extra_env={"KELP_WORKERS": "1"}) as rt:
        rt.wait_for("/", 200)
        for _ in range(20):
            status_of(rt.port, "/")
        time.sleep(1)
        kids = descendants(rt.proc.pid)
        front = vm_rss_kib(rt.proc.pid)
        workers = sum(vm_rss_kib(k) for k in kids)
        return {"total_mib": (front + workers) / 1024, "front_mib": front / 1024,
                "workers_mib": workers / 1024, "workers": len(kids)}


def interpreter_floor(runs):
    rss_code = {
        "python": "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])",
        "node": "console.log(require('fs').readFileSync('/proc/self/status', 'utf8').split('VmRSS:')[1].trim().split(/\\s+/)[0])",
    }
    out = {}
    for name, exe, flag, noop in (("python", os.environ["KELP_PYTHON"], "-c", "pass"),
                                  ("node", os.environ["KELP_NODE"], "-e", "0")):
        samples = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            subprocess.run([exe, flag, noop], check=True)
            samples.append((time.perf_counter() - t0) * 1000)
        rss = subprocess.run([exe, flag, rss_code[name]], check=True, capture_output=True, text=True).stdout
        out[name] = {"start_ms": statistics.median(samples[1:]), "rss_mib": int(rss) / 1024}
    return out


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        print(free_port())
    elif cmd == "spawn":
        print(json.dumps(time_spawn(int(argv[2]))))
    elif cmd == "once":
        print(json.dumps(time_once()))
    elif cmd == "prewarm":
        print(json.dumps(time_prewarm(int(argv[2]))))
    elif cmd == "rss":
        print(json.dumps(idle_rss()))
    elif cmd == "floor":
        print(json.dumps(interpreter_floor(int(argv[2]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BenchError as e:
        sys.exit("coldstart.py: %s" % e)
    except KeyboardInterrupt:
        sys.exit(130)
