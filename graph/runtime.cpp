#include "graph/runtime.h"
#include "util/atomic_file.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <csignal>

#include "graph/node.h"
#include "graph/stop.h"

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

Ticket::~Ticket() {
  if (gate_) gate_->release();
}

void Ticket::mark_skipped() {
  if (skipped_.exchange(true)) return;
  if (gate_) gate_->skipped(seq_);
  for (auto& part : parts_) part->mark_skipped();
}

std::string Item::describe() const {
  if (label && !label->empty()) return fmt::format("item {} ({})", seq, *label);
  return fmt::format("item {}", seq);
}

Item combine(std::uint64_t seq, std::any value, const std::vector<Item>& parts,
             std::shared_ptr<const std::string> label) {
  std::vector<std::shared_ptr<Ticket>> tickets;
  tickets.reserve(parts.size());
  for (const auto& p : parts)
    if (p.ticket) tickets.push_back(p.ticket);
  Item out;
  out.seq = seq;
  out.value = std::move(value);
  out.label = std::move(label);
  out.ticket = std::make_shared<Ticket>(std::move(tickets));
  return out;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  util::write_file_atomic(path, text);
}

namespace {

struct Tagged {
  Item item;
  int port = 0;
};

// The items waiting for a serial node that keeps its thread (see Impl::build), and whether a thread
// is taking them.
struct Mailbox {
  std::mutex mutex;
  std::deque<Tagged> items;
  bool draining = false;
};

}  // namespace

struct Runtime::Impl {
  // The runtime whose node body the calling thread is running, if any: a pipeline run inside a
  // body (evaluation nested in a training node) hands its skip records to it.
  static thread_local Impl* current_body_runtime;
  struct BodyScope {
    explicit BodyScope(Impl* impl) : saved(current_body_runtime) { current_body_runtime = impl; }
    ~BodyScope() { current_body_runtime = saved; }
    BodyScope(const BodyScope&) = delete;
    BodyScope& operator=(const BodyScope&) = delete;
    Impl* saved;
  };

  const ValidatedPipeline& pipeline;
  const Registry& registry;
  std::map<std::string, std::any> models;  // the shared models by id, built before the nodes
  std::vector<std::unique_ptr<Node>> nodes;
  std::shared_ptr<Profiler> profiler;

  // TBB objects of one run; created and destroyed inside the arena.
  struct Wiring {
    std::vector<std::vector<flow::sender<Item>*>> outputs;             // [node][port], edge ends
    std::vector<std::vector<flow::broadcast_node<Item>*>> broadcasts;  // [node][port], non-sources
    std::vector<std::vector<flow::receiver<Item>*>> inputs;            // [node][port]
    // Nodes that run inline: a lock each, and per sender's output port the (node, port) it calls.
    std::vector<std::unique_ptr<std::mutex>> inline_locks;                      // [node], null: not inline
    std::vector<std::vector<std::vector<std::pair<int, int>>>> inline_targets;  // [node][port]
    std::vector<std::unique_ptr<flow::graph_node>> owned;
    std::vector<std::shared_ptr<Gate>> gates;  // per node, sources only
    std::vector<std::unique_ptr<flow::input_node<Item>>> sources;
    // Declared last, destroyed first: items left in a mailbox hold tickets of the gates above.
    std::vector<std::unique_ptr<Mailbox>> mailboxes;  // [node], null: TBB queues its items
  };

  std::mutex failure_mutex;
  std::optional<NodeFailure> failure;
  std::atomic<bool> failed{false};
  std::atomic<bool> interrupted{false};  // a stop was requested (graph/stop.h)
  std::mutex graph_mutex;                // guards `graph` for the stop watcher
  flow::graph* graph = nullptr;
  Wiring* wiring = nullptr;
  std::vector<std::uint64_t> next_seq;

  Impl(const ValidatedPipeline& p, const Registry& r) : pipeline(p), registry(r) {}

  const ResolvedNode& decl(int i) const { return pipeline.nodes[i]; }

  void fail(int node, const std::string& item, const std::string& what, bool bad_input,
            bool storage = false) {
    {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure)
        failure.emplace(pipeline.name, decl(node).id, decl(node).spec->type(), item, what, bad_input,
                        storage);
    }
    failed = true;
    if (graph) graph->cancel();
  }

  // Stop: sources produce nothing more, bodies not started yet are cancelled, running ones finish.
  // When a node completes what it received on a stop (the nodes of a training step), the graph is
  // not cancelled: every other node drops its queued items unprocessed while those finish theirs.
  void interrupt() {
    interrupted = true;
    if (completes_on_stop()) return;
    std::lock_guard<std::mutex> lock(graph_mutex);
    if (graph) graph->cancel();
  }
  bool completes_on_stop() const {
    for (const auto& node : pipeline.nodes)
      if (node.spec->completes_on_stop_flag()) return true;
    return false;
  }

  class OutputImpl final : public Output {
   public:
    OutputImpl(Impl& impl, int node, const Item* current) : impl_(impl), node_(node), current_(current) {}
    void emit_item(int port, Item item) override {
      check(port, item.value);
      send(port, std::move(item));
    }
    void skip_item(const std::string& reason, const std::string& category) override {
      if (current_ && current_->ticket) current_->ticket->mark_skipped();
      const std::string label = current_ && current_->label ? *current_->label : std::string();
      impl_.profiler->on_skip(node_, current_ ? current_->seq : 0, label, reason, category);
      if (!current_ || impl_.decl(node_).spec->renumbers_output()) return;
      Item placeholder{current_->seq, std::any(), current_->label, current_->ticket, current_->produced_ns};
      for (std::size_t p = 0; p < impl_.wiring->outputs[node_].size(); ++p) forward(int(p), placeholder);
    }
    void forward(int port, const Item& item) {
      impl_.wiring->broadcasts[node_][port]->try_put(item);
      for (auto [to, to_port] : impl_.wiring->inline_targets[node_][port])
        impl_.run_inline(to, to_port, item);
    }

   protected:
    void emit_value(int port, std::any value) override {
      if (!current_)
        throw std::logic_error("emit() outside process(): use emit_item() with a complete item in finish()");
      check(port, value);
      send(port,
           Item{current_->seq, std::move(value), current_->label, current_->ticket, current_->produced_ns});
    }

   private:
    void check(int port, const std::any& value) const {
      const auto& spec = *impl_.decl(node_).spec;
      if (port < 0 || std::size_t(port) >= spec.outputs().size())
        throw std::logic_error(
            fmt::format("emit on output {} but the node has {} outputs", port, spec.outputs().size()));
      const auto& msg = spec.outputs()[port].message;
      if (!msg.is_any() && value.has_value() && std::type_index(value.type()) != msg.type)
        throw std::logic_error(
            fmt::format("output \"{}\" carries \"{}\" but the body emitted another C++ type",
                        spec.outputs()[port].name, msg.name));
    }
    void send(int port, Item item) {
      impl_.profiler->on_emit(node_);
      forward(port, item);
    }
    Impl& impl_;
    int node_;
    const Item* current_;
  };

  void run_body(int i, const Tagged& t) {
    auto& stats = const_cast<NodeStats&>(profiler->stats(i));
    stats.queued.fetch_sub(1, std::memory_order_relaxed);
    const auto& spec = *decl(i).spec;
    if (failed || ((interrupted || stop_requested()) && !spec.completes_on_stop_flag())) return;
    OutputImpl out(*this, i, &t.item);
    if (t.item.skipped() && !spec.renumbers_output()) {
      for (std::size_t p = 0; p < wiring->outputs[i].size(); ++p) out.forward(int(p), t.item);
      return;
    }
    profiler->on_item(i);
    const int thread = tbb::this_task_arena::current_thread_index();
    std::uint64_t start = profiler->on_entry(i, thread);
    BodyScope scope(this);
    try {
      nodes[i]->process(t.port, t.item, out);
    } catch (const InputError& e) {
      out.skip(e.what(), e.category());
    } catch (const Interrupted&) {  // a nested run (evaluation) saw the stop request first
      interrupt();
    } catch (const ConfigError& e) {
      fail(i, t.item.describe(), e.what(), true);
    } catch (const NodeFailure& e) {
      fail(i, t.item.describe(), e.what(), e.bad_input(), e.storage());
    } catch (const util::WriteError& e) {
      fail(i, t.item.describe(), e.what(), false, true);
    } catch (const std::exception& e) {
      fail(i, t.item.describe(), e.what(), false);
    } catch (...) {
      fail(i, t.item.describe(), "unknown exception", false);
    }
    profiler->on_exit(i, start, t.item.seq, thread);
  }

  Item produce(int i, tbb::flow_control& fc) {
    auto* source = static_cast<Source*>(nodes[i].get());
    if (failed || interrupted || stop_requested()) {
      fc.stop();
      return {};
    }
    Source::Produced produced;
    const int thread = tbb::this_task_arena::current_thread_index();
    std::uint64_t start = profiler->on_entry(i, thread);
    bool more = false;
    try {
      more = source->produce(produced);
    } catch (const InputError& e) {
      fail(i, "", e.what(), true);
    } catch (const std::exception& e) {
      fail(i, "", e.what(), false);
    }
    std::uint64_t seq = next_seq[i];
    profiler->on_exit(i, start, seq, thread);
    if (!more || failed || interrupted || stop_requested()) {
      fc.stop();
      return {};
    }
    ++next_seq[i];
    Item item;
    item.seq = seq;
    item.value = std::move(produced.value);
    if (!produced.label.empty()) item.label = std::make_shared<const std::string>(std::move(produced.label));
    item.produced_ns = profiler->now_ns();
    return item;
  }

  int source_count() const {
    int count = 0;
    for (const auto& node : pipeline.nodes) count += node.spec->is_source();
    return count;
  }
  // Each source owns an equal share of the in-flight budget: a shared pool could deadlock a join
  // whose other input starves.
  int source_budget() const {
    return std::max(1, pipeline.runtime.max_in_flight / std::max(1, source_count()));
  }

  void build(flow::graph& g, Wiring& w) {
    const int n = int(pipeline.nodes.size());
    w.outputs.resize(n);
    w.inputs.resize(n);
    w.broadcasts.resize(n);
    w.gates.resize(n);
    w.inline_locks.resize(n);
    w.inline_targets.resize(n);
    w.mailboxes.resize(n);
    for (int i = 0; i < n; ++i) w.inline_targets[i].resize(decl(i).spec->outputs().size());
    next_seq.assign(n, 0);
    const int budget = source_budget();

    for (int i = 0; i < n; ++i) {
      const auto& spec = *decl(i).spec;
      if (spec.is_source()) {
        auto input = std::make_unique<flow::input_node<Item>>(
            g, [this, i](tbb::flow_control& fc) { return produce(i, fc); });
        auto limiter = std::make_unique<flow::limiter_node<Item, int>>(g, budget);
        // Any 2 passes hold a whole one: when the last 2 passes' worth of items were all skipped, no item
        // of the source is usable and an endless source would spin forever.
        const std::uint64_t per_pass = static_cast<Source*>(nodes[i].get())->items_per_pass();
        const std::uint64_t window = per_pass > 0 ? 2 * std::min<std::uint64_t>(per_pass, 10'000'000) : 0;
        SkipShare share;
        share.per_pass = per_pass;
        share.warn = pipeline.runtime.warn_skip_fraction;
        share.max = pipeline.runtime.max_skip_fraction;
        share.report = [this, i](std::uint64_t skipped, std::uint64_t of, bool stop) {
          const std::string what = fmt::format("{} of its last {} items ({:.1f}%) were skipped as bad input",
                                               skipped, of, 100.0 * double(skipped) / double(of));
          if (stop)
            fail(i, "",
                 fmt::format("{}, more than runtime.max_skip_fraction={}: see the skipped items below", what,
                             pipeline.runtime.max_skip_fraction),
                 true);
          else
            std::fprintf(stderr, "%s\n",
                         fmt::format("warning: source '{}': {} (more than runtime.warn_skip_fraction={}; "
                                     "runtime.max_skip_fraction stops a run above a share)",
                                     decl(i).id, what, pipeline.runtime.warn_skip_fraction)
                             .c_str());
        };
        auto gate = std::make_shared<Gate>(
            limiter.get(), window,
            [this, i, per_pass](std::uint64_t run) {
              fail(i, "",
                   fmt::format("no usable item: the last {} items it produced were all skipped as bad input "
                               "({} items per pass)",
                               run, per_pass),
                   true);
            },
            std::move(share));
        // Attaches the budget ticket once the limiter let the item in; the time the item waited for
        // the limiter is the source's "blocked" time.
        auto stamp = std::make_unique<flow::function_node<Item, Item, flow::lightweight>>(
            g, flow::unlimited, [this, i, gate](Item item) {
              gate->acquire(item.seq);
              item.ticket = std::make_shared<Ticket>(gate, item.seq);
              std::uint64_t now = profiler->now_ns();
              if (now > item.produced_ns) profiler->on_blocked(i, now - item.produced_ns);
              profiler->on_emit(i);
              return item;
            });
        flow::make_edge(*input, *limiter);
        flow::make_edge(*limiter, *stamp);
        w.outputs[i].push_back(stamp.get());
        w.gates[i] = gate;
        w.owned.push_back(std::move(limiter));
        w.owned.push_back(std::move(stamp));
        w.sources.push_back(std::move(input));
        continue;
      }
      for (std::size_t p = 0; p < spec.outputs().size(); ++p) {
        auto b = std::make_unique<flow::broadcast_node<Item>>(g);
        w.outputs[i].push_back(b.get());
        w.broadcasts[i].push_back(b.get());
        w.owned.push_back(std::move(b));
      }
      if (spec.runs_inline_flag()) w.inline_locks[i] = std::make_unique<std::mutex>();
      if (keeps_thread(i)) {
        build_mailbox(g, w, i);
        continue;
      }
      std::size_t concurrency =
          decl(i).concurrency == 0 ? std::size_t(flow::unlimited) : std::size_t(decl(i).concurrency);
      auto body = std::make_unique<flow::function_node<Tagged, flow::continue_msg>>(
          g, concurrency, [this, i](const Tagged& t) {
            run_body(i, t);
            return flow::continue_msg();
          });
      connect_inputs(g, w, i, *body);
      w.owned.push_back(std::move(body));
    }
    for (const auto& e : pipeline.edges) {
      // An edge into a node that runs inline is a direct call from the sender's body (forward()).
      if (w.inline_locks[e.to_node] && !decl(e.from_node).spec->is_source())
        w.inline_targets[e.from_node][e.from_port].emplace_back(e.to_node, e.to_port);
      else
        flow::make_edge(*w.outputs[e.from_node][e.from_port], *w.inputs[e.to_node][e.to_port]);
    }
  }

  // Each input port of node `i`: an item arrives (counted as queued), tagged with its port, through a
  // sequencer when the port is ordered, to `target`.
  void connect_inputs(flow::graph& g, Wiring& w, int i, flow::receiver<Tagged>& target) {
    const auto& spec = *decl(i).spec;
    for (std::size_t p = 0; p < spec.inputs().size(); ++p) {
      // TBB runs a lightweight node's body in the sender's thread only when the body is noexcept.
      auto arrive = std::make_unique<flow::function_node<Item, Tagged, flow::lightweight>>(
          g, flow::unlimited, [this, i, p](Item item) noexcept {
            profiler->on_arrive(i);
            return Tagged{std::move(item), int(p)};
          });
      w.inputs[i].push_back(arrive.get());
      if (spec.inputs()[p].ordered) {
        auto seq = std::make_unique<flow::sequencer_node<Tagged>>(
            g, [](const Tagged& t) { return std::size_t(t.item.seq); });
        flow::make_edge(*arrive, *seq);
        flow::make_edge(*seq, target);
        w.owned.push_back(std::move(seq));
      } else {
        flow::make_edge(*arrive, target);
      }
      w.owned.push_back(std::move(arrive));
    }
  }

  // A serial node that takes items from nodes running inline (the training loop, which the last node
  // of its step answers) keeps the thread it runs on while it has work: its items wait in a mailbox,
  // and the thread that ran its body takes the next one when the body returns. Through TBB's queue
  // the next item would be a new task that the other worker often steals, so consecutive steps would
  // change threads and allocate from another malloc arena each time (page faults, cache misses).
  bool keeps_thread(int i) const {
    if (decl(i).concurrency != 1 || decl(i).spec->runs_inline_flag()) return false;
    for (const auto& e : pipeline.edges)
      if (e.to_node == i && decl(e.from_node).spec->runs_inline_flag()) return true;
    return false;
  }

  void build_mailbox(flow::graph& g, Wiring& w, int i) {
    w.mailboxes[i] = std::make_unique<Mailbox>();
    // The task that takes the mailbox's items, started when an item finds no thread taking them.
    auto drain = std::make_unique<flow::function_node<flow::continue_msg, flow::continue_msg>>(
        g, flow::unlimited, [this, i](flow::continue_msg) {
          drain_mailbox(i);
          return flow::continue_msg();
        });
    // Posting runs in the sender's thread (noexcept, lightweight), so an answer sent from inside the
    // node's body is in the mailbox when the body returns, and a sequencer's order is kept. A
    // multifunction node accepts every item (a function node without successors would tell its sender
    // that the item was refused, and a sequencer would offer it again).
    using PostNode = flow::multifunction_node<Tagged, std::tuple<flow::continue_msg>, flow::lightweight>;
    auto post_node = std::make_unique<PostNode>(
        g, flow::unlimited, [this, i](const Tagged& t, PostNode::output_ports_type& ports) noexcept {
          if (post(i, t)) std::get<0>(ports).try_put(flow::continue_msg());
        });
    flow::make_edge(flow::output_port<0>(*post_node), *drain);
    connect_inputs(g, w, i, *post_node);
    w.owned.push_back(std::move(post_node));
    w.owned.push_back(std::move(drain));
  }

  // Queues an item for node `i`; true when no thread is taking its items (the caller starts one).
  bool post(int i, Tagged t) {
    auto& box = *wiring->mailboxes[i];
    std::lock_guard<std::mutex> lock(box.mutex);
    box.items.push_back(std::move(t));
    if (box.draining) return false;
    box.draining = true;
    return true;
  }

  void drain_mailbox(int i) {
    auto& box = *wiring->mailboxes[i];
    for (;;) {
      Tagged t;
      {
        std::lock_guard<std::mutex> lock(box.mutex);
        if (box.items.empty()) {
          box.draining = false;
          return;
        }
        t = std::move(box.items.front());
        box.items.pop_front();
      }
      run_body(i, t);
    }
  }

  // Runs the body of node `i` (which runs inline) on `item` in the calling thread, one call at a time.
  void run_inline(int i, int port, const Item& item) {
    profiler->on_arrive(i);
    std::lock_guard<std::mutex> lock(*wiring->inline_locks[i]);
    run_body(i, Tagged{item, port});
  }

  // Ids of the source nodes whose items reach `node` (itself when it is a source), sorted.
  std::vector<std::string> sources_reaching(int node) const {
    std::set<std::string> ids;
    std::vector<bool> seen(pipeline.nodes.size(), false);
    std::vector<int> stack{node};
    while (!stack.empty()) {
      int v = stack.back();
      stack.pop_back();
      if (seen[v]) continue;
      seen[v] = true;
      if (decl(v).spec->is_source()) ids.insert(decl(v).id);
      for (const auto& e : pipeline.edges)
        if (e.to_node == v) stack.push_back(e.from_node);
    }
    return {ids.begin(), ids.end()};
  }

  Diagnostic constructor_problem(const ResolvedNode& node, const std::string& what) const {
    Diagnostic d{node.file, node.line, 0, node.id, node.spec->type(), "", what};
    const std::string prefix = "param \"";
    auto start = what.find(prefix);
    if (start != std::string::npos) {
      auto end = what.find('"', start + prefix.size());
      if (end != std::string::npos) {
        d.key = what.substr(start + prefix.size(), end - start - prefix.size());
        auto it = node.param_places.find(d.key);
        if (it != node.param_places.end()) {
          d.file = it->second.first;
          d.line = it->second.second;
        }
      }
    }
    return d;
  }

  void check_budget() {
    // A node holding k source items (a batch being filled) needs at least k of its source's budget,
    // or the run stalls: reject such a pipeline before it starts.
    const int n = int(pipeline.nodes.size());
    const int n_sources = source_count();
    const int budget = source_budget();
    std::vector<std::vector<int>> next(n);
    for (const auto& e : pipeline.edges) next[e.from_node].push_back(e.to_node);
    std::vector<Diagnostic> problems;
    for (int s = 0; s < n; ++s) {
      if (!decl(s).spec->is_source()) continue;
      std::vector<bool> seen(n, false);
      std::vector<int> stack{s};
      std::size_t held = 0;
      std::string holders;
      while (!stack.empty()) {
        int v = stack.back();
        stack.pop_back();
        if (seen[v]) continue;
        seen[v] = true;
        if (auto h = nodes[v]->items_held()) {
          held += h;
          holders += fmt::format("{}'{}' holds up to {}", holders.empty() ? "" : ", ", decl(v).id, h);
        }
        for (int w : next[v]) stack.push_back(w);
      }
      if (held > std::size_t(budget))
        problems.push_back(
            Diagnostic{pipeline.file, 0, 0, decl(s).id, decl(s).spec->type(), "max_in_flight",
                       fmt::format("runtime.max_in_flight={} gives this source a budget of {} items, "
                                   "but downstream {}: raise max_in_flight to at least {}",
                                   pipeline.runtime.max_in_flight, budget, holders, held * n_sources)});
    }
    if (!problems.empty()) throw PipelineError(std::move(problems));
  }

  bool prepared = false;

  // Shared models, then the node objects: constructors check their options (bad values are bad input,
  // exit 2); then every source's budget. Nothing is written: outputs open in Node::start().
  void prepare(const RunOptions& options) {
    const int n = int(pipeline.nodes.size());
    prepared = false;
    models.clear();
    nodes.clear();
    std::vector<Diagnostic> problems;
    for (const auto& m : pipeline.models) {
      NodeContext ctx;
      ctx.pipeline = pipeline.name;
      ctx.id = m.id;
      ctx.type = m.spec->type();
      ctx.seed = pipeline.runtime.seed;
      ctx.run_dir = pipeline.runtime.run_dir;
      ctx.communicator = options.communicator;
      ctx.rank = options.rank;
      ctx.world_size = options.world_size;
      ctx.params = Params(fmt::format("model '{}' ({})", m.id, m.spec->type()), m.params);
      ctx.document = &pipeline.document;
      try {
        models[m.id] = m.spec->model_factory()(ctx);
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const util::WriteError&) {
        throw;
      } catch (const std::exception& e) {
        problems.push_back(constructor_problem(m, e.what()));
        problems.back().model = true;
      }
    }
    if (!problems.empty()) throw PipelineError(std::move(problems));
    for (int i = 0; i < n; ++i) {
      NodeContext ctx;
      ctx.pipeline = pipeline.name;
      ctx.id = decl(i).id;
      ctx.type = decl(i).spec->type();
      ctx.concurrency = decl(i).concurrency;
      ctx.seed = pipeline.runtime.seed;
      ctx.run_dir = pipeline.runtime.run_dir;
      ctx.communicator = options.communicator;
      ctx.rank = options.rank;
      ctx.world_size = options.world_size;
      ctx.connected_inputs.assign(decl(i).spec->inputs().size(), false);
      ctx.input_sources.assign(decl(i).spec->inputs().size(), {});
      for (const auto& e : pipeline.edges)
        if (e.to_node == i) {
          ctx.connected_inputs[e.to_port] = true;
          for (const auto& id : sources_reaching(e.from_node)) ctx.input_sources[e.to_port].push_back(id);
        }
      ctx.params = Params(fmt::format("node '{}' ({})", decl(i).id, decl(i).spec->type()), decl(i).params);
      if (auto it = options.resume.find(decl(i).id); options.resume.is_object() && it != options.resume.end())
        ctx.resume = *it;
      ctx.document = &pipeline.document;
      ctx.list_fingerprints = options.list_fingerprints;
      ctx.models = models;
      try {
        nodes.push_back(decl(i).spec->factory()(ctx));
      } catch (const PipelineError& e) {
        for (auto d : e.diagnostics()) {
          if (d.node_id.empty()) {
            d.node_id = decl(i).id;
            d.node_type = decl(i).spec->type();
          }
          if (d.file.empty()) d.file = decl(i).file;
          problems.push_back(d);
        }
        nodes.emplace_back();
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const util::WriteError&) {
        throw;  // the run directory cannot be made: exit 74, not an invalid pipeline
      } catch (const std::exception& e) {
        // A constructor rejects what validation cannot see (a split list that does not exist, a device
        // this machine lacks, [min, max] out of order): the pipeline is invalid (exit 2). Messages of the
        // form `param "NAME": ...` are placed at the parameter.
        problems.push_back(constructor_problem(decl(i), e.what()));
        nodes.emplace_back();
      }
    }
    if (!problems.empty()) throw PipelineError(std::move(problems));
    check_budget();
    prepared = true;
  }

  // Every node's start(), in topological order, once all start-up checks passed.
  void start_nodes() {
    for (int i : pipeline.topo_order) {
      try {
        nodes[i]->start();
      } catch (const util::WriteError&) {
        throw;
      } catch (const std::exception& e) {
        throw NodeFailure(pipeline.name, decl(i).id, decl(i).spec->type(), "", e.what(), false);
      }
    }
  }

  RunResult run(const RunOptions& options) {
    const int n = int(pipeline.nodes.size());
    int threads = pipeline.runtime.threads > 0 ? pipeline.runtime.threads : tbb::info::default_concurrency();

    failure.reset();
    failed = false;
    interrupted = false;
    if (!prepared) prepare(options);
    prepared = false;  // a next run builds its nodes anew
    enable_graceful_stop();
    start_nodes();

    std::vector<std::pair<std::string, std::string>> names;
    std::vector<int> slots;
    for (int i = 0; i < n; ++i) {
      names.emplace_back(decl(i).id, decl(i).spec->type());
      int c = decl(i).concurrency == 0 ? threads : std::min(decl(i).concurrency, threads);
      slots.push_back(std::max(1, c));
    }
    profiler = std::make_shared<Profiler>(names, slots, pipeline.topo_order, threads,
                                          options.trace || !options.trace_path.empty());
    profiler->set_pipeline_name(pipeline.name);
    for (int i = 0; i < n; ++i)
      if (nodes[i]) profiler->set_device_timer(i, nodes[i]->device_timer());
    Impl* parent = current_body_runtime;

    // TBB caps workers at the core count unless told otherwise; a pipeline asking for more threads
    // (I/O-bound stages) gets them for the duration of the run.
    std::optional<tbb::global_control> allow;
    if (threads > tbb::info::default_concurrency())
      allow.emplace(tbb::global_control::max_allowed_parallelism, std::size_t(threads));
    // Stop watcher: turns a stop request (a signal handler can only set a flag) into a cancelled
    // graph within a few milliseconds, whatever the graph is doing.
    std::mutex watch_mutex;
    std::condition_variable watch_cv;
    bool run_over = false;
    std::thread watcher([&] {
      std::unique_lock<std::mutex> lock(watch_mutex);
      while (!run_over) {
        if (stop_requested() && !interrupted) interrupt();
        watch_cv.wait_for(lock, std::chrono::milliseconds(20));
      }
    });
    struct StopWatcher {
      std::mutex& mutex;
      std::condition_variable& cv;
      bool& over;
      std::thread& thread;
      ~StopWatcher() {
        {
          std::lock_guard<std::mutex> lock(mutex);
          over = true;
        }
        cv.notify_all();
        thread.join();
      }
    } stop_watcher{watch_mutex, watch_cv, run_over, watcher};

    tbb::task_arena arena(threads);
    arena.execute([&] {
      flow::graph g;
      Wiring w;
      {
        std::lock_guard<std::mutex> lock(graph_mutex);
        graph = &g;
      }
      wiring = &w;
      build(g, w);
      profiler->start();
      if (stop_requested()) interrupt();
      for (auto& s : w.sources) s->activate();
      g.wait_for_all();
      // A source none of whose items could be used: the run did nothing with it.
      for (int i = 0; i < n && !failed; ++i)
        if (w.gates[i] && w.gates[i]->produced() > 0 && w.gates[i]->skipped_count() == w.gates[i]->produced())
          fail(i, "",
               fmt::format("no usable item: all {} items it produced were skipped as bad input",
                           w.gates[i]->produced()),
               true);
      // Flush phase: nodes holding partial state (a last incomplete batch) emit it, upstream first.
      for (int v : pipeline.topo_order) {
        if (stop_requested() && !interrupted) interrupt();
        if (failed || interrupted) break;
        OutputImpl out(*this, v, nullptr);
        const int thread = tbb::this_task_arena::current_thread_index();
        std::uint64_t start = profiler->on_entry(v, thread);
        BodyScope scope(this);
        try {
          nodes[v]->finish(out);
        } catch (const Interrupted&) {
          interrupt();
        } catch (const util::WriteError& e) {
          fail(v, "", fmt::format("at end of stream: {}", e.what()), false, true);
        } catch (const NodeFailure& e) {
          fail(v, "", fmt::format("at end of stream: {}", e.what()), e.bad_input(), e.storage());
        } catch (const ConfigError& e) {
          fail(v, "", fmt::format("at end of stream: {}", e.what()), true);
        } catch (const std::exception& e) {
          fail(v, "", fmt::format("at end of stream: {}", e.what()), false);
        }
        profiler->on_exit(v, start, kFinishSeq, thread);
        g.wait_for_all();
      }
      // Interrupted: no body runs now; nodes save what must survive (a checkpoint). A stop request
      // that came while the last finish() ran counts too: that node may have cut its work short.
      if (stop_requested() && !failed) interrupted = true;
      if (interrupted && !failed) {
        for (int v : pipeline.topo_order) {
          try {
            nodes[v]->interrupted();
          } catch (const util::WriteError& e) {
            fail(v, "", fmt::format("while stopping: {}", e.what()), false, true);
          } catch (const std::exception& e) {
            fail(v, "", fmt::format("while stopping: {}", e.what()), false);
          }
        }
      }
      profiler->stop();
      for (int i = 0; i < n; ++i)
        if (w.gates[i]) {
          profiler->set_peak_in_flight(i, w.gates[i]->peak());
          w.gates[i]->close();
        }
      // TBB nodes hold items (and their tickets); drop them while the graph still exists.
      w.sources.clear();
      w.owned.clear();
      {
        std::lock_guard<std::mutex> lock(graph_mutex);
        graph = nullptr;
      }
      wiring = nullptr;
    });
    nodes.clear();  // node state may hold items too; gates are closed by now
    models.clear();
    if (parent && parent != this && parent->profiler) parent->profiler->merge_skips(*profiler);
    if (failure) throw *failure;
    if (interrupted) {
      int signal = stop_signal();
      throw Interrupted(signal ? signal : SIGINT);
    }

    RunResult result;
    result.wall_seconds = profiler->wall_seconds();
    result.profile = profiler;
    if (!options.trace_path.empty())
      write_file_atomic(options.trace_path, safe_dump(profiler->trace_json(options.rank)));
    if (options.print_table) std::fputs(profiler->table().c_str(), stderr);
    return result;
  }
};

thread_local Runtime::Impl* Runtime::Impl::current_body_runtime = nullptr;

Runtime::Runtime(const ValidatedPipeline& pipeline, const Registry& registry)
    : impl_(std::make_unique<Impl>(pipeline, registry)) {}
Runtime::~Runtime() = default;

void Runtime::prepare(const RunOptions& options) {
  impl_->prepare(options);
}
RunResult Runtime::run(const RunOptions& options) {
  return impl_->run(options);
}
std::shared_ptr<Profiler> Runtime::profile() const {
  return impl_->profiler;
}

}  // namespace sefar::graph
