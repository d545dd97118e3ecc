#include "models/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/metric_records.h"
#include "io/safetensors.h"
#include "models/device.h"
#include "models/distributed.h"
#include "models/optimizer.h"
#include "models/train_step.h"
#include "models/timesformer.h"
#include "models/weights.h"

namespace sefar::models {

using json = nlohmann::json;

io::StepRecord StepStats::record() const {
  io::StepRecord r;
  r.step = step;
  r.epoch = epoch + 1;  // records number epochs from 1, as the console, the checkpoints and the report do
  r.lr = lr;
  r.xi = xi;
  r.loss = loss;
  r.loss_sup = loss_sup;
  r.loss_un = loss_un;
  r.loss_mix = loss_mix;
  r.labeled = labeled;
  r.unlabeled = unlabeled;
  r.semi = semi;
  // Inside an accumulation window only the last step has a gradient norm (the summed gradients').
  if (updates()) r.grad_norm = grad_norm;
  if (accumulate > 1) r.micro = micro;
  if (nonfinite) r.skipped = "nonfinite";
  if (comm_seconds > 0) r.comm_seconds = comm_seconds;
  if (semi) {
    r.eta_mean = eta_mean;
    r.eta_above_half = eta_above_half;
    r.mix_lambda = mix_lambda;
    if (pseudo_accuracy >= 0) r.pseudo_accuracy = pseudo_accuracy;
  }
  return r;
}

at::Tensor Optimizer::grad_norm(torch::nn::Module& model) {
  at::NoGradGuard no_grad;
  at::Tensor total;
  for (auto& p : model.parameters(true))
    if (p.grad().defined()) {
      auto sq = p.grad().to(at::kDouble).pow(2).sum();
      total = total.defined() ? total + sq : sq;
    }
  return total.defined() ? total.sqrt() : at::zeros({}, at::kDouble);
}

void Optimizer::step(torch::nn::Module& model, const at::Tensor& norm, const at::Tensor& apply) {
  at::NoGradGuard no_grad;
  auto params = model.named_parameters(true);
  // Clipping: scale by clip / (norm + 1e-6) where the norm exceeds the clip, else by exactly 1.
  at::Tensor clip_scale;
  if (clip_grad_norm > 0)
    clip_scale = at::where(norm > clip_grad_norm, at::full_like(norm, clip_grad_norm).div_(norm + 1e-6),
                           at::ones_like(norm));
  ++steps;
  auto keep = [&](at::Tensor& state, const at::Tensor& updated) { state.copy_(at::where(apply, updated, state)); };
  for (auto& item : params) {
    at::Tensor& p = item.value();
    if (!p.grad().defined()) continue;
    at::Tensor g = clip_scale.defined() ? p.grad().mul(clip_scale) : p.grad();
    if (adamw) {
      at::Tensor decayed = weight_decay != 0 ? p.mul(1 - lr * weight_decay) : p;
      auto m = momentum_buffers.find(item.key());
      if (m == momentum_buffers.end()) m = momentum_buffers.emplace(item.key(), at::zeros_like(p)).first;
      auto v = second_moments.find(item.key());
      if (v == second_moments.end()) v = second_moments.emplace(item.key(), at::zeros_like(p)).first;
      at::Tensor m_new = m->second.mul(beta1).add_(g, 1 - beta1);
      at::Tensor v_new = v->second.mul(beta2).addcmul_(g, g, 1 - beta2);
      double c1 = 1 - std::pow(beta1, double(steps)), c2 = 1 - std::pow(beta2, double(steps));
      auto denom = (v_new / c2).sqrt_().add_(eps);
      keep(p, decayed.addcdiv(m_new, denom, -lr / c1));
      keep(m->second, m_new);
      keep(v->second, v_new);
      continue;
    }
    if (weight_decay != 0) g = g.add(p, weight_decay);
    if (momentum != 0) {
      auto it = momentum_buffers.find(item.key());
      // A first buffer of zeros: 0 * momentum + g is exactly g, PyTorch's first buffer.
      if (it == momentum_buffers.end()) it = momentum_buffers.emplace(item.key(), at::zeros_like(p)).first;
      at::Tensor buf = it->second.mul(momentum).add_(g);
      keep(it->second, buf);
      g = it->second;
    }
    keep(p, p.add(g, -lr));
  }
}

void Optimizer::zero_grad(torch::nn::Module& model) {
  for (auto& p : model.parameters(true))
    if (p.grad().defined()) p.mutable_grad().zero_();
}

namespace {

at::CPUGeneratorImpl* cpu_generator() {
  return at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
}

}  // namespace

Trainer::Trainer(const TrainerOptions& options)
    : options_(options), device_(resolve_device(options.device)), initial_weights_(std::make_unique<json>()) {
  options_.model.validate();
  if (options_.epochs < 1) throw std::invalid_argument("trainer: epochs must be >= 1");
  if (options_.warmup_epochs < 0 || options_.warmup_epochs > options_.epochs)
    throw std::invalid_argument("trainer: warmup_epochs must be in [0, epochs]");
  if (options_.teacher_passes < 1) throw std::invalid_argument("trainer: teacher_passes must be >= 1");
  if (options_.accumulate < 1) throw std::invalid_argument("trainer: accumulate must be >= 1");
  {
    // Parameter initialisation draws from the CPU generator: seed it from the run seed.
    auto* gen = cpu_generator();
    std::lock_guard<std::mutex> lock(gen->mutex_);
    gen->set_current_seed(io::derive_seed(options_.seed, 0, 0, io::Purpose::init));
  }
  student_ = make_model(options_.model);
  student_->to(device_);
  if (options_.optimizer != "sgd" && options_.optimizer != "adamw")
    throw std::invalid_argument(fmt::format("trainer: unknown optimizer \"{}\" (sgd, adamw)", options_.optimizer));
  optimizer_ = std::make_unique<Optimizer>();
  optimizer_->adamw = options_.optimizer == "adamw";
  optimizer_->clip_grad_norm = options_.clip_grad_norm;
  optimizer_->lr = options_.lr;
  optimizer_->momentum = options_.momentum;
  optimizer_->weight_decay = options_.weight_decay;
}

Trainer::~Trainer() = default;

void Trainer::set_initial_weights(json report) {
  *initial_weights_ = std::move(report);
}

void Trainer::set_accumulate(int steps) {
  if (steps < 1) throw std::invalid_argument(fmt::format("trainer: accumulate {} (must be >= 1)", steps));
  if (steps != options_.accumulate && step_ % steps != 0)
    throw std::invalid_argument(
        fmt::format("trainer: accumulate {} set at step {}, inside a window", steps, step_));
  options_.accumulate = steps;
}

at::Tensor Trainer::to_device(const at::Tensor& t) const {
  return upload(t, device_);
}

void Trainer::set_communicator(std::shared_ptr<Communicator> communicator) {
  communicator_ = std::move(communicator);
  if (!communicator_) return;
  communicator_->broadcast_module(*student_);
  if (teacher_) communicator_->broadcast_module(*teacher_);
  if (communicator_->rank() > 0) {
    // Dropout and stochastic depth draw from the CPU generator: each rank its own stream (rank 0
    // keeps the single-process one).
    auto* gen = cpu_generator();
    std::lock_guard<std::mutex> lock(gen->mutex_);
    gen->set_current_seed(io::derive_seed(options_.seed, 1, std::uint64_t(communicator_->rank()), io::Purpose::init));
  }
}

MultiGranularViT& Trainer::ensure_teacher() {
  if (teacher_) return *teacher_;
  teacher_ = make_model(options_.model);
  teacher_->to(device_);
  load_state_dict(*teacher_, state_dict(*student_));
  for (auto& p : teacher_->parameters(true)) p.set_requires_grad(false);
  return *teacher_;
}

StepStats Trainer::step(int epoch, const std::vector<at::Tensor>& labeled, const at::Tensor& labels,
                        const std::vector<at::Tensor>* weak, const std::vector<at::Tensor>* strong,
                        const at::Tensor* channel_scale, const at::Tensor* truth) {
  const bool semi = options_.semi_supervised && weak && strong && epoch >= options_.warmup_epochs;
  TrainStep s = make_train_step(*this, epoch, options_.epochs, options_.warmup_epochs, semi, labeled, labels,
                                weak, strong, channel_scale, truth);
  if (semi) {
    teacher_forward(*this, s, options_.teacher_passes);
    regulate(s, options_.regulation, options_.threshold);
    if (options_.token_mix) tube_token_mix(*this, s, options_.mix_alpha);
  }
  student_forward(*this, s, options_.inject_nonfinite_step);
  regulated_loss(s, options_.gamma_un, options_.gamma_mix, options_.mix_compare_logits);
  backward(*this, s);
  OptimizerOptions o;
  o.kind = options_.optimizer;
  o.lr = options_.lr;
  o.momentum = options_.momentum;
  o.weight_decay = options_.weight_decay;
  o.clip_grad_norm = options_.clip_grad_norm;
  o.milestones = options_.milestones;
  o.factors = options_.factors;
  optimizer_step(*this, s, o);
  ema_step(*this, s, options_.ema_decay);
  read_step_stats(*this, s);
  finish_step();
  return s.stats;
}

AutocastGuard Trainer::autocast() const {
  return AutocastGuard(device_.type(), options_.bf16, at::kBFloat16);
}

at::Tensor Trainer::predict(const std::vector<std::vector<at::Tensor>>& view_sets) {
  MultiGranularViT& model = teacher_ ? *teacher_ : *student_;
  at::NoGradGuard no_grad;
  model.eval();
  at::Tensor sum;
  for (const auto& set : view_sets) {
    std::vector<at::Tensor> views;
    for (const auto& v : set) views.push_back(to_device(v));
    at::Tensor logits;
    {
      auto autocast = this->autocast();
      logits = model.forward(views).logits;
    }
    auto probs = at::softmax(logits.to(at::kFloat), 1);
    sum = sum.defined() ? sum + probs : probs;
  }
  return (sum / double(view_sets.size())).to(at::kCPU);
}

void Trainer::save(const std::string& path, const json& extra) const {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : state_dict(*student_)) tensors.emplace_back("student." + name, t.to(at::kCPU));
  if (teacher_)
    for (const auto& [name, t] : state_dict(*teacher_)) tensors.emplace_back("teacher." + name, t.to(at::kCPU));
  for (const auto& [name, t] : optimizer_->momentum_buffers) tensors.emplace_back("optim.momentum." + name, t.to(at::kCPU));
  for (const auto& [name, t] : optimizer_->second_moments) tensors.emplace_back("optim.second." + name, t.to(at::kCPU));
  // Inside an accumulation window: the gradients summed so far, so that a resumed run adds the
  // window's remaining steps to them.
  if (window_steps() > 0)
    for (const auto& item : student_->named_parameters(true))
      if (item.value().grad().defined())
        tensors.emplace_back("grad." + item.key(), item.value().grad().to(at::kCPU));
  {
    auto* gen = cpu_generator();
    std::lock_guard<std::mutex> lock(gen->mutex_);
    tensors.emplace_back("rng.cpu", gen->get_state());
  }
  if (device_.is_cuda()) {
    // Drop path and dropout on the device draw from its generator.
    auto gen = at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(gen.mutex());
    tensors.emplace_back("rng.cuda", gen.get_state());
  }
  json sidecar = extra;
  sidecar["step"] = step_;
  sidecar["optimizer_steps"] = optimizer_->steps;
  sidecar["accumulate"] = options_.accumulate;
  sidecar["has_teacher"] = bool(teacher_);
  sidecar["model"] = model_config_to_json(options_.model);
  sidecar["optimizer"] = optimizer_->adamw ? "adamw" : "sgd";
  // The sidecar inside the tensors file is the one that counts (io/checkpoint.h); the .json copy
  // follows.
  io::save_safetensors(path + ".safetensors", tensors,
                       {{"format", "sefar-checkpoint"}, {"sidecar", sidecar.dump()}});
  io::write_text_atomic(path + ".json", sidecar.dump(2) + "\n");
}

json Trainer::load(const std::string& path) {
  // The optimiser's kind is the pipeline's (a resumed run's pipeline is checked to be the same).
  json sidecar = io::read_checkpoint_sidecar(path);
  // Accumulation windows are counted in steps: a checkpoint taken inside one resumes with the same
  // window length (its summed gradients restored), one taken between windows with any length that
  // does not put the step inside a window.
  const auto saved_step = sidecar.value("step", std::int64_t(0));
  const int saved_accumulate = sidecar.value("accumulate", 1);
  if (saved_accumulate != options_.accumulate &&
      (saved_step % saved_accumulate != 0 || saved_step % options_.accumulate != 0))
    throw std::invalid_argument(
        fmt::format("checkpoint at step {} with accumulate {} cannot continue with accumulate {} (inside "
                    "an accumulation window)",
                    saved_step, saved_accumulate, options_.accumulate));
  auto tensors = io::load_safetensors(path + ".safetensors");
  auto take = [&](const std::string& prefix) {
    std::map<std::string, at::Tensor> part;
    for (const auto& [name, t] : tensors)
      if (name.rfind(prefix, 0) == 0) part[name.substr(prefix.size())] = t;
    return part;
  };
  LoadOptions strict;
  load_state_dict(*student_, take("student."), strict);
  if (sidecar.value("has_teacher", false)) {
    ensure_teacher();
    load_state_dict(*teacher_, take("teacher."), strict);
  }
  optimizer_->momentum_buffers.clear();
  for (auto& [name, t] : take("optim.momentum.")) optimizer_->momentum_buffers[name] = t.to(device_);
  optimizer_->second_moments.clear();
  for (auto& [name, t] : take("optim.second.")) optimizer_->second_moments[name] = t.to(device_);
  optimizer_->steps = sidecar.value("optimizer_steps", std::int64_t(0));
  if (auto it = tensors.find("rng.cpu"); it != tensors.end()) {
    auto* gen = cpu_generator();
    std::lock_guard<std::mutex> lock(gen->mutex_);
    gen->set_state(*it->second.contiguous().unsafeGetTensorImpl());
  }
  if (auto it = tensors.find("rng.cuda"); it != tensors.end() && device_.is_cuda()) {
    auto gen = at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(it->second.contiguous());
  }
  step_ = sidecar.value("step", std::int64_t(0));
  for (auto& item : student_->named_parameters(true)) {
    auto it = tensors.find("grad." + item.key());
    if (it != tensors.end() && window_steps() > 0)
      item.value().mutable_grad() = it->second.to(device_);
    else if (item.value().grad().defined())
      item.value().mutable_grad().zero_();
  }
  return sidecar;
}

Evaluation::Evaluation(int num_classes)
    : classes_(num_classes), confusion_(num_classes, std::vector<std::int64_t>(num_classes, 0)) {}

void Evaluation::add(const at::Tensor& probs, const at::Tensor& labels) {
  auto p = probs.to(at::kCPU);
  auto l = labels.to(at::kCPU).to(at::kLong);
  const int k = std::min(5, classes_);
  auto top = std::get<1>(p.topk(k, 1));
  for (std::int64_t b = 0; b < p.size(0); ++b) {
    std::int64_t truth = l[b].item<std::int64_t>();
    if (truth < 0 || truth >= classes_) continue;
    std::int64_t pred = top[b][0].item<std::int64_t>();
    ++count_;
    top1_ += pred == truth;
    for (int j = 0; j < k; ++j) top5_ += top[b][j].item<std::int64_t>() == truth;
    ++confusion_[truth][pred];
  }
}

std::vector<std::int64_t> Evaluation::counts() const {
  std::vector<std::int64_t> out{count_, top1_, top5_};
  for (const auto& row : confusion_) out.insert(out.end(), row.begin(), row.end());
  return out;
}

void Evaluation::set_counts(const std::vector<std::int64_t>& counts) {
  if (counts.size() != 3 + std::size_t(classes_) * std::size_t(classes_))
    throw std::invalid_argument(fmt::format("evaluation: {} counts for {} classes", counts.size(), classes_));
  count_ = counts[0];
  top1_ = counts[1];
  top5_ = counts[2];
  auto it = counts.begin() + 3;
  for (auto& row : confusion_)
    for (auto& cell : row) cell = *it++;
}

double Evaluation::top1() const { return count_ ? double(top1_) / count_ : 0.0; }
double Evaluation::top5() const { return count_ ? double(top5_) / count_ : 0.0; }

std::vector<double> Evaluation::per_class_accuracy() const {
  std::vector<double> out;
  for (int c = 0; c < classes_; ++c) {
    std::int64_t n = 0;
    for (auto x : confusion_[c]) n += x;
    out.push_back(n ? double(confusion_[c][c]) / n : 0.0);
  }
  return out;
}

double Evaluation::mean_class_accuracy() const {
  double sum = 0;
  int present = 0;
  for (int c = 0; c < classes_; ++c) {
    std::int64_t n = 0;
    for (auto x : confusion_[c]) n += x;
    if (n) {
      sum += double(confusion_[c][c]) / n;
      ++present;
    }
  }
  return present ? sum / present : 0.0;
}

io::EvalRecord Evaluation::record() const {
  io::EvalRecord r;
  r.clips = count_;
  r.top1 = top1();
  r.top5 = top5();
  r.mean_class_accuracy = mean_class_accuracy();
  r.per_class_accuracy = per_class_accuracy();
  r.confusion = confusion_;
  return r;
}

}  // namespace sefar::models
