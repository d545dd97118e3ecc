// Cutting clips out of long videos: one seek and forward decode per group of nearby ranges, each
// decoded frame scaled once and written to every clip that holds it.
#include "io/video_cut.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <system_error>

#include <fmt/format.h>

namespace sefar::io {

namespace {

constexpr int kTimescale = 90000;  // output timestamps: the MPEG 90 kHz clock
constexpr double kEps = 1e-4;      // seconds: annotation times are given to 1/100 s at best
constexpr int kMaxDecodeErrors = 10000;

// The source: demuxer and decoder, read forward from the last seek.
struct Source {
  std::string path;
  ff::InputFormatPtr input;
  ff::CodecContextPtr dec;
  ff::PacketPtr pkt = ff::make_packet();
  ff::FramePtr frame = ff::make_frame();
  int stream = -1;
  double tb = 0;      // seconds per timestamp unit
  double origin = 0;  // timestamp (seconds) of the file's start
  double fps = 25;
  bool fresh = true;  // nothing read yet: positioned at the start
  bool eof_sent = false;
  double last_t = -1;    // time of the last frame returned
  double latest_t = -1;  // the latest time seen in the file so far
  long frame_seq = 0;    // frames returned, for caching a conversion
  int decode_errors = 0;

  [[noreturn]] void fail(VideoErrorKind kind, const std::string& reason) const {
    throw VideoError(kind, path, reason);
  }

  void open(int threads) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(VideoErrorKind::kMissing, "no such file");
    if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0)
      fail(VideoErrorKind::kEmpty, "empty file (0 bytes)");
    AVFormatContext* raw = nullptr;
    int r = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
    if (r < 0) fail(VideoErrorKind::kNotVideo, "cannot be opened as a video: " + ff::error_string(r));
    input.reset(raw);
    r = avformat_find_stream_info(input.get(), nullptr);
    if (r < 0) fail(VideoErrorKind::kCorrupt, "cannot read the stream information: " + ff::error_string(r));
    stream = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (stream < 0 || (input->streams[stream]->disposition & AV_DISPOSITION_ATTACHED_PIC))
      fail(VideoErrorKind::kNoVideoStream, "no video stream");
    for (unsigned i = 0; i < input->nb_streams; ++i)
      if (int(i) != stream) input->streams[i]->discard = AVDISCARD_ALL;  // audio is not read
    AVStream* st = input->streams[stream];
    const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
      fail(VideoErrorKind::kUnsupported,
           fmt::format("no decoder for codec {}", avcodec_get_name(st->codecpar->codec_id)));
    dec.reset(avcodec_alloc_context3(codec));
    if (!dec) throw std::bad_alloc();
    r = avcodec_parameters_to_context(dec.get(), st->codecpar);
    if (r < 0) fail(VideoErrorKind::kUnsupported, "codec parameters: " + ff::error_string(r));
    dec->pkt_timebase = st->time_base;
    dec->thread_count = std::max(0, threads);
    r = avcodec_open2(dec.get(), codec, nullptr);
    if (r < 0) fail(VideoErrorKind::kUnsupported, "cannot open the decoder: " + ff::error_string(r));
    tb = av_q2d(st->time_base);
    if (input->start_time != AV_NOPTS_VALUE)
      origin = double(input->start_time) / AV_TIME_BASE;
    else if (st->start_time != AV_NOPTS_VALUE)
      origin = double(st->start_time) * tb;
    const AVRational rate = av_guess_frame_rate(input.get(), st, nullptr);
    if (rate.num > 0 && rate.den > 0) fps = av_q2d(rate);
  }

  // Positions the demuxer at the keyframe at or before `t` seconds (the start when t <= 0).
  void seek(double t) {
    if (t <= 0 && fresh) return;
    fresh = false;
    const AVStream* st = input->streams[stream];
    const int64_t first = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    int64_t ts = t <= 0 ? first : std::max(first, int64_t(std::floor((t + origin) / tb)));
    int r = av_seek_frame(input.get(), stream, ts, AVSEEK_FLAG_BACKWARD);
    if (r < 0 && ts != first) r = av_seek_frame(input.get(), stream, first, AVSEEK_FLAG_BACKWARD);
    if (r < 0) r = avformat_seek_file(input.get(), -1, INT64_MIN, 0, 0, AVSEEK_FLAG_BYTE);
    if (r < 0) fail(VideoErrorKind::kCorrupt, "cannot seek: " + ff::error_string(r));
    avcodec_flush_buffers(dec.get());
    eof_sent = false;
    last_t = -1;
  }

  // The next frame in presentation order and its time (seconds from the file's start); false at the end.
  bool next(double* t) {
    fresh = false;
    for (;;) {
      int r = avcodec_receive_frame(dec.get(), frame.get());
      if (r == 0) {
        int64_t ts =
            frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
        *t = ts != AV_NOPTS_VALUE ? double(ts) * tb - origin : (last_t >= 0 ? last_t + 1 / fps : 0.0);
        last_t = *t;
        latest_t = std::max(latest_t, *t);
        ++frame_seq;
        return true;
      }
      if (r == AVERROR_EOF) return false;
      if (r != AVERROR(EAGAIN) && ++decode_errors > kMaxDecodeErrors)
        fail(VideoErrorKind::kCorrupt, "too many decoding errors");
      if (r != AVERROR(EAGAIN)) continue;
      if (eof_sent) return false;
      r = av_read_frame(input.get(), pkt.get());
      if (r < 0) {  // the end, or a read error: flush what the decoder holds
        avcodec_send_packet(dec.get(), nullptr);
        eof_sent = true;
        continue;
      }
      if (pkt->stream_index == stream) {
        r = avcodec_send_packet(dec.get(), pkt.get());
        if (r < 0 && r != AVERROR(EAGAIN) && ++decode_errors > kMaxDecodeErrors)
          fail(VideoErrorKind::kCorrupt, "too many decoding errors");
      }
      av_packet_unref(pkt.get());
    }
  }
};

// Decoded frames to RGB24 at the output size, converted once per frame.
struct Converter {
  int out_w = 0, out_h = 0;
  ff::SwsPtr sws;
  std::vector<uint8_t> staging;  // padded rows (swscale SIMD may write past a row)
  std::vector<uint8_t> rgb;      // contiguous rows for the encoder
  long converted = -1;

  void size_for(const AVFrame* f, int short_side) {
    int w = f->width, h = f->height;
    const AVRational sar = f->sample_aspect_ratio;
    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den) w = int(std::lround(double(w) * sar.num / sar.den));
    if (short_side > 0) std::tie(w, h) = resized_size(w, h, ResizeSpec{short_side, 0, 0});
    out_w = std::max(2, w & ~1);
    out_h = std::max(2, h & ~1);
  }

  const uint8_t* convert(const AVFrame* f, long seq, const std::string& path) {
    if (seq == converted) return rgb.data();
    sws.reset(sws_getCachedContext(sws.release(), f->width, f->height, AVPixelFormat(f->format), out_w, out_h,
                                   AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws)
      throw VideoError(
          VideoErrorKind::kUnsupported, path,
          fmt::format("cannot convert {}x{} frames of pixel format {}", f->width, f->height, f->format));
    const int stride = (out_w * 3 + 63) / 64 * 64;
    staging.resize(std::size_t(stride) * out_h + 64);
    uint8_t* dst[4] = {staging.data(), nullptr, nullptr, nullptr};
    const int dst_stride[4] = {stride, 0, 0, 0};
    sws_scale(sws.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
    const std::size_t row = std::size_t(out_w) * 3;
    rgb.resize(row * out_h);
    for (int y = 0; y < out_h; ++y)
      std::memcpy(rgb.data() + row * y, staging.data() + std::size_t(stride) * y, row);
    converted = seq;
    return rgb.data();
  }
};

struct Clip {
  std::size_t index = 0;
  VideoEncoder enc;
  bool open = false, done = false;
  double first_t = 0, last_t = 0;
  int64_t last_pts = -1;
  int frames = 0;
};

class Cutter {
 public:
  Cutter(const std::string& source, const std::vector<CutRange>& ranges, const CutOptions& options,
         const std::function<void(std::size_t, const CutOutcome&)>& on_done)
      : ranges_(ranges), options_(options), on_done_(on_done), outcomes_(ranges.size()) {
    src_.path = source;
    encoder_ = options.encoder;
    encoder_.timescale = kTimescale;
    encoder_.threads = 1;
    encoder_.pts.clear();
  }

  std::vector<CutOutcome> run() {
    if (ranges_.empty()) return outcomes_;
    src_.open(options_.decoder_threads);
    std::vector<std::size_t> order(ranges_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return ranges_[a].start < ranges_[b].start; });
    for (std::size_t first = 0; first < order.size() && !stopped_;) {
      double span_end = ranges_[order[first]].end;
      std::size_t last = first + 1;
      while (last < order.size() && ranges_[order[last]].start <= span_end + options_.merge_gap)
        span_end = std::max(span_end, ranges_[order[last++]].end);
      cut_span(std::vector<std::size_t>(order.begin() + long(first), order.begin() + long(last)));
      first = last;
    }
    return outcomes_;
  }

 private:
  const std::vector<CutRange>& ranges_;
  const CutOptions& options_;
  const std::function<void(std::size_t, const CutOutcome&)>& on_done_;
  std::vector<CutOutcome> outcomes_;
  EncoderOptions encoder_;
  Source src_;
  Converter conv_;
  bool stopped_ = false;

  void report(Clip& c, bool ok, std::string error) {
    c.done = true;
    CutOutcome& o = outcomes_[c.index];
    o.tried = true;
    o.ok = ok;
    o.frames = ok ? c.frames : 0;
    o.error = std::move(error);
    if (!ok) c.enc = VideoEncoder();  // drops the temporary file
    if (on_done_) on_done_(c.index, o);
  }

  // Runs an encoder call; an output-side failure stops everything, any other fails only this clip.
  template <typename F>
  bool encode(Clip& c, F&& f) {
    try {
      f();
      return true;
    } catch (const VideoError& e) {
      if (e.kind() == VideoErrorKind::kIo) throw CutOutputError(e);
      report(c, false, "encoding failed: " + e.reason());
      return false;
    }
  }

  void write(Clip& c, double t) {
    const CutRange& r = ranges_[c.index];
    const AVFrame* f = src_.frame.get();
    if (conv_.out_w == 0) conv_.size_for(f, options_.short_side);
    const uint8_t* rgb = conv_.convert(f, src_.frame_seq, src_.path);
    if (!c.open) {
      if (!encode(c, [&] { c.enc.open(r.path, conv_.out_w, conv_.out_h, src_.fps, encoder_); })) return;
      c.open = true;
      c.first_t = t;
    }
    int64_t pts = std::llround((t - c.first_t) * kTimescale);
    if (pts <= c.last_pts) pts = c.last_pts + 1;
    if (!encode(c, [&] { c.enc.write(rgb, pts); })) return;
    c.last_pts = pts;
    c.last_t = t;
    ++c.frames;
  }

  void finish(Clip& c, bool source_ended) {
    const CutRange& r = ranges_[c.index];
    const double frame = 1 / src_.fps;
    if (!c.open) {
      report(c, false,
             source_ended && src_.latest_t < r.start
                 ? fmt::format("no frames: the video ends at {:.2f} s, before the clip starts ({:.2f} s)",
                               std::max(0.0, src_.latest_t), r.start)
                 : fmt::format("no frames between {:.3f} s and {:.3f} s", r.start, r.end));
      return;
    }
    if (source_ended && c.last_t + 1.5 * frame < r.end) {
      report(c, false,
             fmt::format("cut short: the video ends at {:.2f} s, before the clip ends ({:.2f} s); "
                         "a truncated download?",
                         c.last_t + frame, r.end));
      return;
    }
    if (encode(c, [&] { c.enc.finish(); })) report(c, true, "");
  }

  void cut_span(const std::vector<std::size_t>& indices) {
    std::vector<Clip> clips(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) clips[i].index = indices[i];
    const double start = ranges_[indices.front()].start;
    // Seek to the keyframe before the first range; an index that lands past it (no earlier keyframe
    // listed) sends the seek further back.
    double t = 0;
    bool have = false;
    for (double margin : {0.0, 3.0, 15.0, 60.0, -1.0}) {
      const double target = margin < 0 ? 0 : std::max(0.0, start - margin);
      src_.seek(target);
      have = src_.next(&t);
      if (!have || t <= start + kEps || target == 0) break;
    }
    while (have) {
      if (options_.stop && options_.stop()) {
        stopped_ = true;
        return;  // the clips' encoders drop their temporary files
      }
      bool pending = false;
      for (auto& c : clips) {
        if (c.done) continue;
        const CutRange& r = ranges_[c.index];
        if (t >= r.end - kEps) {
          finish(c, false);
          continue;
        }
        pending = true;
        if (t >= r.start - kEps) write(c, t);
      }
      if (!pending) return;
      have = src_.next(&t);
    }
    for (auto& c : clips)
      if (!c.done) finish(c, true);
  }
};

}  // namespace

std::vector<CutOutcome> cut_video(const std::string& source, const std::vector<CutRange>& ranges,
                                  const CutOptions& options,
                                  const std::function<void(std::size_t, const CutOutcome&)>& on_done) {
  return Cutter(source, ranges, options, on_done).run();
}

}  // namespace sefar::io
