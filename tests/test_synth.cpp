// The synthetic dataset is deterministic from its seed: every file it writes is byte-identical
// whatever the number of threads that render and encode the clips.
#include <doctest/doctest.h>

#include "io/synth.h"
#include "run_helpers.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace sefar::io;

namespace {

// Every regular file under `root`, by path relative to it, with its bytes.
std::map<std::string, std::string> read_tree(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    files[fs::relative(entry.path(), root).string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

}  // namespace

TEST_CASE("synth: every file is byte-identical with 1, 2 and 4 threads") {
  if (!encoder_available(VideoCodec::kAuto)) return;
  const sefar::testing::TempDir tmp("test_synth");
  SynthOptions o;
  o.num_classes = 4;
  o.train_per_class = 10;
  o.val_per_class = 2;
  o.labeled_fraction = 0.25;
  // 48 pixels is 3 macroblocks, not a multiple of the 8 that x264's AVX-512 macroblock-tree code
  // works on: the size at which the encoder used to read uninitialised memory.
  o.width = 48;
  o.height = 40;
  o.min_frames = 24;
  o.max_frames = 40;
  o.seed = 3;

  std::map<std::string, std::string> reference;
  for (int threads : {1, 2, 4}) {
    CAPTURE(threads);
    o.threads = threads;
    o.out_dir = (tmp.path / ("threads" + std::to_string(threads))).string();
    SynthResult result = generate_synth_dataset(o);
    CHECK(result.train.size() + result.unlabeled.size() + result.val.size() == 48);
    auto files = read_tree(o.out_dir);
    if (threads == 1) {
      reference = files;
      REQUIRE(reference.size() == 48 + 4);  // clips, three split lists and classes.txt
      continue;
    }
    std::vector<std::string> missing, different;
    for (const auto& [name, bytes] : reference) {
      auto it = files.find(name);
      if (it == files.end())
        missing.push_back(name);
      else if (it->second != bytes)
        different.push_back(name);
    }
    std::ostringstream list;
    for (const auto& name : different) list << ' ' << name;
    INFO("files that differ from the 1-thread run:" << list.str());
    CHECK(missing.empty());
    CHECK(files.size() == reference.size());
    CHECK(different.empty());
  }
}

TEST_CASE("synth: first_class picks other routines, labelled from 0, for a different task") {
  const auto all = synth_class_names(12);
  const auto other = synth_class_names(4, 8);
  REQUIRE(other.size() == 4);
  for (int i = 0; i < 4; ++i) CHECK(other[i] == all[8 + i]);
  // None of them is one of the default dataset's 8 classes.
  const auto defaults = synth_class_names(8);
  for (const auto& name : other) CHECK(std::find(defaults.begin(), defaults.end(), name) == defaults.end());

  // Label 0 with first_class 8 is the routine of label 8 with first_class 0 (same clip otherwise).
  SynthOptions o;
  o.width = 32;
  o.height = 32;
  o.min_frames = o.max_frames = 12;
  o.first_class = 8;
  const Frames shifted = render_synth_clip(o, 0, 5);
  o.first_class = 0;
  CHECK(render_synth_clip(o, 8, 5).rgb == shifted.rgb);
  CHECK(render_synth_clip(o, 0, 5).rgb != shifted.rgb);

  CHECK_THROWS_WITH_AS(
      synth_class_names(4, 9),
      "synthetic dataset: first_class must be in [0, 8] with 4 classes (there are 12 routines), got 9",
      std::invalid_argument);
  CHECK_THROWS_AS(synth_class_names(4, -1), std::invalid_argument);
}
