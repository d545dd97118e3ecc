// sefar: the command-line interface. Exit status: 0 success, 2 invalid pipeline, flags or input,
// 1 runtime failure, 74 outputs could not be written, 130/143 stopped by SIGINT/SIGTERM.
#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)
#include <nlohmann/json.hpp>

#include "app/differences.h"
#include "app/run.h"
#include "graph/diagnostics.h"
#include "graph/dot.h"
#include "graph/pipeline.h"
#include "graph/registry.h"
#include "graph/runtime.h"
#include "graph/stop.h"
#include "graph/validate.h"
#include "report/report.h"
#include "io/synth.h"
#include "io/video.h"
#include "models/config.h"
#include "models/infer.h"
#include "models/weights.h"
#include "nodes/auto_params.h"
#include "nodes/run_directory.h"
#include "nodes/run_record.h"
#include "tools/options.h"
#include "tools/prepare.h"

namespace {

using namespace sefar;
using app::RefusedError;
using app::UsageError;

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 2;
// The other statuses come from graph::exit_status: 1 failure, 74 outputs not written, 128 + signal
// when stopped (130 SIGINT, 143 SIGTERM).

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
                     (only a node's concurrency and the parameters `sefar nodes` marks "may change on
                     resume" may differ: threads, devices, logging, ...). Without a checkpoint yet,
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
  --first-class K       use routines K..K+N-1 of the 12, labelled 0..N-1 (default 0); e.g.
                        --classes 4 --first-class 8: four routines the default 8 classes lack, a
                        different task to pretrain on
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

// The command line: what `sefar run` takes (app::RunRequest: the pipeline or synth's output directory
// as `path`, --set, --resume, --trace, ...) and the other commands' flags.
struct Args : app::RunRequest {
  std::string type;                  // nodes: the node type
  bool schema_only = false;          // validate: skip the start-up checks (models and nodes built)
  bool dot = false, json = false, help = false;
  std::vector<std::pair<std::string, std::string>> options;  // synth, infer: --name value
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

std::string describe_param(const graph::ParamSpec& p) {
  std::string out = fmt::format("    {:<18} {:<12} ", p.name, graph::to_string(p.type));
  out += p.required ? "required" : "default " + p.default_value.dump();
  if (p.min || p.max)
    out += fmt::format(", range [{}, {}]", p.min ? fmt::format("{}", *p.min) : "-inf",
                       p.max ? fmt::format("{}", *p.max) : "inf");
  if (p.min_size) out += fmt::format(", at least {} element(s)", *p.min_size);
  if (!p.choices.empty()) out += fmt::format(", one of: {}", fmt::join(p.choices, " | "));
  if (!p.model_type.empty()) out += fmt::format(", names a \"{}\" under \"models\"", p.model_type);
  if (p.may_change_on_resume) out += ", may change on resume";
  if (p.compute_threads) out += ", sets LibTorch's threads";
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
  if (p.may_change_on_resume) j["may_change_on_resume"] = true;
  if (p.compute_threads) j["compute_threads"] = true;
  return j;
}

int cmd_nodes(const Args& a) {
  auto registry = app::make_registry();
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

int cmd_validate(const Args& a) {
  auto registry = app::make_registry();
  graph::PipelineDoc doc;
  auto validated = app::resolve_pipeline(a.path, a.sets, registry, &doc, a.schema_only);
  // The start-up checks of sefar run: models and nodes built (lists read, clips looked up, labels,
  // devices), budgets; nothing is written.
  if (!a.schema_only) {
    graph::RunOptions options;
    options.set_compute_threads = app::set_compute_threads;  // the thread cap's warning is a check too
    graph::Runtime(validated, registry).prepare(options);
  }
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
    auto lines = app::document_differences(base.document, validated.document);
    std::cerr << fmt::format("differences from {} ({}):\n", doc.base, lines.size());
    for (const auto& line : lines) std::cerr << line << "\n";
  }
  return kExitOk;
}

int cmd_graph(const Args& a) {
  if (!a.dot) throw UsageError("sefar graph: choose an output format (--dot)");
  auto registry = app::make_registry();
  auto validated = app::resolve_pipeline(a.path, a.sets, registry, nullptr, /*lenient=*/true, /*quiet=*/true);  // a drawing only
  std::cout << graph::to_dot(validated);
  return kExitOk;
}

int cmd_synth(const Args& a) {
  if (a.path.empty()) throw UsageError("missing OUT_DIR");
  io::SynthOptions o;
  o.out_dir = a.path;
  o.threads = int(std::thread::hardware_concurrency());
  tools::Options()
      .integer("classes", o.num_classes, INT_MIN, INT_MAX)
      .integer("first-class", o.first_class, INT_MIN, INT_MAX)
      .integer("train-per-class", o.train_per_class, INT_MIN, INT_MAX)
      .integer("val-per-class", o.val_per_class, INT_MIN, INT_MAX)
      .number("labeled", o.labeled_fraction)
      .pair("size", 'x', o.width, o.height)
      .pair("frames", ':', o.min_frames, o.max_frames)
      .number("fps", o.fps)
      .number("noise", o.noise)
      .number("nuisance", o.nuisance)
      .number("figure-scale", o.figure_scale)
      .custom("codec",
              [&](const std::string& v) {
                const auto codec = io::kVideoCodecs.parse(v);  // the clips are .mp4 files: no VP9
                if (!codec || *codec == io::VideoCodec::kVp9)
                  throw UsageError(fmt::format("--codec: expected auto, h264 or mpeg4, got \"{}\"", v));
                o.codec = *codec;
              })
      .integer("seed", o.seed, 0, INT64_MAX, "--seed: expected a non-negative integer, got {}")
      .integer("threads", o.threads, INT_MIN, INT_MAX)
      .read(a.options);
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
  tools::Options()
      .text("weights", weights)
      .text("inputs", inputs)
      .text("outputs", outputs)
      .text("config", config_path)
      .text("device", options.device)
      .integer("batch", options.batch_size, 0, INT64_MAX, "--batch must be >= 0")
      .flag("non-strict", options.strict, false)
      .read(a.options);
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
  if (const char* level = std::getenv("SEFAR_FFMPEG_LOG"))
    ffmpeg_log = sefar::io::kFfmpegLogs.parse(level).value_or(sefar::io::FfmpegLog::kQuiet);
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
      return sefar::app::run_pipeline(a, console);
    }
    if (command == "validate") return cmd_validate(a);
    if (command == "graph") return cmd_graph(a);
    if (command == "synth") return cmd_synth(a);
    if (command == "infer") return cmd_infer(a);
    if (command == "report") return cmd_report(a);
    return cmd_nodes(a);
  } catch (const UsageError& e) {
    std::cerr << "sefar " << command << ": " << e.what() << "\n\n" << usage;
    return app::exit_status(std::current_exception());
  } catch (const RefusedError& e) {
    std::cerr << "sefar " << command << ": " << e.what() << "\n";
    return app::exit_status(std::current_exception());
  } catch (const sefar::graph::PipelineError& e) {
    std::cerr << e.what() << "\n";
    std::cerr << fmt::format("sefar {}: invalid pipeline ({} problem{})\n", command, e.diagnostics().size(),
                             e.diagnostics().size() == 1 ? "" : "s");
    return app::exit_status(std::current_exception());
  } catch (const sefar::graph::Interrupted& e) {
    std::cerr << fmt::format("sefar {}: stopped by {}\n", command, sefar::graph::signal_name(e.signal()));
    return app::exit_status(std::current_exception());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return app::exit_status(std::current_exception());
  }
}
