// train_loop: the training loop as a graph node. Pairs the k-th labeled batch with the k-th
// unlabeled one (in source order), decides the step's phase (warm-up or semi-supervised), sends it
// down the step nodes (teacher, regulation, token mix, student, loss, backward, optimizer, EMA) and
// starts the next one when the finished step comes back on the `done` feedback input: one step in
// flight, so every step sees the state the previous one left. At epoch ends it evaluates on a
// validation list (a nested pipeline) and has the run directory write metrics and checkpoints.
// Without an unlabeled input every step is supervised: the baseline, same model.
//
// Checkpoints hold the shared model's whole state (models::Trainer::save), this node's LoopState,
// the position in each source's stream of the first item not trained on yet, and the resolved
// pipeline. A resumed run (`sefar run --resume RUN_DIR`) gets the checkpoint through
// NodeContext::resume, its sources restart at those positions and the run goes on exactly as the
// uninterrupted one would have.
//
// Gradient accumulation (`accumulate` N): windows of N consecutive steps by step number (across
// epoch ends) sum their gradients before one update at the window's last step (models/train_step.h).
// A checkpoint inside a window holds the summed gradients (in a data-parallel job averaged over the
// ranks first). Steps left at the end of training that do not fill a window update nothing.
#include <csignal>
#include <deque>
#include <optional>

#include <ATen/ops/tensor.h>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)

#include "graph/diagnostics.h"
#include "graph/stop.h"
#include "io/metric_records.h"
#include "models/distributed.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"
#include "nodes/evaluate.h"
#include "nodes/init_weights.h"
#include "nodes/run_directory.h"
#include "nodes/train_step.h"
#include "util/errors.h"
#include "report/report.h"

namespace sefar::nodes {

namespace {

using json = nlohmann::json;

struct TrainLoopOptions {
  int epochs = 30, warmup_epochs = 5;
  EvalSetup eval;
  int eval_every = 1;
  int log_every = 10;
  int keep_last = 2;
  bool stop_on_nonfinite = true;
};

enum Port { kLabeled = 0, kUnlabeled = 1, kDone = 2 };

std::uint64_t next_position(const ViewBatch& batch, std::uint64_t current) {
  for (const auto& c : batch.clips) current = std::max(current, c.position + 1);
  return current;
}

std::string clip_paths(const ViewBatch& batch) {
  std::vector<std::string> paths;
  for (const auto& c : batch.clips) paths.push_back(c.path);
  return fmt::format("{}", fmt::join(paths, ", "));
}

// A finished step whose statistics are still on the device.
struct Pending {
  models::StepStats stats;
  models::DeviceStats device;
  double seconds = 0;  // wall time from the previous step's end
  std::string clips;   // the step's clips, for an error
};

class TrainLoopNode final : public graph::Node {
 public:
  // In a data-parallel job, rank 0 alone logs and writes metrics, checkpoints and the model.
  explicit TrainLoopNode(const graph::NodeContext& ctx)
      : id_(ctx.id),
        quiet_(ctx.rank != 0),
        trainer_(ctx.model<models::Trainer>("model")),
        run_dir_(ctx.rank == 0 ? ctx.run_dir : std::string(), int(ctx.params.get_int("keep_last")),
                 [this](const std::string& line) { log(id_ + ": " + line); }),
        progress_(int(ctx.params.get_int("epochs")), int(ctx.params.get_int("warmup_epochs")),
                  int(ctx.params.get_int("eval_every")), !ctx.params.get_string("val_list").empty()) {
    const auto& p = ctx.params;
    const auto& model = trainer_->options().model;
    options_.epochs = int(p.get_int("epochs"));
    options_.warmup_epochs = int(p.get_int("warmup_epochs"));
    trainer_->set_accumulate(int(p.get_int("accumulate")));
    if (options_.warmup_epochs > options_.epochs)
      throw util::ParamError("warmup_epochs", fmt::format("{} is more than epochs ({})",
                                              options_.warmup_epochs, options_.epochs));
    options_.eval.list = p.get_string("val_list");
    options_.eval.root = p.get_string("val_root");
    options_.eval.views.assign(model.views.begin(), model.views.end());
    options_.eval.crop = int(model.img_size);
    options_.eval.short_side = int(p.get_int("eval_short_side"));
    options_.eval.mode = p.get_string("eval_mode");
    options_.eval.test_clips = int(p.get_int("test_clips"));
    options_.eval.batch = int(p.get_int("eval_batch"));
    options_.eval.limit = p.get_int("eval_limit");
    options_.eval.seed = ctx.seed;
    options_.eval.communicator = ctx.services.get<models::Communicator>();
    options_.eval.rank = ctx.rank;
    options_.eval.world_size = ctx.world_size;
    // The validation list is checked now, not at the first evaluation an epoch later.
    if (!options_.eval.list.empty()) {
      try {
        check_evaluation(options_.eval, *trainer_, int(model.num_classes));
      } catch (const graph::PipelineError& e) {
        std::string what;
        for (const auto& d : e.diagnostics()) {
          what += (what.empty() ? "" : "; ") + (d.reason.empty() ? d.message : d.reason);
        }
        throw util::ParamError("val_list", fmt::format("{}", what));
      }
    }
    options_.eval_every = int(p.get_int("eval_every"));
    options_.log_every = int(p.get_int("log_every"));
    options_.stop_on_nonfinite = p.get_string("on_nonfinite") == "stop";
    // Reading a step's statistics waits for the device: on a GPU every few steps, so that the host
    // runs ahead and the device never idles; on a CPU, where nothing is asynchronous, every step.
    read_every_ = p.get_int("read_stats_every");
    if (read_every_ == 0)
      read_every_ = trainer_->device().is_cuda() ? std::max(options_.log_every, 1) : 1;
    if (options_.eval.short_side < options_.eval.crop)
      throw util::ParamError("eval_short_side", fmt::format("{} is below the model's crop {}",
                                              options_.eval.short_side, options_.eval.crop));
    has_unlabeled_ = ctx.connected_inputs.size() > kUnlabeled && ctx.connected_inputs[kUnlabeled];
    // Where each input's items come from: a checkpoint names the source to restart at a position.
    for (int port : {kLabeled, kUnlabeled}) {
      if (std::size_t(port) >= ctx.input_sources.size() || !ctx.connected_inputs[port]) continue;
      if (ctx.input_sources[port].size() == 1)
        source_ids_[port] = ctx.input_sources[port][0];
      else
        resumable_ = false;  // several sources merge into one input: positions cannot be told apart
    }
    if (ctx.document) document_ = *ctx.document;
    list_fingerprints_ = ctx.list_fingerprints;
    resuming_ = ctx.resume.is_object() && ctx.resume.contains("checkpoint");
    if (resuming_) restore(ctx.resume["checkpoint"].get<std::string>());
    communicator_ = ctx.services.get<models::Communicator>();
    stop_ = ctx.stop;
    options_.eval.stop = ctx.stop;
    if (communicator_) trainer_->set_communicator(communicator_);
  }

  // The run directory opens once every start-up check passed (a fresh run empties metrics.jsonl).
  void start() override {
    run_dir_.open(resuming_, state_);
    // What the model was initialised from ("pretrained", "init_from"): a fresh run's start. A resumed
    // run continues from its checkpoint, so the file its first start wrote stays as it is.
    if (run_dir_.enabled() && !resuming_) write_initial_weights(run_dir_.path(), trainer_->initial_weights());
    // TensorBoard's text tab shows the run's resolved pipeline (a Markdown code block).
    if (!document_.is_null()) run_dir_.write_text("pipeline", "```\n" + document_.dump(2) + "\n```");
  }

  void process(int port, const graph::Item& item, graph::Output& out) override {
    if (port == kDone) {
      const auto& step = item.as<models::TrainStepPtr>();
      complete(*step);
      // Its tensors (inputs on the device, logits, token-mix views) go now, before the next step
      // allocates its own: one step's worth of memory alive at a time.
      *step = models::TrainStep{};
    } else {
      // Keep the item, not only its value: its ticket holds the source's in-flight budget, so a
      // stream that is not consumed yet (unlabeled batches during warm-up) stops its source.
      (port == kLabeled ? labeled_ : unlabeled_).push_back(item);
    }
    advance(out);
  }

  void finish(graph::Output& out) override {
    input_ended_ = true;
    advance(out);
  }

  // Stopped by a signal: the step in flight has completed (the step nodes finish it), so the state is
  // the one after the last completed step. Save it, unless the last checkpoint already holds it.
  void interrupted() override {
    labeled_.clear();
    unlabeled_.clear();
    try {
      read_pending();
    } catch (const std::exception& e) {  // a non-finite step under on_nonfinite: stop; it updated nothing
      log(fmt::format("{}: {}", id_, e.what()));
    }
    // Every rank stops at the same step (the vote in complete()): the window's partial sums, one per
    // rank, are averaged into the one the checkpoint holds.
    if (communicator_ && stopping_) share_window_gradients();
    if (!run_dir_.enabled()) return;
    const auto steps = trainer_->steps_done();
    if (steps == saved_step_ && state_.epoch_open == saved_epoch_open_) {
      log(fmt::format("{}: stopped after {} steps; the last checkpoint holds this state", id_, steps));
      return;
    }
    const std::string name = fmt::format("step_{:08d}", steps);
    save_checkpoint(name, -1);
    log(
        fmt::format("{}: stopped after {} steps (epoch {}: {} of its steps done): wrote checkpoints/{}; "
                    "continue with sefar "
                    "run --resume {}",
                    id_, steps, state_.epoch + 1, state_.epoch_steps, name, run_dir_.path()));
  }

 private:
  void log(const std::string& line) const {
    if (!quiet_) std::fprintf(stderr, "%s\n", line.c_str());
  }

  bool semi_epoch(int epoch) const { return has_unlabeled_ && epoch >= options_.warmup_epochs; }

  // Data-parallel job, inside an accumulation window: each rank's summed gradients replaced by their
  // average over ranks (collective), before a checkpoint stores rank 0's. The window's last step
  // averages again: the average of (average + each rank's rest) is the average of the ranks' sums.
  void share_window_gradients() {
    if (communicator_ && trainer_->window_steps() > 0) communicator_->average_gradients(trainer_->student());
  }

  // Loads a checkpoint: the shared model's state and this node's.
  void restore(const std::string& path) {
    json sidecar;
    try {
      sidecar = trainer_->load(path);
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("resume: cannot load checkpoint {}: {}", path, e.what()));
    }
    state_ = sidecar.value("node", json::object()).get<LoopState>();
    saved_step_ = trainer_->steps_done();
    saved_epoch_open_ = state_.epoch_open;
    log(fmt::format(
        "{}: resumed from {} (step {}, epoch {}{})", id_, path, trainer_->steps_done(), state_.epoch + 1,
        state_.epoch_open ? fmt::format(", {} step(s) into it", state_.epoch_steps) : " complete"));
  }

  // Starts the next step when none is in flight and its batches are here; at the end of the input,
  // once the last step is back, closes the run.
  void advance(graph::Output& out) {
    while (!in_flight_ && !stopping_ && !labeled_.empty()) {
      // Stopping: no further step; the checkpoint comes next. In a data-parallel job the ranks decide
      // together after each step (complete()), so that none waits for a step the others never take.
      if (stop_.requested() && !communicator_) return;
      const int epoch = int(labeled_.front().as<ViewBatchPtr>()->epoch);
      if (epoch != state_.epoch) {
        if (state_.epoch_open) end_epoch(state_.epoch, false);
        state_.epoch = epoch;
        progress_.start_epoch();
        state_.epoch_steps = 0;
      }
      const bool semi = semi_epoch(epoch);
      if (semi && unlabeled_.empty()) return;  // wait for the unlabeled batch of this step
      std::vector<graph::Item> parts{labeled_.front()};
      labeled_.pop_front();
      if (semi) {
        parts.push_back(unlabeled_.front());
        unlabeled_.pop_front();
      }
      start_step(parts, out);
    }
    if (input_ended_ && !in_flight_ && !closed_ && !stopping_ && !stop_.requested()) close_run();
  }

  void start_step(const std::vector<graph::Item>& parts, graph::Output& out) {
    in_labeled_ = parts[0].as<ViewBatchPtr>();
    in_unlabeled_ = parts.size() > 1 ? parts[1].as<ViewBatchPtr>() : nullptr;
    const ViewBatch& labeled = *in_labeled_;
    const int epoch = int(labeled.epoch);
    models::TrainStep step;
    if (in_unlabeled_) {
      const ViewBatch& unlabeled = *in_unlabeled_;
      if (unlabeled.draws.size() != 2)
        throw graph::ConfigError("the unlabeled input needs two draws per clip (decode draws: weak_strong)");
      std::vector<std::int64_t> truth;
      for (const auto& c : unlabeled.clips) truth.push_back(c.list_label);
      at::Tensor truth_t = at::tensor(truth, at::kLong);
      step = models::make_train_step(*trainer_, epoch, options_.epochs, options_.warmup_epochs, true,
                                     labeled.draws.at(0), labeled.labels, &unlabeled.draws[0],
                                     &unlabeled.draws[1], &unlabeled.channel_scale, &truth_t);
    } else {
      step = models::make_train_step(*trainer_, epoch, options_.epochs, options_.warmup_epochs, false,
                                     labeled.draws.at(0), labeled.labels);
    }
    auto message = std::make_shared<models::TrainStep>(std::move(step));
    in_flight_ = true;
    // The step item holds the batches' tickets (their sources' budget) until it comes back.
    out.emit_item(0, graph::combine(std::uint64_t(message->step), models::TrainStepPtr(message), parts));
  }

  // A step came back from the step nodes: account for it now; its statistics, still on the device,
  // are read with the next read_every_ - 1 steps' (one wait for the device) and then logged.
  void complete(const models::TrainStep& step) {
    in_flight_ = false;
    trainer_->finish_step();
    Pending p{step.stats, step.device_stats, progress_.step_done(step.stats.semi),
              clip_paths(*in_labeled_) + (in_unlabeled_ ? "; unlabeled clips: " + clip_paths(*in_unlabeled_) : "")};
    // The batches are consumed either way: a resumed run starts after them.
    state_.labeled_next = next_position(*in_labeled_, state_.labeled_next);
    if (in_unlabeled_) state_.unlabeled_next = next_position(*in_unlabeled_, state_.unlabeled_next);
    in_labeled_.reset();
    in_unlabeled_.reset();
    state_.epoch_open = true;
    ++state_.epoch_steps;
    clips_ += p.stats.labeled + p.stats.unlabeled;
    pending_.push_back(std::move(p));
    if (std::int64_t(pending_.size()) < read_every_) return;
    read_pending();
    if (communicator_ && communicator_->any(stop_.requested())) {
      if (!stop_.requested()) stop_.request(SIGTERM);  // another rank was signalled
      stopping_ = true;
    }
  }

  // Reads the pending steps' statistics from the device and records them in order: metrics, the
  // progress line, the non-finite policy. Called every read_every_ steps and before anything that
  // needs the records complete (an epoch's close, a checkpoint).
  void read_pending() {
    if (pending_.empty()) return;
    std::vector<std::pair<models::StepStats*, const models::DeviceStats*>> steps;
    for (auto& p : pending_) steps.emplace_back(&p.stats, &p.device);
    models::read_step_stats(*trainer_, steps);
    std::deque<Pending> pending;
    pending.swap(pending_);
    for (const auto& p : pending) record(p);
  }

  void record(const Pending& p) {
    const models::StepStats& s = p.stats;
    if (s.nonfinite) {
      std::string what = fmt::format(
          "non-finite {} at step {} (epoch {}): loss {}, sup {}, un {}, mix {}, grad norm {}; labeled clips: "
          "{}",
          std::isfinite(s.loss) ? "gradient" : "loss", s.step, s.epoch + 1, s.loss, s.loss_sup, s.loss_un,
          s.loss_mix, s.grad_norm, p.clips);
      if (options_.stop_on_nonfinite)
        throw std::runtime_error(
            what +
            "; nothing was updated and the last checkpoint is kept (with on_nonfinite: skip "
            "such steps are skipped)");
      if (s.accumulate > 1) {
        const std::int64_t first = s.step - s.micro;
        what += fmt::format("; no update for its accumulation window (steps {}..{})", first,
                            first + s.accumulate - 1);
      }
      log(fmt::format("{}: {}: step skipped", id_, what));
      ++state_.skipped_total;
      ++state_.epoch_skipped;
      if (state_.skipped_steps.size() < 100) state_.skipped_steps.push_back(s.step);
    }
    if (s.semi && !s.nonfinite) {
      state_.eta_sum += s.eta_mean * double(s.unlabeled);
      state_.eta_high += s.eta_above_half * double(s.unlabeled);
      state_.eta_count += double(s.unlabeled);
      state_.eta_hist.resize(s.eta_hist.size(), 0);
      for (std::size_t b = 0; b < s.eta_hist.size(); ++b) state_.eta_hist[b] += s.eta_hist[b];
    }
    io::StepRecord record = s.record();
    // Wall time of the step (a timing field, as "seconds" of epoch and eval records): throughput over
    // time in the report and TensorBoard. On a GPU, read every few steps, a step's own time is the
    // host's share; the sum over the steps read together is the device's.
    record.seconds = p.seconds;
    run_dir_.write_metrics(record, state_);
    if (options_.log_every > 0 && (s.step % options_.log_every == 0) && !s.nonfinite)
      log(progress_.line(s, clips_, state_, has_unlabeled_));
  }

  // Closes an epoch: evaluation, the epoch's records, a checkpoint. Nothing changes before the
  // evaluation is done, so a stop request during it (graph::Interrupted) leaves the epoch open and
  // the checkpoint written then closes it again when resumed.
  void end_epoch(int epoch, bool at_end) {
    read_pending();
    const bool last = at_end || epoch + 1 >= options_.epochs;
    io::EpochRecord summary;
    summary.epoch = epoch + 1;
    summary.steps = state_.epoch_steps;
    summary.seconds = progress_.epoch_seconds();
    if (state_.eta_count > 0) {
      summary.eta_mean = state_.eta_sum / state_.eta_count;
      summary.eta_above_half = state_.eta_high / state_.eta_count;
      summary.eta_hist = state_.eta_hist;
    }
    if (state_.epoch_skipped > 0) summary.skipped_steps = state_.epoch_skipped;
    double top1 = -1;
    std::optional<io::EvalRecord> eval_record;
    if (!options_.eval.list.empty() && (last || (epoch + 1) % options_.eval_every == 0)) {
      const auto t0 = Progress::now();
      auto evaluation = evaluate_split(options_.eval, *trainer_, int(trainer_->options().model.num_classes));
      top1 = evaluation.top1();
      eval_record = evaluation.record();
      eval_record->epoch = epoch + 1;
      eval_record->step = trainer_->steps_done();
      eval_record->seconds = Progress::seconds_since(t0);
      progress_.pause_done(*eval_record->seconds, true);
      log(fmt::format("epoch {}/{}: val top-1 {:.1f}% top-5 {:.1f}% mean-class {:.1f}% ({} clips, {:.1f} s)",
                      epoch + 1, options_.epochs, 100 * top1, 100 * evaluation.top5(),
                      100 * evaluation.mean_class_accuracy(), evaluation.count(),
                      Progress::seconds_since(t0)));
    }
    run_dir_.write_metrics(summary, state_);
    if (eval_record) run_dir_.write_metrics(*eval_record, state_);
    state_.last_epoch_steps = state_.epoch_steps;
    state_.eta_hist.clear();
    state_.eta_sum = state_.eta_high = state_.eta_count = 0;
    state_.epoch_skipped = 0;
    state_.epoch_open = false;
    share_window_gradients();
    save_checkpoint(fmt::format("epoch_{:04d}", epoch + 1), top1);
    write_live_report();
  }

  // report.html follows the run: rewritten (atomically) at every epoch end, so that a long run can be
  // watched; `sefar run` writes the last one, with the profile, when the run ends. The report is
  // derived from files already written, so failing to write it warns once and the run goes on.
  void write_live_report() {
    if (!run_dir_.enabled()) return;
    run_dir_.flush();
    try {
      report::write_report(run_dir_.path());
    } catch (const std::exception& e) {
      if (!report_warned_) log(fmt::format("{}: warning: report.html not updated: {}", id_, e.what()));
      report_warned_ = true;
    }
  }

  // The end of the input, every step done: the last epoch's close and the model to use afterwards.
  void close_run() {
    closed_ = true;
    if (state_.epoch_open) end_epoch(state_.epoch, true);
    if (state_.epoch >= 0)
      // The evaluation's short side goes with the model: eval.json's "auto" finds it there.
      run_dir_.save_model(trainer_->teacher() ? *trainer_->teacher() : trainer_->student(),
                          {{"sefar.eval_short_side", std::to_string(options_.eval.short_side)}});
    if (const auto open = trainer_->window_steps(); open > 0)
      log(
          fmt::format("{}: the last {} step(s) (from step {}) do not fill an accumulation window of {}: "
                      "their gradients are dropped, no update",
                      id_, open, trainer_->steps_done() - open, trainer_->accumulate()));
    if (state_.skipped_total > 0)
      log(fmt::format("{}: skipped {} step(s) with a non-finite loss or gradient (steps {}{})", id_,
                      state_.skipped_total, fmt::join(state_.skipped_steps, ", "),
                      state_.skipped_total > std::int64_t(state_.skipped_steps.size()) ? ", ..." : ""));
    labeled_.clear();
    unlabeled_.clear();
    run_dir_.flush();
  }

  void save_checkpoint(const std::string& name, double top1) {
    if (!run_dir_.enabled()) return;
    LoopState state = state_;
    state.best_top1 = std::max(state_.best_top1, top1);
    json extra{{"epoch", state_.epoch + 1}, {"best_top1", state.best_top1}, {"node_id", id_},
               {"node", state},         {"resumable", resumable_},      {"pipeline", document_}};
    json resume = json::object();
    if (!source_ids_[kLabeled].empty()) resume[source_ids_[kLabeled]] = {{"next_item", state_.labeled_next}};
    if (!source_ids_[kUnlabeled].empty())
      resume[source_ids_[kUnlabeled]] = {{"next_item", state_.unlabeled_next}};
    extra["resume"] = resume;
    extra["lists"] = list_fingerprints_;
    run_dir_.save_checkpoint(name, top1, state_,
                             [&](const std::string& path) { trainer_->save(path, extra); });
    saved_step_ = trainer_->steps_done();
    saved_epoch_open_ = state_.epoch_open;
  }

  std::string id_;
  bool quiet_ = false;
  std::shared_ptr<models::Trainer> trainer_;
  RunDirectory run_dir_;
  Progress progress_;
  std::shared_ptr<models::Communicator> communicator_;
  graph::StopToken stop_;
  TrainLoopOptions options_;
  bool has_unlabeled_ = false;
  std::deque<graph::Item> labeled_, unlabeled_;
  // Finished steps whose statistics are still on the device (read_pending()).
  std::deque<Pending> pending_;
  std::int64_t read_every_ = 1;
  // The step in flight: its batches (positions, clip names for errors).
  bool in_flight_ = false;
  ViewBatchPtr in_labeled_, in_unlabeled_;
  bool input_ended_ = false, closed_ = false, stopping_ = false;
  LoopState state_;  // everything a checkpoint keeps of this node
  std::int64_t clips_ = 0;
  std::string source_ids_[2];
  bool resumable_ = true;
  bool resuming_ = false;  // continues from a checkpoint (NodeContext::resume)
  json document_;
  json list_fingerprints_;        // stored in checkpoints (NodeContext::list_fingerprints)
  std::int64_t saved_step_ = -1;  // state of the last checkpoint written or loaded
  bool saved_epoch_open_ = false;
  bool report_warned_ = false;
};

}  // namespace

graph::NodeSpec train_loop_spec() {
  return graph::NodeSpec("train_loop")
      .doc(
          "The training loop: pairs labeled and unlabeled batches in source order, sends one step at a time "
          "down the step nodes (warm-up epochs supervised only) and takes it back on `done`; evaluates on a "
          "validation list at epoch ends; the run directory receives metrics.jsonl, checkpoints and "
          "model.safetensors. Without the unlabeled input: supervised training, the baseline.")
      .ordered_input("labeled", batch_message(), "labeled batches (one draw)")
      .ordered_input("unlabeled", batch_message(), "unlabeled batches (weak and strong draws); optional",
                     false)
      .feedback_input("done", train_step_message(), "finished steps, from the last step node (ema_update)")
      .output("step", train_step_message(), "the next step, to the first step node (teacher or student)")
      .serial()
      .completes_on_stop()
      .param_model("model", "net", kSefarModelType, "the shared student/teacher (an entry of \"models\")")
      .param_int("epochs", 30, "training epochs (passes of the labeled source)", 1, 1e6)
      .param_int("warmup_epochs", 5, "supervised-only epochs before the semi-supervised phase", 0, 1e6)
      .param_int("accumulate", 1,
                 "gradient accumulation: sum the gradients of N consecutive steps (each loss divided by N) "
                 "and update (optimiser, EMA teacher, data-parallel averaging) once per N steps, at the "
                 "last; N steps of B clips then update as one step of N B clips (Tube TokenMix still pairs "
                 "clips within a step). Windows run across epoch ends; steps left at the end that do not "
                 "fill one update nothing. Step records inside a window have no grad_norm",
                 1, 1e6)
      .param_split_list("val_list", "", "validation split list (empty: no evaluation)")
      .param_string("val_root", "", "data root of the validation list (default: its folder)")
      .param_int("eval_every", 1, "evaluate every N epochs (and after the last)", 1, 1e6)
      .param_choice("eval_mode", "eval", {"eval", "test"},
                    "eval: one centre draw and crop; test: test_clips draws x 3 crops, softmax averaged")
      .param_int("test_clips", 5, "test mode: temporal draws", 1, 64)
      .param_int("eval_short_side", 256, "short side of validation frames", 8, 4096)
      .param_int("eval_batch", 8, "validation batch size", 1, 4096)
      .may_change_on_resume()
      .param_int("eval_limit", 0, "evaluate on the first N validation clips only (0: all)", 0, 1e9)
      .param_int("log_every", 10, "print a progress line every N steps (0: never)", 0, 1e9)
      .may_change_on_resume()
      .param_int("read_stats_every", 0,
                 "read the steps' losses and statistics from the device every N steps, one wait for the "
                 "device for all of them (metrics.jsonl then grows N records at a time); 0: log_every on a "
                 "GPU, every step on a CPU",
                 0, 1e6)
      .may_change_on_resume()
      .param_int("keep_last", 2, "epoch and stop checkpoints kept (the best one is kept besides)", 1, 1e6)
      .may_change_on_resume()
      .param_choice(
          "on_nonfinite", "stop", {"stop", "skip"},
          "a NaN or infinite loss or gradient: stop the run with an error (the last checkpoint is kept) or "
          "skip the step (no update; counted in the metrics and the run summary)")
      .may_change_on_resume()
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<TrainLoopNode>(ctx); });
}

}  // namespace sefar::nodes
