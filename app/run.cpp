#include "app/run.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)
#include <nlohmann/json.hpp>

#include "app/differences.h"
#include "graph/diagnostics.h"
#include "graph/runtime.h"
#include "io/checkpoint.h"
#include "models/device.h"
#include "models/distributed.h"
#include "nodes/auto_params.h"
#include "nodes/builtin.h"
#include "nodes/run_directory.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace sefar::app {

graph::Registry make_registry() {
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  return registry;
}

namespace {

// Pipeline parameters set to "auto" (nodes/auto_params.h), with their warnings on the console.
void resolve_auto_params(graph::PipelineDoc& doc, bool lenient = false, bool quiet = false) {
  for (const auto& warning : nodes::resolve_auto_params(doc, lenient))
    if (!quiet) std::fprintf(stderr, "%s\n", warning.c_str());
}

}  // namespace

graph::ValidatedPipeline resolve_pipeline(const std::string& path, const std::vector<std::string>& sets,
                                          const graph::Registry& registry, graph::PipelineDoc* doc_out,
                                          bool lenient, bool quiet) {
  if (path.empty()) throw UsageError("missing PIPELINE (a .json file)");
  auto doc = graph::load_pipeline(path);
  graph::apply_overrides(doc, sets);
  resolve_auto_params(doc, lenient, quiet);
  graph::substitute_params(doc);
  auto validated = graph::validate(doc, registry);
  if (doc_out) *doc_out = doc;
  return validated;
}

namespace {

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

int run_prepared(const RunRequest& a, graph::Runtime& runtime, const graph::RunOptions& options,
                 const std::string& run_dir, int rank, models::Communicator* communicator);

}  // namespace

void set_compute_threads(int threads, const std::string& who) {
  models::set_intra_op_threads(threads, who);
}

int exit_status(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const UsageError&) {
    return 2;
  } catch (const RefusedError&) {
    return 2;
  } catch (...) {
    return graph::exit_status(error);
  }
}

int run_pipeline(const RunRequest& a, std::optional<nodes::ConsoleLog>& console) {
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
    validated = resolve_pipeline(a.path, a.sets, registry, &doc);
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
    auto problems = resume_differences(reference.document, validated.document, registry,
                                       a.path.empty() ? from : a.path, from);
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
  options.services.put(communicator);
  options.rank = dist.rank;
  options.world_size = dist.world_size;
  options.list_fingerprints = nodes::list_fingerprints(validated);
  options.set_compute_threads = set_compute_threads;
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
      util::write_file_atomic(run_dir + "/pipeline.json", graph::safe_dump(graph::to_json(doc), 2) + "\n");
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

namespace {

// The run itself, once every start-up check passed and the run directory is ready; then the skip list,
// the profile, the trace and the report.
int run_prepared(const RunRequest& a, graph::Runtime& runtime, const graph::RunOptions& options,
                 const std::string& run_dir, int rank, models::Communicator* communicator) {
  // Bad input is reported whatever --quiet says, also when the run fails: the first clips here, every
  // one in the run directory.
  const std::string skipped_list = run_dir.empty() ? "" : run_dir + "/skipped.jsonl";
  auto report_skips = [&](const graph::Profiler& profile) {
    std::cerr << profile.skip_summary(20, skipped_list);
    if (!run_dir.empty()) util::write_file_atomic(skipped_list, profile.skips_jsonl());
  };
  // The profile and the HTML report, written by rank 0 at the end of a run.
  auto write_profile = [&](const nlohmann::json& profile) {
    const std::string profile_json = graph::safe_dump(profile, 2);
    if (!a.profile.empty()) util::write_file_atomic(a.profile, profile_json);
    if (!run_dir.empty()) {
      util::write_file_atomic(run_dir + "/profile.json", profile_json);
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
          util::write_file_atomic(a.trace, graph::safe_dump(profile->trace_json(0)));
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
    if (rank > 0) return 0;
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
      util::write_file_atomic(a.trace, graph::safe_dump(merged));
    }
  }
  write_profile(profile);
  if (!a.trace.empty()) std::cerr << fmt::format("trace written to {}\n", a.trace);
  return 0;
}

}  // namespace

}  // namespace sefar::app
