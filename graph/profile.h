// Per-node profiling, always on. The runtime calls the observer hooks around every body call
// (Taskflow-style entry/exit); the Profiler keeps counters per node and, when asked, the events of
// a Chrome trace (one track per worker thread, open in Perfetto or chrome://tracing).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
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
  std::vector<std::string> skip_reasons;  // the first 100, "item N (label): reason"
};

// One skipped item (bad input), or several skips of the same item for the same reason: an endless
// source cycling over a list meets the same bad clip on every pass, and an evaluation pipeline
// nested in a training node meets it every epoch.
struct SkipRecord {
  std::string pipeline;  // the pipeline the skipping node belongs to (nested pipelines included)
  std::string node;      // node id
  std::string item;      // the item's label (a clip path), or "item N" without one
  std::string reason;
  std::string category;  // short kind ("missing", "truncated", ...), may be empty
  std::uint64_t first_seq = 0;
  std::uint64_t count = 0;

  nlohmann::json to_json() const;
};

// Device time of a node's bodies, where its work runs asynchronously on an accelerator: the body's
// wall time is then only the time to enqueue the work. A node supplies one (Node::device_timer()); the
// profiler calls begin() and end() around each of that node's bodies, on the body's thread and never
// two at once, and seconds() when it reports, which may wait for the device.
class DeviceTimer {
 public:
  virtual ~DeviceTimer() = default;
  virtual void begin() = 0;
  virtual void end() = 0;
  virtual double seconds() = 0;  // device seconds of every body timed so far
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
  // Returns the start time to pass to on_exit. `thread`: the worker's index in the run's arena. A
  // body that runs inside another on the same thread (a node that runs inline) counts as busy
  // itself, and its time is taken out of the enclosing body's: busy times are self times and add up.
  std::uint64_t on_entry(int node, int thread);
  void on_exit(int node, std::uint64_t start_ns, std::uint64_t seq, int thread);
  void on_emit(int node) { stats_[node]->items_out.fetch_add(1, std::memory_order_relaxed); }
  // `label`: what the item is (a clip path), empty when unknown; `seq`: its position.
  void on_skip(int node, std::uint64_t seq, const std::string& label, const std::string& reason,
               const std::string& category = "");
  // Adds the skip records of a pipeline run inside one of this run's node bodies (an evaluation
  // pipeline nested in a training node), so the run reports every clip it could not use.
  void merge_skips(const Profiler& nested);
  void on_blocked(int node, std::uint64_t ns) { stats_[node]->blocked_ns += ns; }
  void set_peak_in_flight(int node, std::int64_t n) { stats_[node]->peak_in_flight = n; }
  // Times the node's bodies on its device too (to_json's device_seconds, a line under the table).
  void set_device_timer(int node, std::shared_ptr<DeviceTimer> timer);
  void start();
  void stop();

  double wall_seconds() const;
  const NodeStats& stats(int node) const { return *stats_[node]; }
  std::size_t size() const { return stats_.size(); }

  // Every distinct skip (pipeline, node, item, reason), in the order first seen. At most
  // kMaxSkipRecords are kept; skips_dropped() counts the distinct ones beyond.
  std::vector<SkipRecord> skips() const;
  std::uint64_t skips_total() const;  // every skip, repeats included
  std::uint64_t skips_dropped() const;
  static constexpr std::size_t kMaxSkipRecords = 100000;
  // The skipped items, one line each: the first `max_lines` and a count of the rest (pointing to
  // `full_list` when given). Empty when nothing was skipped.
  std::string skip_summary(std::size_t max_lines = 20, const std::string& full_list = "") const;
  // One JSON object per line per distinct skip (skipped.jsonl).
  std::string skips_jsonl() const;

  void set_pipeline_name(std::string name) { pipeline_ = std::move(name); }

  // Summary table, one row per node, the likely bottleneck, and the skip count per node.
  std::string table() const;
  nlohmann::json to_json() const;
  // Chrome trace JSON ({"traceEvents": [...]}); empty events unless tracing was on.
  nlohmann::json trace_json(int pid = 0) const;
  // A data-parallel job's summary: per node, the items and busy seconds of every rank and their
  // total, from each rank's to_json() in rank order.
  static std::string rank_table(const std::vector<nlohmann::json>& profiles);
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
  // Per worker: the time spent in bodies nested in each body now running on it (innermost last).
  std::vector<std::vector<std::uint64_t>> nested_ns_;
  std::mutex overflow_mutex_;
  std::vector<TraceEvent> overflow_;  // threads outside the arena's slots

  struct DeviceTiming {
    std::shared_ptr<DeviceTimer> timer;
    std::mutex mutex;  // bodies of a concurrent node may run at once
  };
  std::vector<std::unique_ptr<DeviceTiming>> device_;  // per node; null: host only

  std::string pipeline_;
  void add_skip(SkipRecord record);
  mutable std::mutex skip_mutex_;
  std::vector<SkipRecord> skips_;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, std::size_t> skip_index_;
  std::uint64_t skips_total_ = 0, skips_dropped_ = 0;
};

}  // namespace sefar::graph
