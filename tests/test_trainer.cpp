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

#include "io/metric_records.h"
#include "models/optimizer.h"
#include "models/timesformer.h"
#include "models/trainer.h"
#include "models/weights.h"
#include "toy_trainer.h"

using namespace sefar::models;

namespace {

TrainerOptions toy_options() {
  TrainerOptions o = sefar::testing::toy_trainer_options();
  o.weight_decay = 0.01;
  o.epochs = 4;
  o.warmup_epochs = 1;
  o.ema_decay = 0.9;
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
  CHECK(bad.record().skipped == std::optional<std::string>("nonfinite"));
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

namespace {

std::map<std::string, at::Tensor> parameters_of(MultiGranularViT& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : state_dict(m)) out[name] = t.clone();
  return out;
}

// max |a - b| / max |b| over all tensors (b the reference); with `base`, of the changes from it.
double relative_difference(const std::map<std::string, at::Tensor>& a,
                           const std::map<std::string, at::Tensor>& b,
                           const std::map<std::string, at::Tensor>* base = nullptr) {
  double diff = 0, scale = 0;
  for (const auto& [name, tb] : b) {
    at::Tensor x = a.at(name).to(at::kDouble), y = tb.to(at::kDouble);
    if (base) {
      x = x - base->at(name).to(at::kDouble);
      y = y - base->at(name).to(at::kDouble);
    }
    diff = std::max(diff, (x - y).abs().max().item<double>());
    scale = std::max(scale, y.abs().max().item<double>());
  }
  return scale > 0 ? diff / scale : diff;
}

std::vector<at::Tensor> slice_views(const std::vector<at::Tensor>& views, std::int64_t from, std::int64_t n) {
  std::vector<at::Tensor> out;
  for (const auto& v : views) out.push_back(v.narrow(0, from, n).contiguous());
  return out;
}

// Deterministic steps (no dropout, no stochastic depth, no Tube TokenMix: the teacher's passes are
// all the same) with SGD, whose update is linear in the gradients.
TrainerOptions exact_options(int accumulate) {
  auto o = toy_options();
  o.model.head_dropout = 0;
  o.model.drop_path_rate = 0;
  o.optimizer = "sgd";
  o.lr = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 1e-3;
  o.token_mix = false;
  o.accumulate = accumulate;
  return o;
}

}  // namespace

TEST_CASE("accumulating 4 steps of 2 clips updates as one step of 8 clips (supervised and semi-supervised)") {
  at::set_num_threads(1);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 1, 0, 1, 0, 0, 1}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 0, 0, 1, 1, 0}, at::kLong);
  const auto views = toy_views(labels, 3), weak = toy_views(truth, 4), strong = toy_views(truth, 5);
  auto scale = at::ones({8, 3});
  for (bool semi : {false, true}) {
    INFO(std::string(semi ? "semi-supervised" : "supervised"));
    const int epoch = semi ? 1 : 0;  // warm-up is epoch 0
    Trainer large(exact_options(1)), small(exact_options(4));
    const auto start = parameters_of(large.student());
    CHECK(relative_difference(parameters_of(small.student()), start) == 0);
    StepStats whole;
    if (semi)
      whole = large.step(epoch, views, labels, &weak, &strong, &scale, &truth);
    else
      whole = large.step(epoch, views, labels);
    CHECK(whole.semi == semi);
    std::vector<StepStats> micro;
    for (std::int64_t k = 0; k < 4; ++k) {
      auto l = slice_views(views, 2 * k, 2), w = slice_views(weak, 2 * k, 2),
           s = slice_views(strong, 2 * k, 2);
      auto y = labels.narrow(0, 2 * k, 2), t = truth.narrow(0, 2 * k, 2), c = scale.narrow(0, 2 * k, 2);
      micro.push_back(semi ? small.step(epoch, l, y, &w, &s, &c, &t) : small.step(epoch, l, y));
      const auto record = micro.back().record();
      CHECK(record.micro == std::optional<std::int64_t>(k));
      CHECK(record.grad_norm.has_value() == (k == 3));
      // No update before the window's last step.
      if (k < 3) CHECK(relative_difference(parameters_of(small.student()), start) == 0);
    }
    CHECK(small.steps_done() == 4);
    CHECK(small.optimizer().steps == 1);
    CHECK(large.optimizer().steps == 1);
    CHECK(whole.record().grad_norm.has_value());
    CHECK_FALSE(whole.record().micro.has_value());
    // The logged losses are each step's own; their mean is the large step's loss.
    double mean_loss = 0;
    for (const auto& m : micro) mean_loss += m.loss / 4;
    CHECK(mean_loss == doctest::Approx(whole.loss).epsilon(1e-5));
    CHECK(micro[3].grad_norm == doctest::Approx(whole.grad_norm).epsilon(1e-5));
    const auto after_small = parameters_of(small.student()), after_large = parameters_of(large.student());
    const double params = relative_difference(after_small, after_large);
    const double update = relative_difference(after_small, after_large, &start);
    MESSAGE(std::string(semi ? "semi" : "supervised")
            << ": parameters max relative difference " << params << ", updates " << update);
    CHECK(params < 1e-5);
    CHECK(update < 1e-4);
    if (semi) {
      REQUIRE(small.teacher());
      REQUIRE(large.teacher());
      const double teacher =
          relative_difference(parameters_of(*small.teacher()), parameters_of(*large.teacher()));
      MESSAGE("teacher max relative difference " << teacher);
      CHECK(teacher < 1e-5);
    }
  }
}

TEST_CASE("accumulation: a checkpoint inside a window resumes exactly; a non-finite step masks its window") {
  at::set_num_threads(1);
  auto o = toy_options();
  o.accumulate = 3;
  auto dir = std::filesystem::temp_directory_path() / ("sefar_accumulate_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 1, 0}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 0}, at::kLong);
  auto scale = at::ones({4, 3});
  auto run_steps = [&](Trainer& t, int from, int to) {
    std::vector<std::string> records;
    for (int s = from; s < to; ++s) {
      auto weak = toy_views(truth, 100 + s), strong = toy_views(truth, 200 + s);
      const auto stats = t.step(s / 3, toy_views(labels, s), labels, &weak, &strong, &scale, &truth);
      records.push_back(sefar::io::to_json(stats.record()).dump());
    }
    return records;
  };
  SUBCASE("resume at a micro-step") {
    Trainer uninterrupted(o);
    run_steps(uninterrupted, 0, 5);  // warm-up (epoch 0), then semi-supervised; 2 steps into a window
    CHECK(uninterrupted.window_steps() == 2);
    uninterrupted.save((dir / "ckpt").string(), nlohmann::json::object());
    auto expected = run_steps(uninterrupted, 5, 10);

    at::manual_seed(12345);
    Trainer resumed(o);
    resumed.load((dir / "ckpt").string());
    CHECK(resumed.steps_done() == 5);
    CHECK(resumed.window_steps() == 2);
    auto actual = run_steps(resumed, 5, 10);
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) CHECK(actual[i] == expected[i]);
    const double params =
        relative_difference(parameters_of(resumed.student()), parameters_of(uninterrupted.student()));
    const double teacher =
        relative_difference(parameters_of(*resumed.teacher()), parameters_of(*uninterrupted.teacher()));
    CHECK(params == 0);
    CHECK(teacher == 0);
    // Another window length only between windows.
    auto other = o;
    other.accumulate = 2;
    Trainer wrong(other);
    CHECK_THROWS_WITH_AS(wrong.load((dir / "ckpt").string()), doctest::Contains("accumulate 3"),
                         std::invalid_argument);
  }
  SUBCASE("non-finite step inside a window") {
    o.inject_nonfinite_step = 3;  // the first step of the second window
    Trainer trainer(o);
    run_steps(trainer, 0, 3);
    const auto before = parameters_of(trainer.student());
    const auto updates = trainer.optimizer().steps;
    std::vector<StepStats> window;
    for (int s = 3; s < 6; ++s) {
      auto weak = toy_views(truth, 100 + s), strong = toy_views(truth, 200 + s);
      window.push_back(trainer.step(1, toy_views(labels, s), labels, &weak, &strong, &scale, &truth));
    }
    CHECK(window[0].nonfinite);
    CHECK_FALSE(window[1].nonfinite);
    CHECK(window[2].nonfinite);  // the summed gradients are NaN
    CHECK(std::isfinite(window[2].loss));
    CHECK(trainer.optimizer().steps == updates);
    CHECK(relative_difference(parameters_of(trainer.student()), before) == 0);
    // The next window updates again.
    run_steps(trainer, 6, 9);
    CHECK(trainer.optimizer().steps == updates + 1);
    CHECK(relative_difference(parameters_of(trainer.student()), before) > 0);
  }
  std::filesystem::remove_all(dir);
}
