// Data-parallel training over processes with PyTorch's c10d: where a process sits in the job (read
// from torchrun's, Slurm's or plain environment variables), and a Communicator holding the c10d store
// and process group (Gloo on CPU, NCCL on CUDA builds). No home-made transport: every byte goes
// through c10d.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace torch::nn {
class Module;
}

namespace sefar::models {

// Where this process sits in the job, and where the rendezvous store lives.
struct DistributedEnv {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // "single" (no launcher), "torchrun", "env" (RANK/WORLD_SIZE set by hand) or "slurm".
  std::string launcher = "single";
  // torchrun's agent already hosts the TCPStore: every rank connects as a client under this prefix.
  bool agent_store = false;
  std::string store_prefix;

  bool distributed() const { return world_size > 1; }
  std::string describe() const;
};

// Reads the environment: torchrun (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT), plain RANK/WORLD_SIZE, or
// Slurm (SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS, SLURM_NTASKS_PER_NODE, SLURM_JOB_NODELIST; the
// first node hosts the store unless MASTER_ADDR says otherwise). Nothing set: a single process.
// Throws std::invalid_argument naming the variable when a value is malformed or inconsistent.
DistributedEnv distributed_env_from(const std::map<std::string, std::string>& environment);
DistributedEnv distributed_env_from_process();

// The first host of a Slurm node list: "node[03-05,9],gpu1" -> "node03". Throws on a malformed list.
std::string first_slurm_host(const std::string& nodelist);

struct CommunicatorOptions {
  std::string backend = "auto";  // auto (gloo on CPU, nccl on CUDA) | gloo | nccl
  std::string device = "cpu";    // the training device; nccl needs CUDA tensors
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::size_t bucket_bytes = 25u << 20;  // gradient all-reduce bucket size (PyTorch DDP's default)
};

// Collective operations of one job. Construction connects every rank (rank 0 hosts the TCPStore
// unless torchrun's agent does) and blocks until all have joined or the timeout passes.
class Communicator {
 public:
  Communicator(const DistributedEnv& env, const CommunicatorOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;

  // Copies rank 0's parameters and buffers into every rank's module.
  void broadcast_module(torch::nn::Module& module);
  // Averages the gradients of `module` over ranks: flattened into buckets of bucket_bytes, every
  // bucket's all-reduce (SUM; Gloo has no AVG) started before the first is awaited, then divided.
  // Returns the seconds spent.
  double average_gradients(torch::nn::Module& module);
  // In-place SUM over ranks of same-shaped tensors on every rank.
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  // Every rank's string, in rank order (through the store: for small per-rank reports).
  std::vector<std::string> all_gather_strings(const std::string& key, const std::string& value);
  void barrier();
  // True on every rank when `flag` is true on any (e.g. a stop request seen by one process).
  bool any(bool flag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sefar::models
