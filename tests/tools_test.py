#!/usr/bin/env python3
"""Tests of gort's debugging tools, each running tests/tools_child.cpp in a child process.

  tools_test.py CHILD trace       GORT_TRACE: the file parses as JSON and its events balance
  tools_test.py CHILD schedtrace  GORT_DEBUG=schedtrace=1: well-formed SCHED lines
  tools_test.py CHILD gdb SCRIPT [nocore]
                                  share/gort/gort-gdb.py: info goroutines, goroutine N bt, on a
                                  live process and on its core file (not with nocore)
  tools_test.py CHILD valgrind    valgrind: no errors, no "client switching stacks?" warnings

Exits 0 when every check passes; prints what failed otherwise.
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def test_trace(child):
    n = 300
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        r = subprocess.run([child, "trace", str(n)], env=dict(os.environ, GORT_TRACE=path),
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "tools_child trace exited %d: %s" % (r.returncode, r.stderr))
        with open(path) as f:
            doc = json.load(f)  # raises (and fails the test) if it is not JSON
    events = doc["traceEvents"]
    check(len(events) > 0, "no events")
    # Every B has its E on the same track, in order (events of a track are in file order).
    open_slice = {}
    for e in events:
        for k in ("ph", "pid", "tid", "ts"):
            check(k in e, "event without %s: %s" % (k, e))
        tid = e["tid"]
        if e["ph"] == "B":
            check(tid not in open_slice, "B inside an open slice on tid %s: %s" % (tid, e))
            open_slice[tid] = e
        elif e["ph"] == "E":
            check(tid in open_slice, "E without a B on tid %s: %s" % (tid, e))
            if tid in open_slice:
                check(e["ts"] >= open_slice[tid]["ts"], "E before its B on tid %s" % tid)
            open_slice.pop(tid, None)
    check(not open_slice, "slices left open: %s" % open_slice)
    names = collections.Counter(e.get("name") for e in events if e["ph"] == "i")
    # main's n children, and one echo goroutine each.
    check(names["GoCreate"] >= 2 * n, "%d GoCreate events, want >= %d" % (names["GoCreate"], 2 * n))
    check(names["GoUnpark"] > 0, "no GoUnpark events")
    check(names["GoSysCall"] > 0 and names["GoSysExit"] > 0, "no GoSysCall/GoSysExit events")
    reasons = collections.Counter(e["args"]["reason"] for e in events if e.get("name") == "GoPark")
    check(reasons["chan receive"] + reasons["chan send"] > 0, "no park on a channel: %s" % reasons)
    check(reasons["sync.WaitGroup.Wait"] > 0, "no park with reason 'sync.WaitGroup.Wait': %s" % reasons)
    started = {e["args"]["g"] for e in events if e["ph"] == "B"}
    check(len(started) >= 2 * n + 1, "%d goroutines ran, want >= %d" % (len(started), 2 * n + 1))
    tracks = {e["tid"] for e in events if e["ph"] == "M" and e.get("name") == "thread_name"}
    check({e["tid"] for e in events if e["ph"] == "B"} <= tracks, "a track without a thread_name")
    print("trace: %d events, %d goroutines ran, %d creates, parks %s" %
          (len(events), len(started), names["GoCreate"], dict(reasons)))


SCHED = re.compile(r"^SCHED (\d+)ms: gomaxprocs=2 idleprocs=\d+ threads=\d+ spinningthreads=\d+ "
                   r"idlethreads=\d+ runqueue=\d+ \[\d+ \d+\]$")


def test_schedtrace(child):
    p = subprocess.Popen([child, "schedtrace"], env=dict(os.environ, GORT_DEBUG="schedtrace=1"),
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    # Read until three lines came, then tell the child to finish by closing its stdin.
    for line in p.stderr:
        lines.append(line.rstrip("\n"))
        if len([l for l in lines if l.startswith("SCHED")]) >= 3:
            break
    p.stdin.close()
    rest = p.stderr.read()
    rc = p.wait(timeout=60)
    check(rc == 0, "tools_child schedtrace exited %d: %s" % (rc, rest))
    sched = [l for l in lines if l.startswith("SCHED")]
    check(len(sched) >= 3, "fewer than 3 SCHED lines: %s" % lines)
    times = []
    for l in sched:
        m = SCHED.match(l)
        if check(m is not None, "malformed line: %r" % l):
            times.append(int(m.group(1)))
    check(times == sorted(times), "SCHED times go backwards: %s" % times)
    print("schedtrace: " + (sched[0] if sched else "(none)"))


def test_gdb(child, script, with_core):
    with tempfile.TemporaryDirectory() as d:
        core = os.path.join(d, "child.core")
        base = ["gdb", "-nx", "-batch", "-x", script]
        live = subprocess.run(
            base + ["-ex", "run", "-ex", "info goroutines", "-ex", "goroutine 2 bt",
                    "-ex", "echo @@after\\n", "-ex", "bt 1", "-ex", "kill",
                    "--args", child, "gdb"],
            capture_output=True, text=True, timeout=120)
        out = live.stdout + live.stderr
        print(out)
        check("SIGTRAP" in out, "the child did not stop with SIGTRAP")
        # Goroutines 2, 3, 4 are parked in gort_gdb_parked_here on a channel receive.
        for goid in (2, 3, 4):
            check(re.search(r"^\s+%d\s+waiting\s+chan receive\s+gort_gdb_parked_here" % goid, out, re.M),
                  "info goroutines does not show goroutine %d parked in gort_gdb_parked_here" % goid)
        check(re.search(r"^\*\s+1\s+running", out, re.M), "info goroutines does not show goroutine 1 running")
        check(re.search(r"#\d+\s+.*gort_gdb_parked_here", out), "goroutine 2 bt does not reach gort_gdb_parked_here")
        # The thread's own registers are back afterwards: it is still in raise(SIGTRAP).
        after = out[out.find("@@after"):]
        check("@@after" in out and re.search(r"#0 .*(pthread_kill|raise)", after),
              "after goroutine 2 bt the thread's frame is not restored: %r" % after[:300])
        if not with_core:
            return
        # A core file, from gcore: it cannot read kernel-guarded stack slabs (see gort-gdb.py),
        # so this process uses mprotect guards.
        subprocess.run(base + ["-ex", "run", "-ex", "gcore " + core, "-ex", "kill", "--args", child, "gdb"],
                       env=dict(os.environ, GORT_STACK_GUARD="mprotect"), capture_output=True, timeout=120)
        check(os.path.exists(core), "gcore wrote no core file")
        if not os.path.exists(core):
            return
        dead = subprocess.run(base + ["-ex", "info goroutines", "-ex", "goroutine 3 bt", child, core],
                              capture_output=True, text=True, timeout=120)
        out = dead.stdout + dead.stderr
        print(out)
        check(re.search(r"^\s+3\s+waiting\s+chan receive\s+gort_gdb_parked_here", out, re.M),
              "core file: info goroutines does not show goroutine 3")
        check(re.search(r"#\d+\s+.*gort_gdb_parked_here", out), "core file: goroutine 3 bt does not reach gort_gdb_parked_here")


def test_valgrind(child):
    r = subprocess.run(["valgrind", "--error-exitcode=1", "-q", child, "valgrind"],
                       capture_output=True, text=True, timeout=300)
    print(r.stderr[-4000:])
    check(r.returncode == 0, "valgrind exited %d" % r.returncode)
    check("switching stacks" not in r.stderr, "valgrind warned about switching stacks")
    check("Invalid" not in r.stderr, "valgrind reported invalid accesses")


def main():
    child, case = sys.argv[1], sys.argv[2]
    if case == "trace":
        test_trace(child)
    elif case == "schedtrace":
        test_schedtrace(child)
    elif case == "gdb":
        test_gdb(child, sys.argv[3], sys.argv[4:] != ["nocore"])
    elif case == "valgrind":
        test_valgrind(child)
    else:
        sys.exit("unknown case " + case)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
