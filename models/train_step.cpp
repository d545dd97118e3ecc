#include "models/train_step.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "models/distributed.h"
#include "models/optimizer.h"
#include "util/errors.h"

namespace sefar::models {

namespace {

// A statistic kept on the device: detached, float64, no copy to the host.
at::Tensor stat(const at::Tensor& t) {
  return t.detach().to(at::kDouble);
}

// A stage reached without what an earlier stage makes: the pipeline is wired wrong (exit 2).
void require(bool ok, const char* stage, const char* what) {
  if (!ok) throw util::ConfigError(fmt::format("{}: {}", stage, what));
}

}  // namespace

TrainStep make_train_step(const Trainer& trainer, int epoch, int epochs, int warmup_epochs, bool semi,
                          const std::vector<at::Tensor>& labeled, const at::Tensor& labels,
                          const std::vector<at::Tensor>* weak, const std::vector<at::Tensor>* strong,
                          const at::Tensor* channel_scale, const at::Tensor* truth) {
  TrainStep s;
  s.step = trainer.steps_done();
  s.accumulate = trainer.accumulate();
  s.micro = int(s.step % s.accumulate);
  s.epoch = epoch;
  s.epochs = epochs;
  s.warmup_epochs = warmup_epochs;
  s.semi = semi && weak && strong;
  for (const auto& v : labeled) s.labeled.push_back(trainer.to_device(v));
  s.labels = trainer.to_device(labels);
  if (s.semi) {
    for (const auto& v : *weak) s.weak.push_back(trainer.to_device(v));
    for (const auto& v : *strong) s.strong.push_back(trainer.to_device(v));
    const std::int64_t u = s.weak[0].size(0);
    s.channel_scale = channel_scale && channel_scale->defined() ? trainer.to_device(*channel_scale)
                                                                : at::ones({u, 3}, s.weak[0].options());
    if (truth && truth->defined()) s.truth = trainer.to_device(*truth);
  }
  s.stats.step = s.step;
  s.stats.accumulate = s.accumulate;
  s.stats.micro = s.micro;
  s.stats.epoch = epoch;
  s.stats.semi = s.semi;
  s.stats.labeled = s.labels.size(0);
  s.stats.unlabeled = s.unlabeled();
  return s;
}

void teacher_forward(Trainer& trainer, TrainStep& s, int passes) {
  if (!s.semi) return;
  MultiGranularViT& teacher = trainer.ensure_teacher();
  at::NoGradGuard no_grad;
  const auto& config = trainer.options().model;
  const std::int64_t u = s.unlabeled();
  at::Tensor logits;
  const bool backbone_random = config.drop_rate > 0 || config.attn_drop_rate > 0;
  {
    auto autocast = trainer.autocast();
    if (!backbone_random) {
      teacher.eval();
      auto features = teacher.backbone(s.weak);
      logits = teacher.head_samples(features, passes);  // [K, U, C]
    } else {
      teacher.train();
      std::vector<at::Tensor> repeated;
      for (const auto& v : s.weak) repeated.push_back(v.repeat({passes, 1, 1, 1, 1}));
      logits = teacher.forward(repeated).logits.reshape({passes, u, -1});
    }
  }
  s.teacher = teacher_stats(at::softmax(logits.to(at::kFloat), 2));
  s.has_teacher_stats = true;
}

void regulate(TrainStep& s, Regulation rule, double threshold) {
  if (!s.semi) return;
  require(s.has_teacher_stats, "regulation", "no teacher statistics: wire a teacher node before it");
  s.eta = regulation_weights(rule, s.teacher.p_max, s.teacher.s_max, threshold);
}

void tube_token_mix(const Trainer& trainer, TrainStep& s, double alpha, bool per_view_permutation) {
  const std::int64_t u = s.unlabeled();
  if (!s.semi || u < 2) return;
  io::Rng rng(trainer.options().seed, std::uint64_t(s.step), 0, io::Purpose::mix);
  const auto patches = trainer.options().model.num_patches();
  const std::size_t views = s.strong.size();
  auto draw = draw_token_mix(rng, int(u), int(views), int(patches), alpha);
  s.perm = at::tensor(draw.perm, at::kLong).to(trainer.device());
  // Per view (official): views 0..V-2 draw their own permutations after the shared draw; the last
  // view keeps the shared one, which the targets use.
  std::vector<at::Tensor> perms(views, s.perm);
  for (std::size_t v = 0; per_view_permutation && v + 1 < views; ++v) {
    std::vector<std::int64_t> p(draw.perm.size());
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = std::int64_t(i);
    rng.shuffle(p);
    perms[v] = at::tensor(p, at::kLong).to(trainer.device());
  }
  s.token_mix = TokenMix{};
  for (std::size_t v = 0; v < views; ++v) {
    // The second input: the perturbed strong views without channel dropout, batch-permuted.
    s.token_mix.views.push_back(s.strong[v].index_select(0, perms[v]));
    std::vector<std::uint8_t> m(draw.masks[v].begin(), draw.masks[v].end());
    s.token_mix.masks.push_back(at::tensor(m, at::kByte).to(at::kBool).to(trainer.device()));
  }
  s.stats.mix_lambda = draw.lambda;
  s.mixed = true;
}

void student_forward(Trainer& trainer, TrainStep& s, std::int64_t inject_nonfinite_step) {
  if (s.step == inject_nonfinite_step && !s.labeled.empty())
    s.labeled[0] = s.labeled[0] * std::numeric_limits<float>::quiet_NaN();
  MultiGranularViT& student = trainer.student();
  student.train();
  if (s.window_starts()) Optimizer::zero_grad(student);  // else: added to the window's gradients
  auto autocast = trainer.autocast();                    // the losses get fp32 logits
  if (!s.semi) {
    s.logits_labeled = student.forward(s.labeled).logits.to(at::kFloat);
    return;
  }
  // Student inputs: the strong draw with its channel dropout; labeled and strong clips in one forward
  // pass (same view shapes).
  const std::int64_t u = s.unlabeled();
  std::vector<at::Tensor> strong_dropped;
  const bool per_view_scale = s.channel_scale.dim() == 3;  // [V, U, 3]
  for (std::size_t i = 0; i < s.strong.size(); ++i) {
    const at::Tensor scale = per_view_scale ? s.channel_scale[std::int64_t(i)] : s.channel_scale;
    strong_dropped.push_back(s.strong[i] * scale.view({u, 3, 1, 1, 1}));
  }
  std::vector<at::Tensor> joint;
  for (std::size_t i = 0; i < s.labeled.size(); ++i)
    joint.push_back(at::cat({s.labeled[i], strong_dropped[i]}));
  auto out = student.forward(joint);
  const at::Tensor logits = out.logits.to(at::kFloat);
  s.logits_labeled = logits.narrow(0, 0, s.stats.labeled);
  s.logits_strong = logits.narrow(0, s.stats.labeled, u);
  if (s.mixed) s.logits_mixed = student.forward(strong_dropped, &s.token_mix).logits.to(at::kFloat);
}

void regulated_loss(TrainStep& s, double gamma_un, double gamma_mix, bool mix_compare_logits) {
  require(s.logits_labeled.defined(), "loss", "no student logits: wire a student node before it");
  auto& stats = s.stats;
  auto& d = s.device_stats;
  stats.xi = s.semi ? unlabeled_ramp(s.epoch, s.warmup_epochs, s.epochs) : 0.0;
  auto sup = at::cross_entropy_loss(s.logits_labeled, s.labels);
  if (!s.semi) {
    s.loss = sup;
    d.loss_sup = stat(sup);
    d.loss = stat(s.loss);
    return;
  }
  require(s.eta.defined(), "loss", "no regulation weights (eta): wire a regulation node before the student");
  auto un = unlabeled_loss(s.logits_strong, s.teacher.label, s.eta);
  at::Tensor mix = at::zeros({}, sup.options());
  if (s.mixed)
    mix = mix_loss(s.logits_mixed, s.teacher.mean_prob, s.eta, s.perm, stats.mix_lambda, mix_compare_logits);
  s.loss = sup + stats.xi * (gamma_un * un + gamma_mix * mix);
  d.loss_sup = stat(sup);
  d.loss_un = stat(un);
  d.loss_mix = stat(mix);
  d.eta_mean = stat(s.eta.mean());
  d.eta_above_half = stat((s.eta > 0.5).to(at::kFloat).mean());
  d.eta_hist = at::histc(s.eta.detach().to(at::kFloat), 10, 0, 1).to(at::kLong);
  if (s.truth.defined()) {
    auto known = s.truth >= 0;
    d.pseudo_known = stat(known.sum());
    d.pseudo_correct = stat(((s.teacher.label == s.truth) & known).sum());
  }
  d.loss = stat(s.loss);
}

void backward(Trainer& trainer, TrainStep& s) {
  require(s.loss.defined(), "backward", "no loss: wire a loss node before it");
  auto& stats = s.stats;
  auto& d = s.device_stats;
  // A non-finite loss makes the gradients non-finite: the norm below says so, and the updates are
  // masked by it. Backward runs either way (no branch on a value still on the device).
  // Accumulating, each step adds its share of the window's mean loss: the summed gradients are the
  // gradients of the mean over the window's clips (equal batches).
  if (s.accumulate > 1)
    (s.loss / double(s.accumulate)).backward();
  else
    s.loss.backward();
  if (Communicator* communicator = trainer.communicator()) {
    // A non-finite loss on one rank makes its gradients non-finite, and so the averaged gradients on
    // every rank: all ranks then skip the step together. Accumulating, the gradients are averaged
    // once per window (the average of the ranks' sums is the sum of their averages); the logged
    // losses at every step, so that each step's non-finite flag is the same on every rank.
    if (s.window_ends()) stats.comm_seconds = communicator->average_gradients(trainer.student());
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor zero = at::zeros({}, d.loss.options());
    auto or_zero = [&](const at::Tensor& t) { return t.defined() ? t : zero; };
    std::vector<at::Tensor> logged{
        at::stack({d.loss, or_zero(d.loss_sup), or_zero(d.loss_un), or_zero(d.loss_mix), or_zero(d.eta_mean),
                   or_zero(d.eta_above_half)})};
    communicator->all_reduce_sum(logged);
    logged[0].div_(double(communicator->world_size()));
    d.loss = logged[0][0];
    d.loss_sup = logged[0][1];
    if (s.semi) {
      d.loss_un = logged[0][2];
      d.loss_mix = logged[0][3];
      d.eta_mean = logged[0][4];
      d.eta_above_half = logged[0][5];
    }
    stats.comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!s.window_ends()) {  // no update at this step: no gradient norm yet
    d.finite = at::isfinite(d.loss);
    return;
  }
  d.grad_norm = Optimizer::grad_norm(trainer.student());
  d.finite = at::isfinite(d.loss).logical_and(at::isfinite(d.grad_norm));
}

void optimizer_step(Trainer& trainer, TrainStep& s, const OptimizerOptions& o) {
  s.stats.lr = step_learning_rate(o.lr, s.epoch, o.milestones, o.factors);
  require(s.device_stats.finite.defined(), "optimizer", "no gradients: wire a backward node before it");
  if (!s.window_ends()) return;  // accumulating: the window's last step updates
  Optimizer& optimizer = trainer.optimizer();
  optimizer.adamw = o.kind == "adamw";
  optimizer.lr = s.stats.lr;
  optimizer.momentum = o.momentum;
  optimizer.weight_decay = o.weight_decay;
  optimizer.clip_grad_norm = o.clip_grad_norm;
  optimizer.step(trainer.student(), s.device_stats.grad_norm, s.device_stats.finite);
}

void ema_step(Trainer& trainer, TrainStep& s, double decay) {
  if (!s.semi) return;
  require(s.device_stats.finite.defined(), "ema_update", "no gradients: wire a backward node before it");
  if (!s.window_ends()) return;
  ema_update(trainer.ensure_teacher(), trainer.student(), decay, s.device_stats.finite);
}

void read_step_stats(Trainer& trainer, const std::vector<std::pair<StepStats*, const DeviceStats*>>& steps) {
  if (steps.empty()) return;
  constexpr int kScalars = 10, kBins = 10;
  // One row per step, built on the device, copied once.
  std::vector<at::Tensor> rows;
  for (const auto& [host, d] : steps) {
    (void)host;
    const at::Tensor& like = d->loss.defined() ? d->loss : at::zeros({}, at::kDouble);
    const at::Tensor zero = at::zeros({}, like.options());
    auto v = [&](const at::Tensor& t) { return t.defined() ? t.to(at::kDouble) : zero; };
    const at::Tensor scalars =
        at::stack({v(d->loss), v(d->loss_sup), v(d->loss_un), v(d->loss_mix), v(d->eta_mean),
                   v(d->eta_above_half), v(d->pseudo_correct), v(d->pseudo_known), v(d->grad_norm),
                   d->finite.defined() ? d->finite.to(at::kDouble) : zero + 1});
    const at::Tensor hist =
        d->eta_hist.defined() ? d->eta_hist.to(at::kDouble) : at::zeros({kBins}, like.options());
    rows.push_back(at::cat({scalars, hist}));
  }
  const at::Tensor table = at::stack(rows).to(at::kCPU).contiguous();
  const double* row = table.data_ptr<double>();
  std::int64_t skipped = 0;
  for (const auto& [host, d] : steps) {
    (void)d;
    StepStats& st = *host;
    st.loss = row[0];
    st.loss_sup = row[1];
    st.loss_un = row[2];
    st.loss_mix = row[3];
    st.eta_mean = row[4];
    st.eta_above_half = row[5];
    st.pseudo_accuracy = row[7] > 0 ? row[6] / row[7] : -1;
    st.grad_norm = row[8];
    st.nonfinite = row[9] == 0;
    if (st.semi) st.eta_hist.assign(row + kScalars, row + kScalars + kBins);
    skipped += st.nonfinite && st.updates();  // the optimiser counted only the windows' last steps
    row += kScalars + kBins;
  }
  trainer.optimizer().uncount_steps(skipped);
}

void read_step_stats(Trainer& trainer, TrainStep& step) {
  read_step_stats(trainer, {{&step.stats, &step.device_stats}});
}

}  // namespace sefar::models
