// FineGym preparation: the annotation and category parsers, and `sefar prepare finegym` end to end on
// two short source videos made here, whose frames carry their own index as a bar code, so a clip's
// first and last frames say exactly which source frames it starts and ends with.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "io/finegym.h"
#include "io/class_names.h"
#include "io/split_list.h"
#include "io/video.h"
#include "run_helpers.h"
#include "test_frames.h"

namespace fs = std::filesystem;
using namespace sefar;
using sefar::testing::run_sefar;
using sefar::testing::TempDir;

namespace {

constexpr double kFps = 25;
constexpr int kWidth = 160, kHeight = 120, kBits = 10;  // 10 blocks of 16 px: frame indices below 1024

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A source video of `seconds` at 25 fps: frame k shows k in binary along its top 16 rows (white block
// b when bit b is set) above a pattern that moves, with a keyframe every 2 s and B-frames.
void make_source(const fs::path& path, double seconds) {
  const int frames = int(std::lround(seconds * kFps));
  const io::Frames f = testing::painted_frames(frames, kWidth, kHeight, [](int k, int x, int y, uint8_t* p) {
    if (y < 16) {
      p[0] = p[1] = p[2] = ((k >> (x / 16)) & 1) ? 255 : 0;
    } else {
      p[0] = uint8_t((x + 3 * k) % 200);
      p[1] = uint8_t((y * 2 + k) % 200);
      p[2] = 90;
    }
  });
  io::EncoderOptions eo;
  eo.gop = 50;
  io::write_video(path.string(), f, kFps, eo);
}

// The index a decoded frame carries.
int frame_code(const io::Frames& frames, int i) {
  int code = 0;
  for (int b = 0; b < kBits; ++b) {
    const uint8_t* p = frames.frame(i) + (std::size_t(8) * frames.width + b * 16 + 8) * 3;
    if (p[1] > 128) code |= 1 << b;
  }
  return code;
}

// Source frames k with start <= k / fps < end.
std::pair<int, int> expected_frames(double start, double end) {
  const int first = int(std::ceil(start * kFps - 1e-6)), last = int(std::ceil(end * kFps - 1e-6)) - 1;
  return {first, last};
}

struct Sub {
  std::string video, event, action;
  double event_start, start, end;  // start and end relative to the event
  std::string name() const { return video + "_" + event + "_" + action; }
};

std::string annotation_json(const std::vector<Sub>& subs) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& s : subs) {
    auto& e = j[s.video][s.event];
    e["event"] = 1;
    e["timestamps"] = {{s.event_start, s.event_start + 20}};
    e["segments"][s.action] = {{"stages", 1}, {"timestamps", {{s.start, s.end}}}};
  }
  j["Ab-cd_EF123"]["E_000100_000110"] = {
      {"event", 2}, {"timestamps", {{100.0, 110.0}}}, {"segments", nullptr}};
  return j.dump(1);
}

// What `parse` throws as FineGymError.
template <typename F>
std::string error_text(F parse) {
  try {
    parse();
  } catch (const io::FineGymError& e) {
    return e.what();
  }
  return "no error";
}

// A pid no process has (for a temporary file "left by a killed preparation").
long dead_pid() {
  for (long pid = 4000000; pid > 1000; --pid)
    if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) return pid;
  return 0;
}

}  // namespace

TEST_CASE("finegym annotation: clip times and names, and errors that name the key") {
  const std::string text = R"({"vid_1": {
      "E_000010_000020": {"event": 1, "timestamps": [[10.5, 20.0]],
        "segments": {"A_0001_0003": {"stages": 3, "timestamps": [[1.0, 1.5], [1.5, 2.0], [2.0, 3.25]]},
                     "A_0004_0004": {"stages": 1, "timestamps": [[4.0, 4.0]]}}},
      "E_000030_000031": {"event": 2, "timestamps": [[30, 31]], "segments": null}}})";
  const auto a = io::parse_finegym_annotation(text, "ann.json");
  REQUIRE(a.clips.size() == 1);
  CHECK(a.clips[0].name() == "vid_1_E_000010_000020_A_0001_0003");
  CHECK(a.clips[0].start == doctest::Approx(11.5));  // event start + the first stage's start
  CHECK(a.clips[0].end == doctest::Approx(13.75));   // event start + the last stage's end
  CHECK(a.clips[0].event_type == 1);
  CHECK(a.videos == 1);
  CHECK(a.events == 2);
  CHECK(a.events_without_segments == 1);
  REQUIRE(a.bad_times.size() == 1);  // zero length: kept out, reported
  CHECK(a.bad_times[0].clip == "vid_1_E_000010_000020_A_0004_0004");
  CHECK(a.bad_times[0].key == "vid_1/E_000010_000020/segments/A_0004_0004");

  auto error_of = [](const std::string& t) {
    return error_text([&] { io::parse_finegym_annotation(t, "ann.json"); });
  };
  CHECK(error_of("{\"v\": ").find("ann.json: 1 problem\n  not valid JSON") == 0);
  CHECK(error_of("[1, 2]").find("expected an object of YouTube video ids") != std::string::npos);
  const std::string e =
      error_of(R"({"v": {"E_1_2": {"timestamps": [[1, 2]], "segments": {"A_1_2": {"timestamps": "x"}}},
                                            "E_3_4": {"segments": null},
                                            "E_5_6": {"timestamps": [[1, 2]]}},
                                     "w/x": {}, "u": []})");
  CHECK(e.find("ann.json: 5 problems") == 0);
  CHECK(e.find("v/E_1_2/segments/A_1_2/timestamps: expected [[start, end], ...] in seconds, got \"x\"") !=
        std::string::npos);
  CHECK(e.find("v/E_3_4/timestamps: missing") != std::string::npos);
  CHECK(e.find("v/E_5_6/segments: missing") != std::string::npos);
  CHECK(e.find("video id \"w/x\": not a plain file name") != std::string::npos);
  CHECK(e.find("u: expected an object of events, got []") != std::string::npos);

  CHECK(io::clip_name_of("/root/video/X_E_1_2_A_3_4.mp4") == "X_E_1_2_A_3_4");
  CHECK(io::clip_name_of("X_E_1_2_A_3_4") == "X_E_1_2_A_3_4");
}

TEST_CASE("finegym categories: Clabel and name per line, classes.txt in label order") {
  const auto c = io::parse_finegym_categories(
      "Clabel:   1; set: 21; Glabel:  68; (FX) switch leap with 1 turn\r\n\n"
      "Clabel:   0; set:  1; Glabel:   1; (VT) round-off, flic-flac with 0.5 turn on; odd: name\n",
      "cats.txt");
  REQUIRE(c.size() == 2);
  CHECK(c[0].label == 1);
  CHECK(c[0].set == 21);
  CHECK(c[0].global_label == 68);
  CHECK(c[1].name == "(VT) round-off, flic-flac with 0.5 turn on; odd: name");
  CHECK(io::classes_txt(c) ==
        "0 (VT) round-off, flic-flac with 0.5 turn on; odd: name\n1 (FX) switch leap with 1 turn\n");
  auto error_of = [](const std::string& t) {
    return error_text([&] { io::parse_finegym_categories(t, "cats.txt"); });
  };
  CHECK(error_of("Clabel: x; a\n").find("cats.txt:1: \"Clabel\": expected an integer, got \" x\"") !=
        std::string::npos);
  CHECK(error_of("just a name\n").find("cats.txt:1: expected \"Clabel: N; set: S; Glabel: G; name\"") !=
        std::string::npos);
  CHECK(error_of("Clabel: 0; a\nClabel: 0; b\n").find("cats.txt:2: Clabel 0 again (first on line 1)") !=
        std::string::npos);
}

TEST_CASE("sefar prepare finegym: official names resolve to clips of the right frames; resumable") {
  if (!io::encoder_available(io::VideoCodec::kAuto)) return;
  TempDir tmp("finegym");
  const fs::path videos = tmp.path / "videos", out = tmp.path / "clips", lists = tmp.path / "lists";
  fs::create_directories(videos);
  make_source(videos / "Ab-cd_EF123.mp4", 12);  // a YouTube id with '-' and '_'
  make_source(videos / "Zz9.mkv", 10);
  write_text(videos / "Broken1.webm", "this is not a video at all");

  // Times off the 1/25 s grid and on it; sub-actions near each other (one pass) and far apart (a seek
  // past several keyframes); one that the source ends before.
  const std::vector<Sub> subs = {
      {"Ab-cd_EF123", "E_000001_000009", "A_0000_0002", 1.0, 0.51, 2.13},
      {"Ab-cd_EF123", "E_000001_000009", "A_0003_0004", 1.0, 2.9, 4.0},
      {"Ab-cd_EF123", "E_000009_000012", "A_0000_0002", 9.0, 0.3, 2.0},
      {"Zz9", "E_000004_000010", "A_0001_0003", 4.0, 1.0, 3.0},
      {"Zz9", "E_000004_000010", "A_0005_0007", 4.0, 5.0, 7.0},  // 9 s .. 11 s: the source ends at 10 s
      {"Missing7", "E_000001_000002", "A_0000_0001", 1.0, 0.0, 1.0},
      {"Broken1", "E_000001_000002", "A_0000_0001", 1.0, 0.0, 1.0},
  };
  write_text(tmp.path / "ann.json", annotation_json(subs));
  // The official list format: absolute /root/video paths and labels.
  std::string list;
  for (std::size_t i : {0, 1, 2, 3, 5})
    list += "/root/video/" + subs[i].name() + ".mp4 " + std::to_string(i % 3) + "\r\n";
  write_text(tmp.path / "train.csv", list);
  write_text(tmp.path / "cats.txt",
             "Clabel:   0; set:  1; Glabel:   1; (VT) a\nClabel:   1; set:  1; Glabel:   2; (VT) b\n"
             "Clabel:   2; set: 21; Glabel:  67; (FX) c\n");
  const std::string common = out.string() + " --annotation " + (tmp.path / "ann.json").string() +
                             " --videos " + videos.string() + " --jobs 2";
  const std::string with_list = common + " --list " + (tmp.path / "train.csv").string() + " --lists-out " +
                                lists.string() + " --categories " + (tmp.path / "cats.txt").string();

  auto r = run_sefar("prepare finegym " + with_list);
  INFO(r.output);
  CHECK(r.status == 3);  // a clip of the list was skipped: its video is missing
  CHECK(r.output.find("missing source video Missing7 (1 clip): none of " + (videos / "Missing7").string() +
                      ".mp4, .mkv, .webm") != std::string::npos);
  CHECK(r.output.find("5 clips: 4 cut now, 0 already there, 1 skipped") != std::string::npos);
  CHECK(r.output.find("wrote " + (lists / "train.csv").string() +
                      ": 4 of 5 clips (1 not prepared, left out)") != std::string::npos);

  // The rewritten list resolves (relative to its folder, as split_source reads it) to clips that
  // decode, each holding exactly the source frames of its range.
  const auto split = io::load_split_list((lists / "train.csv").string(), lists.string());
  REQUIRE(split.clips.size() == 4);
  std::map<std::string, fs::file_time_type> written;
  for (std::size_t n = 0; n < split.clips.size(); ++n) {
    const auto& entry = split.clips[n];
    const Sub& s = subs[n < 3 ? n : 3];
    INFO(entry.path);
    CHECK(fs::path(entry.path).filename() == s.name() + ".mp4");
    CHECK(entry.label == int((n < 3 ? n : 3) % 3));
    REQUIRE(fs::is_regular_file(entry.path));
    written[entry.path] = fs::last_write_time(entry.path);
    io::VideoDecoder dec;
    dec.open(entry.path);
    const auto [first, last] = expected_frames(s.event_start + s.start, s.event_start + s.end);
    CHECK(std::abs(dec.frame_count() - (last - first + 1)) <= 1);
    CHECK(std::abs(dec.frame_count() - (s.end - s.start) * kFps) <= 1);
    CHECK(dec.fps() == doctest::Approx(kFps).epsilon(0.01));
    CHECK(dec.width() == kWidth);
    const io::Frames frames = dec.decode({0, dec.frame_count() - 1});
    CHECK(frame_code(frames, 0) == first);
    CHECK(frame_code(frames, 1) == last);
  }
  CHECK(io::read_class_names((lists / "classes.txt").string()) ==
        std::vector<std::string>{"(VT) a", "(VT) b", "(FX) c"});

  // A rerun skips the clips already there (left untouched) and reports the missing video again.
  r = run_sefar("prepare finegym " + with_list);
  CHECK(r.status == 3);
  CHECK(r.output.find("5 clips in scope: 4 already there, 0 to cut from 0 videos") != std::string::npos);
  for (const auto& [path, time] : written) CHECK(fs::last_write_time(path) == time);

  // Without a list: every sub-action. A clip deleted since and a temporary file left by a killed
  // preparation: the clip is cut again, the temporary file removed. The broken and the short
  // video are named with their reasons.
  fs::remove(split.clips[1].path);
  const fs::path stale = out / (subs[3].name() + ".mp4.tmp." + std::to_string(dead_pid()) + ".0");
  write_text(stale, "half a clip");
  r = run_sefar("prepare finegym " + common);
  INFO(r.output);
  CHECK(r.status == 3);
  CHECK(!fs::exists(stale));
  CHECK(fs::is_regular_file(split.clips[1].path));
  CHECK(
      r.output.find("7 clips: 1 cut now, 3 already there, 3 skipped (1 source video missing, 1 unusable)") !=
      std::string::npos);
  CHECK(r.output.find("source video Broken1 skipped (1 clip): " + (videos / "Broken1.webm").string()) !=
        std::string::npos);
  CHECK(r.output.find("clip " + subs[4].name() + " not cut: " + (videos / "Zz9.mkv").string() +
                      ": cut short: the video ends at 10.00 s, before the clip ends (11.00 s)") !=
        std::string::npos);
  CHECK(!fs::exists(out / (subs[4].name() + ".mp4")));
  for (const auto& entry : fs::directory_iterator(out)) CHECK(entry.path().extension() == ".mp4");

  // Everything there: exit 0.
  fs::remove(videos / "Broken1.webm");
  std::vector<Sub> complete(subs.begin(), subs.begin() + 4);
  write_text(tmp.path / "ann_ok.json", annotation_json(complete));
  r = run_sefar("prepare finegym " + out.string() + " --annotation " + (tmp.path / "ann_ok.json").string() +
                " --videos " + videos.string());
  CHECK(r.status == 0);
  CHECK(r.output.find("4 clips: 0 cut now, 4 already there, 0 skipped") != std::string::npos);
}

TEST_CASE("sefar prepare finegym: bad input is exit 2, naming the file and key, before anything is cut") {
  TempDir tmp("finegym_bad");
  const fs::path out = tmp.path / "clips";
  fs::create_directories(tmp.path / "videos");
  write_text(tmp.path / "bad.json", R"({"v": {"E_1_2": {"timestamps": [[1]], "segments": null}}})");
  const std::string videos = " --videos " + (tmp.path / "videos").string();
  auto r = run_sefar("prepare finegym " + out.string() + " --annotation " + (tmp.path / "bad.json").string() +
                     videos);
  CHECK(r.status == 2);
  CHECK(r.output.find((tmp.path / "bad.json").string() + ": 1 problem") != std::string::npos);
  CHECK(r.output.find("v/E_1_2/timestamps: expected [[start, end], ...] in seconds, got [[1]]") !=
        std::string::npos);
  CHECK(!fs::exists(out));

  r = run_sefar("prepare finegym " + out.string() + " --annotation " + (tmp.path / "none.json").string() +
                videos);
  CHECK(r.status == 2);
  CHECK(r.output.find((tmp.path / "none.json").string() + ": 1 problem\n  cannot be read") !=
        std::string::npos);

  write_text(tmp.path / "ok.json", R"({"v": {"E_1_2": {"timestamps": [[1, 2]], "segments": null}}})");
  write_text(tmp.path / "list.csv", "/root/video/a.mp4 x\n");
  r = run_sefar("prepare finegym " + out.string() + " --annotation " + (tmp.path / "ok.json").string() +
                videos + " --list " + (tmp.path / "list.csv").string());
  CHECK(r.status == 2);
  CHECK(r.output.find("list.csv:1:") != std::string::npos);

  r = run_sefar("prepare finegym " + out.string() + " --annotation " + (tmp.path / "ok.json").string() +
                " --videos " + (tmp.path / "nowhere").string());
  CHECK(r.status == 2);
  CHECK(r.output.find("nowhere: not a directory") != std::string::npos);

  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"prepare", "missing DATASET"},
           {"prepare finegum", "unknown dataset \"finegum\" (did you mean \"finegym\"?)"},
           {"prepare finediving", "docs/FINEGYM.md"},
           {"prepare finegym", "missing OUT_DIR"},
           {"prepare finegym o --videos v", "--annotation FILE is required"},
           {"prepare finegym o --annotation a --videos v --jobs 0", "--jobs: 0 is outside [1, 1024]"},
           {"prepare finegym o --annotation a --videos v --short-side 255", "--short-side: 255 is odd"},
           {"prepare finegym o --annotation a --videos v --codec vp8",
            "--codec: expected auto, h264 or mpeg4"},
           {"prepare finegym o --annotation a --video v", "unknown option --video (did you mean --videos?)"},
           {"prepare finegym o --annotation", "--annotation needs a value"}}) {
    r = run_sefar(args);
    INFO(args, "\n", r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(message) != std::string::npos);
  }
  r = run_sefar("prepare finegym --help");
  CHECK(r.status == 0);
  for (const char* option : {"--annotation", "--videos", "--list", "--lists-out", "--categories", "--jobs",
                             "--short-side", "--codec", "--crf", "--preset", "exit status: 0"})
    CHECK(r.output.find(option) != std::string::npos);
}
