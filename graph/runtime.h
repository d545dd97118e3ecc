// Builds a tbb::flow::graph from a validated pipeline and runs it.
//
// Shape per node: each output port is a broadcast_node; each input port is an arrival counter,
// then (for ordered ports) a sequencer_node, then the node's function_node with its concurrency.
// Sources are input_nodes behind a limiter_node: the source's share of runtime.max_in_flight. An
// item's budget ticket returns to the limiter when the item and everything derived from it are
// gone, so memory stays bounded whatever the producer speed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "graph/profile.h"
#include "graph/registry.h"
#include "graph/services.h"
#include "graph/stop.h"
#include "graph/validate.h"

namespace sefar::graph {

struct RunOptions {
  std::string trace_path;  // write a Chrome trace here when not empty
  bool trace = false;      // record the trace (also without trace_path: Profiler::trace_json)
  bool print_table = true;
  // Resuming: node id -> the state handed to that node (NodeContext::resume).
  json resume = json::object();
  // Handed to every node (NodeContext::list_fingerprints).
  json list_fingerprints = json::object();
  // Data-parallel job: this process's rank of world_size. The rank is also the Chrome trace's
  // process id.
  int rank = 0, world_size = 1;
  // Handed to every node and model (NodeContext::services): the job's communicator
  // (models::Communicator; none in a single process).
  Services services;
  // The run's stop requests, handed to every node (NodeContext::stop); a nested run (a node's
  // evaluation) takes its node's token, so that it stops with the run around it.
  StopToken stop;
  // Sets the compute library's thread count (LibTorch's intra-op threads, a process-wide setting);
  // `who` names the node or model that asked. Called once by prepare(), before anything is built,
  // with the largest value of the parameters flagged compute_threads (none above 0: not called).
  // Unset: the thread count is left as it is.
  std::function<void(int threads, const std::string& who)> set_compute_threads;
};

struct RunResult {
  double wall_seconds = 0;
  std::shared_ptr<Profiler> profile;
};

class Runtime {
 public:
  Runtime(const ValidatedPipeline& pipeline, const Registry& registry);
  ~Runtime();
  // Every start-up check, with nothing written: builds the shared models and the nodes (their
  // constructors check what validation cannot see: lists, clips, labels, devices) and checks each
  // source's in-flight budget. Throws PipelineError listing the problems. run() calls it unless it
  // was called just before (with the same options).
  void prepare(const RunOptions& options = {});
  // Runs to completion: the nodes' start() hooks (outputs open there), then the graph. Throws NodeFailure
  // naming the failing node; the graph is cancelled and drained before the exception leaves. Throws
  // Interrupted when a stop was requested (graph/stop.h) after the nodes' interrupted() hooks ran.
  RunResult run(const RunOptions& options = {});
  // The profile of the last run, also after it failed (skipped items, counts); null before a run.
  std::shared_ptr<Profiler> profile() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sefar::graph
