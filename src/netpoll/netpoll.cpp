// netpoll — the epoll backend of the poller contract (netpoll.hpp).
//
// Epoll events carry (slot index << 32 | generation): a PollDesc slot is reused after
// release(), and an event queued for its previous fd must not wake the new owner. The
// master instance holds only the homes (kHomeTag | home) and the break eventfd. Slots
// live in chunks that are never freed, so an index always names valid memory.
// Lock order: PollDesc::lock, then a timer heap's lock (set_deadline removes/adds timers
// under the descriptor's lock; timers fire without any heap lock held).
#include "netpoll/netpoll.hpp"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <system_error>

#include "sched/sanitizer.hpp"
#include "sched/sched.hpp"
#include "sched/waiter.hpp"
#include "time/heap.hpp"

namespace gort::netpoll {

using sched::RuntimeLock;
using sched::RuntimeLockGuard;
using sched::Waiter;

struct PollDesc {
  RuntimeLock lock;
  int fd = -1;
  int epfd = -1;  // the home epoll fd is registered in
  std::uint32_t index = 0;
  std::atomic<std::uint32_t> seq{0};  // generation; events with another one are stale
  // All below guarded by lock.
  bool closing = false;
  bool rready = false, wready = false;      // an edge nobody consumed yet
  // An event reported urgent data, the peer's FIN or an error (sticky): a short read may
  // then leave something to read that no later edge announces (see drained_reads_wait).
  bool unclean = false;
  bool rexpired = false, wexpired = false;  // the deadline in that direction passed
  Waiter* rwait = nullptr;
  Waiter* wwait = nullptr;
  time_impl::Timer rtimer, wtimer;
  PollDesc* next_free = nullptr;            // guarded by the pool lock
};

namespace {

constexpr std::uint32_t kChunk = 256;
constexpr std::uint32_t kMaxChunks = 1u << 14;  // 4M descriptors
constexpr std::uint64_t kBreakTag = ~std::uint64_t(0);
constexpr std::uint64_t kHomeTag = std::uint64_t(1) << 63;  // | home: a home epoll has events
constexpr int kMaxHomes = 64;

struct Poller {
  std::once_flag init_once;
  std::atomic<int> epfd{-1};
  int breakfd = -1;
  std::atomic<bool> break_pending{false};
  std::atomic<std::int64_t> waiters{0};
  std::atomic<std::uint64_t> total_waits{0};
  // One epoll instance per usable CPU (at most kMaxHomes), each registered in the master
  // `epfd`, all made by init() and never closed. P i's fds go to homes[i % nhomes].
  int nhomes = 0;
  std::array<int, kMaxHomes> homes{};
  std::atomic<std::int64_t> last_poll{1};  // 0 while an M blocks in poll()
  RuntimeLock pool_lock;
  PollDesc* free_list = nullptr;            // guarded by pool_lock
  std::uint32_t nslots = 0;                 // guarded by pool_lock
  std::array<std::atomic<PollDesc*>, kMaxChunks> chunks{};
};

Poller& poller() {
  static Poller* p = new Poller;  // never destroyed: descriptors may outlive run()
  return *p;
}

void init() {
  Poller& pl = poller();
  if (pl.epfd.load(std::memory_order_acquire) >= 0) return;
  // libstdc++'s call_once writes thread-locals; from a goroutine, TSan takes those for
  // races with the TLS set-up of threads created later. The epfd store orders the rest.
  sched::san::IgnoreAccesses ignore;
  std::call_once(pl.init_once, [&] {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) throw std::system_error(errno, std::generic_category(), "netpoll: epoll_create1");
    int bf = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bf < 0) throw std::system_error(errno, std::generic_category(), "netpoll: eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kBreakTag;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, bf, &ev) < 0)
      throw std::system_error(errno, std::generic_category(), "netpoll: epoll_ctl(eventfd)");
    cpu_set_t cpus;
    const int ncpu = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    pl.nhomes = std::clamp(ncpu, 1, kMaxHomes);
    for (int h = 0; h < pl.nhomes; ++h) {
      const int e = ::epoll_create1(EPOLL_CLOEXEC);
      if (e < 0) throw std::system_error(errno, std::generic_category(), "netpoll: epoll_create1");
      ev.events = EPOLLIN;  // level-triggered: the master reports a home while it has events
      ev.data.u64 = kHomeTag | std::uint64_t(h);
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) < 0)
        throw std::system_error(errno, std::generic_category(), "netpoll: epoll_ctl(home)");
      pl.homes[std::size_t(h)] = e;
    }
    pl.breakfd = bf;
    pl.epfd.store(ep, std::memory_order_release);
  });
}

PollDesc* slot(std::uint32_t index) noexcept {
  return &poller().chunks[index / kChunk].load(std::memory_order_acquire)[index % kChunk];
}

PollDesc* alloc() {
  Poller& pl = poller();
  RuntimeLockGuard l(pl.pool_lock);
  if (!pl.free_list) {
    const std::uint32_t c = pl.nslots / kChunk;
    if (c >= kMaxChunks) throw std::system_error(EMFILE, std::generic_category(), "netpoll: too many descriptors");
    PollDesc* chunk = new PollDesc[kChunk];
    for (std::uint32_t i = 0; i < kChunk; ++i) {
      chunk[i].index = pl.nslots + i;
      chunk[i].next_free = i + 1 < kChunk ? &chunk[i + 1] : nullptr;
    }
    pl.chunks[c].store(chunk, std::memory_order_release);
    pl.nslots += kChunk;
    pl.free_list = chunk;
  }
  PollDesc* pd = pl.free_list;
  pl.free_list = pd->next_free;
  pd->next_free = nullptr;
  return pd;
}

// Takes the waiter of one direction (requires pd->lock); the caller wakes it unlocked.
Waiter* take(Waiter*& w) noexcept {
  Waiter* out = w;
  w = nullptr;
  return out;
}

void wake(Waiter* w) noexcept {
  if (w) w->wake();
}

// A deadline timer fired: expire that direction unless the deadline moved since.
void deadline_fired(time_impl::Timer* t, std::int64_t, std::uint64_t seq) noexcept {
  auto* pd = static_cast<PollDesc*>(t->arg);
  Waiter* w = nullptr;
  {
    RuntimeLockGuard l(pd->lock);
    if (t->seq.load(std::memory_order_relaxed) != seq) return;  // re-armed or cleared
    if (t == &pd->rtimer) {
      pd->rexpired = true;
      w = take(pd->rwait);
    } else {
      pd->wexpired = true;
      w = take(pd->wwait);
    }
  }
  wake(w);
}

// Disarms t (requires pd->lock): a firing already under way sees the new seq and stops.
void disarm(time_impl::Timer& t) noexcept {
  time_impl::remove(&t);
  t.seq.fetch_add(1, std::memory_order_relaxed);
}

int state(PollDesc* pd, Mode mode) noexcept {
  if (pd->closing) return kClosed;
  if (mode == Mode::read ? pd->rexpired : pd->wexpired) return kTimedOut;
  return kReady;
}

}  // namespace

namespace {
constexpr int kCpus = 1024;
// CPU -> home + 1 of the P whose M was last seen there (0: none yet). Threads move between
// CPUs, so this is a hint: a wrong guess costs locality, never an event.
std::array<std::atomic<std::int16_t>, kCpus> g_cpu_home{};
}  // namespace

void note_cpu(int home) noexcept {
  home %= kMaxHomes;
  const int cpu = ::sched_getcpu();
  if (cpu >= 0 && cpu < kCpus && g_cpu_home[cpu].load(std::memory_order_relaxed) != home + 1)
    g_cpu_home[cpu].store(std::int16_t(home + 1), std::memory_order_relaxed);
}

int incoming_home(int fd) noexcept {
  int cpu = -1;
  socklen_t len = sizeof cpu;
  if (::getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0 || cpu < 0 || cpu >= kCpus) return -1;
  return g_cpu_home[cpu].load(std::memory_order_relaxed) - 1;
}

PollDesc* open(int fd, int home) {
  init();
  if (home < 0) {
    // The opener's P: a dialed socket's packets are first handled on this CPU.
    sched::san::IgnoreAccesses ignore;
    sched::M* m = sched::this_m();
    home = 0;
    if (m && m->p) {
      home = m->p->id;
      note_cpu(home);
    }
  }
  Poller& pl = poller();
  const int home_fd = pl.homes[std::size_t(home % pl.nhomes)];
  PollDesc* pd = alloc();
  std::uint32_t seq;
  {
    RuntimeLockGuard l(pd->lock);
    pd->fd = fd;
    pd->epfd = home_fd;
    pd->closing = false;
    pd->rready = pd->wready = false;
    pd->unclean = false;
    pd->rexpired = pd->wexpired = false;
    pd->rwait = pd->wwait = nullptr;
    for (time_impl::Timer* t : {&pd->rtimer, &pd->wtimer}) {
      t->fire = &deadline_fired;
      t->arg = pd;
    }
    seq = pd->seq.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (std::uint64_t(pd->index) << 32) | seq;
  if (::epoll_ctl(home_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    const int err = errno;
    close(pd);
    release(pd);
    throw std::system_error(err, std::generic_category(), "netpoll: epoll_ctl");
  }
  return pd;
}

void close(PollDesc* pd) noexcept {
  Waiter* r;
  Waiter* w;
  {
    RuntimeLockGuard l(pd->lock);
    if (pd->closing) return;
    pd->closing = true;
    pd->seq.fetch_add(1, std::memory_order_relaxed);  // events still queued are stale
    disarm(pd->rtimer);
    disarm(pd->wtimer);
    r = take(pd->rwait);
    w = take(pd->wwait);
  }
  // EPOLL_CTL_DEL fails harmlessly if the fd was never added (open's error path).
  ::epoll_ctl(pd->epfd, EPOLL_CTL_DEL, pd->fd, nullptr);
  wake(r);
  wake(w);
}

void release(PollDesc* pd) noexcept {
  Poller& pl = poller();
  RuntimeLockGuard l(pl.pool_lock);
  pd->fd = -1;
  pd->next_free = pl.free_list;
  pl.free_list = pd;
}

int check(PollDesc* pd, Mode mode) noexcept {
  RuntimeLockGuard l(pd->lock);
  return state(pd, mode);
}

bool drained_reads_wait(PollDesc* pd) noexcept {
  RuntimeLockGuard l(pd->lock);
  return !pd->unclean;
}

int wait(PollDesc* pd, Mode mode) noexcept {
  Poller& pl = poller();
  const bool rd = mode == Mode::read;
  for (;;) {
    pd->lock.lock();
    if (int s = state(pd, mode)) {
      pd->lock.unlock();
      return s;
    }
    bool& ready = rd ? pd->rready : pd->wready;
    if (ready) {
      ready = false;
      pd->lock.unlock();
      return kReady;
    }
    Waiter w;
    (rd ? pd->rwait : pd->wwait) = &w;
    pl.waiters.fetch_add(1, std::memory_order_relaxed);
    pl.total_waits.fetch_add(1, std::memory_order_relaxed);
    // Not counted blocked: an fd wait can end from outside the runtime (and `waiters`
    // keeps deadlock detection off meanwhile).
    w.block(sched::WaitReason::io_wait, pd->lock, /*counted=*/false);  // unlocks
    pl.waiters.fetch_sub(1, std::memory_order_relaxed);
  }
}

void set_deadline(PollDesc* pd, Mode mode, std::int64_t when_ns) noexcept {
  const std::int64_t now = sched::monotonic_ns();
  Waiter* woken[2] = {nullptr, nullptr};
  {
    RuntimeLockGuard l(pd->lock);
    if (pd->closing) return;
    for (int i = 0; i < 2; ++i) {
      const Mode m = i == 0 ? Mode::read : Mode::write;
      if ((std::uint8_t(mode) & std::uint8_t(m)) == 0) continue;
      time_impl::Timer& t = i == 0 ? pd->rtimer : pd->wtimer;
      bool& expired = i == 0 ? pd->rexpired : pd->wexpired;
      disarm(t);
      expired = when_ns != 0 && when_ns <= now;
      if (expired) {
        woken[i] = take(i == 0 ? pd->rwait : pd->wwait);
      } else if (when_ns != 0) {
        t.when = when_ns;
        time_impl::add(&t);
      }
    }
  }
  wake(woken[0]);
  wake(woken[1]);
}

bool initialized() noexcept { return poller().epfd.load(std::memory_order_acquire) >= 0; }

std::int64_t waiters() noexcept { return poller().waiters.load(std::memory_order_relaxed); }

std::uint64_t total_waits() noexcept { return poller().total_waits.load(std::memory_order_relaxed); }

std::int64_t last_poll_ns() noexcept { return poller().last_poll.load(std::memory_order_relaxed); }

void break_poll() noexcept {
  Poller& pl = poller();
  if (!initialized() || pl.break_pending.exchange(true, std::memory_order_acq_rel)) return;
  const std::uint64_t one = 1;
  ssize_t r = ::write(pl.breakfd, &one, sizeof one);
  (void)r;  // EAGAIN: the counter is already non-zero, a wakeup is pending anyway
}

namespace {

// Readies what n events of one epoll instance announce; a home's event polls that home.
int deliver(epoll_event* events, int n, sched::GQueue& out) noexcept {
  Poller& pl = poller();
  int count = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t tag = events[i].data.u64;
    if (tag == kBreakTag) {
      std::uint64_t v;
      ssize_t r = ::read(pl.breakfd, &v, sizeof v);
      (void)r;
      pl.break_pending.store(false, std::memory_order_release);
      continue;
    }
    if (tag & kHomeTag) {
      epoll_event inner[128];
      const int k = ::epoll_wait(pl.homes[std::size_t(tag & ~kHomeTag)], inner, 128, 0);
      if (k > 0) count += deliver(inner, k, out);
      continue;
    }
    PollDesc* pd = slot(std::uint32_t(tag >> 32));
    const std::uint32_t ev = events[i].events;
    Waiter* r = nullptr;
    Waiter* w = nullptr;
    {
      RuntimeLockGuard l(pd->lock);
      if (pd->seq.load(std::memory_order_relaxed) != std::uint32_t(tag)) continue;  // stale
      if (ev & (EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pd->unclean = true;
      if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        pd->rready = true;
        r = take(pd->rwait);
      }
      if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        pd->wready = true;
        w = take(pd->wwait);
      }
    }
    for (Waiter* x : {r, w}) {
      if (!x) continue;
      if (x->g) {
        out.push_back(x->g);
        ++count;
      } else {
        x->wake();  // a plain thread
      }
    }
  }
  return count;
}

// epoll_wait on ep for up to delay_ns (< 0: no limit). The M that sleeps until the next
// timer waits here while fds are watched, so the timeout is kept to the nanosecond with
// epoll_pwait2 (Linux 5.11, glibc 2.35): epoll_wait's milliseconds, rounded up so as not
// to wake early, made a sleeper up to a millisecond late (sleep_10k_fd: median overshoot
// 498 µs, 31 µs with this). Where the kernel lacks epoll_pwait2 (qemu-user does), milliseconds.
std::atomic<bool> g_no_pwait2{false};

int wait_for_events(int ep, epoll_event* events, int max, std::int64_t delay_ns) noexcept {
#if __GLIBC_PREREQ(2, 35)
  if (delay_ns > 0 && !g_no_pwait2.load(std::memory_order_relaxed)) {
    const timespec timeout{time_t(delay_ns / 1'000'000'000), long(delay_ns % 1'000'000'000)};
    const int n = ::epoll_pwait2(ep, events, max, &timeout, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    g_no_pwait2.store(true, std::memory_order_relaxed);
  }
#endif
  int timeout_ms = -1;
  if (delay_ns >= 0) {
    const std::int64_t ms = (delay_ns + 999'999) / 1'000'000;
    timeout_ms = ms > 1'000'000'000 ? 1'000'000'000 : int(ms);
  }
  return ::epoll_wait(ep, events, max, timeout_ms);
}

}  // namespace

int poll_home(int p, int nprocs, sched::GQueue& out) noexcept {
  Poller& pl = poller();
  if (pl.epfd.load(std::memory_order_acquire) < 0) return 0;
  // With fewer Ps than homes, P p also polls the homes no P maps to now (p + nprocs, ...):
  // fds opened by Ps since retired stay there.
  const int stride = std::max(nprocs, 1);
  int count = 0;
  for (int h = p % pl.nhomes; h < pl.nhomes; h += stride) {
    epoll_event events[128];
    const int n = ::epoll_wait(pl.homes[std::size_t(h)], events, 128, 0);
    if (n > 0) count += deliver(events, n, out);
  }
  return count;
}

int poll(std::int64_t delay_ns, sched::GQueue& out) noexcept {
  Poller& pl = poller();
  const int ep = pl.epfd.load(std::memory_order_acquire);
  if (ep < 0) return 0;
  if (delay_ns != 0) pl.last_poll.store(0, std::memory_order_relaxed);
  epoll_event events[kMaxHomes + 1];
  const int n = wait_for_events(ep, events, kMaxHomes + 1, delay_ns);
  pl.last_poll.store(sched::monotonic_ns(), std::memory_order_relaxed);
  return n > 0 ? deliver(events, n, out) : 0;
}

}  // namespace gort::netpoll
