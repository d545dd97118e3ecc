#include "nodes/param_groups.h"

#include "models/device.h"

namespace sefar::nodes {

void device_params(graph::NodeSpec& spec) {
  spec.param_string("device", "cpu", "cpu, cuda, cuda:N or auto")
      .param_int("threads", 0, "LibTorch intra-op threads (0: leave LibTorch's setting)", 0, 1024);
}

DeviceParams DeviceParams::read(const graph::Params& p) {
  DeviceParams d;
  d.device = p.get_string("device");
  d.threads = int(p.get_int("threads"));
  return d;
}

void DeviceParams::set_threads(const std::string& who) const {
  models::set_intra_op_threads(threads, who);
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
