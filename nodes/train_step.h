// The training-step message and the shape every step node shares: one `train_step` input, one
// `train_step` output, a named shared model, one step at a time. A step node is a schema plus one
// stage of models/train_step.h; StepStageNode runs the stage and passes the step on.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "graph/node.h"
#include "graph/profile.h"
#include "models/device.h"
#include "models/train_step.h"

namespace sefar::nodes {

inline graph::MessageType train_step_message() {
  return graph::message<models::TrainStepPtr>("train_step");
}

// The model type of the shared student/teacher pair (nodes/sefar_model.cpp).
inline constexpr const char kSefarModelType[] = "sefar_model";

// The profile's device time of a step node on a CUDA device (models::DeviceEventTimer).
class StepDeviceTimer final : public graph::DeviceTimer {
 public:
  explicit StepDeviceTimer(std::unique_ptr<models::DeviceEventTimer> timer) : timer_(std::move(timer)) {}
  void begin() override { timer_->begin(); }
  void end() override { timer_->end(); }
  double seconds() override { return timer_->seconds(); }

 private:
  std::unique_ptr<models::DeviceEventTimer> timer_;
};

class StepStageNode final : public graph::Node {
 public:
  using Stage = std::function<void(models::TrainStep&)>;
  // `trainer`: the shared model the stage works on, when it names one: on a CUDA device the stage's
  // bodies are then timed with CUDA events too.
  explicit StepStageNode(Stage stage, const models::Trainer* trainer = nullptr) : stage_(std::move(stage)) {
    if (!trainer) return;
    if (auto timer = models::make_device_event_timer(trainer->device()))
      timer_ = std::make_shared<StepDeviceTimer>(std::move(timer));
  }
  void process(int, const graph::Item& item, graph::Output& out) override {
    const auto& step = item.as<models::TrainStepPtr>();
    stage_(*step);
    out.emit(0, step);
  }
  std::shared_ptr<graph::DeviceTimer> device_timer() const override { return timer_; }

 private:
  Stage stage_;
  std::shared_ptr<graph::DeviceTimer> timer_;
};

// The schema every step node starts from: ports in/out, serial, completes its step when the run is
// stopped, runs inline (the whole chain of stages runs on the thread of the loop that started the
// step, as one function call would). `with_model`: the node names the shared model (parameter "model").
inline graph::NodeSpec step_stage_spec(std::string type, std::string doc, bool with_model = true) {
  graph::NodeSpec spec(std::move(type));
  spec.doc(std::move(doc))
      .input("in", train_step_message(), "the training step so far")
      .output("out", train_step_message(), "the step with this stage done")
      .serial()
      .completes_on_stop()
      .runs_inline();
  if (with_model)
    spec.param_model("model", "net", kSefarModelType, "the shared student/teacher (an entry of \"models\")");
  return spec;
}

}  // namespace sefar::nodes
