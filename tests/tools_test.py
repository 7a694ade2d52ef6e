#!/usr/bin/env python3
"""Tests of gort's debugging tools, each running tests/tools_child.cpp in a child process.

  tools_test.py CHILD trace       GORT_TRACE: the file parses as JSON and its events balance
  tools_test.py CHILD trace_long  GORT_TRACE of a long run: spilled chunks decode in order
  tools_test.py CHILD schedtrace  GORT_DEBUG=schedtrace=1: well-formed SCHED lines
  tools_test.py CHILD gdb SCRIPT [nocore]
                                  share/gort/gort-gdb.py: info goroutines, goroutine N bt, on a
                                  live process and on its core file (not with nocore)
  tools_test.py CHILD valgrind    valgrind: no errors, no "client switching stacks?" warnings
  tools_test.py CHILD curl        debug::serve's pages fetched with curl: dumps, JSON, keep-alive
  tools_test.py CHILD chromium BROWSER
                                  debug::serve's index page and a dump rendered by headless
                                  Chromium (--dump-dom): the links are there

Exits 0 when every check passes; prints what failed otherwise.
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

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


def test_trace_long(child):
    """A trace much longer than an M's buffer (32768 records): spilled chunks and the
    records still in memory decode to one stream per track, stamps never going back."""
    n = 30000
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        start = time.monotonic()
        r = subprocess.run([child, "trace_long", str(n)], env=dict(os.environ, GORT_TRACE=path),
                           capture_output=True, text=True, timeout=300)
        wall_us = (time.monotonic() - start) * 1e6
        check(r.returncode == 0, "tools_child trace_long exited %d: %s" % (r.returncode, r.stderr))
        with open(path) as f:
            doc = json.load(f)
    events = [e for e in doc["traceEvents"] if e["ph"] != "M"]
    last_ts, depth = {}, collections.Counter()
    for e in events:
        tid = e["tid"]
        check(0 <= e["ts"] <= wall_us, "a stamp outside the run: %s" % e)
        check(e["ts"] >= last_ts.get(tid, 0), "a stamp going back on tid %s: %s" % (tid, e))
        last_ts[tid] = e["ts"]
        if e["ph"] == "B":
            depth[tid] += 1
        elif e["ph"] == "E":
            depth[tid] -= 1
        check(depth[tid] in (0, 1), "unbalanced slices on tid %s at %s" % (tid, e))
    unparks = sum(1 for e in events if e.get("name") == "GoUnpark")
    # Each round trip parks and wakes each side at least once, unless a receiver found its
    # value waiting: at least one unpark per round trip.
    check(unparks >= n, "%d GoUnpark events for %d round trips" % (unparks, n))
    check(len(events) > 4 * 32768, "%d events: too few to have spilled" % len(events))
    print("trace_long: %d events, %d unparks, %d tracks" % (len(events), unparks, len(last_ts)))


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


class ServeChild:
    """tools_child serve: a debug server on 127.0.0.1:<port> until the context ends."""

    def __init__(self, child):
        self.p = subprocess.Popen([child, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.addr = self.p.stdout.readline().strip()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.stdin.close()
        rc = self.p.wait(timeout=60)
        check(rc == 0, "tools_child serve exited %d: %s" % (rc, self.p.stderr.read()))


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "60"] + list(args), capture_output=True, text=True,
                       timeout=90)
    check(r.returncode == 0, "curl %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def test_curl(child):
    with ServeChild(child) as s:
        check(re.match(r"^127\.0\.0\.1:\d+$", s.addr) is not None, "not a loopback address: %r" % s.addr)
        base = "http://" + s.addr
        # -i: the status line and headers too (CRLFs read as newlines in text mode).
        out = curl("-i", base + "/debug/pprof/goroutine?debug=2").stdout
        check(out.startswith("HTTP/1.1 200 OK\n"), "debug=2: %r" % out[:200])
        check("\nContent-Type: text/plain; charset=utf-8\n" in out, "debug=2 is not text/plain")
        check(re.search(r'^goroutine \d+ \[chan receive\] "parked for curl":\n(.*\n)*?gort_serve_parked_here',
                        out, re.M), "debug=2 does not show the parked goroutine: %s" % out)
        out = curl(base + "/debug/pprof/goroutine?debug=1").stdout
        check(out.startswith("goroutine profile: total "), "debug=1: %r" % out[:200])
        check("gort_serve_parked_here" in out, "debug=1 does not show the parked goroutine's frame")
        doc = json.loads(curl(base + "/debug/vars").stdout)  # raises (fails the test) if not JSON
        for k in ("goroutines", "threads", "procs", "context_switches", "parks", "netpoll_waits"):
            check(isinstance(doc.get(k), int), "/debug/vars has no integer %s: %s" % (k, doc))
        check(doc.get("procs") == 2, "/debug/vars procs %s, want 2" % doc.get("procs"))
        check(doc.get("goroutines", 0) >= 3, "/debug/vars goroutines %s, want >= 3" % doc.get("goroutines"))
        check(isinstance(doc.get("cmdline"), list) and doc["cmdline"][-1:] == ["serve"],
              "/debug/vars cmdline %s" % doc.get("cmdline"))
        check(doc.get("memstats", {}).get("rss_bytes", 0) > 0, "/debug/vars memstats %s" % doc.get("memstats"))
        out = curl(base + "/debug/sched").stdout
        check(SCHED.match(out.split("\n")[0]) is not None, "/debug/sched: %r" % out[:200])
        out = curl(base + "/").stdout
        for href in ("/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2", "/debug/vars",
                     "/debug/sched"):
            check('<a href="%s">' % href in out, "the index has no link to %s" % href)
        # Status codes: unknown path, other methods, HEAD, HTTP/1.0.
        code = lambda *a: curl("-o", "/dev/null", "-w", "%{http_code}", *a).stdout
        check(code(base + "/nope") == "404", "/nope is not 404")
        check(code("-X", "POST", "-d", "x=1", base + "/debug/vars") == "405", "POST is not 405")
        check(code("-X", "DELETE", base + "/") == "405", "DELETE is not 405")
        check(code("-0", base + "/debug/sched") == "200", "HTTP/1.0 is not 200")
        out = curl("-I", base + "/debug/vars").stdout
        check(out.startswith("HTTP/1.1 200 OK") and "Content-Length: " in out, "HEAD: %r" % out)
        # Keep-alive: curl reuses one connection for two URLs.
        r = curl("-v", "-o", "/dev/null", "-o", "/dev/null", base + "/debug/sched", base + "/debug/vars")
        check("Re-using existing connection" in r.stderr, "curl did not reuse the connection: %s" % r.stderr)
        # Connection: close is honoured: curl sees the server close it.
        r = curl("-v", "-o", "/dev/null", "-H", "Connection: close", base + "/debug/sched")
        check("< Connection: close" in r.stderr, "no Connection: close in the response: %s" % r.stderr)
    print("curl: every page as expected from " + s.addr)


def test_chromium(child, browser):
    with ServeChild(child) as s, tempfile.TemporaryDirectory() as profile:
        def dump_dom(path):
            r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--user-data-dir=" + profile, "--dump-dom", "http://" + s.addr + path],
                               capture_output=True, text=True, timeout=180)
            check(r.returncode == 0, "%s exited %d: %s" % (browser, r.returncode, r.stderr[-2000:]))
            return r.stdout
        dom = dump_dom("/")
        print(dom)
        check("<title>gort debug</title>" in dom, "the rendered page has no title")
        links = re.findall(r'<a href="([^"]+)">', dom)
        check(links == ["/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2", "/debug/vars",
                        "/debug/sched"], "the rendered page's links: %s" % links)
        m = re.search(r"Goroutines alive: (\d+)\.", dom)
        check(m is not None and int(m.group(1)) >= 3, "the rendered page does not count goroutines")
        # A text page renders as <pre>: the goroutine the child parked is in it.
        dom = dump_dom("/debug/pprof/goroutine?debug=2")
        check("<pre" in dom and "gort_serve_parked_here" in dom and "parked for curl" in dom,
              "the rendered dump lacks the parked goroutine: %s" % dom[:2000])
    print("chromium: the index renders with its links")


def main():
    child, case = sys.argv[1], sys.argv[2]
    if case == "trace":
        test_trace(child)
    elif case == "trace_long":
        test_trace_long(child)
    elif case == "schedtrace":
        test_schedtrace(child)
    elif case == "gdb":
        test_gdb(child, sys.argv[3], sys.argv[4:] != ["nocore"])
    elif case == "valgrind":
        test_valgrind(child)
    elif case == "curl":
        test_curl(child)
    elif case == "chromium":
        test_chromium(child, sys.argv[3])
    else:
        sys.exit("unknown case " + case)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
