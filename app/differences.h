// Comparing resolved pipeline documents (graph::ValidatedPipeline::document): what an ablation
// changes from its base (`sefar validate`), and what keeps a pipeline from continuing a run
// (`sefar run --resume`).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"
#include "graph/registry.h"

namespace sefar::app {

// Every leaf of `j` by its dotted key ("nodes.decode.params.short_side").
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out);

// Every resolved value of `derived` that differs from `base` (canonical documents), one line each:
// nodes and edges added or removed, then changed values by key.
std::vector<std::string> document_differences(nlohmann::json base, nlohmann::json derived);

// Whether the flattened key may differ when `resolved` continues the run of `reference`: the name and
// description, a node's concurrency, and every runtime setting and node or model parameter whose
// schema says so (graph::ParamSpec::may_change_on_resume).
bool may_change_on_resume(const std::string& key, const nlohmann::json& reference,
                          const nlohmann::json& resolved, const graph::Registry& registry);

// Problems that keep `resolved` from continuing the run described by `reference` (both canonical
// resolved documents); `file` is where `resolved` came from, `from` the run's own pipeline.
std::vector<graph::Diagnostic> resume_differences(const nlohmann::json& reference,
                                                  const nlohmann::json& resolved,
                                                  const graph::Registry& registry, const std::string& file,
                                                  const std::string& from);

}  // namespace sefar::app
