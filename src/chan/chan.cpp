// chan — channel operations and select over the type-erased core (see chan/chan.hpp for
// the invariants). Go's order of checks is kept: a send first looks for a parked receiver
// (direct hand-off, no buffer trip), then for buffer room; a receive first looks for a
// parked sender (which, on a full buffer, refills the slot it frees), then the buffer.
#include "chan/chan.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include <gort/runtime.hpp>

#include "sched/sanitizer.hpp"
#include "sched/sched.hpp"

namespace gort::detail {

using sched::G;
using sched::WaitReason;

namespace {

// ---- waking and blocking -----------------------------------------------------------------

// Pops the first waiter that may still be completed. A select waiter whose select was
// already won elsewhere is dropped (its owner removes the rest of its waiters itself).
ChanWaiter* dequeue(sched::WaitQueue& q) noexcept {
  while (auto* w = static_cast<ChanWaiter*>(q.pop_front())) {
    w->in_queue = false;
    if (w->sel) {
      std::uint32_t expected = 0;
      if (!w->sel->done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
      w->sel->fired = w;
    }
    return w;
  }
  return nullptr;
}

void enqueue(sched::WaitQueue& q, ChanWaiter* w) noexcept {
  q.push_back(w);
  w->in_queue = true;
}

void wake(ChanWaiter* w) noexcept {
  if (w->g) {
    sched::ready(w->g);
    return;
  }
  std::atomic<std::uint32_t>* word = w->sel ? &w->sel->woken : &w->woken;
  sched::foreign_block_woken();
  word->store(1, std::memory_order_release);
  sched::futex_wake(word, 1);
}

// Blocks the caller until woken through `word` (plain threads) or ready() (goroutines);
// `locks` is released once blocking is safe.
template <class Locks>
void block(WaitReason reason, Locks& locks, std::atomic<std::uint32_t>* word) {
  if (sched::current_g()) {
    // The commit runs after the switch: once the lock is free this goroutine may resume
    // elsewhere and drop its reference to the channel, so the unlock must not touch it after.
    sched::park(reason, [](G*, void* l) { static_cast<Locks*>(l)->unlock_detached(); return true; }, &locks);
    return;
  }
  sched::foreign_block_begin();  // before unlocking: from then on a waker may uncount us
  locks.unlock();
  sched::foreign_block_check();
  while (word->load(std::memory_order_acquire) == 0) sched::futex_wait(word, 0);
}

[[noreturn]] void block_forever(WaitReason reason) {
  if (sched::current_g()) {
    sched::park(reason, nullptr, nullptr);
    sched::fatal("a goroutine blocked forever was resumed");
  }
  sched::foreign_block_begin();  // for good: nobody can wake us
  sched::foreign_block_check();
  std::atomic<std::uint32_t> never{0};
  for (;;) sched::futex_wait(&never, 0);
}

struct OneLock {
  sched::DekkerLock* l;
  void unlock() noexcept { l->unlock(); }
  void unlock_detached() noexcept { l->unlock_detached(); }
};

// ---- element moves (under the channel's lock) --------------------------------------------

void move_elem(const ChanCore* c, void* dst, void* src) noexcept { c->ops->move_construct(dst, src); }

// Buffered receive: moves the head slot out.
void take_from_buffer(ChanCore* c, void* out) noexcept {
  void* s = c->slot(c->recvx);
  move_elem(c, out, s);
  c->ops->destroy(s);
  if (++c->recvx == c->cap) c->recvx = 0;
  c->count.store(c->count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

void put_in_buffer(ChanCore* c, void* elem) noexcept {
  move_elem(c, c->slot(c->sendx), elem);
  if (++c->sendx == c->cap) c->sendx = 0;
  c->count.store(c->count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// Receives from a parked sender w: unbuffered, straight from it; buffered (then full),
// the head of the buffer, whose slot the sender's value refills at the tail.
void recv_from_sender(ChanCore* c, ChanWaiter* w, void* out) noexcept {
  if (c->cap == 0) {
    move_elem(c, out, w->data);
  } else {
    void* s = c->slot(c->recvx);
    move_elem(c, out, s);
    c->ops->destroy(s);
    move_elem(c, s, w->data);
    if (++c->recvx == c->cap) c->recvx = 0;
    c->sendx = c->recvx;
  }
  w->success = true;
}

[[noreturn]] void panic_send_closed() { throw panic_error("send on closed channel"); }

}  // namespace

// ---- the core ------------------------------------------------------------------------------

ChanCore* chan_make(const ElemOps* ops, std::size_t capacity) {
  const std::size_t align = std::max(alignof(ChanCore), ops->align);
  const std::size_t stride = (ops->size + ops->align - 1) / ops->align * ops->align;
  const std::size_t header = (sizeof(ChanCore) + ops->align - 1) / ops->align * ops->align;
  if (capacity > (std::size_t(1) << 40) / (stride ? stride : 1))
    throw panic_error("makechan: size out of range");
  void* mem = ::operator new(header + capacity * stride, std::align_val_t(align));
  auto* c = ::new (mem) ChanCore;
  c->ops = ops;
  c->cap = capacity;
  c->stride = stride;
  c->buf = static_cast<unsigned char*>(mem) + header;
  return c;
}

void chan_retain(ChanCore* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }

void chan_release(ChanCore* c) noexcept {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Last reference: nobody can be waiting (a waiter holds a reference), so only buffered
  // values remain.
  std::size_t n = c->count.load(std::memory_order_relaxed);
  for (std::size_t i = 0, x = c->recvx; i < n; ++i) {
    c->ops->destroy(c->slot(x));
    if (++x == c->cap) x = 0;
  }
  const std::size_t align = std::max(alignof(ChanCore), c->ops->align);
  c->~ChanCore();
  ::operator delete(static_cast<void*>(c), std::align_val_t(align));
}

std::size_t chan_len(const ChanCore* c) noexcept { return c ? c->count.load(std::memory_order_relaxed) : 0; }
std::size_t chan_cap(const ChanCore* c) noexcept { return c ? c->cap : 0; }

void chan_send(ChanCore* c, void* elem) {
  sched::preempt_check();
  if (!c) block_forever(WaitReason::chan_send_nil);
  c->lock.lock();
  if (c->closed) {
    c->lock.unlock();
    panic_send_closed();
  }
  if (ChanWaiter* r = dequeue(c->recvq)) {
    move_elem(c, r->data, elem);
    r->success = true;
    c->lock.unlock();
    wake(r);
    return;
  }
  if (c->count.load(std::memory_order_relaxed) < c->cap) {
    put_in_buffer(c, elem);
    c->lock.unlock();
    return;
  }
  ChanWaiter w;
  w.data = elem;
  enqueue(c->sendq, &w);
  OneLock l{&c->lock};
  block(WaitReason::chan_send, l, &w.woken);
  if (!w.success) panic_send_closed();  // woken by close
}

bool chan_recv(ChanCore* c, void* out) {
  sched::preempt_check();
  if (!c) block_forever(WaitReason::chan_receive_nil);
  c->lock.lock();
  if (ChanWaiter* s = dequeue(c->sendq)) {
    recv_from_sender(c, s, out);
    c->lock.unlock();
    wake(s);
    return true;
  }
  if (c->count.load(std::memory_order_relaxed) > 0) {
    take_from_buffer(c, out);
    c->lock.unlock();
    return true;
  }
  if (c->closed) {
    c->lock.unlock();
    return false;
  }
  ChanWaiter w;
  w.data = out;
  enqueue(c->recvq, &w);
  OneLock l{&c->lock};
  block(WaitReason::chan_receive, l, &w.woken);
  return w.success;
}

void chan_close(ChanCore* c) {
  if (!c) throw panic_error("close of nil channel");
  c->lock.lock();
  if (c->closed) {
    c->lock.unlock();
    throw panic_error("close of closed channel");
  }
  c->closed = true;
  // Collect every waiter (success stays false), then wake them after unlocking.
  ChanWaiter* woken = nullptr;
  for (sched::WaitQueue* q : {&c->recvq, &c->sendq}) {
    while (ChanWaiter* w = dequeue(*q)) {
      w->success = false;
      w->next = woken;
      woken = w;
    }
  }
  c->lock.unlock();
  while (woken) {
    ChanWaiter* w = woken;
    woken = static_cast<ChanWaiter*>(w->next);  // read before the wake: w may vanish then
    wake(w);
  }
}

bool chan_try_send(ChanCore* c, void* elem) noexcept {
  c->lock.lock();
  if (c->closed) {
    c->lock.unlock();
    return false;
  }
  if (ChanWaiter* r = dequeue(c->recvq)) {
    move_elem(c, r->data, elem);
    r->success = true;
    c->lock.unlock();
    wake(r);
    return true;
  }
  bool room = c->count.load(std::memory_order_relaxed) < c->cap;
  if (room) put_in_buffer(c, elem);
  c->lock.unlock();
  return room;
}

bool chan_try_drain(ChanCore* c) noexcept {
  c->lock.lock();
  bool had = c->count.load(std::memory_order_relaxed) > 0;
  if (had) {
    void* s = c->slot(c->recvx);
    c->ops->destroy(s);
    if (++c->recvx == c->cap) c->recvx = 0;
    c->count.store(c->count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  c->lock.unlock();
  return had;
}

// ---- select --------------------------------------------------------------------------------

namespace {

// Never inlined: a goroutine may move between threads, so no thread-local address may be
// cached across a park in the caller.
[[gnu::noinline]] std::uint32_t fastrand() noexcept {
  // Shared by every goroutine this thread runs, with no order between them: not a race
  // in the program under test, so hidden from TSan.
  sched::san::IgnoreAccesses ignore;
  thread_local std::uint64_t state = 0;
  std::uint64_t s = state;
  if (s == 0) s = std::uint64_t(sched::monotonic_ns()) ^ reinterpret_cast<std::uintptr_t>(&state) ^ 0x9E3779B97F4A7C15ull;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  state = s;
  return std::uint32_t(s >> 32);
}

// The locks of a select's channels, in address order, each once.
struct LockSet {
  ChanCore** cores;
  int n;
  void lock() noexcept {
    for (int i = 0; i < n; ++i) {
      if (i == 0 || cores[i] != cores[i - 1]) cores[i]->lock.lock();
    }
  }
  void unlock() noexcept {
    for (int i = n - 1; i >= 0; --i) {
      if (i == 0 || cores[i] != cores[i - 1]) cores[i]->lock.unlock();
    }
  }
  // (cores stays readable until the last unlock: resumed, the select relocks them all.)
  void unlock_detached() noexcept {
    for (int i = n - 1; i >= 0; --i) {
      if (i == 0 || cores[i] != cores[i - 1]) cores[i]->lock.unlock_detached();
    }
  }
};

constexpr int kSmallSelect = 16;

}  // namespace

int select_impl(SelectOp* ops, int n, bool block_ok) {
  sched::preempt_check();
  // Small selects keep their bookkeeping on the stack; waiters are constructed only if
  // the select has to wait.
  int small_order[kSmallSelect];
  ChanCore* small_cores[kSmallSelect];
  alignas(ChanWaiter) unsigned char small_waiters[kSmallSelect * sizeof(ChanWaiter)];
  std::unique_ptr<int[]> big_order;
  std::unique_ptr<ChanCore*[]> big_cores;
  std::unique_ptr<ChanWaiter[]> big_waiters;
  int* pollorder = small_order;
  ChanCore** lockorder = small_cores;
  auto* waiters = reinterpret_cast<ChanWaiter*>(small_waiters);
  if (n > kSmallSelect) {
    big_order = std::make_unique<int[]>(std::size_t(n));
    big_cores = std::make_unique<ChanCore*[]>(std::size_t(n));
    pollorder = big_order.get();
    lockorder = big_cores.get();
  }

  // Poll order: a uniformly random permutation of the non-nil cases (Go's fairness).
  int np = 0;
  for (int i = 0; i < n; ++i) {
    if (!ops[i].c) continue;
    int j = int(fastrand() % std::uint32_t(np + 1));
    pollorder[np] = pollorder[j];
    pollorder[j] = i;
    ++np;
  }
  if (np == 0) {
    if (!block_ok) return -1;
    block_forever(n == 0 ? WaitReason::select_no_cases : WaitReason::select);
  }
  // Lock order: by address, so two selects over the same channels never deadlock.
  for (int i = 0; i < np; ++i) {
    ChanCore* c = ops[pollorder[i]].c;
    int k = i;
    while (k > 0 && lockorder[k - 1] > c) {
      lockorder[k] = lockorder[k - 1];
      --k;
    }
    lockorder[k] = c;
  }
  LockSet locks{lockorder, np};
  locks.lock();

  // Pass 1: take the first ready case in poll order.
  for (int k = 0; k < np; ++k) {
    const int i = pollorder[k];
    SelectOp& op = ops[i];
    ChanCore* c = op.c;
    if (op.is_send) {
      if (c->closed) {
        locks.unlock();
        panic_send_closed();
      }
      if (ChanWaiter* r = dequeue(c->recvq)) {
        move_elem(c, r->data, op.elem);
        r->success = true;
        locks.unlock();
        wake(r);
        return i;
      }
      if (c->count.load(std::memory_order_relaxed) < c->cap) {
        put_in_buffer(c, op.elem);
        locks.unlock();
        return i;
      }
    } else {
      if (ChanWaiter* s = dequeue(c->sendq)) {
        recv_from_sender(c, s, op.elem);
        op.received = true;
        locks.unlock();
        wake(s);
        return i;
      }
      if (c->count.load(std::memory_order_relaxed) > 0) {
        take_from_buffer(c, op.elem);
        op.received = true;
        locks.unlock();
        return i;
      }
      if (c->closed) {
        op.received = false;
        locks.unlock();
        return i;
      }
    }
  }
  if (!block_ok) {
    locks.unlock();
    return -1;
  }

  // Pass 2: wait on every channel at once.
  SelectState st;
  if (n > kSmallSelect) {
    big_waiters = std::make_unique<ChanWaiter[]>(std::size_t(n));
    waiters = big_waiters.get();
  } else {
    static_assert(std::is_trivially_destructible_v<ChanWaiter>);
    for (int i = 0; i < n; ++i) ::new (&waiters[i]) ChanWaiter;
  }
  for (int i = 0; i < n; ++i) {
    if (!ops[i].c) continue;
    ChanWaiter& w = waiters[i];
    w.sel = &st;
    w.data = ops[i].elem;
    w.ticket = std::uint64_t(i);
    enqueue(ops[i].is_send ? ops[i].c->sendq : ops[i].c->recvq, &w);
  }
  block(WaitReason::select, locks, &st.woken);

  // Pass 3: one case won; withdraw the others.
  locks.lock();
  for (int i = 0; i < n; ++i) {
    ChanWaiter& w = waiters[i];
    if (ops[i].c && w.in_queue) (ops[i].is_send ? ops[i].c->sendq : ops[i].c->recvq).remove(&w);
    w.in_queue = false;
  }
  locks.unlock();
  ChanWaiter* fired = st.fired;
  const int i = int(fired->ticket);
  if (ops[i].is_send) {
    if (!fired->success) panic_send_closed();
  } else {
    ops[i].received = fired->success;
  }
  return i;
}

}  // namespace gort::detail

namespace gort {

std::size_t select(std::span<SelectCase> cases) {
  std::vector<detail::SelectOp> ops;
  std::vector<std::size_t> case_of_op;
  ops.reserve(cases.size());
  case_of_op.reserve(cases.size());
  std::size_t default_index = cases.size();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SelectCase& sc = cases[i];
    if (sc.is_default_) {
      if (default_index != cases.size()) throw panic_error("reflect.Select: multiple default cases");
      default_index = i;
      continue;
    }
    detail::SelectOp op;
    op.c = sc.ref_.get();
    op.elem = sc.payload_->elem();
    op.is_send = sc.is_send_;
    ops.push_back(op);
    case_of_op.push_back(i);
  }
  const bool has_default = default_index != cases.size();
  const int chosen = detail::select_impl(ops.data(), int(ops.size()), !has_default);
  if (chosen < 0) {
    cases[default_index].payload_->fire(false);
    return default_index;
  }
  const std::size_t index = case_of_op[std::size_t(chosen)];
  cases[index].payload_->fire(ops[std::size_t(chosen)].received);
  return index;
}

}  // namespace gort
