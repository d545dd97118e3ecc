// The trainer settings the trainer tests start from.
#pragma once

#include "models/timesformer.h"
#include "models/trainer.h"

namespace sefar::testing {

// A 2-class tiny model (views {2, 2, 4}, no stochastic depth) trained with AdamW at lr 1e-3 and no
// learning-rate steps, 3 teacher passes; each test sets the device, the schedule and the seed.
inline models::TrainerOptions toy_trainer_options() {
  models::TrainerOptions o;
  o.model = models::ModelConfig::tiny(2, {2, 2, 4});
  o.model.drop_path_rate = 0;
  o.optimizer = "adamw";
  o.lr = 1e-3;
  o.milestones = {};
  o.factors = {};
  o.teacher_passes = 3;
  return o;
}

}  // namespace sefar::testing
