// The SeFAR formulas (DESIGN §2), pinned with values computed by hand (Python's math module, one
// formula at a time, independent of this code).
// LibTorch first: glog's CHECK must be replaced by doctest's, not the other way round.
#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <doctest/doctest.h>

#include "models/sefar.h"

using namespace sefar::models;

namespace {
at::Tensor t(std::vector<float> v, std::vector<std::int64_t> shape) {
  return at::tensor(v, at::kFloat).reshape(shape);
}
}  // namespace

TEST_CASE("teacher statistics over K passes: mean, sample std, pseudo-label") {
  auto probs = t({0.6f, 0.3f, 0.1f, 0.4f, 0.5f, 0.1f}, {2, 1, 3});
  auto s = teacher_stats(probs);
  CHECK(s.mean_prob[0][0].item<float>() == doctest::Approx(0.5));
  CHECK(s.mean_prob[0][1].item<float>() == doctest::Approx(0.4));
  CHECK(s.label[0].item<std::int64_t>() == 0);
  CHECK(s.p_max[0].item<float>() == doctest::Approx(0.5));
  CHECK(s.s_max[0].item<float>() == doctest::Approx(0.1414213562373095));
}

TEST_CASE("adaptive regulation eta") {
  auto p = t({0.5f, 0.9f, 1.0f}, {3});
  auto s = t({0.1f, 0.02f, 0.0f}, {3});
  auto eta = regulation_weights(Regulation::adaptive, p, s);
  CHECK(eta[0].item<float>() == doctest::Approx(0.125146903427627).epsilon(1e-5));
  CHECK(eta[1].item<float>() == doctest::Approx(0.7391749144017596).epsilon(1e-5));
  CHECK(eta[2].item<float>() == doctest::Approx(1.0).epsilon(1e-6));
  auto fixed = regulation_weights(Regulation::fixed, t({0.94f, 0.95f, 0.99f}, {3}), s, 0.95);
  CHECK(fixed[0].item<float>() == 0.0f);
  CHECK(fixed[1].item<float>() == 1.0f);
  CHECK(fixed[2].item<float>() == 1.0f);
  CHECK(regulation_weights(Regulation::none, p, s).sum().item<float>() == 3.0f);
  CHECK(regulation_from_string("fixed") == Regulation::fixed);
  CHECK_THROWS_AS(regulation_from_string("adaptiv"), std::invalid_argument);
}

TEST_CASE("unlabeled loss: eta-weighted cross entropy") {
  auto logits = t({2.0f, 0.0f, -1.0f, 0.5f, 1.5f, 0.0f}, {2, 3});
  auto labels = at::tensor(std::vector<std::int64_t>{0, 2}, at::kLong);
  auto eta = t({0.8f, 0.3f}, {2});
  CHECK(unlabeled_loss(logits, labels, eta).item<float>() == doctest::Approx(0.362593725438706).epsilon(1e-5));
}

TEST_CASE("mix loss: squared error between mixed predictions and mixed teacher targets") {
  auto mixed = t({1.0f, 0.0f, 0.5f, 0.0f, 2.0f, -1.0f}, {2, 3});
  auto p = t({0.7f, 0.2f, 0.1f, 0.1f, 0.3f, 0.6f}, {2, 3});
  auto eta = t({0.8f, 0.3f}, {2});
  auto perm = at::tensor(std::vector<std::int64_t>{1, 0}, at::kLong);
  CHECK(mix_loss(mixed, p, eta, perm, 0.7).item<float>() == doctest::Approx(0.03981991417033151).epsilon(1e-5));
  // With an identity permutation and lambda 1 the targets are the teacher's own.
  auto id = at::tensor(std::vector<std::int64_t>{0, 1}, at::kLong);
  auto self = mix_loss(at::log(p), p, eta, id, 1.0);
  CHECK(self.item<float>() == doctest::Approx(0.0).epsilon(1e-6));
}

TEST_CASE("unlabeled ramp and learning-rate steps") {
  CHECK(unlabeled_ramp(0, 5, 30) == 0.0);
  CHECK(unlabeled_ramp(4, 5, 30) == 0.0);
  CHECK(unlabeled_ramp(5, 5, 30) == doctest::Approx(0.06279051952931337));
  CHECK(unlabeled_ramp(29, 5, 30) == doctest::Approx(1.0));
  CHECK(step_learning_rate(0.005, 24, {25, 28}, {0.1, 0.01}) == doctest::Approx(0.005));
  CHECK(step_learning_rate(0.005, 25, {25, 28}, {0.1, 0.01}) == doctest::Approx(0.0005));
  CHECK(step_learning_rate(0.005, 29, {25, 28}, {0.1, 0.01}) == doctest::Approx(0.00005));
}

TEST_CASE("Tube TokenMix draws: floor(lambda P) kept positions per view, one permutation, deterministic") {
  sefar::io::Rng a(7, 1, 3, sefar::io::Purpose::mix), b(7, 1, 3, sefar::io::Purpose::mix);
  auto d1 = draw_token_mix(a, 6, 3, 49);
  auto d2 = draw_token_mix(b, 6, 3, 49);
  CHECK(d1.lambda == d2.lambda);
  CHECK(d1.perm == d2.perm);
  CHECK(d1.masks == d2.masks);
  CHECK(d1.lambda > 0.0);
  CHECK(d1.lambda < 1.0);
  REQUIRE(d1.masks.size() == 3);
  for (const auto& m : d1.masks) {
    int kept = 0;
    for (bool x : m) kept += x;
    CHECK(kept == int(std::floor(d1.lambda * 49)));
  }
  auto sorted = d1.perm;
  std::sort(sorted.begin(), sorted.end());
  const std::vector<std::int64_t> identity = {0, 1, 2, 3, 4, 5};
  CHECK(sorted == identity);
  // Beta(10, 10) has mean 0.5 and std ~0.109.
  sefar::io::Rng r(1, 0, 0, sefar::io::Purpose::mix);
  double sum = 0, sq = 0;
  for (int i = 0; i < 4000; ++i) {
    double l = draw_token_mix(r, 2, 1, 4).lambda;
    sum += l;
    sq += l * l;
  }
  double mean = sum / 4000, sd = std::sqrt(sq / 4000 - mean * mean);
  CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
  CHECK(sd == doctest::Approx(std::sqrt(0.25 / 21)).epsilon(0.08));
}

TEST_CASE("EMA update") {
  torch::nn::Linear teacher(2, 1), student(2, 1);
  {
    at::NoGradGuard g;
    teacher->weight.fill_(1.0);
    teacher->bias.fill_(0.0);
    student->weight.fill_(3.0);
    student->bias.fill_(2.0);
  }
  ema_update(*teacher, *student, 0.9);
  CHECK(teacher->weight[0][0].item<float>() == doctest::Approx(1.2));
  CHECK(teacher->bias[0].item<float>() == doctest::Approx(0.2));
}
