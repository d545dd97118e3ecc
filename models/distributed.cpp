#include "models/distributed.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/module.h>

// c10d's process-group headers compile only with their backend switched on (DESIGN §6). Both
// LibTorch builds have the Gloo backend, gloo's own headers come from libgloo-dev (the PyTorch 2.x
// wheel has none); the CUDA wheel has NCCL. CMake defines SEFAR_HAVE_GLOO / SEFAR_HAVE_NCCL from what
// it finds.
#if SEFAR_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if SEFAR_HAVE_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

extern char** environ;

namespace sefar::models {

namespace {

using Environment = std::map<std::string, std::string>;

const std::string* lookup(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() || it->second.empty() ? nullptr : &it->second;
}

long parse_int(const Environment& env, const std::string& name, long min, long max) {
  const std::string* text = lookup(env, name);
  if (!text) throw std::invalid_argument(fmt::format("environment: {} is not set", name));
  // Slurm writes per-node task counts as "2(x3)": the leading number is the count.
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  bool slurm_repeat = used > 0 && name == "SLURM_NTASKS_PER_NODE" && (*text)[used] == '(';
  if (used == 0 || (used != text->size() && !slurm_repeat))
    throw std::invalid_argument(fmt::format("environment: {}=\"{}\" is not an integer", name, *text));
  if (value < min || value > max)
    throw std::invalid_argument(fmt::format("environment: {}={} is outside [{}, {}]", name, value, min, max));
  return value;
}

long parse_int_or(const Environment& env, const std::string& name, long fallback, long min, long max) {
  return lookup(env, name) ? parse_int(env, name, min, max) : fallback;
}

void check_ranks(const DistributedEnv& d, const std::string& rank_var, const std::string& world_var) {
  if (d.rank >= d.world_size)
    throw std::invalid_argument(fmt::format("environment: {}={} but {}={} (ranks are 0..{})", rank_var,
                                            d.rank, world_var, d.world_size, d.world_size - 1));
  if (d.local_rank >= d.local_world_size || d.local_world_size > d.world_size)
    throw std::invalid_argument(fmt::format(
        "environment: local rank {} of {} processes on this machine does not fit a job of {} processes",
        d.local_rank, d.local_world_size, d.world_size));
}

}  // namespace

std::string DistributedEnv::describe() const {
  if (!distributed()) return "single process";
  return fmt::format("rank {} of {} (local {} of {}), store {}:{} via {}{}", rank, world_size, local_rank,
                     local_world_size, master_addr, master_port, launcher,
                     agent_store ? fmt::format(" (agent store, prefix {})", store_prefix) : "");
}

std::string first_slurm_host(const std::string& nodelist) {
  // Grammar: host[,host...], a host being prefix[ranges]suffix with ranges "a-b,c".
  if (nodelist.empty()) throw std::invalid_argument("SLURM_JOB_NODELIST is empty");
  std::size_t bracket = nodelist.find('['), comma = nodelist.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket))
    return nodelist.substr(0, comma);
  std::size_t close = nodelist.find(']', bracket);
  if (close == std::string::npos || bracket == 0)
    throw std::invalid_argument(fmt::format("SLURM_JOB_NODELIST \"{}\": unbalanced '['", nodelist));
  std::string ranges = nodelist.substr(bracket + 1, close - bracket - 1);
  std::string first = ranges.substr(0, std::min(ranges.find(','), ranges.find('-')));
  if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument(fmt::format("SLURM_JOB_NODELIST \"{}\": bad range \"{}\"", nodelist, ranges));
  // The suffix runs to the next host (a ',' outside brackets) or the end.
  std::size_t suffix_end = nodelist.find(',', close);
  return nodelist.substr(0, bracket) + first + nodelist.substr(close + 1, suffix_end - close - 1);
}

DistributedEnv distributed_env_from(const Environment& env) {
  DistributedEnv d;
  const bool torchrun = lookup(env, "TORCHELASTIC_RUN_ID") || lookup(env, "TORCHELASTIC_USE_AGENT_STORE");
  if (torchrun || lookup(env, "RANK") || lookup(env, "WORLD_SIZE")) {
    d.launcher = torchrun ? "torchrun" : "env";
    d.world_size = int(parse_int(env, "WORLD_SIZE", 1, 1 << 20));
    d.rank = int(parse_int(env, "RANK", 0, 1 << 20));
    d.local_rank = int(parse_int_or(env, "LOCAL_RANK", d.rank, 0, 1 << 20));
    d.local_world_size = int(parse_int_or(env, "LOCAL_WORLD_SIZE", d.world_size, 1, 1 << 20));
    check_ranks(d, "RANK", "WORLD_SIZE");
    if (d.world_size > 1 && !lookup(env, "MASTER_ADDR"))
      throw std::invalid_argument("environment: WORLD_SIZE > 1 needs MASTER_ADDR (the host of rank 0)");
    if (const auto* addr = lookup(env, "MASTER_ADDR")) d.master_addr = *addr;
    d.master_port = int(parse_int_or(env, "MASTER_PORT", 29500, 1, 65535));
    if (const auto* agent = lookup(env, "TORCHELASTIC_USE_AGENT_STORE"); agent && *agent == "True") {
      d.agent_store = true;
      d.store_prefix =
          fmt::format("/worker/attempt_{}", parse_int_or(env, "TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20));
    }
    return d;
  }
  if (lookup(env, "SLURM_PROCID") && lookup(env, "SLURM_NTASKS")) {
    d.launcher = "slurm";
    d.world_size = int(parse_int(env, "SLURM_NTASKS", 1, 1 << 20));
    d.rank = int(parse_int(env, "SLURM_PROCID", 0, 1 << 20));
    d.local_rank = int(parse_int_or(env, "SLURM_LOCALID", 0, 0, 1 << 20));
    d.local_world_size = int(parse_int_or(env, "SLURM_NTASKS_PER_NODE", d.world_size, 1, 1 << 20));
    check_ranks(d, "SLURM_PROCID", "SLURM_NTASKS");
    if (const auto* addr = lookup(env, "MASTER_ADDR")) {
      d.master_addr = *addr;
    } else if (const auto* nodes = lookup(env, "SLURM_JOB_NODELIST")) {
      d.master_addr = first_slurm_host(*nodes);
    } else if (const auto* nodes_old = lookup(env, "SLURM_NODELIST")) {
      d.master_addr = first_slurm_host(*nodes_old);
    } else if (d.world_size > 1) {
      throw std::invalid_argument("environment: Slurm job without SLURM_JOB_NODELIST or MASTER_ADDR");
    }
    d.master_port = int(parse_int_or(env, "MASTER_PORT", 29500, 1, 65535));
    return d;
  }
  return d;
}

DistributedEnv distributed_env_from_process() {
  Environment env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return distributed_env_from(env);
}

struct Communicator::Impl {
  DistributedEnv env;
  CommunicatorOptions options;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  // The process group's operations, bound to the concrete class: in LibTorch 1.13 it derives from
  // ProcessGroup, in 2.x from Backend, and both have these members (DESIGN §6). Each returns a
  // function that waits for the operation to finish.
  std::function<std::function<void()>(at::Tensor&)> all_reduce_sum;
  std::function<void(at::Tensor&, int)> broadcast;
  std::function<void()> barrier;

  template <class Group>
  void bind(c10::intrusive_ptr<Group> group) {
    all_reduce_sum = [group](at::Tensor& t) {
      std::vector<at::Tensor> one{t};  // one tensor: c10d reads a vector as one tensor per device
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      auto work = group->allreduce(one, opts);
      return std::function<void()>([work] { work->wait(); });
    };
    broadcast = [group](at::Tensor& t, int root) {
      std::vector<at::Tensor> one{t};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      group->broadcast(one, opts)->wait();
    };
    barrier = [group] { group->barrier()->wait(); };
  }
};

Communicator::Communicator(const DistributedEnv& env, const CommunicatorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->env = env;
  impl_->options = options;
  const bool cuda = options.device.rfind("cuda", 0) == 0;
  std::string backend = options.backend == "auto" ? (cuda ? "nccl" : "gloo") : options.backend;
  if (backend != "gloo" && backend != "nccl")
    throw std::invalid_argument(
        fmt::format("distributed backend \"{}\": valid are auto, gloo, nccl", backend));
  impl_->backend = backend;

  c10d::TCPStoreOptions store_options;
  store_options.port = std::uint16_t(env.master_port);
  store_options.numWorkers = std::size_t(env.world_size);
  store_options.timeout = options.timeout;
  if (env.agent_store) {
    // torchrun's agent hosts the store; the workers are clients under the agent's prefix.
    store_options.isServer = false;
    store_options.waitWorkers = false;
  } else {
    store_options.isServer = env.rank == 0;
    store_options.waitWorkers = true;
  }
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("distributed: cannot {} the store at {}:{}: {}",
                                         store_options.isServer ? "host" : "reach", env.master_addr,
                                         env.master_port, e.what()));
  }
  impl_->store = c10::make_intrusive<c10d::PrefixStore>(env.agent_store ? env.store_prefix : "sefar", tcp);

  if (backend == "gloo") {
#if SEFAR_HAVE_GLOO
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
    if (interface && *interface)
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (loopback)
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    gloo_options->threads = 2;
    impl_->bind(
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, gloo_options));
#else
    throw std::invalid_argument(
        "distributed backend gloo: this LibTorch build has no Gloo headers (use nccl)");
#endif
  } else {
#if SEFAR_HAVE_NCCL
    if (!cuda) throw std::invalid_argument("distributed backend nccl needs a CUDA device");
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = options.timeout;
    impl_->bind(
        c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, nccl_options));
#else
    throw std::invalid_argument("distributed backend nccl: this LibTorch build has no NCCL (use gloo)");
#endif
  }
}

Communicator::~Communicator() = default;

int Communicator::rank() const {
  return impl_->env.rank;
}
int Communicator::world_size() const {
  return impl_->env.world_size;
}
const std::string& Communicator::backend() const {
  return impl_->backend;
}

namespace {

std::vector<at::Tensor> module_tensors(torch::nn::Module& module) {
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters(true)) tensors.push_back(p);
  for (auto& b : module.buffers(true)) tensors.push_back(b);
  return tensors;
}

}  // namespace

void Communicator::broadcast_module(torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  // One flat buffer per dtype: c10d broadcasts one tensor per call.
  std::map<c10::ScalarType, std::vector<at::Tensor>> by_type;
  for (auto& t : module_tensors(module)) by_type[t.scalar_type()].push_back(t);
  for (auto& [type, tensors] : by_type) {
    std::vector<at::Tensor> flat_parts;
    for (auto& t : tensors) flat_parts.push_back(t.detach().reshape({-1}));
    at::Tensor flat = at::cat(flat_parts);
    impl_->broadcast(flat, 0);
    std::int64_t offset = 0;
    for (auto& t : tensors) {
      t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

double Communicator::average_gradients(torch::nn::Module& module) {
  const auto start = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  // Buckets in reverse registration order (the order backward produces gradients), as DDP does.
  std::vector<at::Tensor> grads;
  auto params = module.parameters(true);
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->grad().defined()) grads.push_back(it->mutable_grad());
  struct Bucket {
    std::vector<at::Tensor> grads;
    at::Tensor flat;
    std::function<void()> wait;
  };
  std::vector<Bucket> buckets;
  std::size_t bytes = 0;
  for (auto& g : grads) {
    if (buckets.empty() || bytes >= impl_->options.bucket_bytes ||
        buckets.back().grads.front().scalar_type() != g.scalar_type()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().grads.push_back(g);
    bytes += std::size_t(g.numel()) * g.element_size();
  }
  // Start every bucket, then wait: communication of one bucket overlaps flattening the next.
  for (auto& b : buckets) {
    std::vector<at::Tensor> parts;
    for (auto& g : b.grads) parts.push_back(g.reshape({-1}));
    b.flat = at::cat(parts);
    b.wait = impl_->all_reduce_sum(b.flat);
  }
  const double scale = 1.0 / double(impl_->env.world_size);
  for (auto& b : buckets) {
    b.wait();
    b.flat.mul_(scale);
    std::int64_t offset = 0;
    for (auto& g : b.grads) {
      g.copy_(b.flat.narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Communicator::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  for (auto& t : tensors) impl_->all_reduce_sum(t)();
}

std::vector<std::string> Communicator::all_gather_strings(const std::string& key, const std::string& value) {
  const std::string prefix = "gather/" + key + "/";
  impl_->store->set(prefix + std::to_string(rank()), std::vector<std::uint8_t>(value.begin(), value.end()));
  std::vector<std::string> out;
  for (int r = 0; r < world_size(); ++r) {
    auto bytes = impl_->store->get(prefix + std::to_string(r));  // waits for the key
    out.emplace_back(bytes.begin(), bytes.end());
  }
  return out;
}

void Communicator::barrier() {
  impl_->barrier();
}

bool Communicator::any(bool flag) {
  // On the training device: NCCL reduces CUDA tensors only.
  at::Tensor t =
      at::full({1}, flag ? 1.0f : 0.0f, at::TensorOptions(at::kFloat).device(impl_->options.device));
  impl_->all_reduce_sum(t)();
  return t.item<float>() > 0;
}

}  // namespace sefar::models
