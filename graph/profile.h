// Per-node profiling, always on. The runtime calls the observer hooks around every body call
// (Taskflow-style entry/exit); the Profiler keeps counters per node and, when asked, the events of
// a Chrome trace (one track per worker thread, open in Perfetto or chrome://tracing).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sefar::graph {

struct NodeStats {
  std::string id, type;
  int slots = 1;  // how many bodies may run at once (min of concurrency and threads)
  std::atomic<std::uint64_t> items_in{0}, items_out{0}, skipped{0}, failed{0};
  std::atomic<std::uint64_t> busy_ns{0};
  std::atomic<std::uint64_t> blocked_ns{0};  // sources: waiting for in-flight budget
  std::atomic<std::int64_t> queued{0};       // arrived, not yet started
  std::atomic<std::int64_t> peak_queue{0};
  std::int64_t peak_in_flight = 0;  // sources: most items holding this source's budget at once
  std::mutex reasons_mutex;
  std::vector<std::string> skip_reasons;  // first few, for the summary
};

// The seq recorded for a node's end-of-stream flush.
constexpr std::uint64_t kFinishSeq = ~std::uint64_t(0);

struct TraceEvent {
  int node;
  int tid;
  std::uint64_t start_ns, dur_ns;
  std::uint64_t seq;
};

class Profiler {
 public:
  using clock = std::chrono::steady_clock;

  // `order`: the node indices in the order the table lists them (topological).
  Profiler(std::vector<std::pair<std::string, std::string>> nodes, std::vector<int> slots,
           std::vector<int> order, int threads, bool trace);

  std::uint64_t now_ns() const;
  void on_arrive(int node);
  void on_item(int node) { stats_[node]->items_in.fetch_add(1, std::memory_order_relaxed); }
  // Returns the start time to pass to on_exit.
  std::uint64_t on_entry(int node);
  void on_exit(int node, std::uint64_t start_ns, std::uint64_t seq, int thread);
  void on_emit(int node) { stats_[node]->items_out.fetch_add(1, std::memory_order_relaxed); }
  void on_skip(int node, const std::string& reason);
  void on_blocked(int node, std::uint64_t ns) { stats_[node]->blocked_ns += ns; }
  void set_peak_in_flight(int node, std::int64_t n) { stats_[node]->peak_in_flight = n; }
  void start();
  void stop();

  double wall_seconds() const;
  const NodeStats& stats(int node) const { return *stats_[node]; }
  std::size_t size() const { return stats_.size(); }

  // Summary table, one row per node, and the likely bottleneck.
  std::string table() const;
  nlohmann::json to_json() const;
  // Chrome trace JSON ({"traceEvents": [...]}); empty events unless tracing was on.
  nlohmann::json trace_json() const;
  bool tracing() const { return trace_; }

 private:
  clock::time_point origin_;
  std::uint64_t start_ns_ = 0, stop_ns_ = 0;
  std::vector<int> order_;
  int threads_;
  bool trace_;
  std::vector<std::unique_ptr<NodeStats>> stats_;
  // One event list per worker slot: a slot is only written by the thread holding that index.
  std::vector<std::vector<TraceEvent>> events_;
  std::mutex overflow_mutex_;
  std::vector<TraceEvent> overflow_;  // threads outside the arena's slots
};

}  // namespace sefar::graph
