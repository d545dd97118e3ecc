#include "graph/profile.h"

#include <algorithm>

#include <fmt/format.h>

#include "graph/json_source.h"

// Every body is an NVTX range named after its node, where the build has NVTX (CUDA builds): Nsight
// Systems then shows the graph's nodes above the kernels they launched. Without a profiler attached,
// NVTX calls return at once.
#if SEFAR_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace sefar::graph {

Profiler::Profiler(std::vector<std::pair<std::string, std::string>> nodes, std::vector<int> slots,
                   std::vector<int> order, int threads, bool trace)
    : origin_(clock::now()),
      order_(std::move(order)),
      threads_(threads),
      trace_(trace),
      events_(trace ? std::size_t(threads) + 1 : 0),
      nested_ns_(std::size_t(threads) + 1) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    auto s = std::make_unique<NodeStats>();
    s->id = nodes[i].first;
    s->type = nodes[i].second;
    s->slots = slots[i];
    stats_.push_back(std::move(s));
  }
  device_.resize(stats_.size());
}

void Profiler::set_device_timer(int node, std::shared_ptr<DeviceTimer> timer) {
  if (!timer) return;
  device_[node] = std::make_unique<DeviceTiming>();
  device_[node]->timer = std::move(timer);
}

std::uint64_t Profiler::now_ns() const {
  return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - origin_).count());
}

void Profiler::start() {
  start_ns_ = now_ns();
}
void Profiler::stop() {
  stop_ns_ = now_ns();
}

double Profiler::wall_seconds() const {
  std::uint64_t end = stop_ns_ ? stop_ns_ : now_ns();
  return double(end - start_ns_) * 1e-9;
}

void Profiler::on_arrive(int node) {
  auto& s = *stats_[node];
  auto q = s.queued.fetch_add(1, std::memory_order_relaxed) + 1;
  auto peak = s.peak_queue.load(std::memory_order_relaxed);
  while (q > peak && !s.peak_queue.compare_exchange_weak(peak, q, std::memory_order_relaxed)) {
  }
}

std::uint64_t Profiler::on_entry(int node, int thread) {
  if (thread >= 0 && std::size_t(thread) < nested_ns_.size()) nested_ns_[thread].push_back(0);
#if SEFAR_HAVE_NVTX
  nvtxRangePushA(stats_[node]->id.c_str());
#endif
  if (auto& d = device_[node]) {
    d->mutex.lock();  // held until on_exit: one timed body at a time
    d->timer->begin();
  }
  return now_ns();
}

void Profiler::on_exit(int node, std::uint64_t start_ns, std::uint64_t seq, int thread) {
  std::uint64_t end = now_ns();
  if (auto& d = device_[node]) {
    d->timer->end();
    d->mutex.unlock();
  }
#if SEFAR_HAVE_NVTX
  nvtxRangePop();
#endif
  std::uint64_t self = end - start_ns;
  if (thread >= 0 && std::size_t(thread) < nested_ns_.size() && !nested_ns_[thread].empty()) {
    auto& stack = nested_ns_[thread];
    self -= std::min(self, stack.back());
    stack.pop_back();
    if (!stack.empty()) stack.back() += end - start_ns;
  }
  stats_[node]->busy_ns.fetch_add(self, std::memory_order_relaxed);
  if (!trace_) return;
  TraceEvent e{node, thread, start_ns, end - start_ns, seq};
  if (thread >= 0 && std::size_t(thread) < events_.size()) {
    events_[thread].push_back(e);
  } else {
    std::lock_guard<std::mutex> lock(overflow_mutex_);
    overflow_.push_back(e);
  }
}

void Profiler::on_skip(int node, std::uint64_t seq, const std::string& label, const std::string& reason,
                       const std::string& category) {
  auto& s = *stats_[node];
  s.skipped.fetch_add(1, std::memory_order_relaxed);
  const std::string item = label.empty() ? fmt::format("item {}", seq) : label;
  {
    std::lock_guard<std::mutex> lock(s.reasons_mutex);
    if (s.skip_reasons.size() < 100)
      s.skip_reasons.push_back(label.empty() ? fmt::format("{}: {}", item, reason)
                                             : fmt::format("item {} ({}): {}", seq, label, reason));
  }
  add_skip(SkipRecord{pipeline_, s.id, item, reason, category, seq, 1});
}

void Profiler::add_skip(SkipRecord record) {
  std::lock_guard<std::mutex> lock(skip_mutex_);
  skips_total_ += record.count;
  auto key = std::make_tuple(record.pipeline, record.node, record.item, record.reason);
  auto it = skip_index_.find(key);
  if (it != skip_index_.end()) {
    skips_[it->second].count += record.count;
    return;
  }
  if (skips_.size() >= kMaxSkipRecords) {
    ++skips_dropped_;
    return;
  }
  skip_index_.emplace(std::move(key), skips_.size());
  skips_.push_back(std::move(record));
}

void Profiler::merge_skips(const Profiler& nested) {
  for (auto& r : nested.skips()) add_skip(std::move(r));
  std::lock_guard<std::mutex> lock(skip_mutex_);
  skips_dropped_ += nested.skips_dropped();
}

std::vector<SkipRecord> Profiler::skips() const {
  std::lock_guard<std::mutex> lock(skip_mutex_);
  return skips_;
}

std::uint64_t Profiler::skips_total() const {
  std::lock_guard<std::mutex> lock(skip_mutex_);
  return skips_total_;
}

std::uint64_t Profiler::skips_dropped() const {
  std::lock_guard<std::mutex> lock(skip_mutex_);
  return skips_dropped_;
}

nlohmann::json SkipRecord::to_json() const {
  nlohmann::json j{{"pipeline", pipeline}, {"node", node}, {"item", item}, {"reason", reason}};
  if (!category.empty()) j["category"] = category;
  j["seq"] = first_seq;
  j["count"] = count;
  return j;
}

std::string Profiler::skips_jsonl() const {
  std::string out;
  for (const auto& r : skips()) out += safe_dump(r.to_json()) + "\n";
  return out;
}

std::string Profiler::skip_summary(std::size_t max_lines, const std::string& full_list) const {
  const auto records = skips();
  const std::uint64_t total = skips_total(), dropped = skips_dropped();
  if (total == 0) return {};
  const std::size_t distinct = records.size() + dropped;
  std::string out = fmt::format("skipped {} item{} (bad input)", total, total == 1 ? "" : "s");
  if (distinct != total) out += fmt::format(", {} distinct", distinct);
  out += ":\n";
  for (std::size_t i = 0; i < records.size() && i < max_lines; ++i) {
    const auto& r = records[i];
    std::string where = r.pipeline.empty() || r.pipeline == pipeline_ ? r.node : r.pipeline + "/" + r.node;
    out += fmt::format("  [{}] {}: {}{}\n", where, r.item, r.reason,
                       r.count > 1 ? fmt::format(" ({} times)", r.count) : "");
  }
  if (distinct > max_lines) {
    out += fmt::format("  ... and {} more", distinct - std::min<std::size_t>(max_lines, records.size()));
    out += full_list.empty() ? "\n" : fmt::format(": every one in {}\n", full_list);
  }
  return out;
}

nlohmann::json Profiler::to_json() const {
  nlohmann::json out;
  double wall = wall_seconds();
  out["wall_seconds"] = wall;
  out["threads"] = threads_;
  out["skipped"] = {{"total", skips_total()}, {"distinct", skips().size() + skips_dropped()}};
  out["nodes"] = nlohmann::json::array();
  std::vector<int> order = order_;
  if (order.size() != stats_.size()) {
    order.clear();
    for (std::size_t i = 0; i < stats_.size(); ++i) order.push_back(int(i));
  }
  for (int index : order) {
    const auto& s = *stats_[index];
    double busy = double(s.busy_ns.load()) * 1e-9;
    double capacity = wall * s.slots;
    nlohmann::json n;
    n["id"] = s.id;
    n["type"] = s.type;
    n["slots"] = s.slots;
    n["items_in"] = s.items_in.load();
    n["items_out"] = s.items_out.load();
    n["skipped"] = s.skipped.load();
    n["busy_seconds"] = busy;
    n["busy_fraction"] = capacity > 0 ? busy / capacity : 0.0;
    n["wait_input_seconds"] = std::max(0.0, capacity - busy);
    n["blocked_seconds"] = double(s.blocked_ns.load()) * 1e-9;
    n["items_per_second"] = wall > 0 ? double(s.items_in.load()) / wall : 0.0;
    n["peak_queue"] = s.peak_queue.load();
    n["peak_in_flight"] = s.peak_in_flight;
    n["skip_reasons"] = s.skip_reasons;
    if (const auto& d = device_[index]) {
      std::lock_guard<std::mutex> lock(d->mutex);
      n["device_seconds"] = d->timer->seconds();
    }
    out["nodes"].push_back(n);
  }
  return out;
}

std::string Profiler::rank_table(const std::vector<nlohmann::json>& profiles) {
  if (profiles.empty()) return "";
  std::string out = fmt::format("per-rank profile ({} processes): items in / busy seconds\n{:<18}",
                                profiles.size(), "node");
  for (std::size_t r = 0; r < profiles.size(); ++r) out += fmt::format(" {:>17}", fmt::format("rank {}", r));
  out += fmt::format(" {:>17}\n", "all ranks");
  const auto& first = profiles[0].at("nodes");
  for (std::size_t i = 0; i < first.size(); ++i) {
    const std::string id = first[i].value("id", "");
    out += fmt::format("{:<18}", id);
    std::uint64_t items = 0;
    double busy = 0;
    for (const auto& profile : profiles) {
      const auto& nodes = profile.at("nodes");
      auto it = std::find_if(nodes.begin(), nodes.end(),
                             [&](const nlohmann::json& n) { return n.value("id", "") == id; });
      if (it == nodes.end()) {
        out += fmt::format(" {:>17}", "-");
        continue;
      }
      auto in = it->value("items_in", std::uint64_t(0));
      auto seconds = it->value("busy_seconds", 0.0);
      items += in;
      busy += seconds;
      out += fmt::format(" {:>17}", fmt::format("{} / {:.1f}", in, seconds));
    }
    out += fmt::format(" {:>17}\n", fmt::format("{} / {:.1f}", items, busy));
  }
  return out;
}

std::string Profiler::table() const {
  auto j = to_json();
  std::string out = fmt::format("{:<18} {:<14} {:>5} {:>8} {:>8} {:>6} {:>9} {:>6} {:>9} {:>9} {:>9} {:>6}\n",
                                "node", "type", "slots", "in", "out", "skip", "busy s", "busy%", "wait s",
                                "blocked s", "items/s", "peakQ");
  std::string bottleneck;
  double worst = -1;
  for (const auto& n : j["nodes"]) {
    double frac = n["busy_fraction"].get<double>();
    out += fmt::format(
        "{:<18} {:<14} {:>5} {:>8} {:>8} {:>6} {:>9.3f} {:>5.0f}% {:>9.3f} {:>9.3f} {:>9.1f} {:>6}\n",
        n["id"].get<std::string>(), n["type"].get<std::string>(), n["slots"].get<int>(),
        n["items_in"].get<std::uint64_t>(), n["items_out"].get<std::uint64_t>(),
        n["skipped"].get<std::uint64_t>(), n["busy_seconds"].get<double>(), 100.0 * frac,
        n["wait_input_seconds"].get<double>(), n["blocked_seconds"].get<double>(),
        n["items_per_second"].get<double>(), n["peak_queue"].get<std::int64_t>());
    if (frac > worst) {
      worst = frac;
      bottleneck = n["id"].get<std::string>();
    }
  }
  out += fmt::format("wall {:.3f} s on {} threads; busiest node: {} ({:.0f}% of its slots)\n",
                     j["wall_seconds"].get<double>(), threads_, bottleneck, 100.0 * std::max(0.0, worst));
  std::string device;
  for (const auto& n : j["nodes"])
    if (n.contains("device_seconds"))
      device += fmt::format("{}{} {:.3f} s", device.empty() ? "" : ", ", n["id"].get<std::string>(),
                            n["device_seconds"].get<double>());
  if (!device.empty()) out += "device time (CUDA events): " + device + "\n";
  for (const auto& n : j["nodes"])
    if (n["skipped"].get<std::uint64_t>() > 0)
      out += fmt::format("skipped by '{}': {} (bad input)\n", n["id"].get<std::string>(),
                         n["skipped"].get<std::uint64_t>());
  return out;
}

nlohmann::json Profiler::trace_json(int pid) const {
  nlohmann::json events = nlohmann::json::array();
  std::vector<TraceEvent> all;
  for (const auto& v : events_) all.insert(all.end(), v.begin(), v.end());
  all.insert(all.end(), overflow_.begin(), overflow_.end());
  std::vector<int> tids;
  for (const auto& e : all) {
    int tid = e.tid < 0 ? threads_ + 1 : e.tid;
    if (std::find(tids.begin(), tids.end(), tid) == tids.end()) tids.push_back(tid);
    nlohmann::json args = nlohmann::json::object();
    if (e.seq == kFinishSeq)
      args["finish"] = true;
    else
      args["seq"] = e.seq;
    events.push_back({{"name", stats_[e.node]->id},
                      {"cat", stats_[e.node]->type},
                      {"ph", "X"},
                      {"ts", double(e.start_ns) / 1000.0},
                      {"dur", double(e.dur_ns) / 1000.0},
                      {"pid", pid},
                      {"tid", tid},
                      {"args", args}});
  }
  std::sort(tids.begin(), tids.end());
  for (int tid : tids)
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"tid", tid},
                      {"args", {{"name", fmt::format("worker {}", tid)}}}});
  events.push_back(
      {{"name", "process_name"},
       {"ph", "M"},
       {"pid", pid},
       {"args", {{"name", pid == 0 ? std::string("sefar") : fmt::format("sefar rank {}", pid)}}}});
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}};
}

}  // namespace sefar::graph
