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
#include "graph/runtime_impl.h"
#include "graph/stop.h"

namespace sefar::graph {

RunResult Runtime::Impl::run(const RunOptions& options) {
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
      if (stop.requested() && !interrupted) interrupt();
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
    if (stop.requested()) interrupt();
    for (auto& s : w.sources) s->activate();
    g.wait_for_all();
    // A source none of whose items could be used: the run did nothing with it.
    for (int i = 0; i < n && !failed; ++i)
      if (w.gates[i] && w.gates[i]->produced() > 0 && w.gates[i]->skipped_count() == w.gates[i]->produced())
        fail(i, "",
             fmt::format("no usable item: all {} items it produced were skipped as bad input",
                         w.gates[i]->produced()),
             FailureKind::bad_input);
    // Flush phase: nodes holding partial state (a last incomplete batch) emit it, upstream first.
    for (int v : pipeline.topo_order) {
      if (stop.requested() && !interrupted) interrupt();
      if (failed || interrupted) break;
      OutputImpl out(*this, v, nullptr);
      const int thread = tbb::this_task_arena::current_thread_index();
      std::uint64_t start = profiler->on_entry(v, thread);
      BodyScope scope(this);
      try {
        nodes[v]->finish(out);
      } catch (const Interrupted&) {
        interrupt();
      } catch (...) {
        fail_with_current(v, "", "at end of stream: ");
      }
      profiler->on_exit(v, start, kFinishSeq, thread);
      g.wait_for_all();
    }
    // Interrupted: no body runs now; nodes save what must survive (a checkpoint). A stop request
    // that came while the last finish() ran counts too: that node may have cut its work short.
    if (stop.requested() && !failed) interrupted = true;
    if (interrupted && !failed) {
      for (int v : pipeline.topo_order) {
        try {
          nodes[v]->interrupted();
        } catch (...) {
          fail_with_current(v, "", "while stopping: ");
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
    int signal = stop.signal();
    throw Interrupted(signal ? signal : SIGINT);
  }

  RunResult result;
  result.wall_seconds = profiler->wall_seconds();
  result.profile = profiler;
  if (!options.trace_path.empty())
    util::write_file_atomic(options.trace_path, safe_dump(profiler->trace_json(options.rank)));
  if (options.print_table) std::fputs(profiler->table().c_str(), stderr);
  return result;
}

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
