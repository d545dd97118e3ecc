// The FFmpeg video layer: frame-exact decoding checked against the ffmpeg CLI, the encoder, bad clips.
// Clips are tiny (96x64, 20-40 frames) and generated into a private temp directory.
#include <doctest/doctest.h>

#include "io/video.h"
#include "run_helpers.h"
#include "test_frames.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
}

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace sefar::io;

namespace {

constexpr int kW = 96, kH = 64;

// A file name in the test's temporary folder. FFmpeg is quiet from the first call on: bad clips below
// make it complain, by design.
std::string tmp(const std::string& name) {
  static const sefar::testing::TempDir t = [] {
    set_ffmpeg_log(FfmpegLog::kQuiet);
    return sefar::testing::TempDir("test_video");
  }();
  return (t.path / name).string();
}

std::string shq(const std::string& s) {
  return "'" + s + "'";
}
int sh(const std::string& cmd) {
  return std::system(cmd.c_str());
}
std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}
bool have_ffmpeg() {
  static const bool ok = sh("command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1") == 0;
  return ok;
}
#define SKIP_WITHOUT_FFMPEG()                              \
  if (!have_ffmpeg()) {                                    \
    MESSAGE("ffmpeg/ffprobe not installed: test skipped"); \
    return;                                                \
  }

// Distinct content per frame: a drifting gradient, a moving square, and the frame number in binary as
// large black/white blocks along the bottom, so a wrong index cannot pass for the right one.
Frames pattern(int n, int w = kW, int h = kH) {
  return sefar::testing::painted_frames(n, w, h, [w, h](int t, int x, int y, uint8_t* px) {
    const int sx = (t * 5) % (w - 16), sy = (t * 3) % (h - 24);
    px[0] = static_cast<uint8_t>((x * 2 + t * 9) & 255);
    px[1] = static_cast<uint8_t>((y * 3 + t * 5) & 255);
    px[2] = static_cast<uint8_t>(((x + y) * 2 + t * 13) & 255);
    if (x >= sx && x < sx + 16 && y >= sy && y < sy + 16) px[0] = px[1] = px[2] = 240;
    if (y >= h - 8) {
      const int bit = x / 8;
      const bool on = bit < 8 && ((t >> bit) & 1);
      px[0] = px[1] = px[2] = on ? 255 : 0;
    }
  });
}

// The frame number pattern() wrote into image i of `f`, read back from the bottom blocks.
int frame_number(const Frames& f, int i) {
  const uint8_t* img = f.frame(i);
  int n = 0;
  for (int bit = 0; bit < 8; ++bit) {
    const int x = bit * 8 * f.width / kW + 4 * f.width / kW, y = f.height - 4 * f.height / kH;
    if (img[(static_cast<std::size_t>(y) * f.width + x) * 3 + 1] > 128) n |= 1 << bit;
  }
  return n;
}

// Every frame of each clip as the ffmpeg CLI outputs it, at each of the clip's sizes, with the filter
// chain a ScalePath mirrors: "scale=W:H:flags=bilinear" then RGB24 (kDirect), or with ",format=gbrp"
// after the scale (kPlanarRgb: resize to planar RGB, then interleave). One ffmpeg run for
// everything (process start-up dominates on tiny clips). passthrough: no frame dropped or duplicated,
// so image k of a dump is the k-th decoded frame.
struct Ref {
  int first, second;  // width, height
  ScalePath path = ScalePath::kPlanarRgb;
};
using Sizes = std::vector<Ref>;
std::vector<std::vector<Frames>> ffmpeg_frames(const std::vector<std::string>& clips,
                                               const std::vector<Sizes>& sizes) {
  std::string inputs, graph, outputs;
  std::vector<std::vector<std::string>> files(clips.size());
  for (std::size_t c = 0; c < clips.size(); ++c) {
    const std::string ci = std::to_string(c);
    inputs += " -threads 1 -i " + shq(clips[c]);
    graph +=
        (graph.empty() ? "" : ";") + std::string("[") + ci + ":v]split=" + std::to_string(sizes[c].size());
    for (std::size_t i = 0; i < sizes[c].size(); ++i) graph += "[s" + ci + "_" + std::to_string(i) + "]";
    for (std::size_t i = 0; i < sizes[c].size(); ++i) {
      const std::string n = ci + "_" + std::to_string(i);
      graph += ";[s" + n + "]scale=" + std::to_string(sizes[c][i].first) + ":" +
               std::to_string(sizes[c][i].second) + ":flags=bilinear" +
               (sizes[c][i].path == ScalePath::kPlanarRgb ? ",format=gbrp" : "") + "[o" + n + "]";
      files[c].push_back(tmp("dump" + n + ".rgb"));
      outputs +=
          " -map '[o" + n + "]' -fps_mode passthrough -f rawvideo -pix_fmt rgb24 " + shq(files[c].back());
    }
  }
  // One thread per filter graph: dozens of scalers each starting threads cost more than they save here.
  sh("ffmpeg -v error -nostdin -y -filter_complex_threads 1" + inputs + " -filter_complex '" + graph + "'" +
     outputs + " >/dev/null 2>&1");
  std::vector<std::vector<Frames>> all(clips.size());
  for (std::size_t c = 0; c < clips.size(); ++c) {
    for (std::size_t i = 0; i < sizes[c].size(); ++i) {
      Frames f;
      f.width = sizes[c][i].first;
      f.height = sizes[c][i].second;
      std::ifstream in(files[c][i], std::ios::binary);
      f.rgb.assign(std::istreambuf_iterator<char>(in), {});
      f.count = static_cast<int>(f.rgb.size() / f.frame_bytes());
      all[c].push_back(std::move(f));
      fs::remove(files[c][i]);
    }
  }
  return all;
}
std::vector<Frames> ffmpeg_frames(const std::string& clip, const Sizes& sizes) {
  return ffmpeg_frames(std::vector<std::string>{clip}, std::vector<Sizes>{sizes})[0];
}

// Frames picked by the CLI's own frame counter (select=eq(n,K)), the most literal reference
// (scaled as ScalePath::kPlanarRgb).
Frames ffmpeg_select(const std::string& clip, const std::vector<int>& ks, int w, int h) {
  std::string expr;
  for (int k : ks) expr += (expr.empty() ? "" : "+") + std::string("eq(n\\,") + std::to_string(k) + ")";
  const std::string cmd =
      "ffmpeg -v error -nostdin -i " + shq(clip) + " -vf 'select=" + expr + ",scale=" + std::to_string(w) +
      ":" + std::to_string(h) +
      ":flags=bilinear,format=gbrp' -fps_mode passthrough -f rawvideo -pix_fmt rgb24 - 2>/dev/null";
  Frames f;
  f.width = w;
  f.height = h;
  const std::string raw = capture(cmd);
  f.rgb.assign(raw.begin(), raw.end());
  f.count = static_cast<int>(raw.size() / f.frame_bytes());
  return f;
}

// ffprobe's decoded frame count (-count_frames) and frame times, once per clip.
struct Probe {
  int count = -1;
  std::vector<double> pts_time;  // NaN where ffprobe has none
};
Probe run_ffprobe(const std::string& clip) {
  const std::string out = capture(
      "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
      "stream=nb_read_frames:frame=pts_time -of default=nw=1 " +
      shq(clip) + " 2>/dev/null");
  Probe p;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(pos, end - pos);
    if (line.rfind("nb_read_frames=", 0) == 0) p.count = std::atoi(line.c_str() + 15);
    if (line.rfind("pts_time=", 0) == 0)
      p.pts_time.push_back(line == "pts_time=N/A" ? std::nan("") : std::atof(line.c_str() + 9));
    pos = end + 1;
  }
  return p;
}
std::map<std::string, Probe>& probe_cache() {
  static std::map<std::string, Probe> cache;
  return cache;
}
// Probes the clips concurrently (one process each).
void prefetch_ffprobe(const std::vector<std::string>& clips) {
  std::vector<std::future<Probe>> jobs;
  for (const std::string& c : clips) jobs.push_back(std::async(std::launch::async, run_ffprobe, c));
  for (std::size_t i = 0; i < clips.size(); ++i) probe_cache()[clips[i]] = jobs[i].get();
}
const Probe& ffprobe(const std::string& clip) {
  auto it = probe_cache().find(clip);
  if (it == probe_cache().end()) it = probe_cache().emplace(clip, run_ffprobe(clip)).first;
  return it->second;
}

double psnr(const uint8_t* a, const uint8_t* b, std::size_t n) {
  double se = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10 * std::log10(255.0 * 255.0 / (se / n));
}

struct Clip {
  std::string name, path;
};

// The clips of the frame-accuracy test, made once: by our encoder and by the ffmpeg CLI.
const std::vector<Clip>& accuracy_clips() {
  static std::vector<Clip> clips = [] {
    std::vector<Clip> c;
    const Frames src = pattern(36);
    {
      EncoderOptions o;
      o.codec = VideoCodec::kH264;
      o.gop = 12;
      o.max_b_frames = 3;
      const std::string p = tmp("ours_h264_bf3.mp4");
      if (encoder_available(VideoCodec::kH264)) write_video(p, src, 25, o), c.push_back({"ours h264 bf3", p});
    }
    {
      EncoderOptions o;
      o.codec = VideoCodec::kMpeg4;
      o.gop = 10;
      o.max_b_frames = 2;
      o.crf = 3;
      const std::string p = tmp("ours_mpeg4.mp4");
      write_video(p, src, 25, o);
      c.push_back({"ours mpeg4 bf2", p});
    }
    if (encoder_available(VideoCodec::kVp9)) {
      EncoderOptions o;
      o.codec = VideoCodec::kVp9;
      o.gop = 10;
      o.crf = 30;
      const std::string p = tmp("ours_vp9.webm");
      write_video(p, pattern(20), 25, o);
      c.push_back({"ours vp9 webm", p});
    }
    {
      // Variable frame rate: irregular gaps in milliseconds.
      EncoderOptions o;
      o.codec = VideoCodec::kAuto;
      o.gop = 8;
      o.max_b_frames = 2;
      o.timescale = 1000;
      int64_t t = 0;
      for (int i = 0; i < 30; ++i) o.pts.push_back(t), t += 20 + (i * 7) % 45;
      const std::string p = tmp("ours_vfr.mp4");
      write_video(p, pattern(30), 25, o);
      c.push_back({"ours vfr", p});
    }
    if (!have_ffmpeg()) return c;
    const std::string src_lavfi = "-f lavfi -i testsrc2=size=96x64:rate=25";
    const std::vector<std::array<std::string, 3>> cli = {
        {"cli h264 bf3", "cli_h264.mp4", "-frames:v 40 -c:v libx264 -bf 3 -g 12 -pix_fmt yuv420p"},
        {"cli mpeg4", "cli_mpeg4.mp4", "-frames:v 30 -c:v mpeg4 -bf 2 -g 10 -q:v 3"},
        {"cli vp9 webm", "cli_vp9.webm",
         "-frames:v 20 -c:v libvpx-vp9 -g 10 -crf 30 -b:v 0 -deadline realtime -cpu-used 8"},
        {"cli vfr h264", "cli_vfr.mp4",
         "-frames:v 30 -vf setpts='(N*N/8+N*2)/25/TB' -fps_mode vfr -c:v libx264 -bf 2 -g 9"},
        {"cli mpeg4 avi bf2 (no pts)", "cli_mpeg4_bf.avi", "-frames:v 30 -c:v mpeg4 -bf 2 -g 12 -q:v 3"},
    };
    // One run writing every clip; clip by clip only if that fails (an encoder missing).
    std::string all = "ffmpeg -v error -nostdin -y " + src_lavfi;
    for (const auto& [name, file, args] : cli) all += " " + args + " " + shq(tmp(file));
    const bool together = sh(all + " >/dev/null 2>&1") == 0;
    for (const auto& [name, file, args] : cli) {
      const std::string p = tmp(file);
      if (together || sh("ffmpeg -v error -nostdin -y " + src_lavfi + " " + args + " " + shq(p) +
                         " >/dev/null 2>&1") == 0)
        c.push_back({name, p});
      else
        MESSAGE("could not make " << name << " with the ffmpeg CLI");
    }
    return c;
  }();
  return clips;
}

// True when the ffmpeg CLI runs the same libavcodec and libswscale as this binary.
bool cli_uses_our_ffmpeg() {
  static const bool same = [] {
    const std::string v = capture("ffmpeg -version 2>/dev/null");
    auto runtime = [&](const std::string& lib) {  // "libswscale      6.  7.100 /  6.  7.100"
      const std::size_t at = v.find(lib + " ");
      if (at == std::string::npos) return 0u;
      const std::size_t slash = v.find('/', at);
      unsigned a = 0, b = 0, c = 0;
      if (slash == std::string::npos || std::sscanf(v.c_str() + slash + 1, " %u. %u.%u", &a, &b, &c) != 3)
        return 0u;
      return (a << 16) | (b << 8) | c;
    };
    return runtime("libswscale") == swscale_version() && runtime("libavcodec") == avcodec_version();
  }();
  return same;
}

struct Tally {
  int frames = 0, exact = 0;
  double min_psnr = std::numeric_limits<double>::infinity();
};

// Frames returned for `indices` against the CLI's frames at those indices.
void compare(const Frames& got, const Frames& ref, Tally& tally) {
  REQUIRE(got.width == ref.width);
  REQUIRE(got.height == ref.height);
  REQUIRE(got.count == static_cast<int>(got.indices.size()));
  for (int i = 0; i < got.count; ++i) {
    const int k = got.indices[i];
    REQUIRE(k < ref.count);
    const double p = psnr(got.frame(i), ref.frame(k), got.frame_bytes());
    ++tally.frames;
    tally.exact += std::isinf(p);
    tally.min_psnr = std::min(tally.min_psnr, p);
    CHECK_MESSAGE(p > 45.0, "frame " << k << " PSNR " << p);
    // Same decoder and scaler code as the CLI: nothing short of identical bytes is right.
    if (cli_uses_our_ffmpeg()) CHECK_MESSAGE(std::isinf(p), "frame " << k << " not bit-exact, PSNR " << p);
  }
}

}  // namespace

TEST_CASE("resized_size keeps aspect on the short side, exact size wins") {
  CHECK(resized_size(640, 360, {}) == std::pair<int, int>{640, 360});
  CHECK(resized_size(640, 360, {256, 0, 0}) == std::pair<int, int>{455, 256});
  CHECK(resized_size(360, 640, {256, 0, 0}) == std::pair<int, int>{256, 455});
  CHECK(resized_size(640, 360, {256, 224, 100}) == std::pair<int, int>{224, 100});
  CHECK(resized_size(96, 64, {40, 0, 0}) == std::pair<int, int>{60, 40});
}

TEST_CASE("encoder output decodes back: count, size, content, timestamps") {
  const Frames src = pattern(24);
  const std::string p = tmp("roundtrip.mp4");
  const VideoCodec used = write_video(p, src, 25);
  CHECK(used == (encoder_available(VideoCodec::kH264) ? VideoCodec::kH264 : VideoCodec::kMpeg4));
  VideoDecoder dec;
  dec.open(p);
  CHECK(dec.frame_count() == 24);
  CHECK(dec.width() == kW);
  CHECK(dec.height() == kH);
  CHECK(dec.fps() == doctest::Approx(25.0));
  CHECK(dec.frame_time(5) == doctest::Approx(0.2));
  std::vector<int> all(24);
  for (int i = 0; i < 24; ++i) all[i] = i;
  const Frames got = dec.decode(all);
  for (int i = 0; i < 24; ++i) {
    CHECK(frame_number(got, i) == i);
    // Lossy (crf 23 on a tiny, colourful pattern; 4:2:0 chroma): only a sanity bound.
    CHECK(psnr(got.frame(i), src.frame(i), got.frame_bytes()) > 20.0);
  }
  // Neighbouring frames differ a lot: a wrong index would fail the accuracy tests below.
  for (int i = 0; i + 1 < 24; ++i) CHECK(psnr(got.frame(i), got.frame(i + 1), got.frame_bytes()) < 20.0);

  // Explicit (variable) timestamps come back as frame times.
  EncoderOptions vfr;
  vfr.timescale = 1000;
  vfr.pts = {0, 40, 50, 130, 140, 300, 310, 320};
  const std::string pv = tmp("roundtrip_vfr.mp4");
  write_video(pv, pattern(8), 25, vfr);
  dec.open(pv);
  REQUIRE(dec.frame_count() == 8);
  for (int i = 0; i < 8; ++i) CHECK(dec.frame_time(i) == doctest::Approx(vfr.pts[i] / 1000.0).epsilon(1e-3));
}

TEST_CASE("decoded frames equal the ffmpeg CLI's for the same indices and scaling") {
  SKIP_WITHOUT_FFMPEG();
  const std::vector<ResizeSpec> sizes = {{}, {40, 0, 0}, {0, 50, 30}};
  std::map<std::string, Tally> by_path;
  double path_psnr = std::numeric_limits<double>::infinity();
  const std::vector<Clip>& clips = accuracy_clips();
  std::vector<std::string> paths;
  std::vector<Sizes> dims(clips.size());
  for (std::size_t c = 0; c < clips.size(); ++c) {
    paths.push_back(clips[c].path);
    VideoDecoder probe;
    probe.open(clips[c].path);
    for (const ResizeSpec& rs : sizes) {
      const auto [w, h] = resized_size(probe.width(), probe.height(), rs);
      // Without a size change both paths are the plain conversion to RGB24.
      const bool same = w == probe.width() && h == probe.height();
      dims[c].push_back({w, h, same ? ScalePath::kDirect : ScalePath::kPlanarRgb});
      dims[c].push_back({w, h, ScalePath::kDirect});
    }
  }
  auto probes = std::async(std::launch::async, prefetch_ffprobe, paths);
  const std::vector<std::vector<Frames>> all_refs = ffmpeg_frames(paths, dims);
  probes.get();
  for (std::size_t c = 0; c < clips.size(); ++c) {
    const Clip& clip = clips[c];
    CAPTURE(clip.name);
    VideoDecoder probe;
    probe.open(clip.path);
    const int n = probe.frame_count();
    CHECK(n == ffprobe(clip.path).count);
    REQUIRE(n >= 20);
    // Unsorted, repeated, first and last.
    const std::vector<int> idx = {n - 1, 0, 7, 7, 3, n / 2, 1, n - 2, 0, 13, n - 1};
    const std::vector<Frames>& refs = all_refs[c];
    for (std::size_t si = 0; si < sizes.size(); ++si) {
      const ResizeSpec& rs = sizes[si];
      const Frames& ref_planar = refs[2 * si];
      const Frames& ref_direct = refs[2 * si + 1];
      CAPTURE(ref_planar.width);
      CAPTURE(ref_planar.height);
      REQUIRE(ref_planar.count == n);
      REQUIRE(ref_direct.count == n);
      for (int k = 0; k < n; ++k)  // the two scaler paths differ little
        path_psnr =
            std::min(path_psnr, psnr(ref_planar.frame(k), ref_direct.frame(k), ref_planar.frame_bytes()));
      // Cached packets (default), demuxer seeks, frame threading, no frame skipping and the direct
      // scaler must all agree with the CLI.
      DecoderOptions seek;
      seek.packet_cache_bytes = 0;
      DecoderOptions threaded;
      threaded.threads = 2;
      DecoderOptions all_frames;
      all_frames.skip_unneeded = false;
      DecoderOptions direct;
      direct.scale_path = ScalePath::kDirect;
      for (const DecoderOptions& o : {DecoderOptions{}, seek, threaded, all_frames, direct}) {
        const Frames& ref = o.scale_path == ScalePath::kDirect ? ref_direct : ref_planar;
        VideoDecoder dec(o);
        dec.open(clip.path);
        compare(dec.decode(idx, rs), ref, by_path[clip.name]);
        // A second request on the same decoder, starting later in the clip (a seek forward).
        compare(dec.decode({n - 3, n / 2 + 1}, rs), ref, by_path[clip.name]);
        const DecodeStats& st = dec.last_stats();
        CHECK(st.seeked == (o.packet_cache_bytes == 0));
        // The demuxer seek lands on the keyframe (no fallback to a reopen) when pts index the frames.
        if (dec.pts_indexed()) CHECK_FALSE(st.reopened);
        CHECK(st.frames_converted == 2);
      }
    }
  }
  for (const auto& [name, t] : by_path)
    MESSAGE(name << ": " << t.exact << "/" << t.frames << " frames bit-exact, min PSNR " << t.min_psnr
                 << " dB");
  MESSAGE("scale paths (planar RGB vs direct to RGB): min PSNR between them " << path_psnr << " dB");
}

TEST_CASE("the CLI's select=eq(n,K) agrees with its full dump and with us") {
  SKIP_WITHOUT_FFMPEG();
  for (const Clip& clip : accuracy_clips()) {
    if (clip.name != "cli vfr h264") continue;
    CAPTURE(clip.name);
    VideoDecoder dec;
    dec.open(clip.path);
    const int n = dec.frame_count();
    const std::vector<int> ks = {0, n / 2 + 1, n - 1};
    const Frames sel = ffmpeg_select(clip.path, ks, 60, 40);
    REQUIRE(sel.count == 3);
    Frames got = dec.decode(ks, {40, 0, 0});
    got.indices = {0, 1, 2};  // compare image i with selected image i
    Tally t;
    compare(got, sel, t);
  }
}

TEST_CASE("frame times follow presentation timestamps (variable frame rate included)") {
  SKIP_WITHOUT_FFMPEG();
  for (const Clip& clip : accuracy_clips()) {
    CAPTURE(clip.name);
    const std::vector<double>& t = ffprobe(clip.path).pts_time;
    VideoDecoder dec;
    dec.open(clip.path);
    REQUIRE(dec.frame_count() == static_cast<int>(t.size()));
    if (!dec.pts_indexed()) continue;  // AVI with B-frames: no pts to compare
    double min_gap = 1e9, max_gap = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
      CHECK(dec.frame_time(static_cast<int>(i)) == doctest::Approx(t[i] - t[0]).epsilon(1e-3));
      if (i) min_gap = std::min(min_gap, t[i] - t[i - 1]), max_gap = std::max(max_gap, t[i] - t[i - 1]);
    }
    if (clip.name.find("vfr") != std::string::npos) CHECK(max_gap > 1.5 * min_gap);  // really variable
  }
}

TEST_CASE("one forward pass from the keyframe at or before the first needed frame") {
  const std::string p = tmp("gop12.mp4");
  EncoderOptions o;
  o.gop = 12;
  o.max_b_frames = encoder_available(VideoCodec::kH264) ? 3 : 2;
  write_video(p, pattern(36), 25, o);
  for (std::size_t cache : {std::size_t{64} << 20, std::size_t{0}}) {
    DecoderOptions opt;
    opt.packet_cache_bytes = cache;
    VideoDecoder dec(opt);
    dec.open(p);
    REQUIRE(dec.frame_count() == 36);
    // x264 may add keyframes at scene cuts: expect the last keyframe at or before frame 27.
    const std::vector<int> keys = dec.keyframes();
    REQUIRE(!keys.empty());
    CHECK(keys.front() == 0);
    int expect_start = 0;
    for (int k : keys)
      if (k <= 27) expect_start = k;
    CHECK(expect_start >= 16);  // gop 12 (+ scene cuts)
    const Frames late = dec.decode({30, 27, 30});
    const DecodeStats s = dec.last_stats();
    CHECK(s.start_frame == expect_start);
    CHECK(s.frames_converted == 2);
    // From the keyframe to frame 30 plus what reordering holds back; never the whole clip.
    CHECK(s.frames_decoded <= 30 - expect_start + 1 + 4);
    CHECK(s.frames_decoded < 20);
    CHECK(frame_number(late, 0) == 30);
    CHECK(frame_number(late, 1) == 27);
    CHECK(s.seeked == (cache == 0));
    CHECK_FALSE(s.reopened);
    CHECK(std::equal(late.frame(0), late.frame(0) + late.frame_bytes(), late.frame(2)));
    dec.decode({2, 5});
    CHECK(dec.last_stats().start_frame == 0);
    CHECK(dec.last_stats().frames_decoded <= 8);
  }
}

TEST_CASE("display rotation is applied like the ffmpeg CLI's autorotate") {
  SKIP_WITHOUT_FFMPEG();
  const std::string src = tmp("rot_src.mp4");
  write_video(src, pattern(12), 25);
  std::string mux = "ffmpeg -v error -nostdin -y -i " + shq(src);
  for (int tag : {90, 180})
    mux += " -map 0 -c copy -metadata:s:v:0 rotate=" + std::to_string(tag) + " " +
           shq(tmp("rot" + std::to_string(tag) + ".mp4"));
  REQUIRE(sh(mux + " >/dev/null 2>&1") == 0);
  for (int tag : {90, 180}) {
    CAPTURE(tag);
    const std::string p = tmp("rot" + std::to_string(tag) + ".mp4");
    int deg = 180;
    if (tag == 90) {
      // The display matrix's angle as ffprobe reports it (counter-clockwise); the picture is turned
      // back clockwise by it. (What the "rotate" tag means on muxing changed across FFmpeg versions.)
      const std::string probed = capture(
          "ffprobe -v error -select_streams v:0 -show_entries "
          "stream_side_data=rotation -of csv=p=0 " +
          shq(p) + " 2>/dev/null");
      if (probed.empty()) {
        MESSAGE("this ffmpeg wrote no display matrix for rotate=" << tag);
        continue;
      }
      deg = ((-std::atoi(probed.c_str())) % 360 + 360) % 360;
    }
    VideoDecoder dec;
    dec.open(p);
    CHECK(dec.rotation() == deg);
    const int w = deg == 180 ? kW : kH, h = deg == 180 ? kH : kW;
    CHECK(dec.width() == w);
    CHECK(dec.height() == h);
    Tally t;
    const std::vector<Frames> refs =
        ffmpeg_frames(p, {{w, h, ScalePath::kDirect}, {30, 44, ScalePath::kPlanarRgb}});
    compare(dec.decode({0, 5, 11}), refs[0], t);
    compare(dec.decode({4}, {0, 30, 44}), refs[1], t);
    MESSAGE("rotation " << deg << ": " << t.exact << "/" << t.frames << " bit-exact, min PSNR "
                        << t.min_psnr);
    DecoderOptions raw;
    raw.apply_rotation = false;
    VideoDecoder keep(raw);
    keep.open(p);
    CHECK(keep.rotation() == 0);
    CHECK(keep.width() == kW);
  }
}

// --- bad clips -------------------------------------------------------------------------------------

namespace {
// The error a bad clip gives at open or decode; fails the test when there is none.
VideoError error_of(const std::string& path, const std::vector<int>& indices = {0}) {
  try {
    VideoDecoder dec;
    dec.open(path);
    dec.decode(indices);
  } catch (const VideoError& e) {
    return e;
  }
  FAIL("no VideoError for " << path);
  return VideoError(VideoErrorKind::kIo, path, "unreachable");
}
// error_of(path), checked to be of kind `kind` and to name the file in its message.
VideoError checked_error_of(const std::string& path, VideoErrorKind kind) {
  const VideoError e = error_of(path);
  CHECK(e.kind() == kind);
  CHECK(std::string(e.what()).find(path) != std::string::npos);
  return e;
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
// Writes the first half of file `full` to `half`.
void write_first_half(const std::string& full, const std::string& half) {
  const std::string bytes = read_file(full);
  write_file(half, bytes.substr(0, bytes.size() / 2));
}
}  // namespace

TEST_CASE("bad clips give a VideoError naming the file and the reason") {
  SUBCASE("missing") {
    const std::string p = tmp("does_not_exist.mp4");
    CHECK(checked_error_of(p, VideoErrorKind::kMissing).path() == p);
  }
  SUBCASE("zero bytes") {
    const std::string p = tmp("empty.mp4");
    write_file(p, "");
    checked_error_of(p, VideoErrorKind::kEmpty);
  }
  SUBCASE("a directory") {
    const std::string p = tmp("a_directory.mp4");
    fs::create_directories(p);
    CHECK(error_of(p).kind() == VideoErrorKind::kNotVideo);
  }
  SUBCASE("not a video: text renamed .mp4") {
    const std::string p = tmp("notes.mp4");
    write_file(p, "path/to/clip.mp4 3\nthis is a split list, not a video\n");
    checked_error_of(p, VideoErrorKind::kNotVideo);
  }
  SUBCASE("truncated: index at the front (faststart), cut in half") {
    const std::string full = tmp("to_cut_fast.mp4"), p = tmp("cut_fast.mp4");
    write_video(full, pattern(30), 25);
    write_first_half(full, p);
    checked_error_of(p, VideoErrorKind::kTruncated);
  }
  SUBCASE("truncated: index at the end, cut in half") {
    const std::string full = tmp("to_cut_slow.mp4"), p = tmp("cut_slow.mp4");
    EncoderOptions o;
    o.faststart = false;
    write_video(full, pattern(30), 25, o);
    write_first_half(full, p);
    checked_error_of(p, VideoErrorKind::kTruncated);
  }
  SUBCASE("audio only") {
    SKIP_WITHOUT_FFMPEG();
    REQUIRE(sh("ffmpeg -v error -nostdin -y -f lavfi -i sine=frequency=440:duration=0.5 " +
               shq(tmp("tone.mp4")) + " " + shq(tmp("tone.wav")) + " >/dev/null 2>&1") == 0);
    for (const char* name : {"tone.mp4", "tone.wav"}) {
      const std::string p = tmp(name);
      CHECK(checked_error_of(p, VideoErrorKind::kNoVideoStream).reason().find("audio") != std::string::npos);
    }
  }
  SUBCASE("index out of range") {
    const std::string p = tmp("range.mp4");
    write_video(p, pattern(10), 25);
    VideoDecoder dec;
    dec.open(p);
    for (int bad : {10, -1, 1000}) {
      try {
        dec.decode({0, bad});
        FAIL("no error for index " << bad);
      } catch (const VideoError& e) {
        CHECK(e.kind() == VideoErrorKind::kIndexOutOfRange);
        CHECK(std::string(e.what()).find(p) != std::string::npos);
        CHECK(e.reason().find(std::to_string(bad)) != std::string::npos);
      }
    }
    CHECK_NOTHROW(dec.decode({9}));  // the decoder is still usable
  }
}

TEST_CASE("corrupted packets: frames or a VideoError, never a crash or a hang") {
  std::vector<std::string> sources;
  {
    const std::string p = tmp("to_corrupt.mp4");
    EncoderOptions o;
    o.gop = 10;
    write_video(p, pattern(40), 25, o);
    sources.push_back(p);
  }
  if (encoder_available(VideoCodec::kVp9)) {
    const std::string p = tmp("to_corrupt.webm");
    EncoderOptions o;
    o.codec = VideoCodec::kVp9;
    o.gop = 10;
    write_video(p, pattern(20), 25, o);
    sources.push_back(p);
  }
  std::mt19937 rng(1234);
  int trials = 0, errors = 0, decoded = 0;
  for (const std::string& src : sources) {
    const std::string bytes = read_file(src);
    for (int trial = 0; trial < 6; ++trial) {
      std::string bad = bytes;
      // Overwrite a run of bytes in the middle of the payload.
      const std::size_t from = bad.size() / 4 + rng() % (bad.size() / 2);
      const std::size_t len = std::min<std::size_t>(64 + rng() % 512, bad.size() - from);
      for (std::size_t i = 0; i < len; ++i) bad[from + i] = static_cast<char>(rng());
      const std::string p = tmp("corrupt_" + std::to_string(trials) + fs::path(src).extension().string());
      write_file(p, bad);
      ++trials;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        VideoDecoder dec;
        dec.open(p);
        std::vector<int> all(dec.frame_count());
        for (int i = 0; i < dec.frame_count(); ++i) all[i] = i;
        const Frames f = dec.decode(all, {32, 0, 0});
        CHECK(f.count == dec.frame_count());
        ++decoded;
      } catch (const VideoError& e) {
        CHECK(std::string(e.what()).find(p) != std::string::npos);
        ++errors;
      }
      CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
    }
  }
  MESSAGE(trials << " corrupted clips: " << decoded << " decoded (damage concealed), " << errors
                 << " VideoError");
}

TEST_CASE("streams without pts (AVI with B-frames) are counted in output order") {
  SKIP_WITHOUT_FFMPEG();
  for (const Clip& clip : accuracy_clips()) {
    if (clip.name.find("avi") == std::string::npos) continue;
    VideoDecoder dec;
    dec.open(clip.path);
    CHECK_FALSE(dec.pts_indexed());
  }
}

TEST_CASE("encoder: atomic writes, options, errors") {
  SUBCASE("bad frames leave no file and no temporary") {
    const std::string dir = tmp("enc_bad");
    fs::create_directories(dir);
    Frames odd;
    odd.count = 3;
    odd.width = 33;  // odd width cannot be 4:2:0
    odd.height = 32;
    odd.rgb.resize(odd.frame_bytes() * 3);
    try {
      write_video(dir + "/odd.mp4", odd, 25);
      FAIL("no error");
    } catch (const VideoError& e) {
      CHECK(e.kind() == VideoErrorKind::kEncode);
    }
    Frames short_buffer = pattern(3);
    short_buffer.rgb.resize(10);
    CHECK_THROWS_AS(write_video(dir + "/short.mp4", short_buffer, 25), VideoError);
    VideoEncoder enc;
    enc.open(dir + "/abandoned.mp4", kW, kH, 25);
    enc.write(pattern(1).frame(0));
    CHECK(!fs::is_empty(dir));  // the temporary exists while writing
    enc = VideoEncoder();       // destroyed without finish()
    CHECK(fs::is_empty(dir));
  }
  SUBCASE("codec choices produce what they say") {
    const std::string dir = tmp("enc_codecs");
    fs::create_directories(dir);
    const Frames f = pattern(10);
    for (VideoCodec c : {VideoCodec::kH264, VideoCodec::kMpeg4, VideoCodec::kVp9}) {
      if (!encoder_available(c)) continue;
      CAPTURE(to_string(c));
      EncoderOptions o;
      o.codec = c;
      o.gop = 5;
      const std::string p = dir + "/c_" + to_string(c) + (c == VideoCodec::kVp9 ? ".webm" : ".mp4");
      CHECK(write_video(p, f, 30, o) == c);
      VideoDecoder dec;
      dec.open(p);
      CHECK(dec.frame_count() == 10);
      CHECK(dec.codec_name() == (c == VideoCodec::kMpeg4 ? "mpeg4" : to_string(c)));
    }
    // Only the finished files remain.
    for (const auto& e : fs::directory_iterator(dir))
      CHECK(e.path().string().find(".tmp") == std::string::npos);
  }
}
