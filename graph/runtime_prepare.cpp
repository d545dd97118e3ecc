// The runtime's start-up: the shared models and the nodes built (their constructors check what
// validation cannot see), the sources' budgets checked, the compute thread count applied, and the
// nodes' start() hooks.
#include <new>
#include <set>

#include <fmt/format.h>

#include "graph/runtime_impl.h"
#include "util/errors.h"

namespace sefar::graph {

// Ids of the source nodes whose items reach `node` (itself when it is a source), sorted.
std::vector<std::string> Runtime::Impl::sources_reaching(int node) const {
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

// A constructor's rejection as a problem of the pipeline; a util::ParamError is placed at its
// parameter's file and line.
Diagnostic Runtime::Impl::constructor_problem(const ResolvedNode& node, const std::exception& e) const {
  Diagnostic d{node.file, node.line, 0, node.id, node.spec->type(), "", e.what()};
  if (auto* param = dynamic_cast<const util::ParamError*>(&e)) {
    d.key = param->param();
    d.reason = param->reason();
    if (auto it = node.param_places.find(d.key); it != node.param_places.end()) {
      d.file = it->second.first;
      d.line = it->second.second;
    }
  }
  return d;
}

void Runtime::Impl::check_budget() {
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

// The largest compute thread count the parameters flagged compute_threads ask for, applied once
// through the run's hook: the runtime owns that process-wide setting, no node sets it.
void Runtime::Impl::apply_compute_threads(const RunOptions& options) const {
  if (!options.set_compute_threads) return;
  std::int64_t wanted = 0;
  std::string who;
  auto consider = [&](const NodeSpec& spec, const json& params, const std::string& owner) {
    for (const auto& p : spec.params())
      if (p.compute_threads && params.contains(p.name) && params[p.name].is_number_integer() &&
          params[p.name].get<std::int64_t>() > wanted) {
        wanted = params[p.name].get<std::int64_t>();
        who = owner;
      }
  };
  for (const auto& m : pipeline.models) consider(*m.spec, m.params, fmt::format("model '{}'", m.id));
  for (const auto& node : pipeline.nodes)
    consider(*node.spec, node.params, fmt::format("node '{}'", node.id));
  if (wanted > 0) options.set_compute_threads(int(wanted), who);
}

// What every model and node of the run is handed: pipeline, id, type, seed, run directory, rank,
// services and the stop token.
NodeContext Runtime::Impl::run_context(const RunOptions& options, const ResolvedNode& decl) const {
  NodeContext ctx;
  ctx.pipeline = pipeline.name;
  ctx.id = decl.id;
  ctx.type = decl.spec->type();
  ctx.seed = pipeline.runtime.seed;
  ctx.run_dir = pipeline.runtime.run_dir;
  ctx.services = options.services;
  ctx.stop = stop;
  ctx.rank = options.rank;
  ctx.world_size = options.world_size;
  return ctx;
}

// Shared models, then the node objects: constructors check their options (bad values are bad input,
// exit 2); then every source's budget. Nothing is written: outputs open in Node::start().
void Runtime::Impl::prepare(const RunOptions& options) {
  const int n = int(pipeline.nodes.size());
  prepared = false;
  models.clear();
  nodes.clear();
  std::vector<Diagnostic> problems;
  stop = options.stop;
  apply_compute_threads(options);
  for (const auto& m : pipeline.models) {
    NodeContext ctx = run_context(options, m);
    ctx.params = Params(fmt::format("model '{}' ({})", m.id, m.spec->type()), m.params);
    ctx.document = &pipeline.document;
    try {
      models[m.id] = m.spec->model_factory()(ctx);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const util::WriteError&) {
      throw;
    } catch (const std::exception& e) {
      problems.push_back(constructor_problem(m, e));
      problems.back().model = true;
    }
  }
  if (!problems.empty()) throw PipelineError(std::move(problems));
  for (int i = 0; i < n; ++i) {
    NodeContext ctx = run_context(options, decl(i));
    ctx.concurrency = decl(i).concurrency;
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
      // this machine lacks, [min, max] out of order): the pipeline is invalid (exit 2). A ParamError
      // is placed at its parameter.
      problems.push_back(constructor_problem(decl(i), e));
      nodes.emplace_back();
    }
  }
  if (!problems.empty()) throw PipelineError(std::move(problems));
  check_budget();
  prepared = true;
}

// Every node's start(), in topological order, once all start-up checks passed.
void Runtime::Impl::start_nodes() {
  for (int i : pipeline.topo_order) {
    try {
      nodes[i]->start();
    } catch (const util::WriteError&) {
      throw;
    } catch (...) {
      auto cause = failure_cause(std::current_exception());
      throw NodeFailure(pipeline.name, decl(i).id, decl(i).spec->type(), "", cause.message, cause.kind);
    }
  }
}

}  // namespace sefar::graph
