// split_source: emits the clips of a split list (official "path label" format), epoch after epoch,
// optionally shuffled per pass from the run seed. The stream is a pure function of the position in
// it (item k belongs to epoch k / per_epoch and pass k / list length), so a resumed run starts it
// at any position: NodeContext::resume {"next_item": k}.
//
// In a data-parallel job (NodeContext::world_size W > 1) every epoch's items are dealt round-robin:
// rank r takes the epoch's items r, r + W, r + 2W, ... With `shard: padded` (training) the last round
// is filled from the epoch's start, so every rank emits ceil(n / W) items per epoch and takes the
// same number of steps; `exact` (evaluation) emits each item once over all ranks; `none` gives every
// rank the whole stream. Positions stay global (items of the whole job), so a checkpoint resumes with
// any number of processes.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "graph/node.h"
#include "io/random.h"
#include "io/split_list.h"
#include "nodes/builtin.h"
#include "nodes/messages.h"
#include "util/errors.h"

namespace sefar::nodes {

namespace {

// How a data-parallel job deals the list out (the parameter's doc says what each does).
enum class Shard { padded, exact, none };
constexpr auto kShards = util::enum_table<Shard>(
    {
        {Shard::padded, "padded"},
        {Shard::exact, "exact"},
        {Shard::none, "none"},
    },
    "shard mode");

struct SplitSourceOptions {
  std::string list;
  std::string root;
  bool labeled = true;
  bool shuffle = false;
  std::int64_t epochs = 1;           // 0: endless
  std::int64_t items_per_epoch = 0;  // 0: the list's length
  std::int64_t limit = 0;
  bool check_exists = true;
  int num_classes = 0;
  bool strict = true;
  int strip_components = 0;
  Shard shard = Shard::padded;
};

class SplitSource final : public graph::Source {
 public:
  explicit SplitSource(const graph::NodeContext& ctx) : seed_(ctx.seed) {
    const auto& p = ctx.params;
    options_.list = p.get_string("list");
    options_.root = p.get_string("root");
    options_.labeled = p.get_bool("labeled");
    options_.shuffle = p.get_bool("shuffle");
    options_.epochs = p.get_int("epochs");
    options_.items_per_epoch = p.get_int("items_per_epoch");
    options_.limit = p.get_int("limit");
    options_.check_exists = p.get_bool("check_exists");
    options_.num_classes = int(p.get_int("num_classes"));
    options_.strict = p.get_bool("strict");
    options_.strip_components = int(p.get_int("strip_components"));
    options_.shard = p.get_enum("shard", kShards);
    if (options_.shard != Shard::none && ctx.world_size > 1) {
      rank_ = std::uint64_t(ctx.rank);
      world_ = std::uint64_t(ctx.world_size);
    }
    std::string root = options_.root;
    if (root.empty()) root = std::filesystem::path(options_.list).parent_path().string();
    io::SplitListOptions lo;
    lo.strict = options_.strict;
    lo.check_exists = options_.check_exists;
    lo.num_classes = options_.labeled ? options_.num_classes : 0;
    lo.strip_components = options_.strip_components;
    lo.allow_missing_label = !options_.labeled;
    try {
      list_ = io::load_split_list(options_.list, root, lo);
    } catch (const std::exception& e) {
      throw util::ParamError("list", fmt::format("{}", e.what()));
    }
    if (options_.limit > 0 && std::size_t(options_.limit) < list_.clips.size())
      list_.clips.resize(options_.limit);
    if (list_.clips.empty())
      throw util::ParamError("list", fmt::format("{} has no clips", options_.list));
    if (list_.problem_count || list_.missing_count)
      std::fprintf(stderr, "%s\n", fmt::format("split_source '{}': {}", ctx.id, list_.summary()).c_str());
    per_epoch_ = options_.items_per_epoch > 0 ? std::uint64_t(options_.items_per_epoch) : list_.clips.size();
    order_.resize(list_.clips.size());
    if (ctx.resume.is_object() && ctx.resume.contains("next_item")) {
      const auto& next = ctx.resume["next_item"];
      if (!next.is_number_unsigned() && !(next.is_number_integer() && next.get<std::int64_t>() >= 0))
        throw std::invalid_argument(
            fmt::format("resume state: \"next_item\" must be a count, got {}", next.dump()));
      const std::uint64_t global = next.get<std::uint64_t>();
      // This rank's first round not fully trained on (exact at epoch ends with any world size).
      local_ = global / per_epoch_ * local_per_epoch() + (global % per_epoch_ + world_ - 1) / world_;
      std::fprintf(stderr, "%s\n",
                   fmt::format("split_source '{}': resumed at item {} (epoch {}, {} of {} in it)", ctx.id,
                               global, global / per_epoch_ + 1, global % per_epoch_, per_epoch_)
                       .c_str());
    }
  }

  std::uint64_t items_per_pass() const override { return list_.clips.size(); }

  bool produce(Produced& out) override {
    const std::uint64_t local_epoch = local_per_epoch();
    const std::uint64_t epoch = local_ / local_epoch;
    if (options_.epochs > 0 && epoch >= std::uint64_t(options_.epochs)) return false;
    const std::uint64_t round = local_ % local_epoch;
    std::uint64_t offset = round * world_ + rank_;  // the item's place in its epoch
    if (offset >= per_epoch_) {
      if (options_.shard == Shard::exact) {     // this rank's share of the epoch is done
        if (rank_ >= per_epoch_) return false;  // more ranks than items: nothing for this one
        local_ = (epoch + 1) * local_epoch;
        return produce(out);
      }
      offset %= per_epoch_;  // padding: the epoch's first items again
    }
    const std::uint64_t k = epoch * per_epoch_ + offset;  // position in the whole job's stream
    const std::uint64_t pass = k / order_.size();
    if (pass != pass_ || !ordered_) order_pass(pass);
    std::size_t i = order_[k % order_.size()];
    const auto& entry = list_.clips[i];
    auto clip = std::make_shared<ClipRef>();
    clip->path = entry.path;
    clip->label = options_.labeled ? entry.label : -1;
    clip->index = i;
    clip->epoch = epoch;
    clip->pass = pass;
    // The job's position after this round: what every rank together has consumed once each rank
    // trained on its item of the round (a checkpoint stores the largest position + 1).
    clip->position = epoch * per_epoch_ + std::min(per_epoch_, (round + 1) * world_) - 1;
    clip->list_label = entry.label;
    ++local_;
    out.label = entry.path;
    out.value = ClipRefPtr(std::move(clip));
    return true;
  }

 private:
  // The order of a pass over the list; an epoch may take several (items_per_epoch above the list
  // length) or part of one. Every pass has its own order.
  void order_pass(std::uint64_t pass) {
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    if (options_.shuffle) io::Rng(seed_, pass, 0, io::Purpose::shuffle).shuffle(order_);
    pass_ = pass;
    ordered_ = true;
  }

  SplitSourceOptions options_;
  std::uint64_t seed_;
  io::SplitList list_;
  std::vector<std::size_t> order_;
  std::uint64_t per_epoch_ = 0;
  // Items of one epoch on this rank.
  std::uint64_t local_per_epoch() const { return (per_epoch_ + world_ - 1) / world_; }

  std::uint64_t rank_ = 0, world_ = 1;
  std::uint64_t local_ = 0;  // items this rank has emitted (its position in its own stream)
  std::uint64_t pass_ = 0;   // the pass order_ holds
  bool ordered_ = false;
};

}  // namespace

graph::NodeSpec split_source_spec() {
  return graph::NodeSpec("split_source")
      .doc("Emits the clips of a split list (\"path label\" per line), epoch after epoch.")
      .output("out", clip_message(), "clip path, label, list position and epoch")
      .param_split_list("list", std::nullopt, "split list file")
      .param_string("root", "", "data root joined in front of listed paths (default: the list's folder)")
      .param_bool("labeled", true, "false for an unlabeled list: its label column is ignored")
      .param_bool("shuffle", false, "shuffle the order every epoch (seeded by runtime.seed and the epoch)")
      .param_int("epochs", 1, "epochs to emit (0: endless, e.g. an unlabeled stream paced by the trainer)", 0,
                 1e6)
      .param_int("items_per_epoch", 0,
                 "clips per epoch (0: the list's length); longer epochs cycle the list, "
                 "reshuffled every pass",
                 0, 1e12)
      .param_int("limit", 0, "use only the first N clips (0: all)", 0, 1e9)
      .param_bool("check_exists", true,
                  "check every clip exists when loading: report the missing ones (skipped when read); none "
                  "existing is an error naming the folder looked in")
      .param_int(
          "num_classes", 0,
          "labels must be below it: a label at or above is a problem line (an error at start in strict "
          "mode); 0: not checked",
          0, 1e6)
      .param_bool("strict", true, "stop on a malformed line (false: report and skip it)")
      .param_int("strip_components", 0, "leading path components removed from listed paths", 0, 64)
      .param_choice(
          "shard", Shard::padded, kShards,
          "in a data-parallel job: padded (each rank its round-robin share of every epoch, the last "
          "round filled from the epoch's start so all ranks take the same number of steps), exact "
          "(each item once over all ranks: evaluation), none (every rank the whole list)")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<SplitSource>(ctx); });
}

}  // namespace sefar::nodes
