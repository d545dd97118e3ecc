// sefar_train: the SeFAR training step as a graph node. Pairs each labeled batch with an unlabeled
// one (in source order), runs models::Trainer::step, and at epoch ends evaluates on a validation
// list, writes metrics and checkpoints. Without an unlabeled input (or with semi_supervised false)
// it trains supervised only: the baseline, same model.
//
// Checkpoints (io/checkpoint.h) hold the whole training state: the trainer's tensors and
// generators, this node's own counters, the position in each source's stream of the first item
// not trained on yet, the resolved pipeline and the length of metrics.jsonl at that moment. A
// resumed run (`sefar run --resume RUN_DIR`) gets the checkpoint through NodeContext::resume, its
// sources start at those positions, metrics.jsonl is cut back to that length, and the run goes on
// exactly as the uninterrupted one would have. Epoch ends write epoch_NNNN; a stop request
// (SIGINT/SIGTERM) writes step_NNNNNNNN with the state after the last completed step.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <regex>

#include <ATen/Parallel.h>
#include <ATen/ops/tensor.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"
#include "graph/node.h"
#include "graph/stop.h"
#include "io/checkpoint.h"
#include "models/timesformer.h"
#include "models/trainer.h"
#include "models/weights.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"
#include "nodes/evaluate.h"

namespace sefar::nodes {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TrainNodeOptions {
  models::TrainerOptions trainer;
  int threads = 0;
  EvalSetup eval;
  int eval_every = 1;
  int log_every = 10;
  int keep_last = 2;
  bool stop_on_nonfinite = true;
};

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  int s = int(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

class TrainNode final : public graph::Node {
 public:
  // In a data-parallel job, rank 0 alone logs and writes metrics, checkpoints and the model.
  explicit TrainNode(const graph::NodeContext& ctx)
      : id_(ctx.id), run_dir_(ctx.rank == 0 ? ctx.run_dir : std::string()), quiet_(ctx.rank != 0) {
    const auto& p = ctx.params;
    auto& t = options_.trainer;
    t.model = models::ModelConfig::preset(p.get_string("model"));
    t.model.num_classes = p.get_int("num_classes");
    t.model.views.clear();
    for (auto k : p.get_int_list("views")) t.model.views.push_back(k);
    t.model.img_size = p.get_int("crop");
    if (p.get_int("patch") > 0) t.model.patch_size = p.get_int("patch");
    t.model.drop_path_rate = p.get_float("drop_path");
    t.model.head_dropout = p.get_float("head_dropout");
    t.model.init = models::param_init_from_string(p.get_string("init"));
    t.device = p.get_string("device");
    t.seed = ctx.seed;
    t.optimizer = p.get_string("optimizer");
    t.clip_grad_norm = p.get_float("clip_grad_norm");
    t.lr = p.get_float("lr");
    t.momentum = p.get_float("momentum");
    t.weight_decay = p.get_float("weight_decay");
    t.milestones.clear();
    for (auto m : p.get_int_list("milestones")) t.milestones.push_back(int(m));
    t.factors = p.get_float_list("factors");
    if (t.factors.size() != t.milestones.size())
      throw std::invalid_argument(fmt::format("param \"factors\": {} factors for {} milestones", t.factors.size(),
                                              t.milestones.size()));
    t.epochs = int(p.get_int("epochs"));
    t.warmup_epochs = int(p.get_int("warmup_epochs"));
    if (t.warmup_epochs > t.epochs)
      throw std::invalid_argument(fmt::format("param \"warmup_epochs\": {} is more than epochs ({})", t.warmup_epochs,
                                              t.epochs));
    has_unlabeled_ = ctx.connected_inputs.size() > 1 && ctx.connected_inputs[1];
    t.semi_supervised = p.get_bool("semi_supervised") && has_unlabeled_;
    t.ema_decay = p.get_float("ema_decay");
    t.teacher_passes = int(p.get_int("teacher_passes"));
    t.regulation = models::regulation_from_string(p.get_string("regulation"));
    t.threshold = p.get_float("threshold");
    t.gamma_un = p.get_float("gamma_un");
    t.gamma_mix = p.get_float("gamma_mix");
    t.token_mix = p.get_bool("token_mix");
    t.mix_alpha = p.get_float("mix_alpha");
    t.mix_compare_logits = p.get_string("mix_target") == "logits";
    t.inject_nonfinite_step = p.get_int("inject_nonfinite_at_step");
    options_.threads = int(p.get_int("threads"));
    options_.eval.list = p.get_string("val_list");
    options_.eval.root = p.get_string("val_root");
    options_.eval.views.assign(t.model.views.begin(), t.model.views.end());
    options_.eval.crop = int(t.model.img_size);
    options_.eval.short_side = int(p.get_int("eval_short_side"));
    options_.eval.mode = p.get_string("eval_mode");
    options_.eval.test_clips = int(p.get_int("test_clips"));
    options_.eval.batch = int(p.get_int("eval_batch"));
    options_.eval.limit = p.get_int("eval_limit");
    options_.eval.seed = ctx.seed;
    options_.eval.communicator = ctx.communicator;
    options_.eval.rank = ctx.rank;
    options_.eval.world_size = ctx.world_size;
    options_.eval_every = int(p.get_int("eval_every"));
    options_.log_every = int(p.get_int("log_every"));
    options_.keep_last = int(p.get_int("keep_last"));
    options_.stop_on_nonfinite = p.get_string("on_nonfinite") == "stop";
    if (options_.eval.short_side < options_.eval.crop)
      throw std::invalid_argument(fmt::format("param \"eval_short_side\": {} is below the crop {}",
                                              options_.eval.short_side, options_.eval.crop));
    // Where each input's items come from: a checkpoint names the source to restart at a position.
    for (std::size_t port = 0; port < ctx.input_sources.size() && port < 2; ++port) {
      if (!ctx.connected_inputs[port]) continue;
      if (ctx.input_sources[port].size() == 1)
        source_ids_[port] = ctx.input_sources[port][0];
      else
        resumable_ = false;  // several sources merge into one input: positions cannot be told apart
    }
    if (ctx.document) document_ = *ctx.document;
    if (options_.threads > 0) at::set_num_threads(options_.threads);
    try {
      trainer_ = std::make_unique<models::Trainer>(t);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("model: {}", e.what()));
    }
    const bool resuming = ctx.resume.is_object() && ctx.resume.contains("checkpoint");
    if (resuming) restore(ctx.resume["checkpoint"].get<std::string>());
    communicator_ = ctx.communicator;
    if (communicator_) trainer_->set_communicator(communicator_);
    if (!run_dir_.empty()) prepare_run_dir(resuming);
    start_ = std::chrono::steady_clock::now();
  }

  void process(int port, const graph::Item& item, graph::Output&) override {
    // Keep the item, not only its value: its ticket holds the source's in-flight budget, so a
    // stream that is not consumed yet (unlabeled batches during warm-up) stops its source.
    (port == 0 ? labeled_ : unlabeled_).push_back(item);
    drain();
  }

  void finish(graph::Output&) override {
    drain();
    if (graph::stop_requested()) return;  // stopping: interrupted() comes next
    if (epoch_open_) end_epoch(current_epoch_, true);
    if (!run_dir_.empty() && current_epoch_ >= 0) {
      // The model to use afterwards (sefar infer, feature export): the teacher once it exists.
      auto* model = trainer_->teacher() ? trainer_->teacher() : &trainer_->student();
      const auto path = (fs::path(run_dir_) / "model.safetensors").string();
      try {
        models::save_weights(*model, path);
      } catch (const std::exception& e) {
        throw graph::StorageError(fmt::format("cannot write the model {}: {}", path, e.what()));
      }
    }
    if (skipped_total_ > 0)
      log(fmt::format("{}: skipped {} step(s) with a non-finite loss or gradient (steps {}{})", id_,
                      skipped_total_, fmt::join(skipped_steps_, ", "),
                      skipped_total_ > std::int64_t(skipped_steps_.size()) ? ", ..." : ""));
    labeled_.clear();
    unlabeled_.clear();
    if (metrics_.is_open()) metrics_.flush();
  }

  // Stopped by a signal: no body runs now. Save the state after the last completed step, unless the
  // last checkpoint already holds it.
  void interrupted() override {
    labeled_.clear();
    unlabeled_.clear();
    if (run_dir_.empty()) return;
    const auto steps = trainer_->steps_done();
    if (steps == saved_step_ && epoch_open_ == saved_epoch_open_) {
      log(fmt::format("{}: stopped after {} steps; the last checkpoint holds this state", id_, steps));
      return;
    }
    const std::string name = fmt::format("step_{:08d}", steps);
    save_checkpoint(name, -1);
    log(fmt::format(
        "{}: stopped after {} steps (epoch {}: {} of its steps done): wrote checkpoints/{}; continue "
        "with sefar run --resume {}",
        id_, steps, current_epoch_ + 1, epoch_steps_, name, run_dir_));
  }

 private:
  void log(const std::string& line) const {
    if (!quiet_) std::fprintf(stderr, "%s\n", line.c_str());
  }

  bool semi_epoch(int epoch) const {
    return options_.trainer.semi_supervised && epoch >= options_.trainer.warmup_epochs;
  }

  fs::path checkpoint_dir() const { return fs::path(run_dir_) / "checkpoints"; }

  // Loads a checkpoint written by save_checkpoint: the trainer's state and this node's.
  void restore(const std::string& path) {
    json sidecar;
    try {
      sidecar = trainer_->load(path);
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("resume: cannot load checkpoint {}: {}", path, e.what()));
    }
    const json node = sidecar.value("node", json::object());
    current_epoch_ = node.value("epoch", sidecar.value("epoch", -1));
    epoch_open_ = node.value("epoch_open", false);
    epoch_steps_ = node.value("epoch_steps", std::int64_t(0));
    last_epoch_steps_ = node.value("last_epoch_steps", std::int64_t(0));
    eta_sum_ = node.value("eta_sum", 0.0);
    eta_high_ = node.value("eta_high", 0.0);
    eta_count_ = node.value("eta_count", 0.0);
    eta_hist_ = node.value("eta_hist", std::vector<std::int64_t>{});
    best_top1_ = node.value("best_top1", sidecar.value("best_top1", -1.0));
    skipped_total_ = node.value("skipped_total", std::int64_t(0));
    epoch_skipped_ = node.value("epoch_skipped", std::int64_t(0));
    skipped_steps_ = node.value("skipped_steps", std::vector<std::int64_t>{});
    metrics_bytes_ = node.value("metrics_bytes", std::uint64_t(0));
    labeled_next_ = node.value("labeled_next", std::uint64_t(0));
    unlabeled_next_ = node.value("unlabeled_next", std::uint64_t(0));
    saved_step_ = trainer_->steps_done();
    saved_epoch_open_ = epoch_open_;
    log(fmt::format("{}: resumed from {} (step {}, epoch {}{})", id_, path, trainer_->steps_done(),
                    current_epoch_ + 1,
                    epoch_open_ ? fmt::format(", {} step(s) into it", epoch_steps_) : " complete"));
  }

  // Creates the checkpoint folder, removes leftovers (temporary files of a write that was cut
  // short; in a fresh run, the checkpoints of an earlier run in this folder, whose metrics are
  // started anew too) and opens metrics.jsonl, cut back to the checkpoint's length when resuming.
  void prepare_run_dir(bool resuming) {
    const fs::path dir = checkpoint_dir();
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
      log(
          fmt::format("{}: a fresh run: removed the checkpoints of an earlier run in {} (sefar run --resume "
                      "continues a run instead)",
                      id_, dir.string()));
    if (resuming)
      for (const auto& c : io::list_checkpoints(dir.string()))
        if (c.name != "best") saved_.push_back(c.name);

    const fs::path metrics = fs::path(run_dir_) / "metrics.jsonl";
    if (resuming) {
      // Records written after the checkpoint are written again by the resumed run.
      std::uint64_t size = fs::exists(metrics, ec) ? fs::file_size(metrics, ec) : 0;
      if (size > metrics_bytes_) fs::resize_file(metrics, metrics_bytes_, ec);
      if (ec)
        throw graph::StorageError(fmt::format("cannot truncate {}: {}", metrics.string(), ec.message()));
      if (size < metrics_bytes_) {
        log(fmt::format("{}: {} is shorter than when the checkpoint was written; appending to it", id_,
                        metrics.string()));
        metrics_bytes_ = size;
      }
    } else {
      metrics_bytes_ = 0;
    }
    metrics_.open(metrics, resuming ? std::ios::app : std::ios::trunc);
    if (!metrics_) throw graph::StorageError(fmt::format("cannot write {}", metrics.string()));
  }

  void drain() {
    while (!labeled_.empty()) {
      // Stopping: no further step; the checkpoint comes next. In a data-parallel job the ranks decide
      // together after each step (below), so that none waits for a step the others never take.
      if (graph::stop_requested() && !communicator_) return;
      int epoch = int(labeled_.front().as<ViewBatchPtr>()->epoch);
      if (epoch != current_epoch_) {
        if (epoch_open_) end_epoch(current_epoch_, false);
        current_epoch_ = epoch;
        epoch_start_ = std::chrono::steady_clock::now();
        epoch_steps_ = 0;
      }
      const bool semi = semi_epoch(epoch);
      if (semi && unlabeled_.empty()) return;  // wait for the unlabeled batch of this step
      graph::Item labeled = labeled_.front();
      labeled_.pop_front();
      graph::Item unlabeled;
      if (semi) {
        unlabeled = unlabeled_.front();
        unlabeled_.pop_front();
      }
      step(*labeled.as<ViewBatchPtr>(), semi ? unlabeled.as<ViewBatchPtr>().get() : nullptr);
      if (communicator_ && communicator_->any(graph::stop_requested())) {
        if (!graph::stop_requested()) graph::request_stop(SIGTERM);  // another rank was signalled
        return;
      }
    }
  }

  static std::uint64_t next_position(const ViewBatch& batch, std::uint64_t current) {
    for (const auto& c : batch.clips) current = std::max(current, c.position + 1);
    return current;
  }

  static std::string clip_paths(const ViewBatch& batch) {
    std::vector<std::string> paths;
    for (const auto& c : batch.clips) paths.push_back(c.path);
    return fmt::format("{}", fmt::join(paths, ", "));
  }

  void step(const ViewBatch& labeled, const ViewBatch* unlabeled) {
    models::StepStats s;
    if (unlabeled) {
      std::vector<std::int64_t> truth;
      for (const auto& c : unlabeled->clips) truth.push_back(c.list_label);
      at::Tensor truth_t = at::tensor(truth, at::kLong);
      if (unlabeled->draws.size() != 2)
        throw std::invalid_argument("the unlabeled input needs two draws per clip (decode draws: weak_strong)");
      s = trainer_->step(int(labeled.epoch), labeled.draws.at(0), labeled.labels, &unlabeled->draws[0],
                         &unlabeled->draws[1], &unlabeled->channel_scale, &truth_t);
    } else {
      s = trainer_->step(int(labeled.epoch), labeled.draws.at(0), labeled.labels);
    }
    if (s.nonfinite) {
      std::string what = fmt::format(
          "non-finite {} at step {} (epoch {}): loss {}, sup {}, un {}, mix {}, grad norm {}; labeled clips: "
          "{}{}",
          std::isfinite(s.loss) ? "gradient" : "loss", s.step, s.epoch + 1, s.loss, s.loss_sup, s.loss_un,
          s.loss_mix, s.grad_norm, clip_paths(labeled),
          unlabeled ? "; unlabeled clips: " + clip_paths(*unlabeled) : "");
      if (options_.stop_on_nonfinite)
        throw std::runtime_error(what +
                                 fmt::format("; nothing was updated and the last checkpoint is kept (with "
                                             "on_nonfinite: skip such steps are skipped)"));
      log(fmt::format("{}: {}: step skipped", id_, what));
      ++skipped_total_;
      ++epoch_skipped_;
      if (skipped_steps_.size() < 100) skipped_steps_.push_back(s.step);
    }
    // The batches are consumed either way: a resumed run starts after them.
    labeled_next_ = next_position(labeled, labeled_next_);
    if (unlabeled) unlabeled_next_ = next_position(*unlabeled, unlabeled_next_);
    epoch_open_ = true;
    ++epoch_steps_;
    clips_ += s.labeled + s.unlabeled;
    if (s.semi && !s.nonfinite) {
      eta_sum_ += s.eta_mean * double(s.unlabeled);
      eta_high_ += s.eta_above_half * double(s.unlabeled);
      eta_count_ += double(s.unlabeled);
      eta_hist_.resize(s.eta_hist.size(), 0);
      for (std::size_t b = 0; b < s.eta_hist.size(); ++b) eta_hist_[b] += s.eta_hist[b];
    }
    json j = s.to_json();
    j["kind"] = "step";
    write_metrics(j);
    if (options_.log_every > 0 && (s.step % options_.log_every == 0) && !s.nonfinite) {
      double elapsed = seconds_since(start_);
      double epoch_elapsed = seconds_since(epoch_start_);
      double per_step = epoch_elapsed / std::max<std::int64_t>(1, epoch_steps_);
      std::string eta_text;
      if (last_epoch_steps_ > 0) {
        double remaining_steps = double(last_epoch_steps_ - epoch_steps_) +
                                 double(last_epoch_steps_) * (options_.trainer.epochs - 1 - s.epoch);
        eta_text = " ETA " + format_duration(remaining_steps * per_step);
      }
      std::string semi_text =
          s.semi ? fmt::format(" un {:.3f} mix {:.3f} xi {:.2f} eta {:.2f} (>0.5 {:.0f}%)", s.loss_un, s.loss_mix, s.xi,
                               s.eta_mean, 100 * s.eta_above_half)
                 : options_.trainer.semi_supervised ? " (warm-up)" : "";
      log(fmt::format("epoch {}/{} step {} loss {:.3f} sup {:.3f}{} lr {:.2g} {:.1f} clips/s{}", s.epoch + 1,
                      options_.trainer.epochs, s.step, s.loss, s.loss_sup, semi_text, s.lr,
                      double(clips_) / std::max(1e-9, elapsed), eta_text));
    }
  }

  // Closes an epoch: evaluation, the epoch's records, a checkpoint. Nothing changes before the
  // evaluation is done, so a stop request during it (graph::Interrupted) leaves the epoch open and
  // the checkpoint written then closes it again when resumed.
  void end_epoch(int epoch, bool at_end) {
    const bool last = at_end || epoch + 1 >= options_.trainer.epochs;
    json summary{{"kind", "epoch"}, {"epoch", epoch}, {"steps", epoch_steps_}, {"seconds", seconds_since(epoch_start_)}};
    if (eta_count_ > 0) {
      summary["eta_mean"] = eta_sum_ / eta_count_;
      summary["eta_above_half"] = eta_high_ / eta_count_;
      summary["eta_hist"] = eta_hist_;
    }
    if (epoch_skipped_ > 0) summary["skipped_steps"] = epoch_skipped_;
    double top1 = -1;
    json eval_record;
    if (!options_.eval.list.empty() && (last || (epoch + 1) % options_.eval_every == 0)) {
      auto t0 = std::chrono::steady_clock::now();
      auto evaluation = evaluate_split(options_.eval, *trainer_, int(options_.trainer.model.num_classes));
      top1 = evaluation.top1();
      eval_record = evaluation.to_json();
      eval_record["kind"] = "eval";
      eval_record["epoch"] = epoch;
      eval_record["step"] = trainer_->steps_done();
      eval_record["seconds"] = seconds_since(t0);
      log(fmt::format("epoch {}/{}: val top-1 {:.1f}% top-5 {:.1f}% mean-class {:.1f}% ({} clips, {:.1f} s)",
                      epoch + 1, options_.trainer.epochs, 100 * top1, 100 * evaluation.top5(),
                      100 * evaluation.mean_class_accuracy(), evaluation.count(), seconds_since(t0)));
    }
    write_metrics(summary);
    if (!eval_record.is_null()) write_metrics(eval_record);
    last_epoch_steps_ = epoch_steps_;
    eta_hist_.clear();
    eta_sum_ = eta_high_ = eta_count_ = 0;
    epoch_skipped_ = 0;
    epoch_open_ = false;
    if (!run_dir_.empty()) save_checkpoint(fmt::format("epoch_{:04d}", epoch), top1);
  }

  json node_state() const {
    return json{{"epoch", current_epoch_},
                {"epoch_open", epoch_open_},
                {"epoch_steps", epoch_steps_},
                {"last_epoch_steps", last_epoch_steps_},
                {"eta_sum", eta_sum_},
                {"eta_high", eta_high_},
                {"eta_count", eta_count_},
                {"eta_hist", eta_hist_},
                {"best_top1", best_top1_},
                {"skipped_total", skipped_total_},
                {"epoch_skipped", epoch_skipped_},
                {"skipped_steps", skipped_steps_},
                {"metrics_bytes", metrics_bytes_},
                {"labeled_next", labeled_next_},
                {"unlabeled_next", unlabeled_next_}};
  }

  // Writes checkpoints/<name> (and `best` when top1 improves), then drops the oldest epoch/step
  // checkpoints beyond keep_last. A checkpoint that cannot be written is a StorageError; the
  // earlier ones are left as they are.
  void save_checkpoint(const std::string& name, double top1) {
    const fs::path dir = checkpoint_dir();
    json extra{{"epoch", current_epoch_}, {"best_top1", std::max(best_top1_, top1)},
               {"node_id", id_},          {"node", node_state()},
               {"resumable", resumable_}, {"pipeline", document_}};
    extra["node"]["best_top1"] = std::max(best_top1_, top1);
    json resume = json::object();
    if (!source_ids_[0].empty()) resume[source_ids_[0]] = {{"next_item", labeled_next_}};
    if (!source_ids_[1].empty()) resume[source_ids_[1]] = {{"next_item", unlabeled_next_}};
    extra["resume"] = resume;
    auto save = [&](const std::string& n) {
      const std::string path = (dir / n).string();
      try {
        trainer_->save(path, extra);
      } catch (const std::exception& e) {
        throw graph::StorageError(fmt::format("cannot write checkpoint {}.safetensors: {}", path, e.what()));
      }
    };
    save(name);
    saved_.erase(std::remove(saved_.begin(), saved_.end(), name), saved_.end());
    saved_.push_back(name);
    saved_step_ = trainer_->steps_done();
    saved_epoch_open_ = epoch_open_;
    if (top1 > best_top1_) {
      best_top1_ = top1;
      save("best");
    }
    while (int(saved_.size()) > options_.keep_last) {
      std::error_code ec;
      for (const char* ext : {".json", ".safetensors"}) fs::remove(dir / (saved_.front() + ext), ec);
      saved_.erase(saved_.begin());
    }
  }

  void write_metrics(const json& j) {
    if (!metrics_.is_open()) return;
    const std::string line = j.dump() + '\n';
    metrics_ << line;
    metrics_.flush();
    if (!metrics_)
      throw graph::StorageError(
          fmt::format("cannot write {}", (fs::path(run_dir_) / "metrics.jsonl").string()));
    metrics_bytes_ += line.size();
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  std::string id_, run_dir_;
  bool quiet_ = false;
  std::shared_ptr<models::Communicator> communicator_;
  TrainNodeOptions options_;
  bool has_unlabeled_ = false;
  std::unique_ptr<models::Trainer> trainer_;
  std::deque<graph::Item> labeled_, unlabeled_;
  // Progress, all of it in checkpoints.
  int current_epoch_ = -1;
  bool epoch_open_ = false;  // current_epoch_ has steps and is not closed by end_epoch yet
  std::int64_t epoch_steps_ = 0, last_epoch_steps_ = 0, clips_ = 0;
  double eta_sum_ = 0, eta_high_ = 0, eta_count_ = 0, best_top1_ = -1;
  std::vector<std::int64_t> eta_hist_;  // per-clip eta histogram of the current epoch
  std::int64_t skipped_total_ = 0, epoch_skipped_ = 0;
  std::vector<std::int64_t> skipped_steps_;              // the first 100
  std::uint64_t labeled_next_ = 0, unlabeled_next_ = 0;  // source positions after the batches trained on
  std::uint64_t metrics_bytes_ = 0;                      // length of metrics.jsonl after our records
  // Checkpoints.
  std::string source_ids_[2];
  bool resumable_ = true;
  json document_;
  std::vector<std::string> saved_;  // epoch/step checkpoints, oldest first
  std::int64_t saved_step_ = -1;    // state of the last checkpoint written or loaded
  bool saved_epoch_open_ = false;
  std::ofstream metrics_;
  std::chrono::steady_clock::time_point start_, epoch_start_;
};

}  // namespace

graph::NodeSpec sefar_train_spec() {
  return graph::NodeSpec("sefar_train")
      .doc(
          "Trains the multi-granular TimeSformer with SeFAR: supervised loss on labeled batches; from the "
          "end of warm-up, an EMA teacher's Monte-Carlo pseudo-labels on the weak draw, regulated by eta, "
          "teach the student on the strong draw and on Tube-TokenMix'ed strong views.")
      .ordered_input("labeled", batch_message(), "labeled batches (one draw)")
      .ordered_input("unlabeled", batch_message(), "unlabeled batches (weak and strong draws); optional",
                     false)
      .serial()
      .param_choice("model", "tiny", {"tiny", "S", "B"}, "model size (tiny: tests and the quickstart)")
      .param_int("num_classes", std::nullopt, "number of classes", 2, 100000)
      .param_int_list("views", std::vector<std::int64_t>{2, 2, 4}, "frames per view (match the decode node)",
                      1, 256, 1)
      .param_int("crop", 224, "input size (match the views node's crop)", 8, 4096)
      .param_int("patch", 0, "patch size (0: the model size's own: 8 tiny, 16 S/B)", 0, 256)
      .param_float("drop_path", 0.1, "stochastic depth rate", 0, 0.9)
      .param_float("head_dropout", 0.5, "dropout before the classifier (also the teacher's MC dropout)", 0,
                   0.95)
      .param_choice("init", "official", {"official", "torch"},
                    "initialisation from scratch: official (timm: truncated normal, std 0.02) or torch "
                    "(LibTorch's layer defaults; small models from scratch learn much sooner)")
      .param_string("device", "cpu", "cpu, cuda, cuda:N or auto")
      .param_int("threads", 0, "LibTorch intra-op threads (0: leave LibTorch's setting)", 0, 1024)
      .param_choice("optimizer", "sgd", {"sgd", "adamw"},
                    "sgd (official, for ImageNet-initialised models) or adamw (small models from scratch)")
      .param_float("lr", 0.005, "learning rate", 0, 100)
      .param_float("momentum", 0.9, "SGD momentum", 0, 1)
      .param_float("weight_decay", 1e-3, "weight decay (AdamW: decoupled)", 0, 1)
      .param_float("clip_grad_norm", 0.0, "clip the global gradient norm to this (0: off)", 0, 1e6)
      .param_int_list("milestones", std::vector<std::int64_t>{25, 28}, "epochs where the learning rate steps",
                      0, 1e6)
      .param_float_list("factors", std::vector<double>{0.1, 0.01},
                        "learning-rate factor from each milestone on", 0, 1e3)
      .param_int("epochs", 30, "training epochs (passes of the labeled source)", 1, 1e6)
      .param_int("warmup_epochs", 5, "supervised-only epochs before the semi-supervised phase", 0, 1e6)
      .param_bool("semi_supervised", true, "use the unlabeled input (false: supervised baseline)")
      .param_float("ema_decay", 0.9999, "teacher EMA decay", 0, 1)
      .param_int("teacher_passes", 10, "Monte-Carlo passes of the teacher (K)", 1, 1000)
      .param_choice("regulation", "adaptive", {"adaptive", "fixed", "none"},
                    "weights of the unlabeled losses: adaptive (SeFAR), fixed threshold (FixMatch), none")
      .param_float("threshold", 0.95, "fixed regulation: confidence threshold", 0, 1)
      .param_float("gamma_un", 2.0, "weight of the unlabeled loss", 0, 1e3)
      .param_float("gamma_mix", 2.0, "weight of the Tube TokenMix loss", 0, 1e3)
      .param_bool("token_mix", true, "use Tube TokenMix")
      .param_float("mix_alpha", 10.0, "Beta(alpha, alpha) of the mixing ratio", 0.01, 1e3)
      .param_choice(
          "mix_target", "probabilities", {"probabilities", "logits"},
          "compare mixed-view probabilities (SVFormer form) or raw logits (official code) with the mixed "
          "teacher targets")
      .param_string("val_list", "", "validation split list (empty: no evaluation)")
      .param_string("val_root", "", "data root of the validation list (default: its folder)")
      .param_int("eval_every", 1, "evaluate every N epochs (and after the last)", 1, 1e6)
      .param_choice("eval_mode", "eval", {"eval", "test"},
                    "eval: one centre draw and crop; test: test_clips draws x 3 crops, softmax averaged")
      .param_int("test_clips", 5, "test mode: temporal draws", 1, 64)
      .param_int("eval_short_side", 256, "short side of validation frames", 8, 4096)
      .param_int("eval_batch", 8, "validation batch size", 1, 4096)
      .param_int("eval_limit", 0, "evaluate on the first N validation clips only (0: all)", 0, 1e9)
      .param_int("log_every", 10, "print a progress line every N steps (0: never)", 0, 1e9)
      .param_int("keep_last", 2, "epoch and stop checkpoints kept (the best one is kept besides)", 1, 1e6)
      .param_choice(
          "on_nonfinite", "stop", {"stop", "skip"},
          "a NaN or infinite loss or gradient: stop the run with an error (the last checkpoint is kept) "
          "or skip the step (no update; counted in the metrics and the run summary)")
      .param_int("inject_nonfinite_at_step", -1,
                 "fault injection for tests: make the labeled input of this step NaN (-1: never)", -1, 1e12)
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<TrainNode>(ctx); });
}

}  // namespace sefar::nodes
