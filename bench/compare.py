#!/usr/bin/env python3
"""Runs the gort, Go and Boost.Fiber benchmark programs side by side and compares them.

    python3 bench/compare.py [BUILD_DIR] [--runs N] [--filter REGEX] [--quick]
                             [--procs 1,2,4,8,16]

BUILD_DIR is the C++ build directory (default build/release) holding bench/gort_<workload>
and bench/boost_<workload>; this script builds nothing there. It builds the Go programs
(bench/go) into build/bench-go/ with a private GOCACHE, then runs every selected workload
R times, interleaving the implementations (gort, go, boost, gort, go, boost, ...) so that
drift on the machine hits all of them alike, and prints a table of medians. The table is
also written as markdown to build/bench-results.md.

Every program prints `RESULT <value> <unit> <metric>` lines. Metrics are lower-is-better,
so ratio = gort median / Go median < 1 means gort is faster (or smaller), except those a
workload lists as `higher` (rates such as tcp_echo's round trips/s): they are marked ↑ in
the table, and their ratio (still gort / Go) favours gort above 1.
With --procs, every selected workload runs at those maxprocs instead of its own, and a
second table gives each implementation's scaling curve: for every lower-is-better time
metric, the median at the fewest procs divided by the median at each count (the speedup;
`make bench-scaling` runs fib this way at 1, 2, 4, 8 and 16).
Exit status is non-zero when any program fails, times out or omits a metric.
Python 3 standard library only.
"""
from __future__ import annotations

import argparse
import datetime
import mmap
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Workload:
    name: str            # program name: gort_<name>, boost_<name>, build/bench-go/<name>
    procs: tuple         # maxprocs values to run it at (one table row group each)
    args: list           # size arguments after maxprocs
    quick_args: list     # the same for --quick
    metrics: list        # metric names the table shows, in order
    boost: bool = False  # a Boost.Fiber version exists
    note: str = ""
    higher: tuple = ()   # metrics where higher is better (rates); marked ↑ in the table
    # Each measured run follows an unmeasured run of the same program. For workloads that
    # touch gigabytes of fresh memory: on VMs that hand freed guest pages back to the host,
    # a page the host must back again costs several µs at its first touch, and in plain
    # alternation the runtime with the smaller footprint always reuses pages the other one
    # just freed (the gort run of `parked` needs 4.4 GB, Go's 2.7 GB).
    warmup: bool = False
    label: str = ""      # the id's name when one program is run at two sizes (default: name)

    @property
    def id_name(self) -> str:
        return self.label or self.name


WORKLOADS = [
    Workload("spawn_join", (1, 2), [1_000_000], [10_000], ["total_ms"], boost=True,
             note="spawn 1M trivial goroutines, join with a WaitGroup"),
    Workload("yield_pingpong", (1,), [1_000_000], [20_000], ["ns_per_switch"], boost=True,
             note="two goroutines alternately yield"),
    Workload("fib", (1, 2), [32, 8], [22, 8], ["total_ms"],
             note="fib(32), a goroutine per call above cutoff 8"),
    Workload("parked", (2,), [1_000_000], [10_000], ["rss_per_g", "create_ms", "total_ms"],
             note="1M goroutines blocked on one WaitGroup at once; each measured run "
                  "follows a warm-up run of the same program", warmup=True),
    Workload("chan_pingpong", (1, 2), [1_000_000], [20_000], ["ns_per_roundtrip"], boost=True,
             note="round trip over two unbuffered channels"),
    Workload("chan_buffered", (1, 2), [10_000_000, 128], [200_000, 128], ["ns_per_item"],
             boost=True, note="SPSC, cap-128 channel, 10M items"),
    Workload("chan_mpmc", (2,), [10_000_000, 4, 4, 128], [200_000, 4, 4, 128], ["ns_per_item"],
             note="4 producers x 4 consumers, cap-128 channel"),
    Workload("select4", (1, 2), [1_000_000], [20_000], ["ns_per_select"],
             note="select over 4 unbuffered channels, a sender on each"),
    Workload("mutex_contention", (2,), [1_000_000, 8], [50_000, 8], ["ns_per_op"],
             note="8 goroutines share one Mutex"),
    Workload("sleep_many", (2,), [100_000, 10, 10], [1_000, 3, 10], ["total_ms", "overshoot_us"],
             note="100k goroutines sleep 10 ms ten times"),
    Workload("sleep_many", (2,), [10_000, 10, 10], [1_000, 3, 10], ["total_ms", "overshoot_us"],
             label="sleep_10k",
             note="10k goroutines sleep 10 ms ten times: the Ps have idle gaps, so a wake often "
                  "waits for a thread sleeping until the next timer"),
    Workload("sleep_many", (2,), [10_000, 10, 10, 1], [1_000, 3, 10, 1], ["total_ms", "overshoot_us"],
             label="sleep_10k_fd",
             note="sleep_10k with a goroutine waiting in accept throughout: the thread that "
                  "waits for the next timer does so in the netpoller"),
    Workload("preempt_latency", (1, 2), [200, 1], [50, 1], ["p50_us", "p99_us"],
             note="a 1 ms sleeper's lateness while spinning goroutines hold every P"),
    Workload("tcp_echo", (1, 2), [1000, 1000, 64], [50, 200, 64], ["roundtrips_per_s", "total_ms"],
             higher=("roundtrips_per_s",),
             note="1,000 loopback TCP connections x 1,000 round trips of 64 bytes, one process"),
    Workload("dump_parked", (2,), [100_000], [2_000], ["dump1_ms", "dump2_ms"],
             note="goroutine dump (level 1, then 2) with 100k goroutines parked"),
]

IMPLS = ("gort", "go", "boost")
RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


@dataclass
class Job:
    workload: Workload
    procs: int
    args: list
    programs: dict                               # impl -> Path or None (not available)
    values: dict = field(default_factory=dict)   # (impl, metric) -> [float]
    units: dict = field(default_factory=dict)    # metric -> unit
    failed: dict = field(default_factory=dict)   # impl -> reason

    @property
    def id(self) -> str:
        return f"{self.workload.id_name}/p{self.procs}"


def resolve_dir(p: str) -> Path:
    path = Path(p)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (REPO / path).resolve()


def build_go(out_dir: Path) -> None:
    go = shutil.which("go")
    if not go:
        sys.exit("compare.py: `go` not found (apt-get install golang-go)")
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ,
               GOCACHE=str(out_dir / "gocache"), GOPATH=str(out_dir / "gopath"),
               GO111MODULE="on", GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local",
               CGO_ENABLED="0")
    cmd = [go, "build", "-o", str(out_dir) + os.sep, "./..."]
    r = subprocess.run(cmd, cwd=REPO / "bench" / "go", env=env)
    if r.returncode != 0:
        sys.exit(f"compare.py: go build failed (exit {r.returncode})")


def go_version() -> str:
    try:
        return subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def page_fault_us(size: int = 64 << 20) -> float:
    """Rough cost of a first-touch page fault, in µs: it dominates the workloads that map
    fresh memory (spawn_join, parked), and differs wildly between bare metal and VMs."""
    page = mmap.PAGESIZE
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        t0 = time.perf_counter()
        for i in range(0, size, page):
            m[i] = 1
        t1 = time.perf_counter()
        for i in range(0, size, page):  # the same loop without faults: the Python overhead
            m[i] = 2
        t2 = time.perf_counter()
    finally:
        m.close()
    return max(0.0, (t1 - t0) - (t2 - t1)) * 1e6 / (size // page)


def run_once(job: Job, impl: str, timeout: float, verbose: bool) -> None:
    prog = job.programs[impl]
    cmd = [str(prog), str(job.procs), *map(str, job.args)]
    try:
        if job.workload.warmup:
            subprocess.run(cmd, capture_output=True, timeout=timeout)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        job.failed[impl] = f"timed out after {timeout:.0f} s: {' '.join(cmd)}"
        return
    except OSError as e:
        job.failed[impl] = f"could not run {' '.join(cmd)}: {e}"
        return
    got = {}
    for line in r.stdout.splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            try:
                got[m.group(3)] = (float(m.group(1)), m.group(2))
            except ValueError:
                pass
    missing = [mt for mt in job.workload.metrics if mt not in got]
    if r.returncode != 0 or missing:
        why = f"exit status {r.returncode}" if r.returncode != 0 else f"no RESULT for {missing}"
        tail = "\n".join((r.stderr or "").strip().splitlines()[-8:])
        job.failed[impl] = f"{why}: {' '.join(cmd)}" + (f"\n{tail}" if tail else "")
        return
    for mt in job.workload.metrics:
        value, unit = got[mt]
        job.values.setdefault((impl, mt), []).append(value)
        job.units[mt] = unit
    if verbose:
        shown = ", ".join(f"{mt}={got[mt][0]:g}" for mt in job.workload.metrics)
        print(f"  {job.id:22} {impl:5} {shown}", file=sys.stderr)


def fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def median(job: Job, impl: str, metric: str):
    vals = job.values.get((impl, metric))
    return statistics.median(vals) if vals else None


def table(jobs: list) -> list:
    header = ["workload", "metric", "gort median", "Go median",
              "ratio gort/Go (<1: gort better; ↑: >1)", "Boost.Fiber median"]
    rows = []
    for job in jobs:
        for mt in job.workload.metrics:
            unit = job.units.get(mt, "")
            g, o, b = (median(job, i, mt) for i in IMPLS)
            cell = lambda impl, v: "FAIL" if impl in job.failed else (
                f"{fmt(v)} {unit}" if v is not None else "-")
            ratio = f"{g / o:.2f}" if g is not None and o and impl_ok(job) else "-"
            shown = f"{mt} ↑" if mt in job.workload.higher else mt
            rows.append([job.id, shown, cell("gort", g), cell("go", o), ratio, cell("boost", b)])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return out


def scaling(jobs: list) -> list:
    """Speedup of each implementation against its own run at the fewest procs, for every
    workload run at several procs (time metrics: lower is better)."""
    by_workload = {}
    for job in jobs:
        by_workload.setdefault(job.workload.id_name, []).append(job)
    header = ["workload", "metric", "procs", "gort median", "gort speedup", "Go median", "Go speedup"]
    rows = []
    for name, group in by_workload.items():
        group = sorted(group, key=lambda j: j.procs)
        if len(group) < 2:
            continue
        for mt in group[0].workload.metrics:
            if mt in group[0].workload.higher or group[0].units.get(mt) not in ("ns", "us", "ms", "s"):
                continue  # rates and sizes: not a time to divide
            base = {i: median(group[0], i, mt) for i in ("gort", "go")}
            for job in group:
                cells = [name, mt, str(job.procs)]
                for impl in ("gort", "go"):
                    v = median(job, impl, mt)
                    b = base[impl]
                    cells += [f"{fmt(v)} {job.units.get(mt, '')}" if v is not None else "-",
                              f"{b / v:.2f}x" if v and b else "-"]
                rows.append(cells)
    if not rows:
        return []
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]


def impl_ok(job: Job) -> bool:
    return "gort" not in job.failed and "go" not in job.failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", nargs="?", default="build/release",
                    help="C++ build directory (default: build/release)")
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per program (default 5; 1 with --quick)")
    ap.add_argument("--filter", default=None,
                    help="regex on workload/pN ids, e.g. 'fib' or 'chan_.*/p2'")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one run: a smoke test that checks every program works")
    ap.add_argument("--impls", default=",".join(IMPLS),
                    help="comma-separated subset of gort,go,boost (default: all; boost is "
                         "skipped silently where not built)")
    ap.add_argument("--go-dir", default=str(REPO / "build" / "bench-go"),
                    help="where the Go programs are built (default: build/bench-go)")
    ap.add_argument("--prebuilt-go", action="store_true",
                    help="use the Go programs already in --go-dir, without a Go toolchain "
                         "(a machine that cannot install one: see bench/device-scaling.sh)")
    ap.add_argument("--output", default=str(REPO / "build" / "bench-results.md"),
                    help="markdown results file (default: build/bench-results.md)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per program run (default 600; 60 with --quick)")
    ap.add_argument("--procs", default=None,
                    help="comma-separated maxprocs to run every selected workload at, e.g. "
                         "1,2,4,8,16; adds a scaling table (speedup against the fewest)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's values")
    opts = ap.parse_args()

    runs = opts.runs if opts.runs is not None else (1 if opts.quick else 5)
    timeout = opts.timeout if opts.timeout is not None else (60.0 if opts.quick else 600.0)
    impls = [i.strip() for i in opts.impls.split(",") if i.strip()]
    bad = [i for i in impls if i not in IMPLS]
    if bad or runs < 1:
        ap.error(f"unknown implementation(s) {bad}" if bad else "--runs must be >= 1")
    pattern = re.compile(opts.filter) if opts.filter else None
    try:
        procs_override = [int(p) for p in opts.procs.split(",")] if opts.procs else None
    except ValueError:
        ap.error(f"--procs wants comma-separated integers, got {opts.procs!r}")
    if procs_override and min(procs_override) < 1:
        ap.error("--procs values must be >= 1")

    build_dir = resolve_dir(opts.build_dir)
    go_dir = resolve_dir(opts.go_dir)
    jobs = []
    for w in WORKLOADS:
        for p in (procs_override or w.procs):
            job = Job(w, p, w.quick_args if opts.quick else w.args, {})
            if pattern and not pattern.search(job.id):
                continue
            job.programs = {
                "gort": build_dir / "bench" / f"gort_{w.name}" if "gort" in impls else None,
                "go": go_dir / w.name if "go" in impls else None,
                "boost": (build_dir / "bench" / f"boost_{w.name}"
                          if "boost" in impls and w.boost else None),
            }
            jobs.append(job)
    if opts.list:
        for job in jobs:
            print(f"{job.id:22} {' '.join(map(str, job.args)):28} {job.workload.note}")
        return 0
    if not jobs:
        sys.exit(f"compare.py: no workload matches --filter {opts.filter!r}")

    if "go" in impls and not opts.prebuilt_go:
        build_go(go_dir)
    for job in jobs:
        for impl in ("gort", "go"):
            prog = job.programs[impl]
            if prog is not None and not os.access(prog, os.X_OK):
                job.failed[impl] = f"missing program {prog}" + (
                    " (build the C++ tree first: cmake --build " + str(build_dir) + ")"
                    if impl == "gort" else "")
        prog = job.programs["boost"]
        if prog is not None and not os.access(prog, os.X_OK):
            job.programs["boost"] = None  # Boost.Fiber is optional

    fault_us = page_fault_us()
    started = time.monotonic()
    for job in jobs:
        active = [i for i in IMPLS if job.programs[i] is not None and i not in job.failed]
        print(f"{job.id}: {len(active)} programs x {runs} runs ...", file=sys.stderr, flush=True)
        for _ in range(runs):
            for impl in active:
                if impl not in job.failed:
                    run_once(job, impl, timeout, opts.verbose)

    failures = [(job.id, impl, why) for job in jobs for impl, why in job.failed.items()]
    lines = table(jobs)
    curve = scaling(jobs) if procs_override else []
    print()
    print("\n".join(lines))
    if curve:
        print()
        print("\n".join(curve))
    for jid, impl, why in failures:
        print(f"FAIL {jid} {impl}: {why}", file=sys.stderr)

    uname = platform.uname()
    md = [
        "# gort benchmark results",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, {uname.system} {uname.release}",
        f"- first-touch page fault: ~{fault_us:.2f} µs (dominates spawn_join/parked when high)",
        f"- Go: {go_version() if not opts.prebuilt_go else 'prebuilt in ' + str(go_dir)}",
        f"- runs per program: {runs} (interleaved), median shown"
        + ("; --quick sizes" if opts.quick else ""),
        f"- elapsed: {time.monotonic() - started:.0f} s",
        "",
        "Metrics are lower-is-better except those marked ↑ (rates). ratio = gort median / "
        "Go median: below 1 gort is faster (or uses less memory); for ↑ metrics above 1 is "
        "better. `pN` is maxprocs / GOMAXPROCS / fiber threads.",
        "",
        *lines,
        "",
        *(["## Scaling (speedup against the fewest procs)", "", *curve, ""] if curve else []),
        "## Workloads",
        "",
        *[f"- `{w.id_name}` ({' '.join(map(str, w.quick_args if opts.quick else w.args))}): "
          f"{w.note}" for w in WORKLOADS],
        "",
        "## All runs",
        "",
    ]
    for job in jobs:
        for (impl, mt), vals in sorted(job.values.items()):
            md.append(f"- {job.id} {impl} {mt}: " + ", ".join(f"{v:g}" for v in vals))
    for jid, impl, why in failures:
        md.append(f"- FAIL {jid} {impl}: {why.splitlines()[0]}")
    out = Path(opts.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
