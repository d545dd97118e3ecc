// SeFAR training state (DESIGN §2): the student, the EMA teacher created when the semi-supervised
// phase starts, the optimiser's state and the step counter; checkpoints of all of it. A pipeline
// declares it once (the sefar_model model type) and the step nodes name it; each node runs one
// stage of models/train_step.h on it. Trainer::step runs every stage in order (tests, tools).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "models/config.h"
#include "models/device.h"
#include "models/sefar.h"

namespace sefar::io {
struct StepRecord;
struct EvalRecord;
}  // namespace sefar::io

namespace sefar::models {

struct Optimizer;
class MultiGranularViT;
class Communicator;

struct TrainerOptions {
  ModelConfig model;
  std::string device = "cpu";
  // Forward passes (teacher, student, evaluation) under bf16 autocast: matrix products in bfloat16,
  // the rest as autocast's lists say; weights, gradients and optimiser state stay fp32, and logits are
  // returned in fp32 before any loss.
  bool bf16 = false;
  std::uint64_t seed = 0;
  // Optimiser (official: SGD, momentum 0.9, weight decay 1e-3, lr 0.005, x0.1 at 25, x0.01 at 28).
  // AdamW (betas 0.9/0.999, decoupled weight decay) trains small models from scratch far better.
  std::string optimizer = "sgd";  // sgd | adamw
  double lr = 0.005, momentum = 0.9, weight_decay = 1e-3;
  double clip_grad_norm = 0;  // 0: off
  std::vector<int> milestones = {25, 28};
  std::vector<double> factors = {0.1, 0.01};
  int epochs = 30, warmup_epochs = 5;
  // Gradient accumulation: the gradients of this many consecutive steps (a window: steps k N ..
  // k N + N - 1) are summed, each step's loss divided by N, before one optimiser and EMA update at
  // the window's last step. N steps of B clips then update as one step of N B clips (the losses are
  // means over clips, so their mean over equal micro-batches is the large batch's); Tube TokenMix
  // pairs clips within a step's batch, so with it the mixed pairs differ from the large batch's.
  int accumulate = 1;
  // Semi-supervised phase.
  bool semi_supervised = true;
  double ema_decay = 0.9999;
  int teacher_passes = 10;  // K
  Regulation regulation = Regulation::adaptive;
  double threshold = 0.95;  // fixed regulation
  double gamma_un = 2.0, gamma_mix = 2.0;
  bool token_mix = true;
  double mix_alpha = 10.0;
  bool mix_compare_logits = false;  // the official code's form; default compares probabilities
  // Fault injection for tests of the non-finite handling: the labeled input of this step (counted
  // from 0) is made NaN, so its loss is NaN through the real forward pass. -1: never.
  std::int64_t inject_nonfinite_step = -1;
};

struct StepStats {
  std::int64_t step = 0;
  int epoch = 0;  // index from 0 (metrics records and the console count from 1)
  double lr = 0, xi = 0;
  double loss = 0, loss_sup = 0, loss_un = 0, loss_mix = 0;
  double eta_mean = 0, eta_above_half = 0;  // over the unlabeled batch (0 in warm-up)
  double pseudo_accuracy = -1;              // when unlabeled clips carry true labels (synthetic data)
  double mix_lambda = 0;
  std::vector<std::int64_t> eta_hist;  // per-clip eta in 10 bins over [0, 1] (semi steps)
  std::int64_t labeled = 0, unlabeled = 0;
  bool semi = false;  // the step used unlabeled clips
  // Gradient accumulation: the step's place in its window (micro-step micro of accumulate); only the
  // window's last step updates, and only its record carries a gradient norm (the summed gradients').
  int accumulate = 1, micro = 0;
  bool updates() const { return micro == accumulate - 1; }
  double grad_norm = 0;  // global gradient norm before clipping
  double comm_seconds = 0;  // data-parallel job: time spent averaging gradients and losses
  // The loss or the gradient norm was NaN or infinite: the step changed nothing (no parameter,
  // optimiser or teacher update); the losses say which part went wrong.
  bool nonfinite = false;
  // The step's metrics.jsonl record (io/metric_records.h), less its wall time.
  io::StepRecord record() const;
};

class Trainer {
 public:
  explicit Trainer(const TrainerOptions& options);
  ~Trainer();

  // Data-parallel training: rank 0's parameters are copied to every rank now; from then on each
  // step averages the gradients over ranks before the update (so every rank's student, optimiser
  // and EMA teacher stay identical) and the logged losses are the ranks' mean. Call before the
  // first step and after a checkpoint is loaded.
  void set_communicator(std::shared_ptr<Communicator> communicator);

  // One step. `labeled`: per view [B, 3, T, S, S]; `labels` [B]. `weak`/`strong`: the unlabeled
  // draws (per view [U, ...]), `channel_scale` [U, 3] the strong draw's channel dropout, `truth`
  // [U] the unlabeled clips' labels when known (else -1; only for the pseudo-label accuracy).
  // A NaN or infinite loss or gradient is caught here: the step then updates nothing and returns
  // with `nonfinite` set (the step counter still advances: step numbers name batches).
  StepStats step(int epoch, const std::vector<at::Tensor>& labeled, const at::Tensor& labels,
                 const std::vector<at::Tensor>* weak = nullptr, const std::vector<at::Tensor>* strong = nullptr,
                 const at::Tensor* channel_scale = nullptr, const at::Tensor* truth = nullptr);
  // A step is over (whether it updated anything or not): step numbers name batches.
  void finish_step() { ++step_; }

  // Class probabilities of the model to evaluate (the teacher once it exists, else the student),
  // averaged over view sets: `view_sets[s][v]` is [B, 3, T, S, S].
  at::Tensor predict(const std::vector<std::vector<at::Tensor>>& view_sets);

  MultiGranularViT& student() { return *student_; }
  MultiGranularViT* teacher() { return teacher_.get(); }
  // The teacher starts as a copy of the student when the semi-supervised phase begins.
  MultiGranularViT& ensure_teacher();
  Optimizer& optimizer() { return *optimizer_; }
  Communicator* communicator() const { return communicator_.get(); }
  const TrainerOptions& options() const { return options_; }
  const c10::Device& device() const { return device_; }
  // The autocast region of a forward pass: bf16 when options().bf16, else autocast off.
  AutocastGuard autocast() const;
  // `t` on the trainer's device; to a GPU on a side stream, asynchronous from page-locked memory
  // (models::upload).
  at::Tensor to_device(const at::Tensor& t) const;
  std::int64_t steps_done() const { return step_; }
  // What the student was initialised from (nodes/init_weights.h's report); null: from scratch. The
  // training loop writes it to RUN_DIR/initial_weights.json in a fresh run.
  void set_initial_weights(nlohmann::json report);
  const nlohmann::json& initial_weights() const { return *initial_weights_; }
  // Gradient accumulation (TrainerOptions::accumulate): steps per optimiser update. Set before the
  // first step (the training loop's `accumulate`).
  int accumulate() const { return options_.accumulate; }
  void set_accumulate(int steps);
  // Steps since the last update whose gradients are summed, waiting for the rest of their window.
  std::int64_t window_steps() const { return step_ % options_.accumulate; }

  // Checkpoint (io/checkpoint.h): every tensor (student, teacher, optimiser state, the CPU and,
  // on CUDA, the device generator states, inside an accumulation window the student's summed
  // gradients as "grad.<name>") and the counters, written atomically to
  // <path>.safetensors; `extra` is stored in its sidecar next to the trainer's own fields. Throws
  // std::runtime_error naming the file when it cannot be written.
  void save(const std::string& path, const nlohmann::json& extra) const;
  // Restores a checkpoint written by save(); returns its sidecar (with `extra`'s fields).
  nlohmann::json load(const std::string& path);

 private:
  TrainerOptions options_;
  c10::Device device_;
  std::shared_ptr<MultiGranularViT> student_, teacher_;
  std::unique_ptr<Optimizer> optimizer_;
  std::shared_ptr<Communicator> communicator_;
  std::int64_t step_ = 0;
  std::unique_ptr<nlohmann::json> initial_weights_;
};

// Top-1/top-5, per-class accuracy and the confusion matrix, accumulated batch by batch.
class Evaluation {
 public:
  explicit Evaluation(int num_classes);
  void add(const at::Tensor& probs, const at::Tensor& labels);
  std::int64_t count() const { return count_; }
  double top1() const;
  double top5() const;
  std::vector<double> per_class_accuracy() const;
  const std::vector<std::vector<std::int64_t>>& confusion() const { return confusion_; }
  double mean_class_accuracy() const;
  // The results as a record (io/metric_records.h): clips, accuracies, the confusion matrix.
  io::EvalRecord record() const;
  // The counts as one vector (count, top-1, top-5, confusion row by row) and back: evaluations of
  // disjoint shards add up element by element (the data-parallel evaluation all-reduces them).
  std::vector<std::int64_t> counts() const;
  void set_counts(const std::vector<std::int64_t>& counts);

 private:
  int classes_;
  std::int64_t count_ = 0, top1_ = 0, top5_ = 0;
  std::vector<std::vector<std::int64_t>> confusion_;  // [truth][prediction]
};

}  // namespace sefar::models
