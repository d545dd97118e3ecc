#include "nodes/param_groups.h"

namespace sefar::nodes {

void device_params(graph::NodeSpec& spec) {
  spec.param_string("device", "cpu", "cpu, cuda, cuda:N or auto")
      .may_change_on_resume()
      .param_int("threads", 0, "LibTorch intra-op threads (0: leave LibTorch's setting)", 0, 1024)
      .may_change_on_resume()
      .compute_threads();  // applied by the runtime, which owns LibTorch's thread count
}

DeviceParams DeviceParams::read(const graph::Params& p) {
  DeviceParams d;
  d.device = p.get_string("device");
  return d;
}

void model_runner_params(graph::NodeSpec& spec) {
  spec.param_string(
          "weights", std::nullopt,
          "weights written by sefar_train (RUN_DIR/model.safetensors or checkpoints/best.safetensors)")
      .param_group(device_params);
}

ModelRunnerParams ModelRunnerParams::read(const graph::Params& p) {
  ModelRunnerParams r;
  r.weights = p.get_string("weights");
  r.device = DeviceParams::read(p);
  return r;
}

}  // namespace sefar::nodes
