// Data-parallel training (models/distributed.h): where a process sits in a job, read from torchrun's,
// Slurm's or plain environment variables; split sources dealing each epoch to the ranks; and a real
// two-process Gloo job over loopback whose step matches one process with the combined batch.
#include <ATen/ATen.h>  // before doctest: glog's CHECK must not replace doctest's

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "graph/node.h"
#include "graph/pipeline.h"
#include "graph/registry.h"
#include "graph/runtime.h"
#include "graph/validate.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/distributed.h"
#include "nodes/builtin.h"
#include "nodes/messages.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;

namespace {

// Checks the layout distributed_env_from read: the launcher, the ranks and the store's address.
void check_layout(const models::DistributedEnv& d, const std::string& launcher, int rank, int world_size,
                  int local_rank, int local_world_size, const std::string& master_addr, int master_port) {
  CHECK(d.launcher == launcher);
  CHECK(d.rank == rank);
  CHECK(d.world_size == world_size);
  CHECK(d.local_rank == local_rank);
  CHECK(d.local_world_size == local_world_size);
  CHECK(d.master_addr == master_addr);
  CHECK(d.master_port == master_port);
}

}  // namespace

TEST_CASE("the job's layout from the environment") {
  using Env = std::map<std::string, std::string>;
  SUBCASE("nothing set: one process") {
    auto d = models::distributed_env_from(Env{{"HOME", "/root"}});
    CHECK_FALSE(d.distributed());
    CHECK(d.launcher == "single");
  }
  SUBCASE("torchrun with its agent's store") {
    auto d = models::distributed_env_from(Env{{"RANK", "3"},
                                              {"LOCAL_RANK", "1"},
                                              {"WORLD_SIZE", "4"},
                                              {"LOCAL_WORLD_SIZE", "2"},
                                              {"MASTER_ADDR", "node7"},
                                              {"MASTER_PORT", "29400"},
                                              {"TORCHELASTIC_RUN_ID", "job"},
                                              {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                              {"TORCHELASTIC_RESTART_COUNT", "2"}});
    check_layout(d, "torchrun", 3, 4, 1, 2, "node7", 29400);
    CHECK(d.agent_store);
    CHECK(d.store_prefix == "/worker/attempt_2");
  }
  SUBCASE("plain variables: rank 0 hosts the store") {
    auto d = models::distributed_env_from(
        Env{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}});
    check_layout(d, "env", 1, 2, 1, 2, "10.0.0.1", 1234);  // local rank and size: the global ones
    CHECK_FALSE(d.agent_store);
  }
  SUBCASE("Slurm: the first node of the list hosts the store") {
    auto d = models::distributed_env_from(Env{{"SLURM_PROCID", "5"},
                                              {"SLURM_LOCALID", "1"},
                                              {"SLURM_NTASKS", "8"},
                                              {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                                              {"SLURM_JOB_NODELIST", "gpu[07-08]"}});
    check_layout(d, "slurm", 5, 8, 1, 4, "gpu07", 29500);
  }
  SUBCASE("Slurm node lists") {
    CHECK(models::first_slurm_host("node1") == "node1");
    CHECK(models::first_slurm_host("a1,b2") == "a1");
    CHECK(models::first_slurm_host("n[3,5-9]") == "n3");
    CHECK(models::first_slurm_host("rack[12-14]-gpu,x") == "rack12-gpu");
    CHECK_THROWS_AS(models::first_slurm_host("n[3-5"), std::invalid_argument);
    CHECK_THROWS_AS(models::first_slurm_host("n[a-b]"), std::invalid_argument);
  }
  SUBCASE("bad values name the variable") {
    auto message = [](const Env& env) {
      try {
        models::distributed_env_from(env);
      } catch (const std::invalid_argument& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    CHECK(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("RANK=2") !=
          std::string::npos);
    CHECK(message({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("RANK") !=
          std::string::npos);
    CHECK(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR") != std::string::npos);
    CHECK(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
              .find("MASTER_PORT") != std::string::npos);
  }
}

namespace {

// Collects the list lines (ClipRef::index) and positions a source emits.
struct Collected {
  std::mutex mutex;
  std::vector<std::uint64_t> indices, positions, epochs;
};

class CollectNode final : public graph::Node {
 public:
  explicit CollectNode(std::shared_ptr<Collected> into) : into_(std::move(into)) {}
  void process(int, const graph::Item& item, graph::Output&) override {
    const auto& clip = *item.as<nodes::ClipRefPtr>();
    std::lock_guard<std::mutex> lock(into_->mutex);
    into_->indices.push_back(clip.index);
    into_->positions.push_back(clip.position);
    into_->epochs.push_back(clip.epoch);
  }

 private:
  std::shared_ptr<Collected> into_;
};

// The items rank `rank` of `world` gets from a split_source over a 10-line list.
std::shared_ptr<Collected> shard(int rank, int world, const std::string& mode, int epochs,
                                 std::int64_t per_epoch = 0) {
  static const fs::path list = [] {
    fs::path p = fs::temp_directory_path() / fmt::format("sefar_shard_{}.csv", ::getpid());
    std::string text;
    for (int i = 0; i < 10; ++i) text += fmt::format("clip{}.mp4 {}\n", i, i % 3);
    std::ofstream(p) << text;
    return p;
  }();
  auto collected = std::make_shared<Collected>();
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  registry.add(graph::NodeSpec("collect")
                   .ordered_input("in", nodes::clip_message(), "clips")
                   .serial()
                   .factory([collected](const graph::NodeContext&) {
                     return std::make_unique<CollectNode>(collected);
                   }));
  json p;
  p["name"] = "shard";
  p["runtime"] = {{"threads", 1}};
  p["nodes"]["clips"] = {{"type", "split_source"},
                         {"params",
                          {{"list", list.string()},
                           {"shuffle", true},
                           {"epochs", epochs},
                           {"items_per_epoch", per_epoch},
                           {"shard", mode},
                           {"check_exists", false}}}};  // clip names only
  p["nodes"]["sink"] = {{"type", "collect"}};
  p["edges"] = {"clips -> sink"};
  auto validated = graph::validate(graph::parse_pipeline("<shard>", p.dump()), registry);
  graph::Runtime runtime(validated, registry);
  graph::RunOptions options;
  options.print_table = false;
  options.rank = rank;
  options.world_size = world;
  runtime.run(options);
  return collected;
}

}  // namespace

TEST_CASE("split sources deal every epoch to the ranks") {
  SUBCASE("padded: disjoint shares covering the epoch, the same count on every rank") {
    // 10 items, 4 ranks: 3 rounds; the last round's 2 missing items come from the epoch's start.
    auto alone = shard(0, 1, "padded", 2);
    REQUIRE(alone->indices.size() == 20);
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::multiset<std::uint64_t> all;
      for (int r = 0; r < 4; ++r) {
        auto s = shard(r, 4, "padded", 2);
        REQUIRE(s->indices.size() == 6);  // ceil(10 / 4) per epoch
        for (int j = 0; j < 3; ++j) {
          // Round j of rank r is item j*4 + r of the single-process epoch (wrapped when padding).
          const std::size_t place = std::size_t(j * 4 + r) % 10;
          CHECK(s->indices[std::size_t(epoch * 3 + j)] == alone->indices[std::size_t(epoch * 10) + place]);
          CHECK(s->epochs[std::size_t(epoch * 3 + j)] == std::uint64_t(epoch));
          all.insert(s->indices[std::size_t(epoch * 3 + j)]);
          // Positions count the whole job: after round j every rank together is at min(10, 4(j+1)).
          CHECK(s->positions[std::size_t(epoch * 3 + j)] ==
                std::uint64_t(epoch * 10 + std::min(10, 4 * (j + 1)) - 1));
        }
      }
      std::set<std::uint64_t> distinct(all.begin(), all.end());
      CHECK(distinct.size() == 10);  // every item of the epoch, two of them twice
      CHECK(all.size() == 12);
    }
  }
  SUBCASE("exact: each item once over all ranks") {
    std::multiset<std::uint64_t> all;
    std::size_t counts[3];
    for (int r = 0; r < 3; ++r) {
      auto s = shard(r, 3, "exact", 1);
      counts[r] = s->indices.size();
      all.insert(s->indices.begin(), s->indices.end());
    }
    CHECK(counts[0] == 4);
    CHECK(counts[1] == 3);
    CHECK(counts[2] == 3);
    CHECK(all.size() == 10);
    CHECK(std::set<std::uint64_t>(all.begin(), all.end()).size() == 10);
  }
  SUBCASE("none: every rank the whole stream") {
    CHECK(shard(1, 2, "none", 1)->indices == shard(0, 1, "none", 1)->indices);
  }
}

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("two Gloo processes take the step one process takes with the combined batch") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sefar_dist_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string worker = SEFAR_DIST_WORKER;
  auto single = capture(fmt::format("{} {} 0 1 0 2>&1", worker, (dir / "single.safetensors").string()));
  INFO(single.output);
  REQUIRE(single.status == 0);
  const int port = free_port();
  auto job = capture(fmt::format(
      "{w} {d}/rank0.safetensors 0 2 {p} > {d}/rank0.log 2>&1 & a=$!; {w} {d}/rank1.safetensors 1 2 {p} > "
      "{d}/rank1.log 2>&1 & b=$!; wait $a; sa=$?; wait $b; sb=$?; cat {d}/rank0.log {d}/rank1.log; "
      "[ $sa -eq 0 ] && [ $sb -eq 0 ]",
      fmt::arg("w", worker), fmt::arg("d", dir.string()), fmt::arg("p", port)));
  INFO(job.output);
  REQUIRE(job.status == 0);
  auto reference = io::load_safetensors((dir / "single.safetensors").string());
  auto rank0 = io::load_safetensors((dir / "rank0.safetensors").string());
  auto rank1 = io::load_safetensors((dir / "rank1.safetensors").string());
  REQUIRE(rank0.size() == reference.size());
  REQUIRE(rank1.size() == reference.size());
  // Against one process: the same step up to float summation order (each rank sums 4 clips' gradients,
  // then the two sums are added). Zero-initialised biases hold just the update after one step, so a
  // single tensor differs by the gradient's own float error (about 1e-6 relative); over all
  // parameters together the difference must stay below 1e-6 of their norm.
  double diff_sq = 0, norm_sq = 0, worst = 0;
  std::string worst_name;
  for (const auto& [name, expected] : reference) {
    INFO(name);
    REQUIRE(rank0.count(name));
    REQUIRE(rank1.count(name));
    // The ranks apply the same averaged gradient to the same broadcast parameters: bit for bit.
    CHECK(at::equal(rank0[name], rank1[name]));
    auto e = expected.to(at::kDouble), a = rank0[name].to(at::kDouble);
    const double d2 = (a - e).pow(2).sum().item<double>(), n2 = e.pow(2).sum().item<double>();
    diff_sq += d2;
    norm_sq += n2;
    const double relative = n2 > 0 ? std::sqrt(d2 / n2) : std::sqrt(d2);
    CHECK(relative <= 1e-5);
    if (relative > worst) {
      worst = relative;
      worst_name = name;
    }
  }
  const double overall = std::sqrt(diff_sq / norm_sq);
  MESSAGE("relative difference to one process: " << overall << " over all parameters; largest single tensor "
                                                 << worst << " (" << worst_name << ")");
  CHECK(overall <= 1e-6);
  fs::remove_all(dir);
}

namespace {

// `sefar ARGS` as ranks 0..world-1 of one job (plain RANK/WORLD_SIZE variables, rank 0 hosting the
// store), all at once; returns every rank's output, rank 0's first, and status 0 when all succeeded.
Result run_job(int world, const std::string& args, const fs::path& logs) {
  const int port = free_port();
  std::string script;
  for (int r = 0; r < world; ++r)
    script += fmt::format(
        "RANK={r} WORLD_SIZE={w} MASTER_ADDR=127.0.0.1 MASTER_PORT={p} {bin} {a} > {l}.{r} 2>&1 & p{r}=$!; ",
        fmt::arg("r", r), fmt::arg("w", world), fmt::arg("p", port), fmt::arg("bin", SEFAR_BINARY),
        fmt::arg("a", args), fmt::arg("l", logs.string()));
  script += "s=0; ";
  for (int r = 0; r < world; ++r) script += fmt::format("wait $p{} || s=1; ", r);
  for (int r = 0; r < world; ++r) script += fmt::format("cat {}.{}; ", logs.string(), r);
  script += "exit $s";
  return capture("bash -c '" + script + "'");
}

int steps_in_epoch(const fs::path& run_dir, int epoch) {
  int n = 0;
  for (const auto& rec : records(run_dir))
    n += rec.value("kind", "") == "step" && rec.value("epoch", -1) == epoch;
  return n;
}

// Removes the last epoch's checkpoint: the run is as if it had died before the last epoch ended.
void drop_last_checkpoint(const fs::path& run_dir) {
  for (const char* ext : {".safetensors", ".json"})
    fs::remove(run_dir / "checkpoints" / (std::string("epoch_0003") + ext));
}

}  // namespace

TEST_CASE("a job trains with its ranks' shares, and --resume continues with another number of processes") {
  TempDir dir("dist_resume");
  // 9 labeled clips per epoch: 5 steps of 2 clips alone; 3 per rank (5 clips each, the last round
  // padded) with 2 processes.
  SUBCASE("2 processes, resumed by 1") {
    auto job = run_job(2, "run " + train_args(dir.path / "run", "--set runtime.threads=1"), dir.path / "log");
    INFO(job.output);
    REQUIRE(job.status == 0);
    CHECK(steps_in_epoch(dir.path / "run", 1) == 3);
    CHECK(steps_in_epoch(dir.path / "run", 3) == 3);
    CHECK(job.output.find("2 processes joined (gloo)") != std::string::npos);
    drop_last_checkpoint(dir.path / "run");
    auto resumed = run_sefar("run --resume " + (dir.path / "run").string() + " --quiet");
    INFO(resumed.output);
    REQUIRE(resumed.status == 0);
    CHECK(resumed.output.find("(step 6)") != std::string::npos);
    CHECK(steps_in_epoch(dir.path / "run", 3) == 5);
  }
  SUBCASE("1 process, resumed by 2") {
    auto alone = run_sefar("run " + train_args(dir.path / "run"));
    INFO(alone.output);
    REQUIRE(alone.status == 0);
    drop_last_checkpoint(dir.path / "run");
    auto job = run_job(2, "run --resume " + (dir.path / "run").string() + " --quiet --set runtime.threads=1",
                       dir.path / "log");
    INFO(job.output);
    REQUIRE(job.status == 0);
    CHECK(job.output.find("(step 10)") != std::string::npos);
    CHECK(steps_in_epoch(dir.path / "run", 3) == 3);
    // Rank 0 alone wrote the run's records: one evaluation per epoch.
    int evals = 0;
    for (const auto& rec : records(dir.path / "run")) evals += rec.value("kind", "") == "eval";
    CHECK(evals == kEpochs);
  }
}

TEST_CASE("accumulate: a 2-process job checkpoints inside a window and resumes the same") {
  TempDir dir("dist_accumulate");
  // 3 steps an epoch per rank, windows of 2: the checkpoint of epoch 1 (step 3) is one step into a
  // window, the last step (8) fills none.
  const std::string args = "--set runtime.threads=1 --set train.accumulate=2";
  const fs::path reference = dir.path / "reference", run = dir.path / "run";
  auto job = run_job(2, "run " + train_args(reference, args), dir.path / "log");
  INFO(job.output);
  REQUIRE(job.status == 0);
  CHECK(job.output.find("the last 1 step(s) (from step 8) do not fill an accumulation window of 2") !=
        std::string::npos);
  fs::copy(reference, run, fs::copy_options::recursive);
  for (const auto& c : io::list_checkpoints((run / "checkpoints").string()))
    if (c.step > 3) {
      fs::remove(c.path + ".safetensors");
      fs::remove(c.path + ".json");
    }
  fs::remove(run / "model.safetensors");
  auto latest = io::latest_checkpoint((run / "checkpoints").string());
  REQUIRE(latest);
  CHECK(latest->step == 3);
  int grads = 0;
  for (const auto& [name, t] : io::load_safetensors(latest->path + ".safetensors"))
    grads += name.rfind("grad.", 0) == 0;
  CHECK(grads > 0);
  auto resumed = run_job(2, "run " + train_args(run, args + " --resume " + run.string()), dir.path / "log2");
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK(resumed.output.find("(step 3)") != std::string::npos);
  // Not bit for bit: ranks above 0 restart their dropout streams on resume (with or without
  // accumulation), so the records are compared in number only.
  CHECK(records(run).size() == records(reference).size());
}
