// One supervised training step on a fixed batch of 8 clips, written for test_distributed: alone
// (WORLD 1: the whole batch) or as rank RANK of a Gloo job of WORLD processes over loopback, each
// taking its contiguous share of the batch. Writes the student's parameters after the step to OUT.
//
//   dist_worker OUT RANK WORLD PORT
//
// Each rank starts from a different initialisation (seed 11 + rank): the job must broadcast rank
// 0's parameters for the ranks to agree at all.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "io/safetensors.h"
#include "models/distributed.h"
#include "models/trainer.h"
#include "models/weights.h"

using namespace sefar;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: dist_worker OUT RANK WORLD PORT\n");
    return 2;
  }
  const std::string out = argv[1];
  const int rank = std::atoi(argv[2]), world = std::atoi(argv[3]), port = std::atoi(argv[4]);
  try {
    at::set_num_threads(1);
    models::TrainerOptions o;
    o.model = models::ModelConfig::tiny(4, {2, 2, 4});
    o.model.img_size = 32;
    o.model.drop_path_rate = 0;
    o.model.head_dropout = 0;  // nothing random in the step: the ranks' draws cannot differ
    // The official optimiser and initialisation (SGD at 0.005, truncated normal).
    o.model.init = models::ParamInit::kOfficial;
    o.optimizer = "sgd";
    o.lr = 0.005;
    o.momentum = 0.9;
    o.weight_decay = 1e-3;
    o.epochs = 1;
    o.warmup_epochs = 1;
    o.milestones = {};
    o.factors = {};
    o.semi_supervised = false;
    o.seed = 11 + std::uint64_t(rank);
    models::Trainer trainer(o);
    if (world > 1) {
      models::DistributedEnv env;
      env.rank = rank;
      env.world_size = world;
      env.local_rank = rank;
      env.local_world_size = world;
      env.master_addr = "127.0.0.1";
      env.master_port = port;
      env.launcher = "env";
      models::CommunicatorOptions co;
      co.timeout = std::chrono::seconds(60);
      trainer.set_communicator(std::make_shared<models::Communicator>(env, co));
    }
    const std::int64_t batch = 8, share = batch / world;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
    std::vector<at::Tensor> views;
    for (std::int64_t t : {2, 2, 4})
      views.push_back(at::randn({batch, 3, t, 32, 32}, gen).narrow(0, rank * share, share).contiguous());
    auto labels = at::tensor(std::vector<std::int64_t>{0, 1, 2, 3, 3, 2, 1, 0}, at::kLong)
                      .narrow(0, rank * share, share);
    auto stats = trainer.step(0, views, labels);
    std::printf("rank %d of %d: loss %.6f grad norm %.6f comm %.4f s\n", rank, world, stats.loss,
                stats.grad_norm, stats.comm_seconds);
    io::save_safetensors(out, models::state_dict(trainer.student()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_worker rank %d: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}
