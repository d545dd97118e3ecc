#include "nodes/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "graph/diagnostics.h"
#include "io/checkpoint.h"
#include "io/crc32c.h"
#include "models/timesformer.h"
#include "models/weights.h"

namespace sefar::nodes {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_events_file(const fs::path& path) {
  return path.filename().string().rfind("events.out.tfevents.", 0) == 0;
}

// Where a resumed run's events continue: the step of the last "step" record in the first `bytes` of
// metrics.jsonl (-1: none) and the records after it (the close of its epoch). Read once, on resume.
struct ResumePoint {
  std::int64_t last_step = -1;
  std::vector<json> later;
};
ResumePoint resume_point(const fs::path& metrics, std::uint64_t bytes) {
  ResumePoint point;
  std::ifstream in(metrics, std::ios::binary);
  std::uint64_t read = 0;
  for (std::string line; read < bytes && std::getline(in, line);) {
    read += line.size() + 1;
    if (read > bytes) break;
    json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object()) continue;
    io::StepRecord step;
    std::string problem;
    if (io::record_kind(record) == io::StepRecord::kind && io::from_json(record, step, problem)) {
      point.last_step = step.step;
      point.later.clear();
    } else {
      point.later.push_back(std::move(record));
    }
  }
  return point;
}

}  // namespace

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

  // TensorBoard: a resumed run does not cut the earlier events files back as it does metrics.jsonl;
  // it adds a new file, and TensorBoard shows the latest value per step, so the series continue as
  // one. The file starts with a session start at the first step the resumed run logs: TensorBoard's
  // Python reader drops what the earlier files logged from that step on (its Rust data server does
  // so per tag when a step comes again). The records at that step that the checkpoint already
  // covers (an evaluation at the end of its epoch) are written again after it.
  const fs::path tb = fs::path(dir_) / "tb";
  try {
    fs::create_directories(tb);
  } catch (const std::exception& e) {
    throw graph::StorageError(
        fmt::format("cannot create the TensorBoard folder {}: {}", tb.string(), e.what()));
  }
  if (!resuming)
    for (const auto& entry : fs::directory_iterator(tb, ec))
      if (is_events_file(entry.path()) && entry.is_regular_file(ec)) fs::remove(entry.path(), ec);
  const ResumePoint point = resuming ? resume_point(metrics, state.metrics_bytes) : ResumePoint{};
  // A step record carries the steps done before it: the resumed run's first is the last one's + 1.
  const std::int64_t first_step = point.last_step + 1;
  events_step_ = std::max<std::int64_t>(point.last_step, 0);
  try {
    events_ = std::make_unique<io::tensorboard::EventWriter>(tb.string());
    events_->add_session_start(first_step);
    for (const auto& record : point.later)
      if (record.value("step", std::int64_t(-1)) >= first_step) write_events(record);
    events_->flush();
  } catch (const std::exception& e) {
    throw graph::StorageError(e.what());
  }
}

void RunDirectory::write_metrics(const json& record, LoopState& state) {
  if (!metrics_.is_open()) return;
  const std::string line = record.dump() + '\n';
  metrics_ << line;
  metrics_.flush();
  if (!metrics_)
    throw graph::StorageError(fmt::format("cannot write {}", (fs::path(dir_) / "metrics.jsonl").string()));
  state.metrics_bytes += line.size();
  if (!events_) return;
  try {
    write_events(record);
    events_->flush();  // a live tensorboard sees every record
  } catch (const std::exception& e) {
    throw graph::StorageError(e.what());
  }
}

void RunDirectory::write_metrics(const io::StepRecord& record, LoopState& state) {
  write_metrics(io::metrics_line(record), state);
}
void RunDirectory::write_metrics(const io::EpochRecord& record, LoopState& state) {
  write_metrics(io::metrics_line(record), state);
}
void RunDirectory::write_metrics(const io::EvalRecord& record, LoopState& state) {
  write_metrics(io::metrics_line(record), state);
}

void RunDirectory::write_events(const json& record) {
  const std::string kind = io::record_kind(record);
  const char* prefix = kind == io::StepRecord::kind    ? "train"
                       : kind == io::EpochRecord::kind ? "epoch"
                       : kind == io::EvalRecord::kind  ? "eval"
                                                       : nullptr;
  if (!prefix) return;
  auto step = record.find("step");
  if (step != record.end() && step->is_number_integer()) events_step_ = step->get<std::int64_t>();
  const double wall_time = io::tensorboard::wall_clock();
  for (const auto& [field, value] : record.items()) {
    if (field == "step" || field == "epoch" || !value.is_number()) continue;
    const double x = value.get<double>();
    // metrics.jsonl writes a non-finite number (a skipped step's loss) as null: no point there either.
    if (!std::isfinite(x)) continue;
    events_->add_scalar(fmt::format("{}/{}", prefix, field), x, events_step_, wall_time);
  }
  auto hist = record.find("eta_hist");
  if (kind == io::EpochRecord::kind && hist != record.end() && hist->is_array() && !hist->empty()) {
    // Equal bins over [0, 1] (models::StepStats::eta_hist).
    std::vector<double> limits, counts;
    for (std::size_t b = 0; b < hist->size(); ++b) {
      limits.push_back(double(b + 1) / double(hist->size()));
      counts.push_back((*hist)[b].is_number() ? (*hist)[b].get<double>() : 0.0);
    }
    events_->add_histogram("epoch/eta", 0.0, limits, counts, events_step_, wall_time);
  }
}

void RunDirectory::write_text(const std::string& tag, const std::string& text) {
  if (!events_) return;
  try {
    events_->add_text(tag, text, events_step_);
    events_->flush();
  } catch (const std::exception& e) {
    throw graph::StorageError(e.what());
  }
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

void RunDirectory::save_model(models::MultiGranularViT& model, const std::map<std::string, std::string>& metadata) {
  if (!enabled()) return;
  const auto path = (fs::path(dir_) / "model.safetensors").string();
  try {
    models::save_weights(model, path, metadata);
  } catch (const std::exception& e) {
    throw graph::StorageError(fmt::format("cannot write the model {}: {}", path, e.what()));
  }
}

void RunDirectory::flush() {
  if (metrics_.is_open()) metrics_.flush();
  if (events_) {
    try {
      events_->flush();
    } catch (const std::exception& e) {
      throw graph::StorageError(e.what());
    }
  }
}

std::vector<std::string> earlier_run_files(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const char* name : {"pipeline.json", "metrics.jsonl", "model.safetensors"})
    if (fs::exists(fs::path(dir) / name, ec)) found.push_back(name);
  std::vector<std::string> checkpoints;
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "checkpoints", ec))
    if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec))
      checkpoints.push_back("checkpoints/" + entry.path().filename().string());
  std::sort(checkpoints.begin(), checkpoints.end());
  found.insert(found.end(), checkpoints.begin(), checkpoints.end());
  return found;
}

RunDirLock RunDirLock::acquire(const std::string& dir, std::string& error) {
  RunDirLock lock;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = fmt::format("cannot open the run directory {}: {}", dir, std::strerror(errno));
    return lock;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    std::string holder = "another process";
    struct stat st {};
    if (reason == EWOULDBLOCK && ::fstat(fd, &st) == 0) {
      // /proc/locks: "1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF".
      std::ifstream locks("/proc/locks");
      std::string line;
      const std::string inode = ":" + std::to_string(st.st_ino);
      while (std::getline(locks, line)) {
        std::istringstream fields(line);
        std::string n, kind, mode, access, pid, device;
        fields >> n >> kind >> mode >> access >> pid >> device;
        if (kind == "FLOCK" && device.size() > inode.size() &&
            device.compare(device.size() - inode.size(), inode.size(), inode) == 0) {
          holder = "process " + pid;
          break;
        }
      }
    }
    ::close(fd);
    error = reason == EWOULDBLOCK
                ? fmt::format(
                      "the run directory {} is in use by {} (one run per directory: wait for it to "
                      "end, or choose another runtime.run_dir)",
                      dir, holder)
                : fmt::format("cannot lock the run directory {}: {}", dir, std::strerror(reason));
    return lock;
  }
  lock.fd_ = fd;
  return lock;
}

RunDirLock& RunDirLock::operator=(RunDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

json list_fingerprints(const graph::ValidatedPipeline& pipeline) {
  json out = json::object();
  auto add = [&](const graph::NodeSpec& spec, const json& params) {
    for (const auto& p : spec.params()) {
      if (!p.split_list) continue;
      auto it = params.find(p.name);
      if (it == params.end() || !it->is_string() || it->get<std::string>().empty()) continue;
      const std::string path = it->get<std::string>();
      try {
        const auto f = io::fingerprint_file(path);
        out[path] = {{"bytes", f.bytes}, {"crc32c", io::crc32c_hex(f.crc)}};
      } catch (const std::exception&) {
      }
    }
  };
  for (const auto& m : pipeline.models) add(*m.spec, m.params);
  for (const auto& n : pipeline.nodes) add(*n.spec, n.params);
  return out;
}

std::vector<std::string> changed_lists(const json& recorded, const json& current) {
  std::vector<std::string> lines;
  if (!recorded.is_object()) return lines;
  for (const auto& [path, was] : recorded.items()) {
    auto now = current.find(path);
    if (now == current.end()) {
      lines.push_back(fmt::format("{}: unreadable now ({} bytes when the checkpoint was written)", path,
                                  was.value("bytes", std::uint64_t(0))));
      continue;
    }
    if (*now == was) continue;
    lines.push_back(fmt::format("{}: {} bytes, checksum {} when the checkpoint was written; now {} bytes, {}",
                                path, was.value("bytes", std::uint64_t(0)),
                                was.value("crc32c", std::string("?")), now->value("bytes", std::uint64_t(0)),
                                now->value("crc32c", std::string("?"))));
  }
  return lines;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  int s = int(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

TimeLeft time_left(const RunLeft& left, const PhaseTimes& t) {
  TimeLeft out;
  auto add = [&](std::int64_t count, double each) {
    if (count <= 0) return;
    if (each < 0) {
      out.complete = false;
      return;
    }
    out.seconds += double(count) * each;
  };
  add(left.warmup_steps, t.warmup_step);
  add(left.semi_steps, t.semi_step);
  add(left.evaluations, t.evaluation);
  return out;
}

namespace {

constexpr std::size_t kStepWindow = 50;

double mean(const std::deque<double>& v) {
  if (v.empty()) return -1;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

}  // namespace

double Progress::step_done(bool semi) {
  const auto t = now();
  const double seconds = std::chrono::duration<double>(t - last_).count();
  auto& window = semi ? semi_steps_ : warmup_steps_;
  window.push_back(seconds);
  if (window.size() > kStepWindow) window.pop_front();
  last_ = t;
  return seconds;
}

void Progress::pause_done(double seconds, bool evaluation) {
  last_ = now();
  if (!evaluation) return;
  eval_sum_ += seconds;
  ++evaluations_;
}

std::string Progress::line(const models::StepStats& s, std::int64_t clips, const LoopState& state,
                           bool semi_configured) const {
  const double elapsed = seconds_since(start_);
  const std::int64_t per_epoch = state.last_epoch_steps;  // known once an epoch has ended
  std::string step_text = per_epoch > 0 ? fmt::format("step {}/{}", state.epoch_steps, per_epoch)
                                        : fmt::format("step {}", state.epoch_steps);
  std::string eta_text;
  if (per_epoch > 0) {
    RunLeft left;
    const std::int64_t in_epoch = std::max<std::int64_t>(0, per_epoch - state.epoch_steps);
    for (int e = s.epoch; e < epochs_; ++e) {
      const std::int64_t steps = e == s.epoch ? in_epoch : per_epoch;
      const bool semi = semi_configured && e >= warmup_epochs_;
      (semi ? left.semi_steps : left.warmup_steps) += steps;
      if (evaluates_ && (e + 1 == epochs_ || (e + 1) % eval_every_ == 0)) ++left.evaluations;
    }
    PhaseTimes times{mean(warmup_steps_), mean(semi_steps_), evaluations_ ? eval_sum_ / evaluations_ : -1};
    const auto t = time_left(left, times);
    eta_text = fmt::format(" ETA {}{}", format_duration(t.seconds),
                           t.complete ? "" : "+ (semi-supervised steps not timed yet)");
  }
  std::string semi_text = s.semi
                              ? fmt::format(" un {:.3f} mix {:.3f} xi {:.2f} weight {:.2f} (>0.5 {:.0f}%)",
                                            s.loss_un, s.loss_mix, s.xi, s.eta_mean, 100 * s.eta_above_half)
                          : semi_configured ? " (warm-up)"
                                            : "";
  return fmt::format("epoch {}/{} {} loss {:.3f} sup {:.3f}{} lr {:.2g} {:.1f} clips/s{}", s.epoch + 1,
                     epochs_, step_text, s.loss, s.loss_sup, semi_text, s.lr,
                     double(clips) / std::max(1e-9, elapsed), eta_text);
}

}  // namespace sefar::nodes
