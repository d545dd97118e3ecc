// The in-flight budget of each source (internal to the runtime, graph/runtime.cpp): the gate a
// source's items pass, whose tickets (graph/item.h) give the budget back when the last item holding
// them is gone, and the count of the source's items skipped as bad input.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <oneapi/tbb/flow_graph.h>

#include "graph/item.h"

namespace sefar::graph {

namespace flow = tbb::flow;

// The in-flight budget of one source. Tickets release into it; once closed (graph torn down),
// releases are no-ops. It also counts the source's items skipped as bad input and, with a window
// W > 0, calls `on_all_skipped` once when the last W items the source produced were all skipped
// (items still in flight count as usable, so a slow good item never trips it).
// When the share of a source's recent items skipped as bad input is too high: `report(skipped, of,
// stop)` once above `warn`, and with stop = true once above `max` (RuntimeSettings).
struct SkipShare {
  std::uint64_t per_pass = 0;  // measured once this many items were produced (0: never)
  double warn = 1, max = 1;
  std::function<void(std::uint64_t, std::uint64_t, bool)> report;
};

class Gate {
 public:
  Gate(flow::limiter_node<Item, int>* limiter, std::uint64_t window,
       std::function<void(std::uint64_t)> on_all_skipped, SkipShare share = {})
      : limiter_(limiter),
        marked_(window, 0),
        on_all_skipped_(std::move(on_all_skipped)),
        share_(std::move(share)) {}
  void acquire(std::uint64_t seq) {
    ++produced_;
    auto now = in_flight_.fetch_add(1) + 1;
    auto peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    advance(seq);
  }
  void release() {
    in_flight_.fetch_sub(1);
    // Recursive: the decrement may, in principle, run successor bodies that drop other items.
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    if (limiter_) limiter_->decrementer().try_put(1);
  }
  void skipped(std::uint64_t seq) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    ++skipped_;
    const std::uint64_t w = marked_.size();
    if (w == 0 || seq + w < next_) return;  // no window, or the item left it already
    advance(seq);
    char& m = marked_[seq % w];
    if (m) return;
    m = 1;
    if (++marked_count_ == w && !fired_ && limiter_ && on_all_skipped_) {
      fired_ = true;
      on_all_skipped_(w);
      return;
    }
    const std::uint64_t produced = produced_.load();
    if (share_.per_pass == 0 || produced < share_.per_pass || !share_.report || !limiter_) return;
    const std::uint64_t of = std::min<std::uint64_t>(produced, w);
    const double fraction = double(marked_count_) / double(of);
    if (fraction > share_.max && !stopped_) {
      stopped_ = true;
      share_.report(marked_count_, of, true);
    } else if (fraction > share_.warn && !warned_) {
      warned_ = true;
      share_.report(marked_count_, of, false);
    }
  }
  void close() {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    limiter_ = nullptr;
  }
  std::int64_t peak() const { return peak_.load(); }
  std::uint64_t produced() const { return produced_.load(); }
  std::uint64_t skipped_count() {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    return skipped_;
  }

 private:
  // The window becomes [seq + 1 - W, seq]: slots of the items leaving it are cleared.
  void advance(std::uint64_t seq) {
    const std::uint64_t w = marked_.size();
    for (; w > 0 && next_ <= seq; ++next_) {
      char& m = marked_[next_ % w];
      if (m) --marked_count_;
      m = 0;
    }
  }

  std::recursive_mutex mutex_;
  flow::limiter_node<Item, int>* limiter_;
  std::atomic<std::int64_t> in_flight_{0}, peak_{0};
  std::atomic<std::uint64_t> produced_{0};
  std::uint64_t skipped_ = 0;
  std::vector<char> marked_;  // by seq % W: skipped
  std::uint64_t marked_count_ = 0, next_ = 0;
  bool fired_ = false, warned_ = false, stopped_ = false;
  std::function<void(std::uint64_t)> on_all_skipped_;
  SkipShare share_;
};

}  // namespace sefar::graph
