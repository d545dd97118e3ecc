// The message the views node emits (kept apart from nodes/messages.h: it needs ATen).
#pragma once

#include <array>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "nodes/messages.h"

namespace sefar::nodes {

struct ClipViews {
  ClipRef clip;
  // One view set per draw, each view a float tensor [3, T_i, S, S]:
  //  train/eval: one set; weak_strong: [weak, strong]; test: N temporal x M spatial sets.
  std::vector<std::vector<at::Tensor>> draws;
  // weak_strong: channel dropout of the strong draw, as multipliers (0, or 1/(1-p) for kept
  // channels). Kept separate so Tube TokenMix can use the perturbed strong views without dropout.
  std::array<float, 3> channel_scale{1.0f, 1.0f, 1.0f};
};
using ClipViewsPtr = std::shared_ptr<const ClipViews>;
inline graph::MessageType views_message() { return graph::message<ClipViewsPtr>("views"); }

}  // namespace sefar::nodes
