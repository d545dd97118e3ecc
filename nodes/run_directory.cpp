#include "nodes/run_directory.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include <fmt/format.h>

#include "graph/diagnostics.h"
#include "io/checkpoint.h"
#include "models/timesformer.h"
#include "models/weights.h"

namespace sefar::nodes {

namespace fs = std::filesystem;
using json = nlohmann::json;

RunDirectory::RunDirectory(std::string dir, int keep_last, std::function<void(const std::string&)> log)
    : dir_(std::move(dir)), keep_last_(keep_last), log_(std::move(log)) {}

void RunDirectory::open(bool resuming, LoopState& state) {
  if (!enabled()) return;
  const fs::path dir = fs::path(dir_) / "checkpoints";
  try {
    fs::create_directories(dir);
  } catch (const std::exception& e) {
    throw graph::StorageError(
        fmt::format("cannot create the checkpoint folder {}: {}", dir.string(), e.what()));
  }
  static const std::regex checkpoint_name(R"((epoch_\d+|step_\d+|best)\.(safetensors|json))");
  static const std::regex temporary_name(R"((epoch_\d+|step_\d+|best)\.(safetensors|json)\.tmp.*)");
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec)) continue;
    bool temporary = std::regex_match(name, temporary_name);
    bool stale = !resuming && std::regex_match(name, checkpoint_name);
    if ((temporary || stale) && fs::remove(entry.path(), ec)) removed += stale;
  }
  if (removed > 0)
    log_(
        fmt::format("a fresh run: removed the checkpoints of an earlier run in {} (sefar run --resume "
                    "continues a run instead)",
                    dir.string()));
  if (resuming)
    for (const auto& c : io::list_checkpoints(dir.string()))
      if (c.name != "best") saved_.push_back(c.name);

  const fs::path metrics = fs::path(dir_) / "metrics.jsonl";
  if (resuming) {
    // Records written after the checkpoint are written again by the resumed run.
    std::uint64_t size = fs::exists(metrics, ec) ? fs::file_size(metrics, ec) : 0;
    if (size > state.metrics_bytes) fs::resize_file(metrics, state.metrics_bytes, ec);
    if (ec) throw graph::StorageError(fmt::format("cannot truncate {}: {}", metrics.string(), ec.message()));
    if (size < state.metrics_bytes) {
      log_(fmt::format("{} is shorter than when the checkpoint was written; appending to it",
                       metrics.string()));
      state.metrics_bytes = size;
    }
  } else {
    state.metrics_bytes = 0;
  }
  metrics_.open(metrics, resuming ? std::ios::app : std::ios::trunc);
  if (!metrics_) throw graph::StorageError(fmt::format("cannot write {}", metrics.string()));
}

void RunDirectory::write_metrics(const json& record, LoopState& state) {
  if (!metrics_.is_open()) return;
  const std::string line = record.dump() + '\n';
  metrics_ << line;
  metrics_.flush();
  if (!metrics_)
    throw graph::StorageError(fmt::format("cannot write {}", (fs::path(dir_) / "metrics.jsonl").string()));
  state.metrics_bytes += line.size();
}

void RunDirectory::save_checkpoint(const std::string& name, double top1, LoopState& state,
                                   const std::function<void(const std::string& path)>& save) {
  if (!enabled()) return;
  const fs::path dir = fs::path(dir_) / "checkpoints";
  auto write = [&](const std::string& n) {
    const std::string path = (dir / n).string();
    try {
      save(path);
    } catch (const std::exception& e) {
      throw graph::StorageError(fmt::format("cannot write checkpoint {}.safetensors: {}", path, e.what()));
    }
  };
  write(name);
  saved_.erase(std::remove(saved_.begin(), saved_.end(), name), saved_.end());
  saved_.push_back(name);
  if (top1 > state.best_top1) {
    state.best_top1 = top1;
    write("best");
  }
  while (int(saved_.size()) > keep_last_) {
    std::error_code ec;
    for (const char* ext : {".json", ".safetensors"}) fs::remove(dir / (saved_.front() + ext), ec);
    saved_.erase(saved_.begin());
  }
}

void RunDirectory::save_model(models::MultiGranularViT& model) {
  if (!enabled()) return;
  const auto path = (fs::path(dir_) / "model.safetensors").string();
  try {
    models::save_weights(model, path);
  } catch (const std::exception& e) {
    throw graph::StorageError(fmt::format("cannot write the model {}: {}", path, e.what()));
  }
}

void RunDirectory::flush() {
  if (metrics_.is_open()) metrics_.flush();
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  int s = int(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string Progress::line(const models::StepStats& s, std::int64_t clips, const LoopState& state,
                           bool semi_configured) const {
  double elapsed = seconds_since(start_);
  double per_step = epoch_seconds() / double(std::max<std::int64_t>(1, state.epoch_steps));
  std::string eta_text;
  if (state.last_epoch_steps > 0) {
    double remaining_steps = double(state.last_epoch_steps - state.epoch_steps) +
                             double(state.last_epoch_steps) * (epochs_ - 1 - s.epoch);
    eta_text = " ETA " + format_duration(remaining_steps * per_step);
  }
  std::string semi_text = s.semi
                              ? fmt::format(" un {:.3f} mix {:.3f} xi {:.2f} eta {:.2f} (>0.5 {:.0f}%)",
                                            s.loss_un, s.loss_mix, s.xi, s.eta_mean, 100 * s.eta_above_half)
                          : semi_configured ? " (warm-up)"
                                            : "";
  return fmt::format("epoch {}/{} step {} loss {:.3f} sup {:.3f}{} lr {:.2g} {:.1f} clips/s{}", s.epoch + 1,
                     epochs_, s.step, s.loss, s.loss_sup, semi_text, s.lr,
                     double(clips) / std::max(1e-9, elapsed), eta_text);
}

}  // namespace sefar::nodes
