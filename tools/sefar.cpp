// sefar: the command-line interface. Exit status: 0 success, 2 invalid pipeline, flags or input,
// 1 runtime failure, 74 outputs could not be written, 130/143 stopped by SIGINT/SIGTERM.
#include <malloc.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)
#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"
#include "graph/dot.h"
#include "graph/pipeline.h"
#include "graph/registry.h"
#include "graph/runtime.h"
#include "graph/stop.h"
#include "graph/validate.h"
#include "io/checkpoint.h"
#include "report/report.h"
#include "io/synth.h"
#include "io/video.h"
#include "models/config.h"
#include "models/device.h"
#include "models/distributed.h"
#include "models/infer.h"
#include "models/weights.h"
#include "nodes/builtin.h"
#include "nodes/run_directory.h"
#include "nodes/auto_params.h"
#include "nodes/run_record.h"
#include "tools/prepare.h"

namespace {

using namespace sefar;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitInvalid = 2;
constexpr int kExitStorage = 74;  // EX_IOERR (sysexits.h): the run's outputs could not be written
// Stopped by a signal: 128 + the signal number, as shells report it (130 SIGINT, 143 SIGTERM).

const char* kUsage = R"(usage: sefar <command> [options]

Trains fine-grained video action recognisers with SeFAR, as a oneTBB flow graph described in JSON.

commands:
  run PIPELINE       run a pipeline (sefar --version: version, commit and library versions)
  validate PIPELINE  check a pipeline and print it resolved (extends, --set and ${...} applied)
  graph PIPELINE     print the pipeline as a Graphviz graph (--dot)
  nodes [TYPE]       list node types with their ports and parameters
  synth OUT_DIR      generate the synthetic fine-grained action dataset (mp4 + split lists)
  infer              run a model on view tensors from a safetensors file (logits and features out)
  report RUN_DIR     (re)write RUN_DIR/report.html from a run's metrics and profile
  prepare finegym OUT_DIR  cut FineGym's sub-action clips from downloaded videos (docs/FINEGYM.md)

'sefar <command> --help' describes a command's options.
exit status: 0 success, 2 invalid pipeline, flags or input, 1 failure while running, 74 the run's
outputs (checkpoints, metrics) could not be written, 130/143 stopped by SIGINT/SIGTERM.
)";

const char* kRunUsage = R"(usage: sefar run PIPELINE [options]
       sefar run [PIPELINE] --resume RUN_DIR [options]

options:
  --resume RUN_DIR   continue the run in RUN_DIR from its last complete checkpoint
                     (RUN_DIR/checkpoints): model, teacher, optimiser, step, random generators and
                     the position of every source are restored, so the run goes on as if never
                     stopped; metrics.jsonl is cut back to the checkpoint. Without PIPELINE the
                     run's own resolved pipeline is used; with one, it must resolve to the same run
                     (only threads, concurrency, device, log_every, eval_batch, keep_last,
                     on_nonfinite and inject_nonfinite_at_step may differ). Without a checkpoint yet,
                     the run starts from the beginning. A damaged checkpoint (cut short, checksum,
                     non-finite weights) is named and renamed aside (*.damaged); the newest intact one
                     is used; with none intact the run stops (exit 2).

Before anything is written, a run passes the checks `sefar validate` makes (README, "Start-up
checks") and takes an exclusive lock on its run directory: a second run into it is refused (exit 2,
naming the holder's pid).
  --overwrite        start over in a run directory that holds an earlier run (its metrics and
                     checkpoints are replaced); without it such a run is refused (exit 2)
  --allow-changed-lists  with --resume: continue although a split list's size or checksum differs
                     from the one recorded in the checkpoint (otherwise exit 2, naming the list)
  --set KEY=VALUE    override a value; KEY is node.param, models.ID.param, runtime.setting or a
                     pipeline parameter name; VALUE is read as JSON when it parses, as a string otherwise (repeatable)
  --threads N        worker threads (same as --set runtime.threads=N)
  --trace FILE       write a Chrome trace of every node body (open in https://ui.perfetto.dev)
  --profile FILE     write the per-node profile as JSON
  --quiet            do not print the profile table
  --dist-backend B   data-parallel backend: auto (gloo on CPU, nccl on CUDA), gloo or nccl

Data-parallel training: start one process per device the way PyTorch jobs start, e.g.
  torchrun --no_python --nproc_per_node 2 ./build/sefar run PIPELINE
(torchrun 2.x spells it --no-python --nproc-per-node), under Slurm `srun ./build/sefar run PIPELINE`,
or by hand with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set for every process (rank 0 then
hosts the store). Each rank trains on its share of every epoch; gradients are averaged; rank 0 alone
logs and writes metrics, checkpoints and the model. Without runtime.threads each process takes its
share of the machine's cores. GLOO_SOCKET_IFNAME picks Gloo's network interface.

SIGINT or SIGTERM stops a run cleanly: the running step finishes, the training loop writes a
checkpoint of the state after it (RUN_DIR/checkpoints/step_NNNNNNNN), and sefar exits with 130
(SIGINT) or 143 (SIGTERM); a second signal quits at once. `--resume RUN_DIR` continues.
exit status: 0 success, 2 invalid pipeline, flags or input, 1 failure while running (a node failed,
e.g. a non-finite loss), 74 the run's outputs could not be written (the message names the path; the
checkpoints written before are left as they were), 130/143 stopped by SIGINT/SIGTERM.
)";

const char* kValidateUsage = R"(usage: sefar validate PIPELINE [--set KEY=VALUE]... [--quiet] [--schema-only]

Checks the pipeline against the node schemas, reporting every problem at once, then makes the
start-up checks of `sefar run` (the models and nodes are built: split lists read, their clips looked
up and labels checked, devices, budgets; nothing is written), and prints the resolved pipeline as
JSON (unless --quiet). --schema-only skips the start-up checks (a pipeline whose data is elsewhere). When the pipeline extends another, it then lists on
stderr every resolved value that differs from the base's (node parameters with their defaults
filled in, runtime settings, nodes and edges added or removed): what an ablation changes.
)";

const char* kGraphUsage = R"(usage: sefar graph PIPELINE --dot [--set KEY=VALUE]...

Prints the pipeline as a Graphviz digraph: sefar graph p.json --dot | dot -Tsvg > p.svg
)";

const char* kNodesUsage = R"(usage: sefar nodes [TYPE] [--json]

Lists every node type with its ports (and the message type each carries) and its parameters
(type, default or "required", allowed range or values, description). With TYPE, only that one.
)";

const char* kSynthUsage = R"(usage: sefar synth OUT_DIR [options]

Generates a synthetic fine-grained action dataset: mp4 clips of an asymmetric figure performing
routines that differ only in temporal detail (turn direction, number of turns, order of
sub-movements), with random colours, texture, position, size, orientation, speed, timing, noise and
length. Writes OUT_DIR/videos/*.mp4, train.csv (labeled), unlabel.csv, val.csv (official
"path label" format, paths relative to OUT_DIR) and classes.txt. Deterministic from --seed.

options:
  --classes N           number of classes, 2..12 (default 8)
  --train-per-class N   training clips per class, labeled + unlabeled (default 60)
  --val-per-class N     validation clips per class (default 20)
  --labeled F           labeled fraction of the training clips, e.g. 0.05 or 0.1 (default 0.1)
  --size WxH            frame size, even numbers (default 128x96)
  --frames MIN:MAX      clip length range in frames (default 40:75)
  --fps F               frame rate (default 30)
  --noise S             per-pixel noise std-dev in 8-bit levels (default 6)
  --nuisance F          strength of the colour and texture nuisances, 0..1 (default 0.3)
  --figure-scale F      figure size relative to the frame, 0.25..1.6 (default 1.3)
  --codec C             auto | h264 | mpeg4 (default auto: H.264 when available)
  --seed N              random seed (default 0)
  --threads N           clips generated in parallel (default: every core)
)";

const char* kInferUsage =
    R"(usage: sefar infer --weights W.safetensors --inputs IN.safetensors --outputs OUT.safetensors
                   [--config MODEL.json] [--device cpu|cuda|cuda:N|auto] [--batch N] [--non-strict]

Runs the multi-granular TimeSformer in evaluation mode on view tensors and writes its logits and
features. The model config comes from the weights file's metadata (files written by sefar), or from
--config (a JSON model config, e.g. for official checkpoints converted to safetensors; a leading
"module." in their keys is stripped). File layouts: see README.md, "Inference and feature export".
)";

const char* kReportUsage = R"(usage: sefar report RUN_DIR

Writes RUN_DIR/report.html, a self-contained page (inline SVG, no network): loss and accuracy
curves, the eta distribution per epoch, the per-node profile and the confusion matrix, from
RUN_DIR/metrics.jsonl, profile.json and pipeline.json. `sefar run` writes it at the end of a run.
)";

// A run that would lose or mix up earlier work is refused before anything is written (exit 2,
// without the usage text).
struct RefusedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string path;  // the pipeline file, or synth's output directory
  std::string type;
  std::vector<std::string> sets;
  std::string trace, profile;
  std::string resume;                 // run: RUN_DIR to continue
  std::string dist_backend = "auto";  // run: data-parallel backend
  bool overwrite = false;             // run: start over in a run directory that holds a run
  std::string command_line;           // as given, for run.json
  bool schema_only = false;           // validate: skip the start-up checks (models and nodes built)
  bool allow_changed_lists = false;   // run --resume: split lists may differ from the checkpoint's
  bool quiet = false, dot = false, json = false, help = false;
  std::vector<std::pair<std::string, std::string>> options;  // synth: --name value
};

Args parse_args(const std::string& command, int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    const std::string word = argv[i];
    const bool plain = !word.empty() && word.find_first_not_of(
                                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                            "-_./=:,+@%") == std::string::npos;
    std::string quoted = "'";
    for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    a.command_line += (i ? " " : "") + (plain ? word : quoted + "'");
  }
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", flag));
      return argv[++i];
    };
    const bool pipeline_command = command == "run" || command == "validate" || command == "graph";
    if (arg == "--help" || arg == "-h")
      a.help = true;
    else if (command == "infer" && arg == "--non-strict")
      a.options.emplace_back("non-strict", "");
    else if ((command == "synth" || command == "infer") && arg.rfind("--", 0) == 0 && arg.size() > 2)
      a.options.emplace_back(arg.substr(2), value(arg.c_str()));
    else if (arg == "--set" && pipeline_command)
      a.sets.push_back(value("--set"));
    else if (arg.rfind("--set=", 0) == 0 && pipeline_command)
      a.sets.push_back(arg.substr(6));
    else if (arg == "--threads" && pipeline_command)
      a.sets.push_back("runtime.threads=" + value("--threads"));
    else if (arg == "--trace" && command == "run")
      a.trace = value("--trace");
    else if (arg == "--profile" && command == "run")
      a.profile = value("--profile");
    else if (arg == "--resume" && command == "run")
      a.resume = value("--resume");
    else if (arg == "--schema-only" && command == "validate")
      a.schema_only = true;
    else if (arg == "--overwrite" && command == "run")
      a.overwrite = true;
    else if (arg == "--allow-changed-lists" && command == "run")
      a.allow_changed_lists = true;
    else if (arg == "--dist-backend" && command == "run") {
      a.dist_backend = value("--dist-backend");
      if (a.dist_backend != "auto" && a.dist_backend != "gloo" && a.dist_backend != "nccl")
        throw UsageError(fmt::format("--dist-backend {}: valid are auto, gloo, nccl", a.dist_backend));
    } else if (arg == "--quiet" && command != "synth" && command != "infer")
      a.quiet = true;
    else if (arg == "--dot" && command == "graph")
      a.dot = true;
    else if (arg == "--json" && command == "nodes")
      a.json = true;
    else if (!arg.empty() && arg[0] == '-')
      throw UsageError(fmt::format("unknown option {} for '{}'", arg, command));
    else if (command == "nodes" && a.type.empty())
      a.type = arg;
    else if (command != "nodes" && a.path.empty())
      a.path = arg;
    else
      throw UsageError(fmt::format("unexpected argument {}", arg));
  }
  return a;
}

graph::Registry make_registry() {
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  return registry;
}

// Pipeline parameters set to "auto" (nodes/auto_params.h), with their warnings on the console.
void resolve_auto_params(graph::PipelineDoc& doc, bool lenient = false, bool quiet = false) {
  for (const auto& warning : nodes::resolve_auto_params(doc, lenient))
    if (!quiet) std::fprintf(stderr, "%s\n", warning.c_str());
}

// `lenient`: "auto" parameters that cannot be resolved yet take placeholder values (a pipeline checked
// or drawn before its weights exist).
graph::ValidatedPipeline resolve(const Args& a, const graph::Registry& registry,
                                 graph::PipelineDoc* doc_out = nullptr, bool lenient = false,
                                 bool quiet = false) {
  if (a.path.empty()) throw UsageError("missing PIPELINE (a .json file)");
  auto doc = graph::load_pipeline(a.path);
  graph::apply_overrides(doc, a.sets);
  resolve_auto_params(doc, lenient, quiet);
  graph::substitute_params(doc);
  auto validated = graph::validate(doc, registry);
  if (doc_out) *doc_out = doc;
  return validated;
}

std::string describe_param(const graph::ParamSpec& p) {
  std::string out = fmt::format("    {:<18} {:<12} ", p.name, graph::to_string(p.type));
  out += p.required ? "required" : "default " + p.default_value.dump();
  if (p.min || p.max)
    out += fmt::format(", range [{}, {}]", p.min ? fmt::format("{}", *p.min) : "-inf",
                       p.max ? fmt::format("{}", *p.max) : "inf");
  if (p.min_size) out += fmt::format(", at least {} element(s)", *p.min_size);
  if (!p.choices.empty()) out += fmt::format(", one of: {}", fmt::join(p.choices, " | "));
  if (!p.model_type.empty()) out += fmt::format(", names a \"{}\" under \"models\"", p.model_type);
  out += "\n        " + p.doc + "\n";
  return out;
}

nlohmann::json param_json(const graph::ParamSpec& p) {
  nlohmann::json j{
      {"name", p.name}, {"type", graph::to_string(p.type)}, {"required", p.required}, {"doc", p.doc}};
  if (!p.required) j["default"] = p.default_value;
  if (p.min) j["min"] = *p.min;
  if (p.max) j["max"] = *p.max;
  if (!p.choices.empty()) j["choices"] = p.choices;
  if (!p.model_type.empty()) j["model_type"] = p.model_type;
  return j;
}

int cmd_nodes(const Args& a) {
  auto registry = make_registry();
  std::vector<const graph::NodeSpec*> specs;
  if (!a.type.empty()) {
    const auto* spec = registry.find(a.type);
    if (!spec) {
      auto guess = graph::closest_match(a.type, registry.types());
      std::cerr << fmt::format("sefar nodes: no node type \"{}\"{}\n", a.type,
                               guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess));
      return kExitInvalid;
    }
    specs.push_back(spec);
  } else {
    specs = registry.specs();
  }
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto* s : specs) {
      nlohmann::json j{{"type", s->type()},
                       {"doc", s->doc()},
                       {"serial", s->is_serial()},
                       {"model", s->is_model()},
                       {"completes_on_stop", s->completes_on_stop_flag()},
                       {"runs_inline", s->runs_inline_flag()}};
      for (const char* dir : {"inputs", "outputs"}) {
        j[dir] = nlohmann::json::array();
        for (const auto& p : std::string(dir) == "inputs" ? s->inputs() : s->outputs())
          j[dir].push_back({{"name", p.name},
                            {"message", p.message.name},
                            {"doc", p.doc},
                            {"ordered", p.ordered},
                            {"required", p.required},
                            {"feedback", p.feedback}});
      }
      j["params"] = nlohmann::json::array();
      for (const auto& p : s->params()) j["params"].push_back(param_json(p));
      out.push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::string text;
  for (const auto* s : specs) {
    text += fmt::format("{}{}\n  {}\n", s->type(),
                        s->is_model() ? " (model type: declare it under \"models\")" : "", s->doc());
    if (s->is_serial()) text += "  keeps state: runs with concurrency 1\n";
    if (s->completes_on_stop_flag()) text += "  completes the step it has received when the run is stopped\n";
    if (s->runs_inline_flag()) text += "  runs inline: in the thread of the node that sent the item\n";
    if (!s->inputs().empty()) {
      text += "  inputs:\n";
      for (const auto& p : s->inputs())
        text += fmt::format("    {:<18} {:<12} {}{}{}\n", p.name, p.message.name, p.doc,
                            p.ordered ? " [source order]" : "", p.required ? "" : " [optional]");
    }
    if (!s->outputs().empty()) {
      text += "  outputs:\n";
      for (const auto& p : s->outputs())
        text += fmt::format("    {:<18} {:<12} {}\n", p.name, p.message.name, p.doc);
    }
    if (!s->params().empty()) {
      text += "  params:\n";
      for (const auto& p : s->params()) text += describe_param(p);
    }
    text += "\n";
  }
  if (a.type.empty()) {
    text += "runtime (the \"runtime\" block of a pipeline, or --set runtime.KEY=VALUE)\n  params:\n";
    for (const auto& p : graph::runtime_schema()) text += describe_param(p);
  }
  std::cout << text;
  return kExitOk;
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  out[prefix] = j;
}

// Every resolved value of `derived` that differs from `base` (canonical documents), one line each:
// nodes and edges added or removed, then changed values by key.
std::vector<std::string> document_differences(nlohmann::json base, nlohmann::json derived) {
  std::vector<std::string> lines;
  auto& base_nodes = base["nodes"];
  auto& derived_nodes = derived["nodes"];
  for (auto it = base_nodes.begin(); it != base_nodes.end(); ++it)
    if (!derived_nodes.contains(it.key())) lines.push_back(fmt::format("  node {} removed", it.key()));
  for (auto it = derived_nodes.begin(); it != derived_nodes.end(); ++it)
    if (!base_nodes.contains(it.key()))
      lines.push_back(fmt::format("  node {} added ({})", it.key(), it.value().value("type", "?")));
  for (auto* nodes : {&base_nodes, &derived_nodes})
    for (auto it = nodes->begin(); it != nodes->end();)
      it = (base_nodes.contains(it.key()) && derived_nodes.contains(it.key())) ? std::next(it)
                                                                               : nodes->erase(it);
  std::set<std::string> base_edges, derived_edges;
  for (const auto& e : base["edges"]) base_edges.insert(e.dump());
  for (const auto& e : derived["edges"]) derived_edges.insert(e.dump());
  for (const auto& e : base_edges)
    if (!derived_edges.count(e)) lines.push_back(fmt::format("  edge {} removed", e));
  for (const auto& e : derived_edges)
    if (!base_edges.count(e)) lines.push_back(fmt::format("  edge {} added", e));
  base.erase("edges");
  derived.erase("edges");
  std::map<std::string, nlohmann::json> a, b;
  flatten(base, "", a);
  flatten(derived, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (const auto& k : keys) {
    auto x = a.find(k), y = b.find(k);
    if (x != a.end() && y != b.end() && x->second == y->second) continue;
    if (k == "description") continue;
    lines.push_back(fmt::format("  {}: {} -> {}", k, x == a.end() ? "(absent)" : x->second.dump(),
                                y == b.end() ? "(absent)" : y->second.dump()));
  }
  return lines;
}

int cmd_validate(const Args& a) {
  auto registry = make_registry();
  graph::PipelineDoc doc;
  auto validated = resolve(a, registry, &doc, a.schema_only);
  // The start-up checks of sefar run: models and nodes built (lists read, clips looked up, labels,
  // devices), budgets; nothing is written.
  if (!a.schema_only) graph::Runtime(validated, registry).prepare();
  if (!a.quiet) std::cout << graph::safe_dump(graph::to_json(doc), 2) << "\n";
  std::cerr << fmt::format("{}: valid ({} nodes, {} edges)\n", a.path, validated.nodes.size(),
                           validated.edges.size());
  const std::string& run_dir = validated.runtime.run_dir;
  if (!run_dir.empty() && std::filesystem::is_directory(run_dir) &&
      !nodes::earlier_run_files(run_dir).empty())
    std::cerr << fmt::format(
        "note: runtime.run_dir {} holds an earlier run: sefar run refuses it without --resume or "
        "--overwrite\n",
        run_dir);
  if (!doc.base.empty()) {
    auto base_doc = graph::load_pipeline(doc.base);
    nodes::resolve_auto_params(base_doc, /*lenient=*/true);  // its notes were said for the pipeline
    graph::substitute_params(base_doc);
    auto base = graph::validate(base_doc, registry);
    auto lines = document_differences(base.document, validated.document);
    std::cerr << fmt::format("differences from {} ({}):\n", doc.base, lines.size());
    for (const auto& line : lines) std::cerr << line << "\n";
  }
  return kExitOk;
}

int cmd_graph(const Args& a) {
  if (!a.dot) throw UsageError("sefar graph: choose an output format (--dot)");
  auto registry = make_registry();
  auto validated = resolve(a, registry, nullptr, /*lenient=*/true, /*quiet=*/true);  // a drawing only
  std::cout << graph::to_dot(validated);
  return kExitOk;
}

int cmd_synth(const Args& a) {
  if (a.path.empty()) throw UsageError("missing OUT_DIR");
  io::SynthOptions o;
  o.out_dir = a.path;
  o.threads = int(std::thread::hardware_concurrency());
  auto as_int = [](const std::string& name, const std::string& v) {
    long long x = 0;
    try {
      std::size_t used = 0;
      x = std::stoll(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--{}: expected an integer, got \"{}\"", name, v));
    }
    // Every integer option but the seed is an int.
    if (name != "seed" && (x < INT_MIN || x > INT_MAX))
      throw UsageError(fmt::format("--{}: {} is out of range", name, v));
    if (name == "seed" && x < 0)
      throw UsageError(fmt::format("--seed: expected a non-negative integer, got {}", v));
    return x;
  };
  auto as_float = [](const std::string& name, const std::string& v) {
    try {
      std::size_t used = 0;
      double x = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--{}: expected a number, got \"{}\"", name, v));
    }
  };
  auto pair = [](const std::string& name, const std::string& v, char sep) {
    auto pos = v.find(sep);
    if (pos == std::string::npos)
      throw UsageError(fmt::format("--{}: expected A{}B, got \"{}\"", name, sep, v));
    return std::make_pair(v.substr(0, pos), v.substr(pos + 1));
  };
  for (const auto& [name, v] : a.options) {
    if (name == "classes")
      o.num_classes = int(as_int(name, v));
    else if (name == "train-per-class")
      o.train_per_class = int(as_int(name, v));
    else if (name == "val-per-class")
      o.val_per_class = int(as_int(name, v));
    else if (name == "labeled")
      o.labeled_fraction = as_float(name, v);
    else if (name == "size") {
      auto [w, h] = pair(name, v, 'x');
      o.width = int(as_int(name, w));
      o.height = int(as_int(name, h));
    } else if (name == "frames") {
      auto [lo, hi] = pair(name, v, ':');
      o.min_frames = int(as_int(name, lo));
      o.max_frames = int(as_int(name, hi));
    } else if (name == "fps")
      o.fps = as_float(name, v);
    else if (name == "noise")
      o.noise = as_float(name, v);
    else if (name == "nuisance")
      o.nuisance = as_float(name, v);
    else if (name == "figure-scale")
      o.figure_scale = as_float(name, v);
    else if (name == "seed")
      o.seed = std::uint64_t(as_int(name, v));
    else if (name == "threads")
      o.threads = int(as_int(name, v));
    else if (name == "codec") {
      if (v == "auto")
        o.codec = io::VideoCodec::kAuto;
      else if (v == "h264")
        o.codec = io::VideoCodec::kH264;
      else if (v == "mpeg4")
        o.codec = io::VideoCodec::kMpeg4;
      else
        throw UsageError(fmt::format("--codec: expected auto, h264 or mpeg4, got \"{}\"", v));
    } else {
      std::vector<std::string> known = {
          "classes", "train-per-class", "val-per-class", "labeled", "size", "frames", "fps",
          "noise",   "nuisance",        "figure-scale",  "codec",   "seed", "threads"};
      auto guess = graph::closest_match(name, known);
      throw UsageError(fmt::format("unknown option --{}{}", name,
                                   guess.empty() ? "" : " (did you mean --" + guess + "?)"));
    }
  }
  auto start = std::chrono::steady_clock::now();
  io::SynthResult result;
  try {
    result = io::generate_synth_dataset(o, [&](int done, int total) {
      if (done == total || done % 50 == 0) {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\rsynth: %d/%d clips, %.1f s", done, total, s);
        if (done == total) std::fputc('\n', stderr);
      }
    });
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  std::cerr << fmt::format("synth: {} labeled, {} unlabeled, {} val clips, {} classes in {}\n",
                           result.train.size(), result.unlabeled.size(), result.val.size(), o.num_classes,
                           o.out_dir);
  return kExitOk;
}

int cmd_infer(const Args& a) {
  std::string weights, inputs, outputs, config_path;
  models::InferOptions options;
  for (const auto& [name, v] : a.options) {
    if (name == "weights")
      weights = v;
    else if (name == "inputs")
      inputs = v;
    else if (name == "outputs")
      outputs = v;
    else if (name == "config")
      config_path = v;
    else if (name == "device")
      options.device = v;
    else if (name == "batch") {
      try {
        options.batch_size = std::stoll(v);
      } catch (const std::exception&) {
        throw UsageError(fmt::format("--batch: expected an integer, got \"{}\"", v));
      }
      if (options.batch_size < 0) throw UsageError("--batch must be >= 0");
    } else if (name == "non-strict")
      options.strict = false;
    else
      throw UsageError(fmt::format("unknown option --{}", name));
  }
  if (weights.empty() || inputs.empty() || outputs.empty())
    throw UsageError("--weights, --inputs and --outputs are required");
  models::ModelConfig config;
  try {
    if (!config_path.empty()) {
      std::ifstream in(config_path);
      if (!in) throw std::invalid_argument(fmt::format("cannot open {}", config_path));
      config = models::model_config_from_json(nlohmann::json::parse(in));
    } else {
      config = models::model_config_from_weights(weights);
    }
    models::run_inference(config, weights, inputs, outputs, options);
  } catch (const nlohmann::json::exception& e) {
    std::cerr << fmt::format("sefar infer: {}: {}\n", config_path, e.what());
    return kExitInvalid;
  } catch (const std::runtime_error& e) {  // bad or missing files, mismatched weights
    std::cerr << "sefar infer: " << e.what() << "\n";
    return kExitInvalid;
  } catch (const std::invalid_argument& e) {
    std::cerr << "sefar infer: " << e.what() << "\n";
    return kExitInvalid;
  }
  std::cerr << fmt::format("sefar infer: wrote {}\n", outputs);
  return kExitOk;
}

int cmd_report(const Args& a) {
  if (a.path.empty()) throw UsageError("missing RUN_DIR");
  if (!std::filesystem::is_directory(a.path)) {
    std::cerr << fmt::format("sefar report: {} is not a directory\n", a.path);
    return kExitInvalid;
  }
  bool holds_run = false;
  for (const char* name : {"metrics.jsonl", "profile.json", "evaluation.json"})
    holds_run = holds_run || std::filesystem::exists(std::filesystem::path(a.path) / name);
  if (!holds_run) {
    std::cerr << fmt::format(
        "sefar report: {} holds no run (no metrics.jsonl, profile.json or evaluation.json): give the "
        "runtime.run_dir of a run\n",
        a.path);
    return kExitInvalid;
  }
  report::write_report(a.path);
  std::cerr << fmt::format("report: {}/report.html\n", a.path);
  return kExitOk;
}

// Settings that change how a run executes, not what it computes: a resumed run may change them.
bool may_change_on_resume(const std::string& key) {
  static const std::vector<std::string> runtime_keys = {"runtime.threads", "runtime.max_in_flight",
                                                        "runtime.run_dir"};
  static const std::vector<std::string> param_names = {"threads",
                                                       "log_every",
                                                       "read_stats_every",
                                                       "pin_memory",
                                                       "device",
                                                       "eval_batch",
                                                       "keep_last",
                                                       "on_nonfinite",
                                                       "inject_nonfinite_at_step"};
  if (key == "name" || key == "description") return true;
  for (const auto& k : runtime_keys)
    if (key == k) return true;
  if (key.rfind("nodes.", 0) != 0 && key.rfind("models.", 0) != 0) return false;
  auto ends_with = [&](const std::string& tail) {
    return key.size() > tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends_with(".concurrency")) return true;
  for (const auto& name : param_names)
    if (ends_with(".params." + name)) return true;
  return false;
}

// Problems that keep `resolved` from continuing the run described by `reference` (both canonical
// resolved documents, ValidatedPipeline::document).
std::vector<graph::Diagnostic> resume_differences(const nlohmann::json& reference,
                                                  const nlohmann::json& resolved, const std::string& file,
                                                  const std::string& from) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(reference, "", a);
  flatten(resolved, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<graph::Diagnostic> problems;
  for (const auto& k : keys) {
    if (may_change_on_resume(k)) continue;
    auto x = a.find(k), y = b.find(k);
    if (x != a.end() && y != b.end() && x->second == y->second) continue;
    problems.push_back(graph::Diagnostic{file, 0, 0, "", "", k,
                                         fmt::format("--resume: {} is {} here but {} in the run being "
                                                     "resumed ({}); resume with the run's own pipeline "
                                                     "(leave PIPELINE out) or start a new run",
                                                     k, y == b.end() ? "absent" : y->second.dump(),
                                                     x == a.end() ? "absent" : x->second.dump(), from)});
  }
  return problems;
}

// Empty when `path` can be written (its folder is created if needed), else why not. Checked before a
// run starts so a bad output path fails at once with status 2, not after hours of training.
std::string unwritable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return "it is a directory";
  fs::path target(path);
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) return fmt::format("cannot create {}: {}", target.parent_path().string(), ec.message());
  }
  const bool existed = fs::exists(target, ec);
  {
    std::ofstream probe(path, std::ios::app);
    if (!probe) return std::strerror(errno);
  }
  if (!existed) fs::remove(target, ec);
  return {};
}

// The device a pipeline trains on (the first model or node parameter named "device"), resolved: "cpu" or
// "cuda[:N]". It picks the data-parallel backend.
std::string pipeline_device(const graph::ValidatedPipeline& pipeline) {
  for (const auto& model : pipeline.models) {
    auto device = model.params.find("device");
    if (device != model.params.end() && device->is_string())
      return models::resolve_device(device->get<std::string>()).str();
  }
  for (const auto& node : pipeline.nodes) {
    auto device = node.params.find("device");
    if (device != node.params.end() && device->is_string())
      return models::resolve_device(device->get<std::string>()).str();
  }
  return "cpu";
}

int run_prepared(const Args& a, graph::Runtime& runtime, const graph::RunOptions& options,
                 const std::string& run_dir, int rank, models::Communicator* communicator);

// The exit status a command ends with when `error` leaves it (main prints the message).
int exit_status(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const UsageError&) {
    return kExitInvalid;
  } catch (const RefusedError&) {
    return kExitInvalid;
  } catch (const graph::PipelineError&) {
    return kExitInvalid;
  } catch (const graph::Interrupted& e) {
    return 128 + e.signal();
  } catch (const graph::NodeFailure& e) {
    return e.storage() ? kExitStorage : e.bad_input() ? kExitInvalid : kExitFailure;
  } catch (const util::WriteError&) {  // graph::StorageError too
    return kExitStorage;
  } catch (...) {
    return kExitFailure;
  }
}

// Locks `dir` for this process (nodes::RunDirLock), or refuses the run naming the holder.
nodes::RunDirLock lock_run_dir(const std::string& dir) {
  std::string error;
  auto lock = nodes::RunDirLock::acquire(dir, error);
  if (!lock.locked()) throw RefusedError(error);
  return lock;
}

// Damaged checkpoints (io::scan_checkpoints) are renamed aside and named; with none intact the run
// stops rather than start over.
std::optional<io::CheckpointInfo> resume_checkpoint(const std::string& run_dir) {
  const std::string dir = (std::filesystem::path(run_dir) / "checkpoints").string();
  auto scan = io::scan_checkpoints(dir);
  auto checkpoint = io::latest_checkpoint(scan);
  if (!checkpoint && !scan.damaged.empty()) {
    std::string list;
    for (const auto& d : scan.damaged) list += fmt::format("\n  {}.safetensors: {}", d.path, d.reason);
    throw RefusedError(fmt::format(
        "--resume: every checkpoint in {} is damaged, so the run cannot continue (nothing was changed; "
        "starting over needs sefar run PIPELINE --overwrite):{}",
        dir, list));
  }
  for (const auto& d : scan.damaged)
    std::cerr << fmt::format("--resume: checkpoint {}.safetensors is damaged ({}): skipped, kept as {}\n",
                             d.path, d.reason, io::set_aside(d));
  return checkpoint;
}

// `console` is the caller's, so that it still copies the message the caller prints when the run fails.
int cmd_run(const Args& a, std::optional<nodes::ConsoleLog>& console) {
  namespace fs = std::filesystem;
  auto registry = make_registry();
  graph::PipelineDoc doc;
  graph::RunOptions options;
  graph::ValidatedPipeline validated;
  // A data-parallel job when torchrun, Slurm or RANK/WORLD_SIZE say so (models/distributed.h).
  models::DistributedEnv dist;
  try {
    dist = models::distributed_env_from_process();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  // Rank 0 alone writes the run directory, and holds its lock from before it looks into it.
  nodes::RunDirLock lock;
  if (a.resume.empty()) {
    validated = resolve(a, registry, &doc);
    const std::string& run_dir = validated.runtime.run_dir;
    if (dist.rank == 0 && !run_dir.empty() && fs::is_directory(run_dir)) {
      lock = lock_run_dir(run_dir);
      const auto earlier = nodes::earlier_run_files(run_dir);
      if (!earlier.empty() && !a.overwrite) {
        std::vector<std::string> shown(earlier.begin(),
                                       earlier.begin() + std::min<std::size_t>(4, earlier.size()));
        throw RefusedError(fmt::format(
            "runtime.run_dir {} holds an earlier run ({}{}): nothing was changed. `sefar run --resume {}` "
            "continues it; --overwrite starts over in it (its metrics and checkpoints are replaced); or "
            "choose "
            "another run directory (--set runtime.run_dir=...)",
            run_dir, fmt::join(shown, ", "), earlier.size() > shown.size() ? ", ..." : "", run_dir));
      }
    }
  } else {
    // Continue the run in a.resume from its last complete checkpoint.
    const std::string& run_dir = a.resume;
    if (!fs::is_directory(run_dir)) throw UsageError(fmt::format("--resume: {} is not a directory", run_dir));
    if (dist.rank == 0) lock = lock_run_dir(run_dir);
    auto checkpoint = dist.rank == 0 ? resume_checkpoint(run_dir)
                                     : io::latest_checkpoint((fs::path(run_dir) / "checkpoints").string());
    // The run as it was: the checkpoint's resolved pipeline, or (no checkpoint yet) the one the run
    // started with.
    graph::PipelineDoc reference_doc;
    std::string from;
    if (checkpoint) {
      if (!checkpoint->sidecar.contains("pipeline") || !checkpoint->sidecar["pipeline"].is_object() ||
          checkpoint->sidecar["pipeline"].empty())
        throw UsageError(
            fmt::format("--resume: checkpoint {} does not record its pipeline", checkpoint->path));
      if (!checkpoint->sidecar.value("resumable", true))
        throw UsageError(
            fmt::format("--resume: checkpoint {} cannot be resumed: an input of node '{}' is fed by "
                        "several sources",
                        checkpoint->path, checkpoint->sidecar.value("node_id", std::string("?"))));
      from = checkpoint->path + ".safetensors";
      reference_doc = graph::parse_pipeline(from, checkpoint->sidecar["pipeline"].dump());
    } else {
      from = (fs::path(run_dir) / "pipeline.json").string();
      if (!fs::exists(from))
        throw UsageError(fmt::format(
            "--resume: {} has neither checkpoints nor pipeline.json: not a run directory", run_dir));
      reference_doc = graph::load_pipeline(from);
    }
    graph::substitute_params(reference_doc);
    reference_doc.runtime["run_dir"] = run_dir;
    auto reference = graph::validate(reference_doc, registry);
    if (a.path.empty()) {
      doc = reference_doc;
      graph::apply_overrides(doc, a.sets);
      graph::substitute_params(doc);
    } else {
      doc = graph::load_pipeline(a.path);
      graph::apply_overrides(doc, a.sets);
      resolve_auto_params(doc);
      graph::substitute_params(doc);
    }
    doc.runtime["run_dir"] = run_dir;
    validated = graph::validate(doc, registry);
    auto problems =
        resume_differences(reference.document, validated.document, a.path.empty() ? from : a.path, from);
    if (!problems.empty()) throw graph::PipelineError(std::move(problems));
    if (checkpoint) {
      // Read once: a resumed run has them from its comparison with the checkpoint's.
      if (!options.list_fingerprints.is_object() || options.list_fingerprints.empty())
        options.list_fingerprints = nodes::list_fingerprints(validated);
      const auto changed = nodes::changed_lists(checkpoint->sidecar.value("lists", nlohmann::json::object()),
                                                options.list_fingerprints);
      if (!changed.empty() && !a.allow_changed_lists)
        throw RefusedError(fmt::format(
            "--resume: {} split list{} changed since checkpoint {} was written (the epochs and labels "
            "would not be the run's):\n  {}\n--allow-changed-lists resumes with the lists as they are now",
            changed.size(), changed.size() == 1 ? "" : "s", checkpoint->path, fmt::join(changed, "\n  ")));
      for (const auto& line : changed)
        std::cerr << fmt::format("--resume: changed list (allowed): {}\n", line);
      options.resume = checkpoint->sidecar.value("resume", nlohmann::json::object());
      options.resume[checkpoint->sidecar.value("node_id", std::string())] = {
          {"checkpoint", checkpoint->path}};
      std::cerr << fmt::format("resuming {} from {} (step {})\n", run_dir, checkpoint->path,
                               checkpoint->step);
    } else {
      std::cerr << fmt::format("resuming {}: no checkpoint yet, starting from the beginning\n", run_dir);
    }
  }
  for (const auto& [flag, path] :
       {std::pair<const char*, std::string>{"--trace", a.trace}, {"--profile", a.profile}}) {
    if (path.empty()) continue;
    auto why = unwritable(path);
    if (!why.empty()) throw UsageError(fmt::format("{}: cannot write {}: {}", flag, path, why));
  }
  std::shared_ptr<models::Communicator> communicator;
  if (dist.distributed()) {
    if (validated.runtime.threads == 0)
      validated.runtime.threads =
          std::max(1, int(std::thread::hardware_concurrency()) / dist.local_world_size);
    if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(validated.runtime.threads);
    // One GPU per process: "cuda" and "auto" then name this process's GPU (LOCAL_RANK).
    models::use_local_cuda_device(dist.local_rank);
    models::CommunicatorOptions co;
    co.backend = a.dist_backend;
    co.device = pipeline_device(validated);
    std::cerr << fmt::format("distributed: {}, {} threads; connecting\n", dist.describe(),
                             validated.runtime.threads);
    communicator = std::make_shared<models::Communicator>(dist, co);
    if (dist.rank == 0)
      std::cerr << fmt::format("distributed: {} processes joined ({})\n", dist.world_size,
                               communicator->backend());
    // Rank 0 alone writes the run directory.
    if (dist.rank > 0) validated.runtime.run_dir.clear();
  }
  const std::string& run_dir = validated.runtime.run_dir;
  // In a job, rank 0 writes the trace of every rank (pid = rank) once all have finished.
  options.trace_path = communicator ? "" : a.trace;
  options.trace = !a.trace.empty();
  options.print_table = !a.quiet && dist.rank == 0;
  options.communicator = communicator;
  options.rank = dist.rank;
  options.world_size = dist.world_size;
  options.list_fingerprints = nodes::list_fingerprints(validated);
  // Every start-up check (the same as sefar validate's) before anything is written.
  graph::Runtime runtime(validated, registry);
  runtime.prepare(options);
  std::optional<nodes::RunRecord> record;
  if (!run_dir.empty()) {
    std::string unmade;
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) unmade = fmt::format("cannot create the folder {}: {}", run_dir, ec.message());
    if (unmade.empty() && !lock.locked()) lock = lock_run_dir(run_dir);
    try {
      if (!unmade.empty()) throw std::runtime_error(unmade);
      graph::write_file_atomic(run_dir + "/pipeline.json", graph::safe_dump(graph::to_json(doc), 2) + "\n");
    } catch (const std::exception& e) {
      const auto& cli = doc.runtime_from_cli;
      const bool from_cli = std::find(cli.begin(), cli.end(), "run_dir") != cli.end();
      throw graph::PipelineError(graph::Diagnostic{
          from_cli ? "--set" : doc.file, from_cli ? 0 : doc.line_of(doc.file, {"runtime", "run_dir"}), 0, "",
          "", "run_dir", fmt::format("runtime \"run_dir\": cannot write {}: {}", run_dir, e.what())});
    }
    // From here on the console is kept in the run directory, and run.json says who ran what.
    console.emplace(run_dir + "/console.log", !a.resume.empty());
    record.emplace(run_dir,
                   nlohmann::json{{"command_line", a.command_line},
                                  {"device", pipeline_device(validated)},
                                  {"threads", validated.runtime.threads},
                                  {"world_size", dist.world_size}},
                   !a.resume.empty());
    std::cerr << fmt::format("run directory: {}\n", run_dir);
  }
  // run.json gets the end and the exit status; the report, drawn before they were known, is drawn
  // again to show them (a report that cannot be written now was already reported as such).
  auto finish_record = [&](int status) {
    if (!record) return;
    record->finish(status);
    std::error_code ec;
    if (fs::exists(run_dir + "/report.html", ec)) try {
        report::write_report(run_dir);
      } catch (const std::exception&) {
      }
  };
  try {
    const int status = run_prepared(a, runtime, options, run_dir, dist.rank, communicator.get());
    finish_record(status);
    return status;
  } catch (...) {
    finish_record(exit_status(std::current_exception()));
    throw;
  }
}

// The run itself, once every start-up check passed and the run directory is ready; then the skip list,
// the profile, the trace and the report.
int run_prepared(const Args& a, graph::Runtime& runtime, const graph::RunOptions& options,
                 const std::string& run_dir, int rank, models::Communicator* communicator) {
  // Bad input is reported whatever --quiet says, also when the run fails: the first clips here, every
  // one in the run directory.
  const std::string skipped_list = run_dir.empty() ? "" : run_dir + "/skipped.jsonl";
  auto report_skips = [&](const graph::Profiler& profile) {
    std::cerr << profile.skip_summary(20, skipped_list);
    if (!run_dir.empty()) graph::write_file_atomic(skipped_list, profile.skips_jsonl());
  };
  // The profile and the HTML report, written by rank 0 at the end of a run.
  auto write_profile = [&](const nlohmann::json& profile) {
    const std::string profile_json = graph::safe_dump(profile, 2);
    if (!a.profile.empty()) graph::write_file_atomic(a.profile, profile_json);
    if (!run_dir.empty()) {
      graph::write_file_atomic(run_dir + "/profile.json", profile_json);
      // A training run leaves metrics: turn them into the self-contained HTML report.
      if (std::filesystem::exists(run_dir + "/metrics.jsonl")) {
        report::write_report(run_dir);
        std::cerr << fmt::format("report: {}/report.html\n", run_dir);
      }
    }
  };
  graph::RunResult result;
  try {
    result = runtime.run(options);
  } catch (const graph::NodeFailure&) {
    if (auto profile = runtime.profile()) report_skips(*profile);
    throw;
  } catch (const graph::Interrupted&) {
    // A stopped run still leaves what it measured: skips, profile, trace and report up to the stop.
    // No gathering across ranks here (another rank may be gone): rank 0 writes its own profile only.
    if (auto profile = runtime.profile(); profile && rank == 0) {
      try {
        report_skips(*profile);
        write_profile(profile->to_json());
        if (!a.trace.empty() && !communicator) {
          graph::write_file_atomic(a.trace, graph::safe_dump(profile->trace_json(0)));
          std::cerr << fmt::format("trace written to {}\n", a.trace);
        }
      } catch (const std::exception& e) {
        // The checkpoint is already written: the exit status still says the run was stopped.
        std::cerr << fmt::format("warning: the stopped run's measurements were not all written: {}\n",
                                 e.what());
      }
    }
    throw;
  }
  report_skips(*result.profile);
  nlohmann::json profile = result.profile->to_json();
  if (communicator) {
    // Every rank's profile and trace reach rank 0 through the store.
    auto profiles = communicator->all_gather_strings("profile", graph::safe_dump(profile));
    std::vector<std::string> traces;
    if (!a.trace.empty())
      traces = communicator->all_gather_strings("trace", graph::safe_dump(result.profile->trace_json(rank)));
    if (rank > 0) return kExitOk;
    profile["ranks"] = nlohmann::json::array();
    for (const auto& text : profiles) profile["ranks"].push_back(nlohmann::json::parse(text));
    if (!a.quiet)
      std::cerr << graph::Profiler::rank_table(profile["ranks"].get<std::vector<nlohmann::json>>());
    if (!a.trace.empty()) {
      nlohmann::json merged{{"traceEvents", nlohmann::json::array()}, {"displayTimeUnit", "ms"}};
      for (const auto& text : traces) {
        auto trace = nlohmann::json::parse(text);
        for (auto& event : trace["traceEvents"]) merged["traceEvents"].push_back(std::move(event));
      }
      graph::write_file_atomic(a.trace, graph::safe_dump(merged));
    }
  }
  write_profile(profile);
  if (!a.trace.empty()) std::cerr << fmt::format("trace written to {}\n", a.trace);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Per-clip buffers (decoded frames, view tensors of 1-2 MB) are made and freed on several threads;
  // with glibc's dynamic mmap threshold and heap trimming they go back to the kernel and fault in
  // again, which costs the decode pipeline up to half its CPU at small resolutions
  // (docs/BENCH_DECODE.md). SEFAR_MALLOC=glibc keeps glibc's defaults (for that comparison).
  if (const char* m = std::getenv("SEFAR_MALLOC"); !m || std::strcmp(m, "glibc") != 0) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  if (argc >= 2 && !std::strcmp(argv[1], "--version")) {
    std::printf("%s\n%s\n", sefar::nodes::version_line().c_str(), sefar::nodes::build_info().dump(2).c_str());
    return kExitOk;
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitInvalid : kExitOk;
  }
  std::string command = argv[1];
  // FFmpeg's own messages about damaged clips (one per bad packet, every pass) would bury the run's
  // output; skipped clips are reported with their reason at the end instead. SEFAR_FFMPEG_LOG=error,
  // warning or info shows them.
  auto ffmpeg_log = sefar::io::FfmpegLog::kQuiet;
  if (const char* level = std::getenv("SEFAR_FFMPEG_LOG")) {
    const std::string l = level;
    ffmpeg_log = l == "error"     ? sefar::io::FfmpegLog::kErrors
                 : l == "warning" ? sefar::io::FfmpegLog::kWarnings
                 : l == "info"    ? sefar::io::FfmpegLog::kInfo
                                  : sefar::io::FfmpegLog::kQuiet;
  }
  sefar::io::set_ffmpeg_log(ffmpeg_log);
  if (command == "prepare") return sefar::tools::cmd_prepare(argc, argv);
  const char* usage = command == "run"        ? kRunUsage
                      : command == "validate" ? kValidateUsage
                      : command == "graph"    ? kGraphUsage
                      : command == "nodes"    ? kNodesUsage
                      : command == "synth"    ? kSynthUsage
                      : command == "infer"    ? kInferUsage
                      : command == "report"   ? kReportUsage
                                              : nullptr;
  if (!usage) {
    std::vector<std::string> commands = {"run", "validate", "graph", "nodes", "synth", "infer", "report", "prepare"};
    auto guess = sefar::graph::closest_match(command, commands);
    std::cerr << fmt::format("sefar: unknown command \"{}\"{}\n\n{}", command,
                             guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess), kUsage);
    return kExitInvalid;
  }
  std::optional<sefar::nodes::ConsoleLog> console;  // RUN_DIR/console.log once a run has its directory
  try {
    Args a = parse_args(command, argc, argv);
    if (a.help) {
      std::fputs(usage, stdout);
      return kExitOk;
    }
    if (command == "run") {
      sefar::graph::install_stop_handlers();
      return cmd_run(a, console);
    }
    if (command == "validate") return cmd_validate(a);
    if (command == "graph") return cmd_graph(a);
    if (command == "synth") return cmd_synth(a);
    if (command == "infer") return cmd_infer(a);
    if (command == "report") return cmd_report(a);
    return cmd_nodes(a);
  } catch (const UsageError& e) {
    std::cerr << "sefar " << command << ": " << e.what() << "\n\n" << usage;
    return exit_status(std::current_exception());
  } catch (const RefusedError& e) {
    std::cerr << "sefar " << command << ": " << e.what() << "\n";
    return exit_status(std::current_exception());
  } catch (const sefar::graph::PipelineError& e) {
    std::cerr << e.what() << "\n";
    std::cerr << fmt::format("sefar {}: invalid pipeline ({} problem{})\n", command, e.diagnostics().size(),
                             e.diagnostics().size() == 1 ? "" : "s");
    return exit_status(std::current_exception());
  } catch (const sefar::graph::Interrupted& e) {
    std::cerr << fmt::format("sefar {}: stopped by {}\n", command, sefar::graph::signal_name(e.signal()));
    return exit_status(std::current_exception());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return exit_status(std::current_exception());
  }
}
