// The run report's charts, drawn with the SVG kit (report/svg.h) from what report/run_files.h reads:
// loss curves, throughput and gradient norm, validation accuracy, the distribution of the regulation
// weight eta per epoch, the learning-rate and xi schedules, the per-node profile and the confusion
// matrix. Each returns one <svg> element (empty when there is nothing to draw, where so noted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/metric_records.h"
#include "report/run_files.h"
#include "report/svg.h"

namespace sefar::report {

inline constexpr double kChartWidth = 900;

// Loss (total, supervised, unlabeled, mix) against the step, with the warm-up shaded and the epoch
// boundaries marked; running medians once there are many steps. Empty when no loss is finite.
struct LossView {
  std::string svg;
  std::string caption;
};
LossView loss_chart(const Metrics& m, SvgIds& ids);

// Two panels against the step: clips per second of step wall time, and the gradient norm before
// clipping. Empty when the steps carry neither.
std::string training_charts(const Metrics& m, SvgIds& ids);

// Top-1, top-5 and mean class accuracy against the epoch. Needs at least one evaluation.
std::string accuracy_chart(const Metrics& m);

// Eta per epoch, from the semi-supervised steps and the epoch records.
struct EtaEpoch {
  std::int64_t epoch = 0;
  std::vector<double> step_means;
  std::vector<double> hist;  // summed counts, equal bins over [0, 1]
  double mean = kNaN, above_half = kNaN, pseudo_accuracy = kNaN;
  int steps = 0;
};
std::vector<EtaEpoch> eta_by_epoch(const Metrics& m);
// A histogram per epoch where there is one, else a box plot of the per-step means; with the epoch
// mean and the share above 0.5. Says which of the two it drew. Needs at least one epoch.
std::string eta_chart(const std::vector<EtaEpoch>& epochs, bool& any_hist, bool& any_box);

// Learning rate; xi and the pseudo-label accuracy; against the step. Empty when neither lr nor xi is
// recorded.
std::string schedule_charts(const Metrics& m);

// Busy share of every node, and its busy, input-wait and blocked seconds; `busiest` highlighted.
std::string profile_chart(const std::vector<ProfileNode>& nodes, std::size_t busiest);

// The confusion matrix of `e` (square, not empty), rows coloured by the share of the true class,
// classes named by `names` where given; and its colour scale.
std::string confusion_chart(const io::EvalRecord& e, const std::vector<std::string>& names);
std::string colour_scale(SvgIds& ids);

}  // namespace sefar::report
