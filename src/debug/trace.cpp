// debug/trace — recording and writing GORT_TRACE files. Invariants: see trace.hpp.
//
// Why binary first, text last: a switch costs tens of nanoseconds, so formatting JSON at
// each event would multiply its cost; a record is one 16-byte store and a cycle-counter
// read. Cycle counts become microseconds at the end, calibrated against CLOCK_MONOTONIC
// at start and stop.
#include "debug/trace.hpp"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace gort::trace {

namespace detail {
std::atomic<bool> g_on{false};
}

namespace {

using namespace gort::sched;

// `sw` is one switch on an M: it ends g's slice (g >= 0) and begins a's (a >= 0); the file
// shows it as E (and a GoPark instant) then B. One record per switch keeps tracing cheap.
enum class Kind : std::uint8_t { sw, create, unpark, steal, sys_block, handoff, sys_exit };
// Why a slice ended (M::pending of the switch that ended it).
enum class Why : std::uint8_t { none, yield, park, exit, syscall, trace_end };

struct Event {
  std::uint64_t t;    // cycle counter
  std::int64_t g;     // goroutine id (steal: the thief's P)
  std::int64_t a;     // sw: the goroutine switched to (-1: g0); create: parent id; steal: victim P
  std::uint32_t n;    // steal: goroutines taken
  Kind kind;
  Why why;            // sw: why g stopped
  WaitReason reason;  // sw with why == park
};

// What a buffer stores: an Event in 16 bytes, since writing the records out is most of
// what tracing costs (a ping-pong records ~4 per round trip). The stamp is the ticks
// since the buffer's previous record; a gap that does not fit 32 bits is preceded by a
// clock record holding the full stamp. Ids keep 40 bits (sign-extended back: -1 is g0); a
// steal packs its count above the victim P's id.
//   lo: dt (32) | kind (3) why (3) (8) | reason (8) | g bits 0..15
//   hi: g bits 16..39 | a (40)
struct Record {
  std::uint64_t lo, hi;
};
static_assert(sizeof(Record) == 16);
constexpr std::uint8_t kClock = 7;  // the kind of a clock record
constexpr std::uint64_t kId40 = (std::uint64_t(1) << 40) - 1;

Record pack(std::uint32_t dt, std::uint8_t kind, std::uint8_t why, std::uint8_t reason, std::uint64_t g,
            std::uint64_t a) noexcept {
  g &= kId40;
  a &= kId40;
  return Record{dt | std::uint64_t(kind | why << 3) << 32 | std::uint64_t(reason) << 40 | (g & 0xFFFF) << 48,
                g >> 16 | a << 24};
}

std::int64_t sign_extend40(std::uint64_t v) noexcept { return std::int64_t(v << 24) >> 24; }

// Decodes r, advancing t (the stamp of the record before it). False for a clock record.
bool unpack(const Record& r, std::uint64_t& t, Event& e) noexcept {
  const auto kind = std::uint8_t(r.lo >> 32 & 7);
  const std::uint64_t g = (r.lo >> 48) | (r.hi & 0xFFFFFF) << 16, a = r.hi >> 24;
  if (kind == kClock) {
    t = g | a << 40;
    return false;
  }
  t += std::uint32_t(r.lo);
  e = Event{t, sign_extend40(g), sign_extend40(a), 0, Kind(kind), Why(r.lo >> 35 & 7), WaitReason(r.lo >> 40 & 0xFF)};
  if (e.kind == Kind::steal) {
    e.n = std::uint32_t(a >> 20);
    e.a = std::int64_t(a & 0xFFFFF);
  }
  return true;
}

constexpr std::uint32_t kChunk = 32768;  // records per buffer (512 KiB) before a spill
constexpr std::int64_t kPlainTid = 1'000'000;

struct Buffer {
  std::int64_t tid = 0;
  std::uint64_t gen = 0;        // the run it belongs to (an abandoned M keeps a stale one)
  // Owner only (the plain buffer: under g_plain_mu):
  std::uint32_t n = 0;
  std::uint64_t last_t = 0;     // the stamp of the last record put
  std::uint64_t chunk_t = 0;    // the stamp before ev[0]
  Record ev[kChunk];
};

std::mutex g_mu;                   // guards everything below except the M buffers' contents
std::vector<Buffer*> g_bufs;       // every buffer of this run, for the flush
std::FILE* g_spill = nullptr;      // full buffers, binary: {tid, n, events...}
std::string g_path;
std::uint64_t g_gen = 0;
std::uint64_t g_t0 = 0;
std::int64_t g_ns0 = 0;            // monotonic at g_t0
std::int64_t g_run_start_ns = 0;   // ts 0 of the trace

std::mutex g_plain_mu;             // the plain threads' shared buffer
Buffer* g_plain = nullptr;

[[gnu::tls_model("initial-exec")]] thread_local Buffer* tls_buf = nullptr;

inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#elif defined(__aarch64__)
  std::uint64_t v;
  asm volatile("mrs %0, cntvct_el0" : "=r"(v));
  return v;
#else
  return std::uint64_t(monotonic_ns());
#endif
}

void spill(Buffer* b) noexcept {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_spill && b->gen == g_gen) {
    std::fwrite(&b->tid, sizeof b->tid, 1, g_spill);
    std::fwrite(&b->n, sizeof b->n, 1, g_spill);
    std::fwrite(&b->chunk_t, sizeof b->chunk_t, 1, g_spill);
    std::fwrite(b->ev, sizeof(Record), b->n, g_spill);
  }
  b->n = 0;
  b->chunk_t = b->last_t;
}

inline void put(Buffer* b, const Event& e) noexcept {
  if (b->n + 2 > kChunk) spill(b);  // room for a clock record and the event
  std::uint64_t dt = e.t - b->last_t;
  if (dt > 0xFFFFFFFFu) {
    b->ev[b->n++] = pack(0, kClock, 0, 0, e.t & kId40, e.t >> 40);
    dt = 0;
  }
  const std::uint64_t a = e.kind == Kind::steal ? std::uint64_t(e.a) | std::uint64_t(e.n) << 20 : std::uint64_t(e.a);
  b->ev[b->n++] = pack(std::uint32_t(dt), std::uint8_t(e.kind), std::uint8_t(e.why), std::uint8_t(e.reason),
                       std::uint64_t(e.g), a);
  b->last_t = e.t;
}

Buffer* new_buffer(std::int64_t tid) {
  auto* b = new Buffer;
  b->tid = tid;
  std::lock_guard<std::mutex> l(g_mu);
  b->gen = g_gen;
  g_bufs.push_back(b);
  return b;
}

// The calling M's buffer; nullptr if this thread is an M of an earlier run.
Buffer* m_buffer(const M* m) noexcept {
  Buffer* b = tls_buf;
  if (!b) {
    b = tls_buf = new_buffer(m->id);
  }
  return b->gen == g_gen ? b : nullptr;
}

// Records one event on the calling thread's track.
void record(Event e) noexcept {
  e.t = ticks();
  if (const M* m = this_m()) {
    if (Buffer* b = m_buffer(m)) put(b, e);
    return;
  }
  std::lock_guard<std::mutex> l(g_plain_mu);
  if (g_plain) put(g_plain, e);
}

Why why_of(AfterSwitch a) noexcept {
  switch (a) {
    case AfterSwitch::requeue: return Why::yield;
    case AfterSwitch::park: return Why::park;
    case AfterSwitch::exit: return Why::exit;
    case AfterSwitch::to_global: return Why::syscall;
    case AfterSwitch::none: break;
  }
  return Why::none;
}

const char* why_string(Why w) noexcept {
  switch (w) {
    case Why::none: return "switch";
    case Why::yield: return "yield";
    case Why::park: return "park";
    case Why::exit: return "exit";
    case Why::syscall: return "syscall, no P free";
    case Why::trace_end: return "trace end";
  }
  return "?";
}

// ---- writing the file ------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::FILE* f) : f_(f) { s_.reserve(1 << 20); }
  ~Writer() { flush(); }

  void raw(const char* s) { s_ += s; }
  void num(std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    s_.append(buf, std::size_t(r.ptr - buf));
  }
  // Nanoseconds as microseconds with three decimals (the format's unit is µs).
  void us(std::int64_t ns) {
    if (ns < 0) ns = 0;
    num(ns / 1000);
    char frac[4] = {'.', char('0' + ns / 100 % 10), char('0' + ns / 10 % 10), char('0' + ns % 10)};
    s_.append(frac, 4);
  }
  void str(const char* s) {  // a JSON string; ours never need escaping
    s_ += '"';
    s_ += s;
    s_ += '"';
  }
  // Starts an event object: the comma between events, then the common fields.
  void open(const char* ph, std::int64_t tid, std::int64_t ns) {
    if (!first_) s_ += ",\n";
    first_ = false;
    raw("{\"ph\":");
    str(ph);
    raw(",\"pid\":1,\"tid\":");
    num(tid);
    raw(",\"ts\":");
    us(ns);
    if (s_.size() > (1 << 20) - 512) flush();
  }
  void flush() {
    if (!s_.empty()) std::fwrite(s_.data(), 1, s_.size(), f_);
    s_.clear();
  }

 private:
  std::FILE* f_;
  std::string s_;
  bool first_ = true;
};

struct Clock {
  std::uint64_t t0;
  double ns_per_tick;
  std::int64_t base;  // ns from the run's start to t0
  std::int64_t ns(std::uint64_t t) const {
    return base + std::int64_t(double(std::int64_t(t - t0)) * ns_per_tick);
  }
};

void write_event(Writer& w, std::int64_t tid, const Event& e, const Clock& c) {
  const std::int64_t ns = c.ns(e.t);
  if (e.kind == Kind::sw) {
    if (e.g >= 0) {
      if (e.why == Why::park) {
        w.open("i", tid, ns);
        w.raw(",\"s\":\"t\",\"name\":\"GoPark\",\"args\":{\"g\":");
        w.num(e.g);
        w.raw(",\"reason\":");
        w.str(wait_reason_string(e.reason));
        w.raw("}}");
      }
      w.open("E", tid, ns);
      w.raw(",\"args\":{\"why\":");
      w.str(why_string(e.why));
      if (e.why == Why::park) {
        w.raw(",\"reason\":");
        w.str(wait_reason_string(e.reason));
      }
      w.raw("}}");
    }
    if (e.a >= 0) {
      w.open("B", tid, ns);
      w.raw(",\"name\":\"G");
      w.num(e.a);
      w.raw("\",\"args\":{\"g\":");
      w.num(e.a);
      w.raw("}}");
    }
    return;
  }
  static constexpr const char* kNames[] = {"", "GoCreate", "GoUnpark", "Steal", "GoSysCall", "HandoffP", "GoSysExit"};
  w.open("i", tid, ns);
  w.raw(",\"s\":\"t\",\"name\":");
  w.str(kNames[int(e.kind)]);
  w.raw(e.kind == Kind::steal || e.kind == Kind::handoff ? ",\"args\":{\"p\":" : ",\"args\":{\"g\":");
  w.num(e.g);
  switch (e.kind) {
    case Kind::create:
      w.raw(",\"parent\":");
      w.num(e.a);
      break;
    case Kind::steal:
      w.raw(",\"victim\":");
      w.num(e.a);
      w.raw(",\"n\":");
      w.num(e.n);
      break;
    default:
      break;
  }
  w.raw("}}");
}

void write_thread_name(Writer& w, std::int64_t tid) {
  w.open("M", tid, 0);
  w.raw(",\"name\":\"thread_name\",\"args\":{\"name\":\"");
  if (tid == kPlainTid) {
    w.raw("plain threads");
  } else {
    w.raw("M");
    w.num(tid);
  }
  w.raw("\"}}");
}

}  // namespace

void go_create(const G* g) noexcept {
  record(Event{0, g->id, g->parent_id, 0, Kind::create, Why::none, WaitReason::none});
}

void go_switch(const M* m, const G* from, const G* to) noexcept {
  Buffer* b = m_buffer(m);
  if (!b) return;
  // One stamp for both: the slices of one track abut and never overlap.
  const bool leaving = from != &m->g0;
  put(b, Event{ticks(), leaving ? from->id : -1, to != &m->g0 ? to->id : -1, 0, Kind::sw,
               leaving ? why_of(m->pending.what) : Why::none, leaving ? from->wait_reason : WaitReason::none});
}

void go_unpark(const G* g) noexcept { record(Event{0, g->id, 0, 0, Kind::unpark, Why::none, WaitReason::none}); }

void steal(const P* p, const P* victim, std::uint32_t n) noexcept {
  record(Event{0, p->id, victim->id, n, Kind::steal, Why::none, WaitReason::none});
}

void syscall_enter(const G* g) noexcept { record(Event{0, g->id, 0, 0, Kind::sys_block, Why::none, WaitReason::syscall}); }

void syscall_handoff(const P* p) noexcept { record(Event{0, p->id, 0, 0, Kind::handoff, Why::none, WaitReason::none}); }

void syscall_exit(const G* g) noexcept { record(Event{0, g->id, 0, 0, Kind::sys_exit, Why::none, WaitReason::none}); }

void start(Runtime* rt) noexcept {
  const char* path = std::getenv("GORT_TRACE");
  if (!path || !*path) return;
  std::lock_guard<std::mutex> l(g_mu);
  g_spill = std::tmpfile();
  if (!g_spill) {
    std::fprintf(stderr, "gort: GORT_TRACE: cannot create a temporary file; not tracing\n");
    return;
  }
  g_path = path;
  ++g_gen;
  g_run_start_ns = rt->start_ns;
  g_t0 = ticks();
  g_ns0 = monotonic_ns();
  {
    std::lock_guard<std::mutex> lp(g_plain_mu);
    g_plain = new Buffer;
    g_plain->tid = kPlainTid;
    g_plain->gen = g_gen;
    g_bufs.push_back(g_plain);
  }
  detail::g_on.store(true, std::memory_order_release);
}

void stop(bool abandoned) noexcept {
  if (!detail::g_on.load(std::memory_order_acquire)) return;
  detail::g_on.store(false, std::memory_order_release);
  const std::uint64_t t1 = ticks();
  const std::int64_t ns1 = monotonic_ns();
  std::lock_guard<std::mutex> l(g_mu);
  std::lock_guard<std::mutex> lp(g_plain_mu);
  Clock c{g_t0, t1 > g_t0 ? double(ns1 - g_ns0) / double(t1 - g_t0) : 1.0, g_ns0 - g_run_start_ns};
  std::FILE* out = std::fopen(g_path.c_str(), "w");
  if (!out) {
    std::fprintf(stderr, "gort: GORT_TRACE: cannot write %s\n", g_path.c_str());
  } else {
    {
      Writer w(out);
      w.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
      w.open("M", 0, 0);
      w.raw(",\"name\":\"process_name\",\"args\":{\"name\":\"gort\"}}");
      for (Buffer* b : g_bufs) write_thread_name(w, b->tid);
      // Spilled chunks first: per track they precede what is still in memory.
      std::rewind(g_spill);
      std::vector<Record> chunk(kChunk);
      std::map<std::int64_t, bool> open;  // per track: a slice is open
      auto emit = [&](std::int64_t tid, const Record* r, std::uint32_t n, std::uint64_t t) {
        Event e;
        for (std::uint32_t i = 0; i < n; ++i) {
          if (!unpack(r[i], t, e)) continue;
          write_event(w, tid, e, c);
          if (e.kind == Kind::sw) open[tid] = e.a >= 0;
        }
      };
      std::int64_t tid;
      std::uint32_t n;
      std::uint64_t chunk_t;
      while (std::fread(&tid, sizeof tid, 1, g_spill) == 1 && std::fread(&n, sizeof n, 1, g_spill) == 1 && n <= kChunk &&
             std::fread(&chunk_t, sizeof chunk_t, 1, g_spill) == 1 &&
             std::fread(chunk.data(), sizeof(Record), n, g_spill) == n) {
        emit(tid, chunk.data(), n, chunk_t);
      }
      for (Buffer* b : g_bufs) {
        emit(b->tid, b->ev, b->n, b->chunk_t);
        // A slice still open (its M was abandoned mid-goroutine) ends with the trace.
        if (open[b->tid]) write_event(w, b->tid, Event{t1, 0, -1, 0, Kind::sw, Why::trace_end, WaitReason::none}, c);
      }
      w.raw("\n]}\n");
    }
    std::fclose(out);
  }
  std::fclose(g_spill);
  g_spill = nullptr;
  // An abandoned M may still touch its buffer: leak them then (their gen is now stale).
  if (!abandoned) {
    for (Buffer* b : g_bufs) delete b;
  }
  g_bufs.clear();
  g_plain = nullptr;
  ++g_gen;
}

}  // namespace gort::trace
