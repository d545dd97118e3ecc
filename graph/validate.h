// Checks a resolved pipeline against the registry, reporting every problem at once.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "graph/pipeline.h"
#include "graph/registry.h"

namespace sefar::graph {

struct RuntimeSettings {
  int threads = 0;         // 0: every core
  int max_in_flight = 64;  // source items alive at once, split among the sources
  std::uint64_t seed = 0;
  std::string run_dir;  // outputs of the run (resolved pipeline, profile, metrics, checkpoints)
  // Share of a source's recent items (its last two passes) skipped as bad input above which the run
  // warns, and above which it stops (exit 2); measured once a pass was produced.
  double warn_skip_fraction = 0.1, max_skip_fraction = 1.0;
};

struct ResolvedEdge {
  int from_node, from_port, to_node, to_port;
  std::string text;
};

struct ResolvedNode {
  const NodeSpec* spec = nullptr;
  std::string id;
  int concurrency = 1;  // 0: unlimited
  json params;          // validated, defaults filled
  std::string file;
  int line = 0;  // of the node's declaration in `file` (0: unknown)
  // Where each parameter given explicitly was set: file ("--set" for the command line) and line.
  std::map<std::string, std::pair<std::string, int>> param_places;
};

struct ValidatedPipeline {
  std::string name;
  std::string file;
  RuntimeSettings runtime;
  std::vector<ResolvedNode> models;  // the shared models, declaration order (no ports, no edges)
  std::vector<ResolvedNode> nodes;
  std::vector<ResolvedEdge> edges;
  std::vector<int> topo_order;  // ignoring feedback edges
  // The canonical resolved document: a valid pipeline file with every node parameter spelled out
  // (defaults filled in) and every edge with its ports, e.g. to store in a checkpoint and to check
  // that a resumed run is the same run.
  json document;
};

// The schema of the "runtime" block, shown by `sefar nodes` and checked like a node's params.
const std::vector<ParamSpec>& runtime_schema();

// Throws PipelineError with every diagnostic found.
ValidatedPipeline validate(const PipelineDoc& doc, const Registry& registry);

}  // namespace sefar::graph
