// TensorBoard event files (RUN_DIR/tb/): the encoding is tensorboard's byte for byte, and tensorboard's
// own reader (tests/tb_read.py, run with the project's .venv from scripts/setup_python.sh) finds in a
// training run's files every series of its metrics.jsonl, also after a resume.
// LibTorch first (through nodes/run_directory.h): glog's CHECK must be replaced by doctest's.
#include "nodes/run_directory.h"

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <utility>

#include "io/checkpoint.h"
#include "io/tensorboard.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;
namespace tb = sefar::io::tensorboard;

namespace {

std::string hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

const fs::path kPython = SEFAR_SOURCE_DIR "/.venv/bin/python";

bool have_python() {
  if (fs::exists(kPython)) return true;
  MESSAGE("SKIPPED: no " << kPython.string()
                         << " to read the event files with tensorboard; `bash scripts/setup_python.sh test` "
                            "creates it (scripts/test.sh does)");
  return false;
}

// What tensorboard's reader finds in `folder` (tests/tb_read.py).
json read_events(const fs::path& folder) {
  const fs::path errors =
      fs::temp_directory_path() / ("sefar_tb_read_" + std::to_string(::getpid()) + ".err");
  auto r = capture(kPython.string() + " " SEFAR_SOURCE_DIR "/tests/tb_read.py " + folder.string() + " 2>" +
                   errors.string());
  INFO(read_text(errors));
  fs::remove(errors);
  REQUIRE(r.status == 0);
  return json::parse(r.output);
}

using Series = std::vector<std::pair<std::int64_t, float>>;

// The scalar series a run's metrics.jsonl implies, by tag: every numeric field but step and epoch,
// at the record's step (an epoch record's: the last step before it), in float32 as TensorBoard
// keeps them.
std::map<std::string, Series> metrics_series(const fs::path& run) {
  std::map<std::string, Series> out;
  std::ifstream in(run / "metrics.jsonl");
  std::int64_t step = 0;
  for (std::string line; std::getline(in, line);) {
    const json record = json::parse(line);
    const std::string kind = record["kind"];
    const std::string prefix = kind == "step" ? "train" : kind;
    if (record.contains("step")) step = record["step"];
    for (const auto& [field, value] : record.items())
      if (field != "step" && field != "epoch" && value.is_number())
        out[prefix + "/" + field].emplace_back(step, float(value.get<double>()));
  }
  return out;
}

std::map<std::string, Series> event_series(json& events) {
  std::map<std::string, Series> out;
  for (const auto& [tag, points] : events["scalars"].items())
    for (const auto& p : points) out[tag].emplace_back(p[0].get<std::int64_t>(), float(p[1].get<double>()));
  return out;
}

void check_same_series(const std::map<std::string, Series>& expected,
                       const std::map<std::string, Series>& actual) {
  for (const auto& [tag, series] : expected) {
    INFO("tag " << tag);
    auto found = actual.find(tag);
    REQUIRE(found != actual.end());
    CHECK(found->second.size() == series.size());
    for (std::size_t i = 0; i < std::min(series.size(), found->second.size()); ++i) {
      INFO("point " << i);
      CHECK(found->second[i].first == series[i].first);
      CHECK(found->second[i].second == series[i].second);
    }
  }
  for (const auto& [tag, series] : actual) {
    INFO("tag " << tag);
    CHECK(expected.count(tag) == 1);
  }
}

// The eta histograms: one per epoch record with eta_hist, at its step, with its counts.
void check_eta_histograms(const fs::path& run, json& events) {
  std::vector<std::pair<std::int64_t, std::vector<double>>> expected;
  std::ifstream in(run / "metrics.jsonl");
  std::int64_t step = 0;
  for (std::string line; std::getline(in, line);) {
    const json record = json::parse(line);
    if (record.contains("step")) step = record["step"];
    if (record["kind"] == "epoch" && record.contains("eta_hist"))
      expected.emplace_back(step, record["eta_hist"].get<std::vector<double>>());
  }
  REQUIRE(!expected.empty());
  REQUIRE(events["histograms"].contains("epoch/eta"));
  auto& histograms = events["histograms"]["epoch/eta"];
  REQUIRE(histograms.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("histogram " << i);
    auto& h = histograms[i];
    CHECK(h["step"] == expected[i].first);
    // The buckets from the first non-empty one to the last, each ending at (b + 1) / bins.
    const auto& counts = expected[i].second;
    const std::size_t bins = counts.size();
    std::size_t first = 0, end = bins;
    while (first < bins && counts[first] == 0) ++first;
    while (end > first && counts[end - 1] == 0) --end;
    CHECK(h["bucket"].get<std::vector<double>>() ==
          std::vector<double>(counts.begin() + long(first), counts.begin() + long(end)));
    REQUIRE(h["bucket_limit"].size() == end - first);
    for (std::size_t b = first; b < end; ++b)
      CHECK(h["bucket_limit"][b - first].get<double>() == double(b + 1) / double(bins));
    double num = 0;
    for (double c : counts) num += c;
    CHECK(h["num"].get<double>() == num);
    CHECK(h["min"].get<double>() == double(first) / double(bins));
    CHECK(h["max"].get<double>() == double(end) / double(bins));
  }
}

}  // namespace

TEST_CASE("the event encoding is tensorboard's, byte for byte") {
  // Expected bytes: tensorboard's protobuf classes (SerializeToString) and its masked_crc32c.
  std::string v;
  tb::put_varint(v, 0);
  tb::put_varint(v, 1);
  tb::put_varint(v, 300);
  tb::put_varint(v, ~std::uint64_t(0));
  CHECK(hex(v) == "0001ac02ffffffffffffffffff01");
  const std::string check = "123456789";
  CHECK(tb::masked_crc32c(check.data(), check.size()) == 0xc78ab0e5u);  // CRC-32C 0xe3069283, masked

  CHECK(hex(tb::frame_record(tb::scalar_event("train/loss", 0.25f, 7, 1.5))) ==
        "200000000000000029eda95009000000000000f83f10072a130a110a0a747261696e2f6c6f7373150000803ef4985d1a");
  // A zero scalar is written (simple_value is a oneof member); a zero step is left out.
  CHECK(hex(tb::scalar_event("x", 0.0f, 0, 1.5)) == "09000000000000f83f2a0a0a080a01781500000000");
  CHECK(hex(tb::file_version_event(1.5)) == "09000000000000f83f1a0d627261696e2e4576656e743a32");
  CHECK(hex(tb::session_start_event(8, 1.5)) == "09000000000000f83f10083a020801");
  const auto histogram = tb::histogram_from_counts(0.0, {0.25, 0.5, 0.75, 1.0}, {0, 2, 1, 0});
  CHECK(histogram.min == 0.25);
  CHECK(histogram.max == 0.75);
  CHECK(histogram.num == 3);
  CHECK(histogram.sum == 2 * 0.375 + 0.625);
  CHECK(histogram.sum_squares == 2 * 0.375 * 0.375 + 0.625 * 0.625);
  CHECK(histogram.bucket_limit == std::vector<double>{0.5, 0.75});  // the empty outer buckets left out
  CHECK(histogram.bucket == std::vector<double>{2, 1});
  CHECK(tb::histogram_from_counts(0.0, {0.5, 1.0}, {0, 0}).bucket.empty());
  tb::Histogram four;
  four.min = 0.25;
  four.max = 0.75;
  four.num = 3;
  four.sum = 1.375;
  four.sum_squares = 0.671875;
  four.bucket_limit = {0.25, 0.5, 0.75, 1.0};
  four.bucket = {0, 2, 1, 0};
  CHECK(
      hex(tb::histogram_event("epoch/eta", four, 7, 1.5)) ==
      "09000000000000f83f10072a80010a7e0a0965706f63682f6574612a7109000000000000d03f11000000000000e83f19000000"
      "000000084021000000000000f63f29000000000080e53f3220000000000000d03f000000000000e03f000000000000e83f0000"
      "00000000f03f3a2000000000000000000000000000000040000000000000f03f0000000000000000");
  CHECK(hex(tb::text_event("pipeline", "# hi", 3, 1.5)) ==
        "09000000000000f83f10032a220a200a08706970656c696e65420a080712004204232068694a080a060a0474657874");
}

TEST_CASE(
    "tensorboard reads what EventWriter writes; it drops a damaged record; a restart replaces later steps") {
  if (!have_python()) return;
  TempDir dir("tb_writer");
  {
    tb::EventWriter first(dir.path.string());
    first.add_session_start(0);
    first.add_text("notes", "**bold**", 0);
    for (int step = 0; step < 5; ++step) first.add_scalar("train/x", step, step);
    first.add_histogram("epoch/eta", 0.0, {0.5, 1.0}, {3, 1}, 4);
    first.flush();
  }
  {
    // A resumed run: a second file that restarts at step 3.
    tb::EventWriter second(dir.path.string());
    second.add_session_start(3);
    for (int step = 3; step < 6; ++step) second.add_scalar("train/x", 10 + step, step);
    second.flush();
  }
  json events = read_events(dir.path);
  INFO(events.dump());
  CHECK(events["files"].size() == 2);
  CHECK(event_series(events)["train/x"] ==
        Series{{0, 0.f}, {1, 1.f}, {2, 2.f}, {3, 13.f}, {4, 14.f}, {5, 15.f}});
  CHECK(events["texts"]["notes"] == json::parse(R"([[0, "**bold**"]])"));
  // The histogram's step (4) is at or after the restart: purged with the rest of the first file.
  CHECK(events["histograms"]["epoch/eta"].empty());

  // One byte changed in a record of the second file: its CRC no longer matches, and the reader drops
  // it and what follows, so a wrong checksum or framing cannot pass unnoticed.
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    if (events["files"].begin().key() == entry.path().filename().string()) continue;
    std::string bytes = read_text(entry.path());
    REQUIRE(bytes.size() > 8);
    bytes[bytes.size() - 8] ^= 1;  // inside the last record's data
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << bytes;
  }
  json damaged = read_events(dir.path);
  INFO(damaged.dump());
  CHECK(event_series(damaged)["train/x"] == Series{{0, 0.f}, {1, 1.f}, {2, 2.f}, {3, 13.f}, {4, 14.f}});
}

TEST_CASE("RunDirectory writes the TensorBoard form of its records and texts; a fresh run starts anew") {
  if (!have_python()) return;
  TempDir dir("tb_run_directory");
  const fs::path run = dir.path / "run";
  auto log = [](const std::string&) {};
  auto write_run = [&](bool resuming) {
    nodes::RunDirectory directory(run.string(), 2, log);
    nodes::LoopState state;
    directory.open(resuming, state);
    directory.write_text("pipeline", "```json\n{}\n```");
    directory.write_metrics(json{{"kind", "step"}, {"step", 0}, {"epoch", 0}, {"loss", 2.5}, {"semi", true}},
                            state);
    directory.write_metrics(json{{"kind", "step"}, {"step", 1}, {"epoch", 0}, {"loss", 2.25}}, state);
    directory.write_metrics(json{{"kind", "epoch"}, {"epoch", 0}, {"steps", 2}, {"eta_hist", {0, 1, 2, 0}}},
                            state);
    directory.write_metrics(json{{"kind", "eval"}, {"epoch", 0}, {"step", 2}, {"top1", 0.5}}, state);
  };
  write_run(false);
  write_run(false);  // a second fresh run in the folder: the first one's events are gone
  json events = read_events(run / "tb");
  INFO(events.dump());
  CHECK(events["files"].size() == 1);
  auto series = event_series(events);
  CHECK(series == std::map<std::string, Series>{{"train/loss", {{0, 2.5f}, {1, 2.25f}}},
                                                {"epoch/steps", {{1, 2.f}}},
                                                {"eval/top1", {{2, 0.5f}}}});
  CHECK(events["texts"]["pipeline"] == json::parse(R"([[0, "```json\n{}\n```"]])"));
  REQUIRE(events["histograms"]["epoch/eta"].size() == 1);
  auto& h = events["histograms"]["epoch/eta"][0];
  CHECK(h["step"] == 1);
  CHECK(h["bucket"] == json::parse("[1.0, 2.0]"));
  CHECK(h["bucket_limit"] == json::parse("[0.5, 0.75]"));
  CHECK(h["min"] == 0.25);  // the lower edge of the first non-empty bucket
  CHECK(h["max"] == 0.75);
  CHECK(h["num"] == 3.0);

  // A directory without outputs writes nothing.
  nodes::RunDirectory none("", 2, log);
  nodes::LoopState state;
  none.open(false, state);
  none.write_text("pipeline", "x");
  none.write_metrics(json{{"kind", "step"}, {"step", 0}, {"loss", 1.0}}, state);
}

TEST_CASE(
    "a training run's events hold every series of its metrics.jsonl, the eta histograms and stay so on "
    "resume") {
  if (!have_python()) return;
  const fs::path& finished = finished_training_run();
  json events = read_events(finished / "tb");
  INFO(events.dump());
  CHECK(events["files"].size() == 1);
  const auto expected = metrics_series(finished);
  for (const char* tag : {"train/loss", "train/loss_sup", "train/loss_un", "train/loss_mix", "train/lr",
                          "train/xi", "train/grad_norm", "train/eta_mean", "epoch/eta_mean", "eval/top1",
                          "eval/top5", "eval/mean_class_accuracy"}) {
    INFO(tag);
    CHECK(expected.count(tag) == 1);
  }
  CHECK(expected.at("train/loss").size() == std::size_t(kStepsPerEpoch * kEpochs));
  check_same_series(expected, event_series(events));
  check_eta_histograms(finished, events);
  // The resolved pipeline, as the text of the run's start.
  REQUIRE(events["texts"].contains("pipeline"));
  const std::string pipeline_text = events["texts"]["pipeline"][0][1];
  CHECK(pipeline_text.rfind("```\n{", 0) == 0);
  CHECK(pipeline_text.find("\"train_loop\"") != std::string::npos);

  // A crash after epoch 1 (as in test_resume): the checkpoints after it gone, the events of the later
  // steps left in the first file. The resumed run's file replaces them, so the series are again those of
  // metrics.jsonl, the evaluation that closed epoch 1 included.
  TempDir dir("tb_resume");
  const fs::path run = dir.path / "run";
  fs::copy(finished, run, fs::copy_options::recursive);
  const std::int64_t keep_step = 2 * kStepsPerEpoch;
  for (const auto& c : io::list_checkpoints((run / "checkpoints").string()))
    if (c.step > keep_step) {
      fs::remove(c.path + ".safetensors");
      fs::remove(c.path + ".json");
    }
  fs::remove(run / "model.safetensors");
  auto resumed = run_sefar("run --resume " + run.string() + " --quiet");
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  json after = read_events(run / "tb");
  INFO(after.dump());
  CHECK(after["files"].size() == 2);
  check_same_series(metrics_series(run), event_series(after));
  check_eta_histograms(run, after);
}
