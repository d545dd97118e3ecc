// The SeFAR training rules as pure functions on tensors (DESIGN §2: Teacher, Adaptive Regulation,
// Loss, schedule, Tube TokenMix draws, EMA). Nodes call these; tests pin them with hand-computed
// values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "io/random.h"
#include "util/enum_table.h"

namespace torch::nn {
class Module;
}

namespace sefar::models {

// Per-clip statistics of the teacher's K Monte-Carlo passes.
struct TeacherStats {
  at::Tensor mean_prob;  // p, [B, C]
  at::Tensor std_prob;   // s, [B, C], sample standard deviation over the K passes
  at::Tensor label;      // y = argmax p, [B] int64
  at::Tensor p_max;      // p[y], [B]
  at::Tensor s_max;      // s[y], [B]
};

// `probs`: [K, B, C] softmax outputs of K passes (K >= 2 for a meaningful s).
TeacherStats teacher_stats(const at::Tensor& probs);

enum class Regulation { adaptive, fixed, none };
inline constexpr auto kRegulations = util::enum_table<Regulation>(
    {
        {Regulation::adaptive, "adaptive"},
        {Regulation::fixed, "fixed"},
        {Regulation::none, "none"},
    },
    "regulation");
// Throws std::invalid_argument naming the valid names.
inline Regulation regulation_from_string(const std::string& name) {
  return kRegulations.parse_or_throw(name);
}
inline std::string to_string(Regulation r) {
  return kRegulations.name(r);
}

// Adaptive: eta = 2 sigmoid(exp(p_max) - e) * 2 (sigmoid(1 / (20 s_max + 1e-9)) - 0.5), in (0, 1].
// Fixed (FixMatch): eta = [p_max >= threshold]. None: eta = 1.
at::Tensor regulation_weights(Regulation r, const at::Tensor& p_max, const at::Tensor& s_max,
                              double threshold = 0.95);

// L_un = mean_b(eta_b * CE(strong_logits_b, y_b)).
at::Tensor unlabeled_loss(const at::Tensor& strong_logits, const at::Tensor& pseudo_label,
                          const at::Tensor& eta);

// L_mix = mean_b(eta_mix_b * mean_c (softmax(mixed_logits)_bc - y_mix_bc)^2), with
// y_mix = lambda p + (1 - lambda) p[perm] and eta_mix = lambda eta + (1 - lambda) eta[perm].
// compare_logits: compare raw logits instead of probabilities (the official code's form).
at::Tensor mix_loss(const at::Tensor& mixed_logits, const at::Tensor& mean_prob, const at::Tensor& eta,
                    const at::Tensor& perm, double lambda, bool compare_logits = false);

// xi(e): 0 during the W warm-up epochs, then sin(pi/2 * (e + 1 - W) / (E - W)).
double unlabeled_ramp(int epoch, int warmup_epochs, int total_epochs);

// Step schedule: base_lr times every factor whose milestone epoch has been reached.
double step_learning_rate(double base_lr, int epoch, const std::vector<int>& milestones,
                          const std::vector<double>& factors);

// Tube TokenMix draws for one step, from its deterministic stream.
struct MixDraw {
  double lambda = 1;                     // ~ Beta(alpha, alpha)
  std::vector<std::int64_t> perm;        // batch permutation, shared by every view and the targets
  std::vector<std::vector<bool>> masks;  // per view, per patch position: true keeps token(x)
};
// `patches`: spatial patch positions P (the same for every view); floor(lambda * P) are set.
MixDraw draw_token_mix(io::Rng& rng, int batch, int views, int patches, double alpha = 10.0);

// teacher = decay * teacher + (1 - decay) * student, parameter by parameter (names must match);
// buffers are copied. `apply` (a bool 0-dim tensor, optional): where false, the teacher stays as it
// was (a non-finite step), chosen on the device.
void ema_update(torch::nn::Module& teacher, const torch::nn::Module& student, double decay,
                const at::Tensor& apply = {});

}  // namespace sefar::models
