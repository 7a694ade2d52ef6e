#!/usr/bin/env python3
"""The http_hello benchmark: gort's HTTP hello-world server against Go's net/http, driven by wrk.

    python3 bench/http_compare.py [BUILD_DIR] [--runs N] [--procs 1,2] [-c 1000] [-t 2] [-d 10]

Servers: BUILD_DIR/examples/http_hello (examples/http_hello.cpp: gort::net + libhttp-parser,
a goroutine per connection) and bench/go/http_hello (net/http, built into build/bench-go/
exactly as compare.py builds the other Go programs: offline, private GOCACHE). Each run
starts one server on a free loopback port with --maxprocs P (GOMAXPROCS for Go), waits
until it accepts and answers GET / with "hello, world\\n", runs
`wrk -tT -cC -dDs --latency http://127.0.0.1:PORT/`, parses requests/s and the latency
percentiles, and stops the server (SIGTERM). Runs interleave the implementations (gort, go,
gort, go, ...) so drift on the machine hits both alike; the table shows medians and
ratio = gort median / Go median (requests/s: above 1 gort is better; latency: below 1).

wrk, the servers and this script share the machine: on a 2-core box wrk's threads take a
large share of the CPU, so the absolute figures are low and noisy; compare ratios.
The open-file limit is raised to the hard limit (1,000 connections need ~1,000 descriptors
in wrk and in the server). Exit status is non-zero when a server fails to start or answer,
wrk fails, or wrk reports socket errors or non-2xx responses.
Python 3 standard library only.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (build_go, resolve_dir, machine details)

REPO = compare.REPO
IMPLS = ("gort", "go")
METRICS = [  # name, unit, higher is better
    ("requests_per_s", "req/s", True),
    ("p50_ms", "ms", False),
    ("p99_ms", "ms", False),
]


def raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        print(f"http_compare.py: open-file limit {soft} < {need} needed for the connections; "
              f"raise it (ulimit -n) or lower -c", file=sys.stderr)
    return soft


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hello(port: int, timeout: float = 2.0) -> bytes:
    """GET / with Connection: close; returns the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def start_server(cmd: list, port: int, wait_s: float = 15.0):
    """Starts the server and waits until it answers GET / correctly. Returns (proc, error)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + wait_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, f"exited with status {proc.returncode}: {proc.stderr.read().strip()[-500:]}"
        try:
            resp = hello(port)
            if resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"\r\n\r\nhello, world\n"):
                return proc, None
            last = f"unexpected response {resp[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    return proc, f"did not answer GET / within {wait_s:.0f} s ({last})"


def stop_server(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"latency {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """requests_per_s, p50_ms, p99_ms, requests, errors (socket errors + non-2xx/3xx)."""
    got = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        got["requests_per_s"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            got[key] = to_ms(m.group(1))
    m = re.search(r"^\s+(\d+) requests in", out, re.M)
    if m:
        got["requests"] = int(m.group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    got["errors"] = errors
    got["error_text"] = "; ".join(l.strip() for l in out.splitlines()
                                  if "Socket errors" in l or "Non-2xx" in l)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", nargs="?", default="build/release",
                    help="C++ build directory holding examples/http_hello (default: build/release)")
    ap.add_argument("--runs", type=int, default=3, help="runs per server and maxprocs (default 3)")
    ap.add_argument("--procs", default="1,2", help="maxprocs / GOMAXPROCS values (default 1,2)")
    ap.add_argument("-c", "--connections", type=int, default=1000, help="wrk -c (default 1000)")
    ap.add_argument("-t", "--threads", type=int, default=2, help="wrk -t (default 2)")
    ap.add_argument("-d", "--duration", type=int, default=10, help="wrk -d in seconds (default 10)")
    ap.add_argument("--quick", action="store_true", help="-c 50 -d 2 --runs 1: a smoke test")
    ap.add_argument("--impls", default="gort,go", help="comma-separated subset of gort,go")
    ap.add_argument("--go-dir", default=str(REPO / "build" / "bench-go"),
                    help="where the Go programs are built (default: build/bench-go)")
    ap.add_argument("--output", default=str(REPO / "build" / "http-bench-results.md"),
                    help="markdown results file (default: build/http-bench-results.md)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's values")
    opts = ap.parse_args()
    if opts.quick:
        opts.connections, opts.duration, opts.runs = 50, 2, 1
    impls = [i.strip() for i in opts.impls.split(",") if i.strip()]
    procs = [int(p) for p in opts.procs.split(",") if p.strip()]
    if any(i not in IMPLS for i in impls) or not impls or opts.runs < 1 or not procs:
        ap.error("bad --impls, --procs or --runs")

    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("http_compare.py: `wrk` not found (apt-get install wrk)")
    build_dir = compare.resolve_dir(opts.build_dir)
    go_dir = compare.resolve_dir(opts.go_dir)
    programs = {"gort": build_dir / "examples" / "http_hello", "go": go_dir / "http_hello"}
    if "go" in impls:
        compare.build_go(go_dir)
    for impl in impls:
        if not os.access(programs[impl], os.X_OK):
            sys.exit(f"http_compare.py: missing {programs[impl]}" + (
                " (build the C++ tree with libhttp-parser-dev installed: cmake --build "
                f"{build_dir})" if impl == "gort" else ""))
    limit = raise_fd_limit(opts.connections + 100)

    values = {}   # (procs, impl, metric) -> [float]
    failures = []
    started = time.monotonic()
    wrk_cmd = [wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{opts.duration}s", "--latency"]
    for p in procs:
        print(f"http_hello/p{p}: {len(impls)} servers x {opts.runs} runs of "
              f"{' '.join(wrk_cmd[1:])} ...", file=sys.stderr, flush=True)
        for _ in range(opts.runs):
            for impl in impls:
                port = free_port()
                cmd = [str(programs[impl]), f"127.0.0.1:{port}", "--maxprocs", str(p)]
                proc, err = start_server(cmd, port)
                if err:
                    stop_server(proc)
                    failures.append(f"http_hello/p{p} {impl}: {' '.join(cmd)} {err}")
                    continue
                try:
                    r = subprocess.run(wrk_cmd + [f"http://127.0.0.1:{port}/"], capture_output=True,
                                       text=True, timeout=opts.duration + 60)
                except subprocess.TimeoutExpired:
                    r = None
                alive = proc.poll() is None
                stop_server(proc)
                if r is None or r.returncode != 0:
                    why = "timed out" if r is None else f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
                    failures.append(f"http_hello/p{p} {impl}: wrk {why}")
                    continue
                got = parse_wrk(r.stdout)
                missing = [m for m, _, _ in METRICS if m not in got]
                if missing or not alive:
                    failures.append(f"http_hello/p{p} {impl}: " + (
                        "the server died during the run" if not alive else
                        f"could not parse {missing} from wrk:\n{r.stdout}"))
                    continue
                if got["errors"]:
                    failures.append(f"http_hello/p{p} {impl}: wrk reported errors: {got['error_text']}")
                for m, _, _ in METRICS:
                    values.setdefault((p, impl, m), []).append(got[m])
                if opts.verbose:
                    print(f"  http_hello/p{p} {impl:4} " + ", ".join(
                        f"{m}={got[m]:g}" for m, _, _ in METRICS) + f", errors={got['errors']}",
                        file=sys.stderr)

    med = lambda p, i, m: statistics.median(values[(p, i, m)]) if values.get((p, i, m)) else None
    header = ["workload", "metric", "gort median", "Go median", "ratio gort/Go"]
    rows = []
    for p in procs:
        for m, unit, higher in METRICS:
            g, o = med(p, "gort", m), med(p, "go", m)
            ratio = f"{g / o:.2f}" + (" (>1: gort better)" if higher else " (<1: gort better)") \
                if g is not None and o else "-"
            rows.append([f"http_hello/p{p}", m + (" ↑" if higher else ""),
                         f"{compare.fmt(g)} {unit}" if g is not None else "-",
                         f"{compare.fmt(o)} {unit}" if o is not None else "-", ratio])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    lines = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]
    print()
    print("\n".join(lines))
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)

    uname = platform.uname()
    md = [
        "# gort http_hello benchmark results",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {compare.cpu_model()}, {os.cpu_count()} CPUs, {uname.system} {uname.release}",
        f"- Go: {compare.go_version()}",
        f"- load: `{' '.join(wrk_cmd[1:])} http://127.0.0.1:PORT/` (wrk shares the machine), "
        f"open-file limit {limit}",
        f"- runs per server: {opts.runs} (interleaved), median shown",
        f"- elapsed: {time.monotonic() - started:.0f} s",
        "",
        *lines,
        "",
        "## All runs",
        "",
    ]
    for (p, impl, m), vals in sorted(values.items()):
        md.append(f"- http_hello/p{p} {impl} {m}: " + ", ".join(f"{v:g}" for v in vals))
    for f in failures:
        md.append(f"- FAIL {f.splitlines()[0]}")
    out = Path(opts.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
