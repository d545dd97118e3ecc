// The video input nodes in a running graph: bad clips of every kind are reported, skipped and
// counted; good ones come out as views of the right shape; draws are reproducible.
// LibTorch first (through nodes/views.h): glog's CHECK must be replaced by doctest's.
#include "nodes/views.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "graph/node.h"
#include "graph/pipeline.h"
#include "graph/runtime.h"
#include "graph/validate.h"
#include "io/video.h"
#include "nodes/builtin.h"
#include "test_frames.h"

using namespace sefar;
namespace fs = std::filesystem;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() / ("sefar_vp_" + std::to_string(::getpid()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
};

io::Frames moving_frames(int n, int w, int h) {
  return sefar::testing::painted_frames(n, w, h, [](int t, int x, int y, std::uint8_t* p) {
    p[0] = std::uint8_t((x * 4 + t * 8) & 255);
    p[1] = std::uint8_t((y * 4) & 255);
    p[2] = std::uint8_t(t * 10);
  });
}

// A collecting sink bound to a vector the test owns.
struct Collected {
  std::mutex mutex;
  std::vector<nodes::ClipViewsPtr> views;
};

class CollectViews final : public graph::Node {
 public:
  explicit CollectViews(std::shared_ptr<Collected> c) : c_(std::move(c)) {}
  void process(int, const graph::Item& item, graph::Output&) override {
    std::lock_guard<std::mutex> lock(c_->mutex);
    c_->views.push_back(item.as<nodes::ClipViewsPtr>());
  }

 private:
  std::shared_ptr<Collected> c_;
};

graph::RunResult run(const std::string& list, const std::string& draws, std::shared_ptr<Collected> out,
                     graph::ValidatedPipeline& validated, std::uint64_t seed = 0) {
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  registry.add(graph::NodeSpec("collect_views")
                   .doc("test sink")
                   .input("in", nodes::views_message(), "views")
                   .serial()
                   .factory([out](const graph::NodeContext&) { return std::make_unique<CollectViews>(out); }));
  std::string text = R"({
    "runtime": {"threads": 2, "max_in_flight": 8, "seed": )" + std::to_string(seed) + R"(},
    "nodes": {
      "clips": {"type": "split_source", "params": {"list": ")" + list + R"(", "labeled": false}},
      "decode": {"type": "decode", "params": {"draws": ")" + draws + R"(", "short_side": [40, 48]}, "concurrency": 2},
      "views": {"type": "views", "params": {"crop": 32, "mode": ")" + (draws == "test" ? "test" : draws == "eval" ? "eval" : "train") + R"("}},
      "sink": {"type": "collect_views"}
    },
    "edges": ["clips -> decode", "decode -> views", "views -> sink"]
  })";
  auto doc = graph::parse_pipeline("video_test.json", text);
  graph::substitute_params(doc);
  validated = graph::validate(doc, registry);
  graph::Runtime runtime(validated, registry);
  graph::RunOptions options;
  options.print_table = false;
  return runtime.run(options);
}

const graph::NodeStats& stats_of(const graph::RunResult& r, const graph::ValidatedPipeline& p, const std::string& id) {
  for (std::size_t i = 0; i < p.nodes.size(); ++i)
    if (p.nodes[i].id == id) return r.profile->stats(int(i));
  throw std::runtime_error("no node " + id);
}

}  // namespace

TEST_CASE("bad clips are reported with their file and reason, skipped and counted; good clips pass") {
  io::set_ffmpeg_log(io::FfmpegLog::kQuiet);
  Dir dir;
  auto good = (dir.path / "good.mp4").string();
  io::write_video(good, moving_frames(24, 64, 48), 25.0);
  std::ofstream((dir.path / "zero.mp4").string());
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream((dir.path / "truncated.mp4").string(), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::string corrupt = bytes;
    for (std::size_t i = corrupt.size() / 3; i < corrupt.size() / 3 + 200 && i < corrupt.size(); ++i) corrupt[i] = char(i * 7);
    std::ofstream((dir.path / "corrupted.mp4").string(), std::ios::binary) << corrupt;
  }
  std::ofstream((dir.path / "text.mp4").string()) << "this is not a video\n";
  std::vector<std::string> expected_bad = {"missing.mp4", "zero.mp4", "truncated.mp4", "text.mp4"};
  bool have_audio = std::system(("ffmpeg -loglevel quiet -y -f lavfi -i sine=frequency=440:duration=1 -c:a aac " +
                                 (dir.path / "audio.mp4").string() + " > /dev/null 2>&1").c_str()) == 0;
  if (have_audio) expected_bad.push_back("audio.mp4");
  else MESSAGE("ffmpeg CLI missing: audio-only clip not tested");

  std::string list = (dir.path / "list.csv").string();
  {
    std::ofstream out(list);
    out << "good.mp4 0\nmissing.mp4 1\nzero.mp4 0\ntruncated.mp4 1\ntext.mp4 0\ncorrupted.mp4 1\ngood.mp4 1\n";
    if (have_audio) out << "audio.mp4 0\n";
  }
  auto collected = std::make_shared<Collected>();
  graph::ValidatedPipeline p;
  auto result = run(list, "weak_strong", collected, p);
  const auto& decode = stats_of(result, p, "decode");
  // The corrupted clip may decode (FFmpeg conceals errors) or be skipped; it must not crash.
  std::size_t corrupted_ok = 0;
  for (const auto& v : collected->views) corrupted_ok += v->clip.path.find("corrupted") != std::string::npos;
  CHECK(decode.skipped.load() + corrupted_ok == expected_bad.size() + 1);
  CHECK(collected->views.size() == 2 + corrupted_ok);
  for (const auto& name : expected_bad) {
    bool named = false;
    for (const auto& r : decode.skip_reasons) named |= r.find(name) != std::string::npos;
    CHECK_MESSAGE(named, name << " not reported");
  }
  for (const auto& v : collected->views) {
    REQUIRE(v->draws.size() == 2);
    REQUIRE(v->draws[0].size() == 3);
    CHECK(v->draws[0][0].sizes().vec() == std::vector<std::int64_t>{3, 2, 32, 32});
    CHECK(v->draws[0][2].sizes().vec() == std::vector<std::int64_t>{3, 4, 32, 32});
  }
  CHECK(result.profile->table().find("skipped by 'decode'") != std::string::npos);
}

TEST_CASE("views are reproducible from the seed and change with it; test mode makes N x 3 view sets") {
  Dir dir;
  io::write_video((dir.path / "a.mp4").string(), moving_frames(30, 64, 48), 25.0);
  std::string list = (dir.path / "list.csv").string();
  std::ofstream(list) << "a.mp4 0\na.mp4 0\n";
  auto first = std::make_shared<Collected>(), second = std::make_shared<Collected>(), other = std::make_shared<Collected>();
  graph::ValidatedPipeline p;
  run(list, "weak_strong", first, p, 5);
  run(list, "weak_strong", second, p, 5);
  run(list, "weak_strong", other, p, 6);
  REQUIRE(first->views.size() == 2);
  auto by_index = [](std::vector<nodes::ClipViewsPtr> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a->clip.index < b->clip.index; });
    return v;
  };
  auto a = by_index(first->views), b = by_index(second->views), c = by_index(other->views);
  bool all_equal = true, any_differs = false;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t d = 0; d < 2; ++d)
      for (std::size_t v = 0; v < 3; ++v) {
        all_equal &= a[i]->draws[d][v].equal(b[i]->draws[d][v]);
        any_differs |= !a[i]->draws[d][v].equal(c[i]->draws[d][v]);
      }
  CHECK(all_equal);
  CHECK(any_differs);
  // Two list entries of the same file are different samples (index seeds the draws).
  CHECK_FALSE(a[0]->draws[0][2].equal(a[1]->draws[0][2]));

  auto test = std::make_shared<Collected>();
  run(list, "test", test, p);
  REQUIRE(test->views.size() == 2);
  CHECK(test->views[0]->draws.size() == 5 * 3);
}
