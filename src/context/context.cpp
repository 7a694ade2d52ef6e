// context — the context tree (Go's context package).
//
// Every node knows its `canceler`: itself if cancelable, else the nearest cancelable
// ancestor (nullptr under background). Invariants for a cancelable node, under its `mu`:
//   - err == 0 until canceled, then fixed; `done` is closed exactly when err becomes set;
//   - `children` holds the live cancelable nodes whose canceler's parent chain reaches it
//     first, weakly (a child's destructor removes itself), and is empty once canceled.
// Lock order: a parent's mu is never held while taking a child's (cancel collects the
// children, unlocks, then cancels them).
#include <gort/context.hpp>

#include <unordered_map>
#include <vector>

#include <gort/sync.hpp>

namespace gort {

namespace {

class ContextCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "context"; }
  std::string message(int c) const override {
    switch (errc(c)) {
      case errc::canceled: return "context canceled";
      case errc::deadline_exceeded: return "context deadline exceeded";
    }
    return "unknown context error";
  }
  std::error_condition default_error_condition(int c) const noexcept override {
    switch (errc(c)) {
      case errc::canceled: return std::errc::operation_canceled;
      case errc::deadline_exceeded: return std::errc::timed_out;
    }
    return {c, *this};
  }
};

}  // namespace

const std::error_category& context_category() noexcept {
  static const ContextCategory category;
  return category;
}

namespace detail {

struct ContextNode : std::enable_shared_from_this<ContextNode> {
  std::shared_ptr<ContextNode> parent;
  ContextNode* canceler = nullptr;
  std::optional<time_point> deadline;
  // A value node:
  const void* key = nullptr;
  ValueHolder value;
  // A cancelable node:
  Mutex mu;
  std::atomic<int> err{0};
  chan<std::monostate> done;
  std::unordered_map<ContextNode*, std::weak_ptr<ContextNode>> children;  // guarded by mu
  std::optional<Timer> timer;                                           // guarded by mu

  ~ContextNode() {
    if (timer) timer->stop();
    ContextNode* up = parent ? parent->canceler : nullptr;
    if (canceler == this && up) {
      std::lock_guard<Mutex> l(up->mu);
      up->children.erase(this);
    }
  }
};

namespace {

void cancel(ContextNode* n, errc why, bool detach) {
  std::vector<std::shared_ptr<ContextNode>> kids;
  {
    std::lock_guard<Mutex> l(n->mu);
    if (n->err.load(std::memory_order_relaxed) != 0) return;
    n->err.store(int(why), std::memory_order_release);
    n->done.close();
    for (auto& [raw, weak] : n->children) {
      if (auto kid = weak.lock()) kids.push_back(std::move(kid));
    }
    n->children.clear();
    if (n->timer) n->timer->stop();
  }
  for (auto& kid : kids) cancel(kid.get(), why, false);
  ContextNode* up = n->parent ? n->parent->canceler : nullptr;
  if (detach && up) {
    std::lock_guard<Mutex> l(up->mu);
    up->children.erase(n);
  }
}

std::shared_ptr<ContextNode> new_cancelable(const Context& parent) {
  auto n = std::make_shared<ContextNode>();
  n->parent = parent.node();
  n->canceler = n.get();
  n->deadline = n->parent->deadline;
  n->done = make_chan<std::monostate>();
  // Join the nearest cancelable ancestor, or inherit its cancellation right away.
  if (ContextNode* up = n->parent->canceler) {
    int parent_err;
    {
      std::lock_guard<Mutex> l(up->mu);
      parent_err = up->err.load(std::memory_order_relaxed);
      if (parent_err == 0) up->children.emplace(n.get(), n);
    }
    if (parent_err != 0) cancel(n.get(), errc(parent_err), false);
  }
  return n;
}

const std::shared_ptr<ContextNode>& background_node() {
  static const auto root = std::make_shared<ContextNode>();
  return root;
}

}  // namespace

Context with_value_holder(Context parent, const void* key, ValueHolder value) {
  auto n = std::make_shared<ContextNode>();
  n->parent = parent.node();
  n->canceler = n->parent->canceler;
  n->deadline = n->parent->deadline;
  n->key = key;
  n->value = std::move(value);
  return Context(std::move(n));
}

}  // namespace detail

Context::Context() : node_(detail::background_node()) {}

chan<std::monostate> Context::done() const {
  detail::ContextNode* c = node_->canceler;
  return c ? c->done : chan<std::monostate>();
}

std::error_code Context::err() const {
  detail::ContextNode* c = node_->canceler;
  const int e = c ? c->err.load(std::memory_order_acquire) : 0;
  return e ? make_error_code(errc(e)) : std::error_code();
}

std::optional<time_point> Context::deadline() const { return node_->deadline; }

const void* Context::find_value(const void* key) const noexcept {
  for (const detail::ContextNode* n = node_.get(); n; n = n->parent.get()) {
    if (n->key == key) return n->value.get();
  }
  return nullptr;
}

void CancelFunc::operator()() const {
  if (node_) detail::cancel(node_.get(), errc::canceled, true);
}

Context background() { return Context(); }

std::pair<Context, CancelFunc> with_cancel(Context parent) {
  auto n = detail::new_cancelable(parent);
  return {Context(n), CancelFunc(n)};
}

std::pair<Context, CancelFunc> with_deadline(Context parent, time_point deadline) {
  if (parent.deadline() && *parent.deadline() <= deadline) return with_cancel(std::move(parent));  // the parent's is sooner
  auto n = detail::new_cancelable(parent);
  n->deadline = deadline;
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::nanoseconds(0)) {
    detail::cancel(n.get(), errc::deadline_exceeded, true);
  } else {
    std::weak_ptr<detail::ContextNode> weak = n;
    Timer t = after_func(std::chrono::duration_cast<std::chrono::nanoseconds>(left), [weak] {
      if (auto live = weak.lock()) detail::cancel(live.get(), errc::deadline_exceeded, true);
    });
    std::lock_guard<Mutex> l(n->mu);
    if (n->err.load(std::memory_order_relaxed) == 0) {
      n->timer.emplace(std::move(t));
    } else {
      t.stop();  // canceled through the parent meanwhile
    }
  }
  return {Context(n), CancelFunc(n)};
}

std::pair<Context, CancelFunc> with_timeout(Context parent, std::chrono::nanoseconds timeout) {
  return with_deadline(std::move(parent), std::chrono::steady_clock::now() + timeout);
}

}  // namespace gort
