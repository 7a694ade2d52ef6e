// netpoll — the poller contract (Go's netpoll.go) and its epoll backend.
//
// Edge-triggered epoll: a registered fd reports "became readable/writable" once per
// transition, so readiness is latched in the PollDesc until a waiter consumes it. Every fd
// given to open() must already be non-blocking; the caller does the I/O syscalls and calls
// wait() on EAGAIN.
//
// Homes: one epoll instance per usable CPU (at most 64), all made on first use and nested
// in a master instance (with the eventfd that breaks a blocked poll). An fd joins the home
// of a P — the opener's, or for an accepted socket the P last seen on the CPU that handled
// its packets (SO_INCOMING_CPU) — and stays there. A P whose queues run dry polls its own
// home first and keeps what that readies, so both ends of a loopback connection, and a
// socket and the NIC queue that feeds it, tend to share a CPU. Every other poll (a P that
// found its home empty, the M blocked until the next timer, sysmon) goes through the
// master and sees every home: a home only ever decides where an event is run, never
// whether it is seen.
//
// Invariants, under PollDesc::lock:
//   - at most one goroutine waits per direction (the net layer serialises readers and
//     writers, as Go's fdMutex does); `reader`/`writer` is that goroutine or nullptr;
//   - `*_ready` latches an edge nobody has consumed yet; a waiter consumes it and returns 0;
//   - once `closing` is set, every wait returns kClosed at once, now and later;
//   - a deadline that passed sets `*_expired`; waits in that direction return kTimedOut
//     until set_deadline moves it again.
// PollDescs live in a pool that is never freed: an epoll event for a recycled descriptor
// carries an older generation (`seq`) and is dropped, so a late event never wakes the next
// user of the slot.
//
// The scheduler sees the poller through poll(), poll_home() and break_poll():
// findrunnable polls its P's home and then, if that was empty, every home without
// blocking; an M with nothing to do blocks in poll() until the next timer; sysmon polls
// when nobody has for 10 ms; a new timer or a readied goroutine breaks a blocked poll.
#pragma once
#include <cstdint>

#include "sched/g.hpp"

namespace gort::netpoll {

struct PollDesc;

enum class Mode : std::uint8_t { read = 1, write = 2, both = 3 };

// wait()/check() results. 0: ready (retry the syscall).
inline constexpr int kReady = 0;
inline constexpr int kClosed = 1;    // close() was called: Go's ErrNetClosing
inline constexpr int kTimedOut = 2;  // the deadline in that direction has passed

// Registers fd (already O_NONBLOCK) for read and write edges in the epoll instance of
// `home` (a P's id; -1: the calling goroutine's P). Throws std::system_error (from
// epoll_ctl) on failure.
PollDesc* open(int fd, int home = -1);
// Marks pd closing, wakes its waiters (they get kClosed), removes fd from epoll and cancels
// its deadline timers. Does not close fd. Idempotent.
void close(PollDesc* pd) noexcept;
// Returns pd to the pool. Call after close() once no goroutine can still call into pd
// (the net layer's reference count reached zero); then close fd.
void release(PollDesc* pd) noexcept;

// Before a syscall: kClosed / kTimedOut if the operation must fail without trying, else 0.
int check(PollDesc* pd, Mode mode) noexcept;
// Whether a read that follows a short TCP read may wait for the next read edge instead of
// trying recv first. A short read emptied the receive queue, and data, a FIN or an error
// arriving after that brings an edge — unless the short read stopped at urgent data, or
// at a FIN or error that arrived with the data and whose edge is already consumed: any
// event that ever reported EPOLLPRI, EPOLLRDHUP, EPOLLHUP or EPOLLERR turns this off for
// the descriptor.
bool drained_reads_wait(PollDesc* pd) noexcept;
// After EAGAIN: parks the calling goroutine ("IO wait") until fd is ready in `mode`
// (read or write, not both), pd is closed, or the deadline passes. From a plain thread
// it blocks the thread. Returns kReady, kClosed or kTimedOut.
int wait(PollDesc* pd, Mode mode) noexcept;
// Sets the deadline for `mode` (read, write or both) to monotonic `when_ns`; 0 clears it.
// A deadline at or before now expires at once, waking the waiter with kTimedOut.
void set_deadline(PollDesc* pd, Mode mode, std::int64_t when_ns) noexcept;

// ---- the scheduler's side ----------------------------------------------------------------

// True once any fd was ever registered (until then the scheduler never polls).
bool initialized() noexcept;
// Goroutines parked in wait() right now (deadlock detection: they can still be woken).
std::int64_t waiters() noexcept;
// Polls for ready fds: without blocking when delay_ns == 0, until an event or break_poll()
// when < 0, else at most delay_ns. Appends the goroutines it readies (status still
// waiting; the caller makes them runnable) to `out`. Returns how many it appended.
int poll(std::int64_t delay_ns, sched::GQueue& out) noexcept;
// Without blocking, the fds homed on P `p` only (and, with fewer Ps than homes, on the
// homes p + nprocs, p + 2 nprocs, ... that Ps since retired left behind). Same contract as
// poll().
int poll_home(int p, int nprocs, sched::GQueue& out) noexcept;
// Records that the M running P `home` is on this CPU now (sched_getcpu).
void note_cpu(int home) noexcept;
// For open(): the home of the P last seen on the CPU that handled fd's latest packet
// (SO_INCOMING_CPU: on loopback the sender's CPU, else the NIC queue's); -1 if unknown.
int incoming_home(int fd) noexcept;
// Wakes an M blocked in poll() (a timer was added, or there is work for it).
void break_poll() noexcept;
// Monotonic ns of the last poll (0 if an M is blocked in poll now): sysmon polls itself
// when this is over 10 ms old.
std::int64_t last_poll_ns() noexcept;
// Counter for debug::Stats: parks in wait().
std::uint64_t total_waits() noexcept;

}  // namespace gort::netpoll
