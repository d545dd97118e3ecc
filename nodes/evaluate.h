// Evaluation of a model over a split list as a nested pipeline (decode, views, batch, predict),
// used by the training node at epoch ends and by the evaluate node.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph/stop.h"
#include "models/distributed.h"
#include "models/trainer.h"

namespace sefar::nodes {

struct EvalSetup {
  std::string list, root;
  std::vector<int> views = {2, 2, 4};
  int crop = 224;
  int short_side = 256;
  std::string mode = "eval";  // eval: centre draw, centre crop; test: test_clips x 3 crops
  int test_clips = 5;
  int batch = 8;
  int threads = 0;
  int max_in_flight = 32;
  std::int64_t limit = 0;
  std::uint64_t seed = 0;
  // Data-parallel job: each rank evaluates its share of the list and the counts are summed over
  // ranks, so every rank returns the whole list's evaluation. Null: one process, the whole list.
  std::shared_ptr<models::Communicator> communicator;
  int rank = 0, world_size = 1;
  // The stop requests of the run the evaluation is part of: it stops with that run.
  graph::StopToken stop;
};

// The evaluation's start-up checks, without running it: its list read, its clips looked up, its
// labels below num_classes. Throws graph::PipelineError naming the problems.
void check_evaluation(const EvalSetup& setup, models::Trainer& trainer, int num_classes);

// Runs the evaluation pipeline with `trainer.predict` as the classifier.
models::Evaluation evaluate_split(const EvalSetup& setup, models::Trainer& trainer, int num_classes);

}  // namespace sefar::nodes
