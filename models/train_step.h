// One SeFAR training step as stages (DESIGN §2), each a function of the step's state: the teacher's
// Monte-Carlo statistics, the regulation weights, the Tube TokenMix draw, the student's forward
// passes, the regulated loss, the backward pass, the optimiser update and the EMA update. The step
// nodes (nodes/step_*.cpp) call one stage each; Trainer::step calls them all in this order, so the
// graph and the direct call compute the same thing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/sefar.h"
#include "models/timesformer.h"
#include "models/trainer.h"

namespace sefar::models {

// The statistics a step computes on the device, kept there: a step never waits for the device (no
// .item()). read_step_stats() copies those of several steps to the host at once, one wait for all.
struct DeviceStats {
  // 0-dim float64 tensors (undefined: not computed by this step, read as 0).
  at::Tensor loss, loss_sup, loss_un, loss_mix, eta_mean, eta_above_half;
  at::Tensor pseudo_correct, pseudo_known;  // unlabeled clips with a known label: right pseudo-labels, all
  at::Tensor grad_norm;                     // before clipping
  at::Tensor finite;    // bool: loss and gradient norm finite; the updates of the step apply only then
  at::Tensor eta_hist;  // [10] int64, semi steps
};

// What one step knows, filled stage by stage. The training loop sets the inputs; a stage that
// needs a field an earlier stage did not set says which stage is missing.
struct TrainStep {
  // The schedule and the batches (on the trainer's device).
  std::int64_t step = 0;
  // Gradient accumulation (Trainer::accumulate()): the step is micro-step `micro` of a window of
  // `accumulate` consecutive steps (micro = step % accumulate) whose gradients are summed; the
  // window's last step updates (optimiser, EMA), the others only add their gradients.
  int accumulate = 1, micro = 0;
  int epoch = 0, epochs = 1, warmup_epochs = 0;
  bool semi = false;                // the unlabeled losses take part (after warm-up, with unlabeled clips)
  std::vector<at::Tensor> labeled;  // per view [B, 3, T, S, S]
  at::Tensor labels;                // [B]
  std::vector<at::Tensor> weak, strong;  // per view [U, 3, T, S, S]
  // The strong draw's channel dropout: [U, 3], one draw per clip shared by its views, or [V, U, 3],
  // one per view (the official loop's F.dropout2d on each view; step parity, docs/STEP_PARITY.md).
  at::Tensor channel_scale;
  at::Tensor truth;  // [U]: the unlabeled clips' labels when known, else -1
  // Teacher: Monte-Carlo statistics on the weak draw.
  bool has_teacher_stats = false;
  TeacherStats teacher;
  // Regulation: the weight of each unlabeled clip in the unlabeled losses, [U].
  at::Tensor eta;
  // Tube TokenMix: the second student input and its targets' permutation and ratio.
  bool mixed = false;
  TokenMix token_mix;
  at::Tensor perm;
  // Student logits (with autograd) on the labeled clips, the strong views and the mixed views.
  at::Tensor logits_labeled, logits_strong, logits_mixed;
  // The regulated loss (with autograd).
  at::Tensor loss;
  // Statistics of the step (its metrics record): known on the host (counters, learning rate, ramp,
  // TokenMix ratio) and on the device until read_step_stats().
  StepStats stats;
  DeviceStats device_stats;

  std::int64_t unlabeled() const { return weak.empty() ? 0 : weak[0].size(0); }
  bool window_starts() const { return micro == 0; }
  bool window_ends() const { return micro == accumulate - 1; }
};
using TrainStepPtr = std::shared_ptr<TrainStep>;

// The optimiser's settings (official: SGD, momentum 0.9, weight decay 1e-3, lr 0.005, x0.1 at epoch
// 25, x0.01 at 28). AdamW (betas 0.9/0.999, decoupled weight decay) trains small models from scratch
// far better.
struct OptimizerOptions {
  std::string kind = "sgd";  // sgd | adamw
  double lr = 0.005, momentum = 0.9, weight_decay = 1e-3;
  double clip_grad_norm = 0;  // 0: off
  std::vector<int> milestones = {25, 28};
  std::vector<double> factors = {0.1, 0.01};
};

// A step on the trainer's device: the batches moved there, the counters set. `weak`/`strong`/
// `channel_scale`/`truth` may be null (a supervised step); `semi` says whether the unlabeled losses
// take part.
TrainStep make_train_step(const Trainer& trainer, int epoch, int epochs, int warmup_epochs, bool semi,
                          const std::vector<at::Tensor>& labeled, const at::Tensor& labels,
                          const std::vector<at::Tensor>* weak = nullptr,
                          const std::vector<at::Tensor>* strong = nullptr,
                          const at::Tensor* channel_scale = nullptr, const at::Tensor* truth = nullptr);

// Teacher: K Monte-Carlo passes of the EMA teacher (created from the student at the first
// semi-supervised step) on the weak views; p, s, y = argmax p. When only the head's dropout is
// random, the backbone runs once and the head K times (same distribution, a tenth of the cost);
// otherwise the K passes run as one batched forward.
void teacher_forward(Trainer& trainer, TrainStep& step, int passes);

// Regulation: eta from the teacher's statistics (adaptive, fixed threshold or none).
void regulate(TrainStep& step, Regulation rule, double threshold = 0.95);

// Tube TokenMix: lambda ~ Beta(alpha, alpha), one batch permutation for every view and the targets,
// one tube mask per view, drawn from the step's own stream (seed, step, mix); the second input is
// the permuted strong views without channel dropout. Needs at least 2 unlabeled clips.
// `per_view_permutation` (the official loop's form): each view is mixed with its own permutation
// and the targets use the last view's; the shared draw serves the last view and the others draw
// theirs after it, so the lambda, the masks and the last view's permutation stay the shared form's.
void tube_token_mix(const Trainer& trainer, TrainStep& step, double alpha, bool per_view_permutation = false);

// Student: zeroes the gradients (at the first step of an accumulation window), then one forward
// pass over the labeled and channel-dropped strong clips together and, when mixed, one over the
// Tube-TokenMix'ed strong views. `inject_nonfinite_step`: the labeled input of that step is made
// NaN (fault injection for tests; -1: never).
void student_forward(Trainer& trainer, TrainStep& step, std::int64_t inject_nonfinite_step = -1);

// Regulated loss: L = L_sup + xi(e) (gamma_un L_un + gamma_mix L_mix), and the step's statistics
// (on the device).
void regulated_loss(TrainStep& step, double gamma_un, double gamma_mix, bool mix_compare_logits = false);

// Backward pass of loss / accumulate, added to the gradients of the window's earlier steps (the
// logged loss is the step's own, unscaled). In a data-parallel job the logged losses are averaged
// over ranks at every step, the gradients once per window, at its last step. The gradient norm (the
// window's last step only: the summed gradients') and whether loss and norm are finite stay on the
// device: a non-finite step is masked in the updates below, not branched on. A non-finite step
// inside a window makes the summed gradients non-finite, so the window's update is masked too.
void backward(Trainer& trainer, TrainStep& step);

// Optimiser: the learning rate of the step's epoch and, at the last step of an accumulation window,
// the update, which leaves parameters and optimiser state as they were when the step is non-finite.
void optimizer_step(Trainer& trainer, TrainStep& step, const OptimizerOptions& options);

// EMA: teacher = decay teacher + (1 - decay) student after a semi-supervised step that ends an
// accumulation window (a non-finite one leaves the teacher as it was).
void ema_step(Trainer& trainer, TrainStep& step, double decay);

// Copies the device statistics of `steps` to their host statistics (loss, eta, gradient norm, the
// non-finite flag, ...) in one transfer: the one point where the host waits for the device. A
// non-finite step that ended a window (an optimiser step) found here is taken back out of the
// optimiser's step count (AdamW's bias correction counts updates made); the steps it reads after
// one, if any, used a count one higher.
void read_step_stats(Trainer& trainer, const std::vector<std::pair<StepStats*, const DeviceStats*>>& steps);
void read_step_stats(Trainer& trainer, TrainStep& step);

}  // namespace sefar::models
