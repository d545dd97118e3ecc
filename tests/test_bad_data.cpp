// Bad and unusual data through the real CLI: a SeFAR training run whose labeled, unlabeled and
// validation lists hold missing, empty, truncated, non-video, audio-only, corrupted, too large,
// 1-frame, 4000x3000, rotated and odd-sized clips trains to the end, reports every clip it skipped
// with its reason (stderr and RUN_DIR/skipped.jsonl), uses the unusual-but-valid clips, and never
// hangs.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "run_helpers.h"

namespace fs = std::filesystem;

namespace {

using sefar::testing::Result;

Result shell(const std::string& cmd) {
  auto r = sefar::testing::capture(cmd + " 2>&1");
  REQUIRE(r.status != -2);
  return r;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// ffmpeg CLI, quiet; the test needs it (scripts/setup.sh installs it).
void ffmpeg(const std::string& args) {
  auto r = shell("ffmpeg -v error -nostdin -y " + args);
  INFO(args << "\n" << r.output);
  REQUIRE(r.status == 0);
}

}  // namespace

TEST_CASE("a training run over lists full of bad and unusual clips trains to the end and reports each skip") {
  const fs::path dir = fs::temp_directory_path() / ("sefar_bad_data_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path data = dir / "data", run_dir = dir / "run";
  auto synth =
      shell(std::string(SEFAR_BINARY) + " synth " + data.string() +
            " --classes 3 --train-per-class 6 --val-per-class 2 --labeled 0.5 --size 48x40 --frames 16:24"
            " --threads 2");
  INFO(synth.output);
  REQUIRE(synth.status == 0);
  REQUIRE(shell("ffmpeg -version").status == 0);

  // A good clip of the dataset, to cut and damage.
  std::string good_rel;
  {
    std::ifstream list(data / "train.csv");
    std::string line;
    REQUIRE(std::getline(list, line));
    good_rel = line.substr(0, line.find(' '));
  }
  const std::string good = sefar::testing::read_text(data / good_rel);
  REQUIRE(good.size() > 1000);
  const fs::path bad = data / "bad";
  fs::create_directories(bad);
  write_file(bad / "zero.mp4", "");
  write_file(bad / "truncated.mp4", good.substr(0, good.size() / 2));
  write_file(bad / "notes.mp4", "clip_0001.mp4 3\nthis is a split list, not a video\n");
  {
    std::string damaged = good;
    for (std::size_t i = damaged.size() / 3; i < damaged.size() / 3 + 300 && i < damaged.size(); ++i)
      damaged[i] = char(i * 131);
    write_file(bad / "corrupted.mp4", damaged);
  }
  const std::string b = bad.string() + "/";
  ffmpeg("-f lavfi -i sine=frequency=440:duration=1 -c:a aac " + b + "audio.mp4");
  // Above the decode nodes' max_pixels (8192x4320): rejected at open, before decoding.
  ffmpeg("-f lavfi -i color=c=red:size=8200x4400:rate=25 -frames:v 2 -c:v libx264 -preset ultrafast " + b +
         "too_large.mp4");
  // Unusual but valid: decoded, scaled and cropped like any other clip.
  ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25 -frames:v 1 -c:v libx264 -pix_fmt yuv420p " + b +
         "one_frame.mp4");
  ffmpeg(
      "-f lavfi -i color=c=blue:size=4000x3000:rate=25 -frames:v 4 -c:v libx264 -preset ultrafast -pix_fmt "
      "yuv420p " +
      b + "huge.mp4");
  ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25 -frames:v 20 -c:v libx264 -pix_fmt yuv420p " + b +
         "upright.mp4");
  ffmpeg("-i " + b + "upright.mp4 -map 0 -c copy -metadata:s:v:0 rotate=90 " + b + "rotated.mp4");
  ffmpeg("-f lavfi -i testsrc=size=321x241:rate=25 -frames:v 20 -c:v libx264 -pix_fmt yuv444p " + b +
         "odd_h264.mp4");
  ffmpeg("-f lavfi -i testsrc=size=321x241:rate=25 -frames:v 20 -c:v mpeg4 " + b + "odd_mpeg4.mp4");
  // Something that is not a regular file.
  fs::create_directories(bad / "a_directory.mp4");

  // Expected category of every clip that must be skipped; the rest must be used.
  const std::map<std::string, std::string> must_skip = {
      {"missing.mp4", "missing"},       {"zero.mp4", "empty"},
      {"truncated.mp4", "truncated"},   {"notes.mp4", "not_video"},
      {"audio.mp4", "no_video_stream"}, {"too_large.mp4", "too_large"},
      {"a_directory.mp4", "not_video"}};
  const std::vector<std::string> must_use = {"one_frame.mp4", "huge.mp4", "rotated.mp4", "odd_h264.mp4",
                                             "odd_mpeg4.mp4"};
  {
    std::ofstream train(data / "train.csv", std::ios::app), unlabeled(data / "unlabel.csv", std::ios::app),
        val(data / "val.csv", std::ios::app);
    int label = 0;
    for (const auto& [name, category] : must_skip) train << "bad/" << name << " " << (label++ % 3) << "\n";
    for (const auto& name : must_use) train << "bad/" << name << " " << (label++ % 3) << "\n";
    train << "bad/corrupted.mp4 1\n";
    for (const char* name : {"missing.mp4", "truncated.mp4", "rotated.mp4", "odd_mpeg4.mp4", "corrupted.mp4"})
      unlabeled << "bad/" << name << " 0\n";
    for (const char* name : {"zero.mp4", "notes.mp4", "huge.mp4", "one_frame.mp4"})
      val << "bad/" << name << " 2\n";
  }

  // `timeout` turns a hang into a failure instead of a stuck test.
  auto r =
      shell("timeout -k 10 240 " + std::string(SEFAR_BINARY) + " run " + SEFAR_SOURCE_DIR +
            "/pipelines/quickstart.json --quiet --set train_list=" + (data / "train.csv").string() +
            " --set unlabeled_list=" + (data / "unlabel.csv").string() +
            " --set val_list=" + (data / "val.csv").string() +
            " --set num_classes=3 --set epochs=2 --set warmup_epochs=1 --set batch=2 --set unlabeled_batch=4"
            " --set runtime.run_dir=" +
            run_dir.string() + " --set runtime.threads=2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("val top-1") != std::string::npos);
  MESSAGE(r.output.substr(std::min(r.output.size(), r.output.find("skipped "))));

  // The summary on stderr: every skipped clip with its reason, and where the full list is.
  CHECK(r.output.find("skipped ") != std::string::npos);
  CHECK(r.output.find("(bad input)") != std::string::npos);
  for (const auto& [name, category] : must_skip)
    CHECK_MESSAGE(r.output.find("bad/" + name + ": ") != std::string::npos, name);
  CHECK(r.output.find("[decode_labeled] ") != std::string::npos);
  CHECK(r.output.find("[evaluation/decode] ") != std::string::npos);  // validation clips, every epoch

  // skipped.jsonl: one record per (pipeline, node, clip, reason), with counts.
  std::map<std::string, std::string> category_of;
  std::map<std::string, std::uint64_t> count_of;
  {
    std::ifstream in(run_dir / "skipped.jsonl");
    REQUIRE(in);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      const std::string item = j.at("item");
      const std::string name = fs::path(item).filename().string();
      CHECK(!j.at("reason").get<std::string>().empty());
      category_of[name] = j.value("category", "");
      count_of[j.at("node").get<std::string>() + ":" + name] += j.at("count").get<std::uint64_t>();
    }
  }
  for (const auto& [name, category] : must_skip) {
    CAPTURE(name);
    REQUIRE(category_of.count(name));
    CHECK(category_of[name] == category);
    CHECK(count_of["decode_labeled:" + name] == 2);  // once per epoch
  }
  CHECK(count_of["decode:zero.mp4"] == 2);  // the nested evaluation pipeline, once per epoch
  CHECK(count_of["decode:notes.mp4"] == 2);
  CHECK(count_of["decode_unlabeled:missing.mp4"] >= 1);
  for (const auto& name : must_use) CHECK_MESSAGE(category_of.count(name) == 0, name << " was skipped");

  // Training went to the end: both epochs stepped and were evaluated.
  std::ifstream metrics(run_dir / "metrics.jsonl");
  int evals = 0, steps = 0;
  for (std::string line; std::getline(metrics, line);) {
    evals += line.find("\"kind\":\"eval\"") != std::string::npos;
    steps += line.find("\"kind\":\"step\"") != std::string::npos;
  }
  CHECK(evals == 2);
  CHECK(steps >= 2 * 5);
  CHECK(fs::exists(run_dir / "model.safetensors"));
  auto profile = nlohmann::json::parse(sefar::testing::read_text(run_dir / "profile.json"));
  CHECK(profile["skipped"]["total"].get<std::uint64_t>() >= 2 * must_skip.size());

  // An unlabeled list without a single usable clip: the endless stream would skip forever; the run
  // stops as bad input instead, still listing what it skipped.
  {
    std::ofstream(data / "unlabel_bad.csv") << "bad/missing.mp4 0\nbad/zero.mp4 0\nbad/notes.mp4 0\n";
    auto stopped =
        shell("timeout -k 10 120 " + std::string(SEFAR_BINARY) + " run " + SEFAR_SOURCE_DIR +
              "/pipelines/quickstart.json --quiet --set train_list=" + (data / "train.csv").string() +
              " --set unlabeled_list=" + (data / "unlabel_bad.csv").string() +
              " --set val_list=" + (data / "val.csv").string() +
              " --set num_classes=3 --set runtime.run_dir=" + (dir / "run_bad").string());
    INFO(stopped.output);
    CHECK(stopped.status == 2);
    CHECK(stopped.output.find(
              "node 'unlabeled' (split_source) failed: no usable item: the last 6 items it produced were "
              "all skipped as bad input (3 items per pass)") != std::string::npos);
    CHECK(stopped.output.find("[decode_unlabeled] " + (data / "bad/zero.mp4").string() +
                              ": empty file (0 bytes)") != std::string::npos);
    CHECK(fs::file_size(dir / "run_bad" / "skipped.jsonl") > 0);
  }
  fs::remove_all(dir);
}
