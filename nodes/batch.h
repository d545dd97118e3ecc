// The batch message: what the batch node emits and the training and evaluation nodes read.
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "nodes/views.h"

namespace sefar::nodes {

struct ViewBatch {
  std::vector<ClipRef> clips;
  std::vector<std::vector<at::Tensor>> draws;  // [draw][view] -> [B, 3, T_i, S, S]
  at::Tensor labels;                           // [B] int64 (-1 for unlabeled clips)
  at::Tensor channel_scale;                    // [B, 3] strong-draw channel dropout multipliers
  std::uint64_t epoch = 0;                     // epoch of the first clip
  std::int64_t size() const { return std::int64_t(clips.size()); }
};
using ViewBatchPtr = std::shared_ptr<const ViewBatch>;
inline graph::MessageType batch_message() { return graph::message<ViewBatchPtr>("batch"); }

// Stacks clips with the same view layout into one batch; `pinned`: in page-locked memory
// (models::pinned_memory_available()).
ViewBatch collate(const std::vector<ClipViewsPtr>& clips, bool pinned = false);

}  // namespace sefar::nodes
