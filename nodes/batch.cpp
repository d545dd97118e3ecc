// batch: collates views of consecutive clips (in source order) into batches: per draw and view a
// [B, 3, T, S, S] tensor, labels [B], the strong draw's channel scales [B, 3].
#include <ATen/ops/empty.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <fmt/format.h>

#include "graph/node.h"
#include "models/device.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"
#include "util/errors.h"

namespace sefar::nodes {

namespace {

// Stacked into page-locked memory when asked: a copy from there to a GPU is asynchronous.
at::Tensor stack(const std::vector<at::Tensor>& parts, bool pinned) {
  if (!pinned) return at::stack(parts);
  std::vector<std::int64_t> shape{std::int64_t(parts.size())};
  for (auto d : parts[0].sizes()) shape.push_back(d);
  at::Tensor out = at::empty(shape, parts[0].options().pinned_memory(true));
  at::stack_out(out, parts);
  return out;
}

}  // namespace

ViewBatch collate(const std::vector<ClipViewsPtr>& clips, bool pinned) {
  if (clips.empty()) throw std::invalid_argument("collate: no clips");
  ViewBatch batch;
  const std::size_t draws = clips[0]->draws.size();
  std::vector<std::int64_t> labels;
  std::vector<float> scales;
  for (const auto& c : clips) {
    if (c->draws.size() != draws || (draws && c->draws[0].size() != clips[0]->draws[0].size()))
      throw std::invalid_argument(fmt::format("collate: clip {} has a different view layout", c->clip.path));
    batch.clips.push_back(c->clip);
    labels.push_back(c->clip.label);
    scales.insert(scales.end(), c->channel_scale.begin(), c->channel_scale.end());
  }
  for (std::size_t d = 0; d < draws; ++d) {
    std::vector<at::Tensor> views;
    for (std::size_t v = 0; v < clips[0]->draws[d].size(); ++v) {
      std::vector<at::Tensor> parts;
      parts.reserve(clips.size());
      for (const auto& c : clips) parts.push_back(c->draws[d][v]);
      views.push_back(stack(parts, pinned));
    }
    batch.draws.push_back(std::move(views));
  }
  batch.labels = at::tensor(labels, at::kLong);
  batch.channel_scale = at::tensor(scales, at::kFloat).reshape({std::int64_t(clips.size()), 3});
  batch.epoch = clips[0]->clip.epoch;
  return batch;
}

namespace {

struct BatchOptions {
  std::size_t size = 8;
  bool drop_last = false;
  bool pinned = false;
};

bool pin_memory(const std::string& choice) {
  if (choice == "auto") return models::pinned_memory_available();
  if (choice == "yes" && !models::pinned_memory_available())
    throw util::ParamError("pin_memory", "\"yes\" needs a CUDA device and a LibTorch built with CUDA (use auto)");
  return choice == "yes";
}

class BatchNode final : public graph::Node {
 public:
  explicit BatchNode(const graph::NodeContext& ctx)
      : options_{std::size_t(ctx.params.get_int("size")), ctx.params.get_bool("drop_last"),
                 pin_memory(ctx.params.get_string("pin_memory"))} {}

  void process(int, const graph::Item& item, graph::Output& out) override {
    if (item.skipped()) return;  // a bad clip upstream: the batch fills from the next ones
    // Batches never span epochs: the last one of an epoch may be short (or dropped).
    if (!pending_.empty() && item.as<ClipViewsPtr>()->clip.epoch != pending_.front().as<ClipViewsPtr>()->clip.epoch) {
      if (options_.drop_last) pending_.clear();
      else flush(out);
    }
    pending_.push_back(item);
    if (pending_.size() == options_.size) flush(out);
  }
  void finish(graph::Output& out) override {
    if (!pending_.empty() && !options_.drop_last) flush(out);
    pending_.clear();
  }
  std::size_t items_held() const override { return options_.size; }

 private:
  void flush(graph::Output& out) {
    std::vector<ClipViewsPtr> clips;
    for (const auto& i : pending_) clips.push_back(i.as<ClipViewsPtr>());
    auto batch = std::make_shared<ViewBatch>(collate(clips, options_.pinned));
    auto label = std::make_shared<const std::string>(
        fmt::format("batch {} ({} clips from {})", next_seq_, clips.size(), clips.front()->clip.path));
    out.emit_item(0, graph::combine(next_seq_++, std::any(ViewBatchPtr(std::move(batch))), pending_, label));
    pending_.clear();
  }

  BatchOptions options_;
  std::vector<graph::Item> pending_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace

graph::NodeSpec batch_spec() {
  return graph::NodeSpec("batch")
      .doc("Collates the views of consecutive clips, in source order, into batches; a batch never spans two "
           "epochs.")
      .ordered_input("in", views_message(), "views of single clips")
      .output("out", batch_message(), "batches: per draw and view [B, 3, T, S, S], labels, channel scales")
      .serial()
      .renumbers()
      .param_int("size", 8, "clips per batch", 1, 1 << 16)
      .param_bool("drop_last", false, "drop the incomplete last batch of every epoch")
      .param_choice("pin_memory", "auto", {"auto", "yes", "no"},
                    "stack the batch in page-locked host memory, so that its copy to a GPU runs asynchronously "
                    "on a side stream (auto: where a CUDA device is present)")
      .may_change_on_resume()
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<BatchNode>(ctx); });
}

}  // namespace sefar::nodes
