#include "models/sefar.h"

#include <cmath>
#include <random>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/module.h>

namespace sefar::models {

TeacherStats teacher_stats(const at::Tensor& probs) {
  if (probs.dim() != 3) throw std::invalid_argument("teacher_stats: expected [K, B, C] probabilities");
  TeacherStats t;
  t.mean_prob = probs.mean(0);
  t.std_prob = probs.size(0) > 1 ? probs.std(0, /*unbiased=*/true) : at::zeros_like(t.mean_prob);
  t.label = t.mean_prob.argmax(1);
  auto index = t.label.unsqueeze(1);
  t.p_max = t.mean_prob.gather(1, index).squeeze(1);
  t.s_max = t.std_prob.gather(1, index).squeeze(1);
  return t;
}

at::Tensor regulation_weights(Regulation r, const at::Tensor& p_max, const at::Tensor& s_max,
                              double threshold) {
  switch (r) {
    case Regulation::adaptive: {
      auto confidence = 2 * at::sigmoid(at::exp(p_max) - std::exp(1.0));
      auto stability = 2 * (at::sigmoid(1.0 / (20 * s_max + 1e-9)) - 0.5);
      return confidence * stability;
    }
    case Regulation::fixed:
      return (p_max >= threshold).to(p_max.scalar_type());
    case Regulation::none:
      return at::ones_like(p_max);
  }
  return {};
}

at::Tensor unlabeled_loss(const at::Tensor& strong_logits, const at::Tensor& pseudo_label,
                          const at::Tensor& eta) {
  auto ce = at::cross_entropy_loss(strong_logits, pseudo_label, c10::nullopt, at::Reduction::None);
  return (eta * ce).mean();
}

at::Tensor mix_loss(const at::Tensor& mixed_logits, const at::Tensor& mean_prob, const at::Tensor& eta,
                    const at::Tensor& perm, double lambda, bool compare_logits) {
  auto y_mix = lambda * mean_prob + (1 - lambda) * mean_prob.index_select(0, perm);
  auto eta_mix = lambda * eta + (1 - lambda) * eta.index_select(0, perm);
  auto prediction = compare_logits ? mixed_logits : at::softmax(mixed_logits, 1);
  auto per_clip = (prediction - y_mix).pow(2).mean(1);
  return (eta_mix * per_clip).mean();
}

double unlabeled_ramp(int epoch, int warmup_epochs, int total_epochs) {
  if (epoch < warmup_epochs) return 0.0;
  if (total_epochs <= warmup_epochs) return 1.0;
  double x = double(epoch + 1 - warmup_epochs) / double(total_epochs - warmup_epochs);
  return std::sin(M_PI / 2 * std::min(1.0, x));
}

double step_learning_rate(double base_lr, int epoch, const std::vector<int>& milestones,
                          const std::vector<double>& factors) {
  if (milestones.size() != factors.size())
    throw std::invalid_argument("step_learning_rate: one factor per milestone");
  double lr = base_lr;
  for (std::size_t i = 0; i < milestones.size(); ++i)
    if (epoch >= milestones[i]) lr = base_lr * factors[i];
  return lr;
}

MixDraw draw_token_mix(io::Rng& rng, int batch, int views, int patches, double alpha) {
  MixDraw d;
  // Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a).
  std::gamma_distribution<double> gamma(alpha, 1.0);
  double x = gamma(rng), y = gamma(rng);
  d.lambda = x / (x + y);
  d.perm.resize(batch);
  for (int i = 0; i < batch; ++i) d.perm[i] = i;
  rng.shuffle(d.perm);
  const int kept = int(std::floor(d.lambda * patches));
  for (int v = 0; v < views; ++v) {
    std::vector<int> order(patches);
    for (int i = 0; i < patches; ++i) order[i] = i;
    rng.shuffle(order);
    std::vector<bool> mask(patches, false);
    for (int i = 0; i < kept; ++i) mask[order[i]] = true;
    d.masks.push_back(std::move(mask));
  }
  return d;
}

void ema_update(torch::nn::Module& teacher, const torch::nn::Module& student, double decay,
                const at::Tensor& apply) {
  at::NoGradGuard no_grad;
  auto student_params = student.named_parameters(true);
  for (auto& item : teacher.named_parameters(true)) {
    const at::Tensor* source = student_params.find(item.key());
    if (!source)
      throw std::invalid_argument(fmt::format("ema_update: student has no parameter \"{}\"", item.key()));
    at::Tensor& t = item.value();
    if (apply.defined())
      t.copy_(at::where(apply, t.mul(decay).add_(*source, 1 - decay), t));
    else
      t.mul_(decay).add_(*source, 1 - decay);
  }
  auto student_buffers = student.named_buffers(true);
  for (auto& item : teacher.named_buffers(true)) {
    const at::Tensor* source = student_buffers.find(item.key());
    if (source) item.value().copy_(apply.defined() ? at::where(apply, *source, item.value()) : *source);
  }
}

}  // namespace sefar::models
