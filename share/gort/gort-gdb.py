# gort-gdb.py — gdb commands for gort programs, like Go's runtime-gdb.py.
#
#   (gdb) source /usr/share/gort/gort-gdb.py        # or: gdb -x .../gort-gdb.py ./prog [core]
#   (gdb) info goroutines                           # id, status, wait reason, top frame
#   (gdb) goroutine 7 bt                            # backtrace of goroutine 7
#   (gdb) goroutine 7 info registers                # any command, run "inside" goroutine 7
#
# Works on live processes and core files of programs built with debug info (-g): it reads
# the runtime through gort::sched's g_rt (the running Runtime) and Runtime::allgs (every G
# ever allocated; idle and dead ones are skipped), with the layout that debug info gives.
#
# How a parked goroutine is walked: its saved context (arch::Context: sp, fp, pc at offsets
# 0, 8, 16) is what the switch stored when it parked. On a live process the script loads
# those into frame 0's registers, runs the command, and puts the real registers back, so gdb's
# own unwinder does the walk (arguments and locals included). Where registers cannot be
# written (core files), `bt` follows the saved frame-pointer chain instead, which gort keeps
# (-fno-omit-frame-pointer). A running goroutine is shown on the thread of the M running it.
#
# Core files: the kernel's core dumps hold every goroutine stack. gdb's own `gcore` cannot
# read stack slabs guarded with MADV_GUARD_INSTALL (Linux 6.13+) and writes them as holes;
# run with GORT_STACK_GUARD=mprotect when you mean to gcore a process.

import struct

import gdb

# sched::wait_reason_string, by enumerator: the strings a dump prints.
WAIT_REASONS = {
    "none": "",
    "chan_receive": "chan receive",
    "chan_send": "chan send",
    "select": "select",
    "select_no_cases": "select (no cases)",
    "chan_receive_nil": "chan receive (nil chan)",
    "chan_send_nil": "chan send (nil chan)",
    "sleep": "sleep",
    "io_wait": "IO wait",
    "mutex_lock": "sync.Mutex.Lock",
    "rwmutex_rlock": "sync.RWMutex.RLock",
    "rwmutex_lock": "sync.RWMutex.Lock",
    "waitgroup_wait": "sync.WaitGroup.Wait",
    "cond_wait": "sync.Cond.Wait",
    "once_call": "sync.Once.Do",
    "semacquire": "semacquire",
    "sync_semaphore": "semaphore.Acquire",
    "syscall": "syscall",
    "timer_goroutine_idle": "timer goroutine (idle)",
    "forever": "wait forever",
}

# Frames of the runtime's own machinery, left out of "top frame" (as dumps leave them out).
RUNTIME_PREFIXES = ("gort::", "gort_ctx_", "std::", "__")


def _enum_name(v):
    s = str(v)
    return s.rsplit("::", 1)[-1]


def _atomic(v):
    """The value inside a std::atomic (libstdc++ layout)."""
    t = v.type.strip_typedefs()
    for path in (("_M_i",), ("_M_b", "_M_p"), ("_M_base", "_M_i")):
        try:
            x = v
            for f in path:
                x = x[f]
            return x
        except gdb.error:
            continue
    raise gdb.GdbError("gort: cannot read std::atomic of type %s" % t)


def _vector(v):
    impl = v["_M_impl"]
    start, finish = impl["_M_start"], impl["_M_finish"]
    n = int(finish - start)
    return [(start + i).dereference() for i in range(n)]


def _string(v):
    try:
        n = int(v["_M_string_length"])
        if n == 0:
            return ""
        return v["_M_dataplus"]["_M_p"].string(length=n)
    except gdb.error:
        return ""


def runtime():
    for name in ("'gort::sched::(anonymous namespace)::g_rt'", "gort::sched::g_rt"):
        try:
            rt = _atomic(gdb.parse_and_eval(name))
            break
        except gdb.error:
            continue
    else:
        raise gdb.GdbError("gort: no g_rt symbol (is this a gort program with debug info?)")
    if int(rt) == 0:
        raise gdb.GdbError("gort: no runtime is active (gort::run has not started or has returned)")
    return rt.dereference()


def goroutines():
    """Live goroutines, in id order: a list of gdb.Value (sched::G)."""
    out = []
    for gp in _vector(runtime()["allgs"]):
        g = gp.dereference()
        status = _enum_name(_atomic(g["status"]))
        if status in ("idle", "dead"):
            continue
        out.append(g)
    out.sort(key=lambda g: int(g["id"]))
    return out


def find(goid):
    for g in goroutines():
        if int(g["id"]) == goid:
            return g
    raise gdb.GdbError("gort: no goroutine %d" % goid)


def running_thread(g):
    """The gdb thread of the M running g, or None."""
    addr = int(g.address)
    for mp in _vector(runtime()["allm"]):
        m = mp.dereference()
        if int(m["curg"]) != addr:
            continue
        try:
            handle = int(m["thread"]["_M_id"]["_M_thread"])
        except gdb.error:
            return None
        for t in gdb.selected_inferior().threads():
            try:
                if int.from_bytes(t.handle(), "little") == handle:
                    return t
            except (gdb.error, AttributeError):
                pass
    return None


def _functions_at(pc, is_return):
    """The functions at pc, innermost first: the inlined ones, then the one really called."""
    look = pc - 1 if is_return else pc
    names = []
    try:
        block = gdb.block_for_pc(look)
        while block is not None:
            if block.function is not None:
                names.append(block.function.print_name)
            block = block.superblock
    except RuntimeError:
        pass
    if names:
        return names
    sym = gdb.execute("info symbol 0x%x" % look, to_string=True).strip()
    if sym.startswith("No symbol"):
        return ["??"]
    return [sym.split(" in section")[0].split(" + ")[0]]


def _function_at(pc, is_return):
    return _functions_at(pc, is_return)[-1]


def _where(pc, is_return):
    sal = gdb.find_pc_line(pc - 1 if is_return else pc)
    if sal.symtab is not None:
        return " at %s:%d" % (sal.symtab.filename, sal.line)
    return ""


def saved_frames(g, max_frames=64):
    """Return addresses of a parked g, from its saved context and frame-pointer chain."""
    ctx, stack = g["ctx"], g["stack"]
    lo, hi = int(stack["lo"]), int(stack["hi"])
    pcs = [int(ctx["pc"])]
    fp = int(ctx["fp"])
    mem = gdb.selected_inferior()
    while len(pcs) < max_frames and lo <= fp and fp + 16 <= hi and fp % 8 == 0:
        nxt, ret = struct.unpack("<QQ", bytes(mem.read_memory(fp, 16)))
        if ret == 0:
            break
        pcs.append(ret)
        if nxt <= fp:
            break
        fp = nxt
    return pcs


def top_frame(g):
    if not bool(g["started"]):
        return "(not started)"
    status = _enum_name(_atomic(g["status"]))
    if status in ("running", "syscall"):
        t = running_thread(g)
        return "(running on thread %d)" % t.num if t else "(running)"
    pcs = saved_frames(g)
    for i, pc in enumerate(pcs):
        for name in _functions_at(pc, i > 0):
            if not name.startswith(RUNTIME_PREFIXES):
                return name
    return _function_at(pcs[0], False)


class InfoGoroutines(gdb.Command):
    """List gort's goroutines: id, status, wait reason and the first frame outside the runtime."""

    def __init__(self):
        super().__init__("info goroutines", gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        gs = goroutines()
        gdb.write("  %-6s %-9s %-22s %s\n" % ("Id", "Status", "Wait reason", "Top frame"))
        for g in gs:
            status = _enum_name(_atomic(g["status"]))
            reason = ""
            if status == "waiting":
                reason = WAIT_REASONS.get(_enum_name(g["wait_reason"]), _enum_name(g["wait_reason"]))
            elif status == "syscall":
                reason = "syscall"
            name = _string(g["name"])
            mark = "*" if status == "running" else " "
            line = "%s %-6d %-9s %-22s %s" % (mark, int(g["id"]), status, reason or "-", top_frame(g))
            if name:
                line += '  "%s"' % name
            gdb.write(line + "\n")


def _saved_registers(ctx):
    """(register, value) pairs that make frame 0 the parked goroutine's: the stack, frame
    and resume address, and the callee-saved registers the switch stored with them."""
    arch = gdb.selected_frame().architecture().name()
    if "aarch64" in arch:
        regs = [("$sp", ctx["sp"]), ("$x29", ctx["fp"]), ("$pc", ctx["pc"]), ("$x19", ctx["x19"]), ("$x20", ctx["x20"])]
        regs += [("$x%d" % (21 + i), ctx["x21_x28"][i]) for i in range(8)]
    else:
        regs = [("$rsp", ctx["sp"]), ("$rbp", ctx["fp"]), ("$pc", ctx["pc"])]
        regs += [("$" + r, ctx[r]) for r in ("rbx", "r12", "r13", "r14", "r15")]
    return [(r, int(v)) for r, v in regs]


class GoroutineCmd(gdb.Command):
    """goroutine N CMD: run gdb command CMD (bt, info frame, ...) in goroutine N's context."""

    def __init__(self):
        super().__init__("goroutine", gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        parts = arg.split(None, 1)
        if len(parts) < 2:
            raise gdb.GdbError("usage: goroutine N CMD   (e.g. goroutine 7 bt)")
        g = find(int(parts[0]))
        cmd = parts[1]
        status = _enum_name(_atomic(g["status"]))
        if status in ("running", "syscall"):
            t = running_thread(g)
            if t is None:
                raise gdb.GdbError("gort: goroutine %d is running; its thread was not found" % int(g["id"]))
            old = gdb.selected_thread()
            t.switch()
            try:
                gdb.execute(cmd)
            finally:
                old.switch()
            return
        if not bool(g["started"]):
            gdb.write("goroutine %d has not started: no frames\n" % int(g["id"]))
            return
        gdb.execute("select-frame 0")
        regs = _saved_registers(g["ctx"])
        saved = [(r, int(gdb.parse_and_eval(r))) for r, _ in regs]
        try:
            for r, v in regs:
                gdb.execute("set %s = %d" % (r, v), to_string=True)
        except gdb.error:
            # Registers are read-only here (a core file): walk the saved frame pointers.
            if cmd.split()[0] not in ("bt", "backtrace", "where"):
                raise gdb.GdbError("gort: only bt works for parked goroutines here (registers are read-only)")
            n = 0
            for i, pc in enumerate(saved_frames(g)):
                names = _functions_at(pc, i > 0)
                for j, name in enumerate(names):
                    # As gdb prints them: the address on the innermost, inlined callers bare.
                    addr = "0x%016x in " % pc if j == 0 else ""
                    where = _where(pc, i > 0) if j == 0 else ""
                    gdb.write("#%-2d %s%s%s\n" % (n, addr, name, where))
                    n += 1
            return
        try:
            gdb.execute(cmd)
        finally:
            gdb.execute("select-frame 0")
            for r, v in saved:
                gdb.execute("set %s = %d" % (r, v), to_string=True)


InfoGoroutines()
GoroutineCmd()
