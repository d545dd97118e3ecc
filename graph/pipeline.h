// Pipeline documents: the JSON a user writes, resolved (extends, overrides, --set, ${name}) into
// a flat description the validator checks against the registry.
//
//   {
//     "name": "quickstart",
//     "description": "...",
//     "extends": "base.json",            // optional; relative to this file
//     "params": {"clips": 64},           // pipeline parameters, used as "${clips}" in node params
//     "runtime": {"threads": 2, "max_in_flight": 32, "seed": 0},
//     "models": {                        // shared objects several nodes name (a student and its teacher)
//       "net": {"type": "sefar_model", "params": {"model": "tiny"}}
//     },
//     "nodes": {
//       "decode": {"type": "decode", "params": {"size": 64}, "concurrency": 2},
//       "old": null                      // in a derived file: removes a node of the base
//     },
//     "edges": ["source.out -> decode.in", "decode -> sink"],
//     "remove_edges": ["a.out -> b.in"]  // in a derived file: drops edges of the base
//   }
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"
#include "graph/json_source.h"

namespace sefar::graph {

using json = nlohmann::json;

struct NodeDecl {
  std::string id;
  std::string type;
  json params = json::object();
  json concurrency;  // null (default), a positive integer or "unlimited"
  std::string concurrency_file;  // where concurrency was set ("--set" for the command line)
  std::string file;  // the file that last defined or overrode this node
  std::map<std::string, std::string> param_files;  // param -> file that set it
};

struct EdgeDecl {
  std::string from_node, from_port;  // port empty: the node's only output
  std::string to_node, to_port;      // port empty: the node's only input
  std::string text;                  // as written
  std::string file;
};

struct PipelineDoc {
  std::string name;
  std::string description;
  std::string file;  // the file named on the command line
  std::string base;  // the file `file` extends directly (empty when it extends none)
  json params = json::object();
  json runtime = json::object();
  std::vector<NodeDecl> models;  // the "models" section: shared objects nodes name (no edges)
  std::vector<NodeDecl> nodes;   // declaration order (base first)
  std::vector<EdgeDecl> edges;
  // Runtime settings given on the command line (--set runtime.KEY=...), reported as "--set".
  std::vector<std::string> runtime_from_cli;
  // Every file involved, for line lookups in diagnostics.
  std::map<std::string, std::shared_ptr<JsonSource>> sources;

  const NodeDecl* find_node(const std::string& id) const;
  NodeDecl* find_node(const std::string& id);
  const NodeDecl* find_model(const std::string& id) const;
  NodeDecl* find_model(const std::string& id);
  // Best-effort line of `keys` inside `file`.
  int line_of(const std::string& file, const std::vector<std::string>& keys) const;
};

// Loads `path`, following `extends` (cycles and depth > 16 rejected). Throws PipelineError.
PipelineDoc load_pipeline(const std::string& path);
PipelineDoc parse_pipeline(const std::string& path, const std::string& text);

// Applies command-line overrides "node.param=value", "runtime.key=value", "models.id.param=value"
// or "name=value" (a pipeline parameter). The value is read as JSON when it parses, as a string otherwise.
void apply_overrides(PipelineDoc& doc, const std::vector<std::string>& assignments);

// Replaces "${name}" in node parameters by pipeline parameters: a string that is exactly one
// reference takes the parameter's JSON value (and type); references inside longer strings are
// interpolated as text. Throws PipelineError on unknown names.
void substitute_params(PipelineDoc& doc);

// Parses "a.out -> b.in" (or "a -> b"); returns false when malformed.
bool parse_edge(const std::string& text, EdgeDecl& edge);

// The resolved document as JSON (what `sefar validate` prints and runs save).
json to_json(const PipelineDoc& doc);

}  // namespace sefar::graph
