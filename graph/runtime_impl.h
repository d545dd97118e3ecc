// The runtime's state and steps (internal: graph/runtime.cpp runs a graph, graph/runtime_prepare.cpp
// builds the models and nodes and makes the start-up checks).
#pragma once

#include <any>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "graph/budget.h"
#include "graph/node.h"
#include "graph/runtime.h"
#include "graph/stop.h"

namespace sefar::graph {

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

  void fail(int node, const std::string& item, const std::string& what, FailureKind kind) {
    {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure.emplace(pipeline.name, decl(node).id, decl(node).spec->type(), item, what, kind);
    }
    failed = true;
    if (graph) graph->cancel();
  }
  // The exception being handled ends the run at `node`; `when` leads its message.
  void fail_with_current(int node, const std::string& item, const std::string& when = "") {
    auto cause = failure_cause(std::current_exception());
    fail(node, item, when + cause.message, cause.kind);
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
    if (failed || ((interrupted || stop.requested()) && !spec.completes_on_stop_flag())) return;
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
    } catch (...) {
      fail_with_current(i, t.item.describe());
    }
    profiler->on_exit(i, start, t.item.seq, thread);
  }

  Item produce(int i, tbb::flow_control& fc) {
    auto* source = static_cast<Source*>(nodes[i].get());
    if (failed || interrupted || stop.requested()) {
      fc.stop();
      return {};
    }
    Source::Produced produced;
    const int thread = tbb::this_task_arena::current_thread_index();
    std::uint64_t start = profiler->on_entry(i, thread);
    bool more = false;
    try {
      more = source->produce(produced);
    } catch (...) {
      fail_with_current(i, "");
    }
    std::uint64_t seq = next_seq[i];
    profiler->on_exit(i, start, seq, thread);
    if (!more || failed || interrupted || stop.requested()) {
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
        share.report = [this, i](std::uint64_t skipped, std::uint64_t of, bool stop_run) {
          const std::string what = fmt::format("{} of its last {} items ({:.1f}%) were skipped as bad input",
                                               skipped, of, 100.0 * double(skipped) / double(of));
          if (stop_run)
            fail(i, "",
                 fmt::format("{}, more than runtime.max_skip_fraction={}: see the skipped items below", what,
                             pipeline.runtime.max_skip_fraction),
                 FailureKind::bad_input);
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
                   FailureKind::bad_input);
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
  std::vector<std::string> sources_reaching(int node) const;

  // A constructor's rejection as a problem of the pipeline; a util::ParamError is placed at its
  // parameter's file and line.
  Diagnostic constructor_problem(const ResolvedNode& node, const std::exception& e) const;

  void check_budget();

  bool prepared = false;
  StopToken stop;  // the run's (RunOptions::stop), handed to every node

  // The largest compute thread count the parameters flagged compute_threads ask for, applied once
  // through the run's hook: the runtime owns that process-wide setting, no node sets it.
  void apply_compute_threads(const RunOptions& options) const;

  // Shared models, then the node objects: constructors check their options (bad values are bad input,
  // exit 2); then every source's budget. Nothing is written: outputs open in Node::start().
  NodeContext run_context(const RunOptions& options, const ResolvedNode& decl) const;
  void prepare(const RunOptions& options);

  // Every node's start(), in topological order, once all start-up checks passed.
  void start_nodes();

  RunResult run(const RunOptions& options);
};

}  // namespace sefar::graph
