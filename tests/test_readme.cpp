// The README's shell examples run as written. Every ```sh block of README.md runs with bash in a
// folder laid out like a checkout (build/, pipelines/, scripts/, .venv/ linked to this tree's) whose
// data/generated/quickstart is a small `sefar synth` dataset and whose runs/quickstart is a short
// quickstart run, so the examples that evaluate, export or resume a quickstart run find one. A block
// too long or impossible to run here is preceded by `<!-- readme-test: skip: REASON -->`; the test
// lists them, so none is skipped silently.
#include <regex>
#include <sstream>

#include "run_helpers.h"

using namespace sefar::testing;

namespace {

struct Block {
  int line = 0;  // of the opening fence
  std::string text;
  std::string skip;  // the reason, when marked
};

std::vector<Block> shell_blocks(const std::string& readme) {
  std::vector<Block> blocks;
  std::istringstream in(readme);
  std::string line, previous;
  static const std::regex skip_marker(R"(<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->)");
  int n = 0;
  Block* open = nullptr;
  bool other_fence = false;
  while (std::getline(in, line)) {
    ++n;
    if (open) {
      if (line.rfind("```", 0) == 0) {
        open = nullptr;
      } else {
        open->text += line + "\n";
      }
    } else if (other_fence) {
      other_fence = line.rfind("```", 0) != 0;
    } else if (line == "```sh") {
      Block b;
      b.line = n;
      std::smatch m;
      if (std::regex_search(previous, m, skip_marker)) b.skip = m[1];
      blocks.push_back(b);
      open = &blocks.back();
    } else if (line.rfind("```", 0) == 0) {
      other_fence = true;
    }
    if (!line.empty()) previous = line;
  }
  return blocks;
}

}  // namespace

TEST_CASE("every shell example of the README runs as written") {
  const fs::path source = SEFAR_SOURCE_DIR;
  const std::string readme = read_text(source / "README.md");
  const auto blocks = shell_blocks(readme);
  REQUIRE(blocks.size() >= 5);

  // A checkout-like folder: the build, the pipelines and scripts of this tree, its own data and runs.
  TempDir root("readme");
  const fs::path build = fs::path(SEFAR_BINARY).parent_path();
  fs::create_directory_symlink(build, root.path / "build");
  for (const char* linked : {"pipelines", "scripts", "tests", ".venv"})
    if (fs::exists(source / linked)) fs::create_directory_symlink(source / linked, root.path / linked);
  // The quickstart's dataset in small: its 8 classes, a few clips each.
  {
    auto r = run_sefar("synth " + (root.path / "data" / "generated" / "quickstart").string() +
                       " --classes 8 --train-per-class 4 --val-per-class 1 --labeled 0.5 --size 48x40 "
                       "--frames 16:24 --threads 2");
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  auto in_root = [&](const std::string& script) {
    const fs::path file = root.path / "block.sh";
    std::ofstream(file) << "set -euo pipefail\ncd " << root.path << "\n" << script;
    return capture("bash " + file.string() + " 2>&1");
  };
  // runs/quickstart: the quickstart pipeline as it is (an example resumes it with that file).
  {
    auto r = in_root(
        "./build/sefar run pipelines/quickstart.json --quiet --set runtime.run_dir=runs/quickstart\n");
    INFO(r.output);
    REQUIRE(r.status == 0);
  }

  int ran = 0;
  for (const auto& block : blocks) {
    INFO("README.md:" << block.line << ":\n" << block.text);
    if (!block.skip.empty()) {
      MESSAGE("README.md:" << block.line << " not run here: " << block.skip);
      continue;
    }
    auto r = in_root(block.text);
    INFO(r.output);
    CHECK(r.status == 0);
    ++ran;
  }
  // The examples of sefar's own commands run; only those marked (whole setups, servers, clusters)
  // are left to the tests named in their markers.
  CHECK(ran >= 3);
}
