// The trainer: it learns a separable toy problem (supervised and semi-supervised), the teacher
// appears at the end of warm-up, checkpoints restore the exact state.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "models/timesformer.h"
#include "models/trainer.h"
#include "models/weights.h"

using namespace sefar::models;

namespace {

TrainerOptions toy_options() {
  TrainerOptions o;
  o.model = ModelConfig::tiny(2, {2, 2, 4});
  o.model.drop_path_rate = 0;
  o.optimizer = "adamw";
  o.lr = 1e-3;
  o.weight_decay = 0.01;
  o.epochs = 4;
  o.warmup_epochs = 1;
  o.milestones = {};
  o.factors = {};
  o.ema_decay = 0.9;
  o.teacher_passes = 3;
  o.seed = 1;
  return o;
}

// Class 1 clips carry a moving bright square; class 0 clips are noise only. The noise comes from
// its own generator so the trainer's (dropout) generator is left alone.
std::vector<at::Tensor> toy_views(const at::Tensor& labels, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> views;
  for (std::int64_t t : {2, 2, 4}) {
    auto v = at::randn({labels.size(0), 3, t, 32, 32}, gen) * 0.5;
    for (std::int64_t b = 0; b < labels.size(0); ++b)
      if (labels[b].item<std::int64_t>() == 1)
        for (std::int64_t f = 0; f < t; ++f) v[b].narrow(1, f, 1).narrow(2, 4 + 4 * f, 8).narrow(3, 8, 8).add_(2.0);
    views.push_back(v);
  }
  return views;
}

}  // namespace

TEST_CASE("supervised steps fit a separable toy problem") {
  at::set_num_threads(1);
  auto o = toy_options();
  o.semi_supervised = false;
  Trainer trainer(o);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 0, 1, 1, 0, 1, 0}, at::kLong);
  double first = 0, last = 0;
  for (int s = 0; s < 60; ++s) {
    auto stats = trainer.step(0, toy_views(labels, s), labels);
    if (s == 0) first = stats.loss;
    last = stats.loss;
  }
  MESSAGE("loss " << first << " -> " << last);
  CHECK(last < 0.3);
  auto probs = trainer.predict({toy_views(labels, 1000)});
  auto pred = probs.argmax(1);
  CHECK(pred.eq(labels).sum().item<std::int64_t>() >= 7);
}

TEST_CASE("semi-supervised steps: teacher from the end of warm-up, eta statistics, finite losses") {
  at::set_num_threads(1);
  auto o = toy_options();
  Trainer trainer(o);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 0, 1}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 1, 0, 0, 1, 0}, at::kLong);
  auto scale = at::ones({8, 3});
  auto weak = toy_views(truth, 7), strong = toy_views(truth, 8);
  auto warm = trainer.step(0, toy_views(labels, 1), labels, &weak, &strong, &scale, &truth);
  CHECK_FALSE(warm.semi);
  CHECK(trainer.teacher() == nullptr);
  auto semi = trainer.step(1, toy_views(labels, 2), labels, &weak, &strong, &scale, &truth);
  CHECK(semi.semi);
  REQUIRE(trainer.teacher() != nullptr);
  CHECK(semi.xi == doctest::Approx(std::sin(M_PI / 2 * 1.0 / 3.0)));
  CHECK(semi.eta_mean > 0.0);
  CHECK(semi.eta_mean <= 1.0);
  CHECK(semi.loss_un > 0.0);
  CHECK(semi.loss_mix > 0.0);
  CHECK(semi.mix_lambda > 0.0);
  CHECK(semi.pseudo_accuracy >= 0.0);
  CHECK(semi.loss == doctest::Approx(semi.loss_sup + semi.xi * (2 * semi.loss_un + 2 * semi.loss_mix)).epsilon(1e-4));
}

TEST_CASE("bf16 autocast: the same semi-supervised step in bfloat16 forward passes, fp32 state") {
  at::set_num_threads(1);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 0, 1}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 1, 0, 0, 1, 0}, at::kLong);
  auto scale = at::ones({8, 3});
  auto weak = toy_views(truth, 7), strong = toy_views(truth, 8);
  std::vector<StepStats> runs;
  for (bool bf16 : {false, true}) {
    auto o = toy_options();
    o.bf16 = bf16;
    Trainer trainer(o);
    trainer.step(0, toy_views(labels, 1), labels, &weak, &strong, &scale, &truth);
    runs.push_back(trainer.step(1, toy_views(labels, 2), labels, &weak, &strong, &scale, &truth));
    // The state stays fp32 whatever the forward passes compute in.
    for (const auto& p : trainer.student().parameters()) CHECK((p.scalar_type() == at::kFloat));
    CHECK((trainer.predict({toy_views(labels, 3)}).scalar_type() == at::kFloat));
    {
      auto autocast = trainer.autocast();
      CHECK(autocast_enabled(at::kCPU) == bf16);
      at::NoGradGuard no_grad;
      CHECK((trainer.student().forward(toy_views(labels, 4)).logits.scalar_type() == at::kBFloat16) == bf16);
    }
    CHECK_FALSE(autocast_enabled(at::kCPU));  // restored
  }
  const auto& fp32 = runs[0];
  const auto& bf16 = runs[1];
  CHECK(std::isfinite(bf16.loss));
  // bfloat16 keeps 8 bits of mantissa: the losses agree to a few percent, not to the last bit.
  CHECK(bf16.loss != fp32.loss);
  CHECK(bf16.loss_sup == doctest::Approx(fp32.loss_sup).epsilon(0.05));
  CHECK(bf16.loss == doctest::Approx(fp32.loss).epsilon(0.05));
}

TEST_CASE("a checkpoint restores the exact training state: losses after resuming equal an uninterrupted run") {
  at::set_num_threads(1);
  auto o = toy_options();
  auto dir = std::filesystem::temp_directory_path() / ("sefar_ckpt_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 1, 0}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 0, 0, 1, 1, 0}, at::kLong);
  auto scale = at::ones({8, 3});
  auto run_steps = [&](Trainer& t, int from, int to) {
    std::vector<double> losses;
    for (int s = from; s < to; ++s) {
      auto weak = toy_views(truth, 100 + s), strong = toy_views(truth, 200 + s);
      losses.push_back(t.step(s / 2, toy_views(labels, s), labels, &weak, &strong, &scale, &truth).loss);
    }
    return losses;
  };
  Trainer uninterrupted(o);
  auto first = run_steps(uninterrupted, 0, 4);  // warm-up (epoch 0) then semi (epoch 1)
  uninterrupted.save((dir / "ckpt").string(), nlohmann::json{{"epoch", 1}});
  auto expected = run_steps(uninterrupted, 4, 7);

  at::manual_seed(12345);  // disturb the global generator: the checkpoint must restore it
  Trainer resumed(o);
  auto extra = resumed.load((dir / "ckpt").string());
  CHECK(extra["epoch"] == 1);
  CHECK(resumed.steps_done() == 4);
  auto actual = run_steps(resumed, 4, 7);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) CHECK(actual[i] == expected[i]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a non-finite loss changes nothing: no parameter, optimiser or teacher update") {
  at::set_num_threads(1);
  auto o = toy_options();
  o.inject_nonfinite_step = 2;  // a semi-supervised step
  Trainer trainer(o);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 1, 0}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 0, 0, 1, 1, 0}, at::kLong);
  auto scale = at::ones({8, 3});
  auto weak = toy_views(truth, 7), strong = toy_views(truth, 8);
  trainer.step(0, toy_views(labels, 1), labels, &weak, &strong, &scale, &truth);
  trainer.step(1, toy_views(labels, 2), labels, &weak, &strong, &scale, &truth);
  REQUIRE(trainer.teacher() != nullptr);
  auto snapshot = [](MultiGranularViT& m) {
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, t] : state_dict(m)) out[name] = t.clone();
    return out;
  };
  auto student = snapshot(trainer.student()), teacher = snapshot(*trainer.teacher());
  auto bad = trainer.step(1, toy_views(labels, 3), labels, &weak, &strong, &scale, &truth);
  CHECK(bad.nonfinite);
  CHECK(std::isnan(bad.loss));
  CHECK(bad.to_json()["skipped"] == "nonfinite");
  CHECK(trainer.steps_done() == 3);
  for (const auto& [name, t] : state_dict(trainer.student()))
    CHECK_MESSAGE(at::equal(t, student.at(name)), name);
  for (const auto& [name, t] : state_dict(*trainer.teacher()))
    CHECK_MESSAGE(at::equal(t, teacher.at(name)), name);
  // The next step is a normal one again.
  auto next = trainer.step(1, toy_views(labels, 4), labels, &weak, &strong, &scale, &truth);
  CHECK_FALSE(next.nonfinite);
  CHECK(std::isfinite(next.loss));
  CHECK(next.grad_norm > 0);
}
