// `sefar infer` end to end on a tiny model: the outputs equal a direct forward pass; bad input
// gives exit status 2 naming the file.
#include <ATen/ATen.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>

#include "io/safetensors.h"
#include "models/timesformer.h"
#include "models/weights.h"
#include "run_helpers.h"

using namespace sefar;
namespace fs = std::filesystem;

namespace {

// `sefar ARGS`: its exit status, and stdout and stderr together in `output`.
int run(const std::string& args, std::string* output = nullptr) {
  auto r = sefar::testing::run_sefar(args);
  if (output) *output = r.output;
  return r.status;
}

}  // namespace

TEST_CASE("sefar infer writes logits and features equal to a direct forward pass") {
  fs::path dir = fs::temp_directory_path() / ("sefar_infer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  at::manual_seed(3);
  auto config = models::ModelConfig::tiny(5, {2, 2, 4});
  auto model = models::make_model(config);
  model->eval();
  models::save_weights(*model, (dir / "w.safetensors").string());
  std::vector<at::Tensor> views;
  std::map<std::string, at::Tensor> inputs;
  for (std::size_t i = 0; i < config.views.size(); ++i) {
    views.push_back(at::randn({3, 3, config.views[i], config.img_size, config.img_size}));
    inputs["views." + std::to_string(i)] = views.back();
  }
  io::save_safetensors((dir / "in.safetensors").string(), inputs);
  std::string out;
  int status = run("infer --weights " + (dir / "w.safetensors").string() + " --inputs " +
                       (dir / "in.safetensors").string() + " --outputs " + (dir / "out.safetensors").string(),
                   &out);
  INFO(out);
  REQUIRE(status == 0);
  auto result = io::load_safetensors((dir / "out.safetensors").string());
  at::NoGradGuard no_grad;
  auto expected = model->forward(views);
  CHECK(at::allclose(result.at("logits"), expected.logits, 1e-5, 1e-6));
  CHECK(at::allclose(result.at("fused"), expected.fused, 1e-5, 1e-6));
  for (std::size_t i = 0; i < config.views.size(); ++i)
    CHECK(at::allclose(result.at("features." + std::to_string(i)), expected.features[i], 1e-5, 1e-6));

  CHECK(out.find("warning") == std::string::npos);

  // Inputs at another size than the weights' img_size: it runs, and says so.
  std::map<std::string, at::Tensor> larger;
  for (std::size_t i = 0; i < config.views.size(); ++i)
    larger["views." + std::to_string(i)] = at::randn({1, 3, config.views[i], 2 * config.img_size, 2 * config.img_size});
  io::save_safetensors((dir / "larger.safetensors").string(), larger);
  status = run("infer --weights " + (dir / "w.safetensors").string() + " --inputs " +
                   (dir / "larger.safetensors").string() + " --outputs " + (dir / "o3.safetensors").string(),
               &out);
  CHECK(status == 0);
  CHECK(out.find("warning: inference inputs '" + (dir / "larger.safetensors").string() + "': views.0 is 64x64 but "
                 "the weights were trained at 32x32") != std::string::npos);

  // Bad input: exit 2 and the file named.
  status = run("infer --weights " + (dir / "w.safetensors").string() + " --inputs " + (dir / "nope.safetensors").string() +
                   " --outputs " + (dir / "o2.safetensors").string(),
               &out);
  CHECK(status == 2);
  CHECK(out.find("nope.safetensors") != std::string::npos);
  CHECK(run("infer --weights " + (dir / "w.safetensors").string(), &out) == 2);
  fs::remove_all(dir);
}
