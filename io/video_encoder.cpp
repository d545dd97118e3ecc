// Writing clips (synthetic data, tests): RGB24 frames -> H.264 / MPEG-4 / VP9, atomically.
#include "io/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/cpu.h>
#include <libavutil/dict.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}


#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "util/atomic_file.h"

namespace sefar::io {

namespace {

// FFmpeg's encoder of each codec (kAuto is resolved first).
constexpr auto kEncoderNames = util::enum_table<VideoCodec>(
    {
        {VideoCodec::kH264, "libx264"},
        {VideoCodec::kMpeg4, "mpeg4"},
        {VideoCodec::kVp9, "libvpx-vp9"},
    },
    "encoder");
const char* encoder_name(VideoCodec codec) {
  return kEncoderNames.name(codec);
}

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return (av_get_cpu_flags() & AV_CPU_FLAG_AVX512) != 0;
#else
  return false;
#endif
}

VideoCodec resolve(VideoCodec codec) {
  if (codec != VideoCodec::kAuto) return codec;
  return avcodec_find_encoder_by_name("libx264") ? VideoCodec::kH264 : VideoCodec::kMpeg4;
}

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

// Muxer name: explicit, else from the extension, else by codec. Given explicitly to libavformat
// because the temporary file name has no meaningful extension.
std::string container_for(const std::string& path, const EncoderOptions& o, VideoCodec codec) {
  if (!o.container.empty()) return o.container;
  const std::string ext = lower_extension(path);
  if (ext == ".mp4" || ext == ".m4v") return "mp4";
  if (ext == ".mov") return "mov";
  if (ext == ".mkv") return "matroska";
  if (ext == ".webm") return "webm";
  if (ext == ".avi") return "avi";
  return codec == VideoCodec::kVp9 ? "webm" : "mp4";
}

}  // namespace

bool encoder_available(VideoCodec codec) {
  return avcodec_find_encoder_by_name(encoder_name(resolve(codec))) != nullptr;
}

struct VideoEncoder::Impl {
  std::string path;
  // The file being written (a temporary file beside `path`, util/atomic_file.h): libavformat writes
  // its temp_path(); finish() commits it, discard() drops it.
  std::unique_ptr<util::AtomicFile> file;
  EncoderOptions opt;
  VideoCodec used = VideoCodec::kAuto;
  int width = 0, height = 0;
  AVRational tb{1, 1};
  bool explicit_pts = false;
  int64_t frame_ticks = 1;  // default duration of one frame in tb units
  int64_t last_pts = 0;
  int written = 0;
  bool finished = false;

  ff::OutputFormatPtr out;
  ff::CodecContextPtr enc;
  AVStream* st = nullptr;
  ff::SwsPtr sws;
  ff::FramePtr yuv;
  ff::PacketPtr pkt;
  std::vector<uint8_t> staging;  // padded copy of the input row block (swscale SIMD may read past a row)
  int staging_stride = 0;

  ~Impl() { discard(); }

  [[noreturn]] void fail(VideoErrorKind kind, const std::string& reason) {
    discard();
    throw VideoError(kind, path, reason);
  }
  // Drops everything written so far: the final path is never touched unless finish() succeeds.
  void discard() {
    if (finished) return;
    out.reset();
    enc.reset();
    file.reset();  // removes the temporary file
  }
  void check(int r, const char* what) {
    if (r < 0) fail(VideoErrorKind::kEncode, fmt::format("{}: {}", what, ff::error_string(r)));
  }
  void drain_packets() {
    for (;;) {
      int r = avcodec_receive_packet(enc.get(), pkt.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, "encoding failed");
      if (pkt->duration <= 0) pkt->duration = frame_ticks;
      av_packet_rescale_ts(pkt.get(), enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      r = av_interleaved_write_frame(out.get(), pkt.get());  // takes the packet's reference
      if (r < 0) fail(VideoErrorKind::kIo, "writing failed: " + ff::error_string(r));
    }
  }

  void open(const std::string& p, int w, int h, double fps, const EncoderOptions& o);
  void write(const uint8_t* rgb, int64_t pts_override);
  void finish();
};

void VideoEncoder::Impl::open(const std::string& p, int w, int h, double fps, const EncoderOptions& o) {
  path = p;
  opt = o;
  width = w;
  height = h;
  if (w <= 0 || h <= 0 || (w % 2) || (h % 2))
    fail(VideoErrorKind::kEncode, fmt::format("frame size {}x{}: must be positive and even (4:2:0)", w, h));
  if (!(fps > 0) || !std::isfinite(fps)) fail(VideoErrorKind::kEncode, fmt::format("bad frame rate {}", fps));

  used = resolve(opt.codec);
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder_name(used));
  if (!codec)
    fail(VideoErrorKind::kUnsupported, fmt::format("no {} encoder in this FFmpeg", encoder_name(used)));
  const std::string container = container_for(path, opt, used);

  // Time base: 1/fps (pts = frame number) for constant rate, 1/timescale for explicit timestamps.
  explicit_pts = !opt.pts.empty();
  const AVRational rate = av_d2q(fps, 100000);
  if (explicit_pts || opt.timescale > 0) {
    const int scale = opt.timescale > 0 ? opt.timescale : 1000;
    tb = AVRational{1, scale};
    frame_ticks = std::max<int64_t>(1, std::llround(scale / fps));
  } else {
    tb = av_inv_q(rate);
    frame_ticks = 1;
  }
  if (explicit_pts)
    for (std::size_t i = 1; i < opt.pts.size(); ++i)
      if (opt.pts[i] <= opt.pts[i - 1]) fail(VideoErrorKind::kEncode, "explicit pts must strictly increase");

  // Temporary file next to the target so the final rename stays on one filesystem (atomic).
  try {
    file = std::make_unique<util::AtomicFile>(path);
  } catch (const util::WriteError& e) {
    fail(VideoErrorKind::kIo, e.reason());
  }

  AVFormatContext* raw = nullptr;
  int r = avformat_alloc_output_context2(&raw, nullptr, container.c_str(), file->temp_path().c_str());
  if (r < 0 || !raw)
    fail(VideoErrorKind::kUnsupported, fmt::format("no '{}' muxer: {}", container, ff::error_string(r)));
  out.reset(raw);

  enc.reset(avcodec_alloc_context3(codec));
  if (!enc) throw std::bad_alloc();
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = tb;
  enc->framerate = rate;
  enc->sample_aspect_ratio = AVRational{1, 1};
  enc->thread_count = std::max(0, opt.threads);
  if (opt.gop > 0) enc->gop_size = opt.gop;
  if (opt.max_b_frames >= 0) enc->max_b_frames = opt.max_b_frames;
  if (used == VideoCodec::kH264) {
    if (opt.crf >= 0) av_opt_set_double(enc->priv_data, "crf", opt.crf, 0);
    if (!opt.preset.empty()) av_opt_set(enc->priv_data, "preset", opt.preset.c_str(), 0);
    // x264's AVX-512 macroblock-tree code is not deterministic: mbtree_propagate_list_avx512 (core
    // 164, unchanged upstream since) handles 8 macroblocks per step without masking the lanes past
    // the end of a row, so when the width in macroblocks is not a multiple of 8 (48 px: 3) it adds
    // in costs and motion vectors read from beyond the row, for the last row from uninitialised
    // memory past the end of x264's arrays. The bitstream then depends on what the heap held: the
    // same from run to run in one thread, not when encoders allocate and free concurrently (sefar
    // synth --threads N). The AVX2 code scatters only the lanes inside the row, so x264 is held to
    // AVX2, which every AVX-512 CPU has. (Turning mbtree off also works, but makes the synthetic
    // clips 2.6 times larger.)
    if (cpu_has_avx512()) av_opt_set(enc->priv_data, "x264-params", "asm=AVX2", 0);
  } else if (used == VideoCodec::kVp9) {
    if (opt.crf >= 0) {
      av_opt_set_int(enc->priv_data, "crf", opt.crf, 0);
      enc->bit_rate = 0;  // constant quality mode
    }
  } else if (used == VideoCodec::kMpeg4 && opt.crf > 0) {
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * std::clamp(opt.crf, 1, 31);
  }
  if (out->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  r = avcodec_open2(enc.get(), codec, nullptr);
  if (r < 0) fail(VideoErrorKind::kEncode, "cannot open the encoder: " + ff::error_string(r));

  st = avformat_new_stream(out.get(), nullptr);
  if (!st) throw std::bad_alloc();
  check(avcodec_parameters_from_context(st->codecpar, enc.get()), "codec parameters");
  st->time_base = tb;  // a hint; the muxer may choose its own
  if (!explicit_pts) st->avg_frame_rate = rate;

  if (!(out->oformat->flags & AVFMT_NOFILE)) {
    r = avio_open(&out->pb, file->temp_path().c_str(), AVIO_FLAG_WRITE);
    if (r < 0) fail(VideoErrorKind::kIo, "cannot create the file: " + ff::error_string(r));
  }
  AVDictionary* mux_opts = nullptr;
  if (opt.faststart && (container == "mp4" || container == "mov"))
    av_dict_set(&mux_opts, "movflags", "+faststart", 0);
  r = avformat_write_header(out.get(), &mux_opts);
  av_dict_free(&mux_opts);
  if (r < 0) fail(VideoErrorKind::kEncode, "cannot write the header: " + ff::error_string(r));

  yuv = ff::make_frame();
  yuv->format = AV_PIX_FMT_YUV420P;
  yuv->width = w;
  yuv->height = h;
  check(av_frame_get_buffer(yuv.get(), 0), "frame buffer");
  pkt = ff::make_packet();
  sws.reset(sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr,
                           nullptr));
  if (!sws) fail(VideoErrorKind::kEncode, "no RGB to YUV converter");
  staging_stride = (w * 3 + 63) / 64 * 64;
  staging.assign(static_cast<std::size_t>(staging_stride) * h + 64, 0);
}

void VideoEncoder::Impl::write(const uint8_t* rgb, int64_t pts_override) {
  if (!enc || finished)
    throw VideoError(VideoErrorKind::kEncode, path, "write() on an encoder that is not open");
  int64_t pts;
  if (pts_override >= 0)
    pts = pts_override;
  else if (explicit_pts) {
    if (written >= static_cast<int>(opt.pts.size()))
      fail(VideoErrorKind::kEncode, fmt::format("more frames than explicit pts ({})", opt.pts.size()));
    pts = opt.pts[written];
  } else
    pts = written * frame_ticks;
  if (written > 0 && pts <= last_pts)
    fail(VideoErrorKind::kEncode, fmt::format("frame {}: pts {} not after {}", written, pts, last_pts));

  const int row = width * 3;
  for (int y = 0; y < height; ++y)
    std::memcpy(staging.data() + static_cast<std::size_t>(y) * staging_stride,
                rgb + static_cast<std::size_t>(y) * row, row);
  // The encoder may still reference the previous frame's buffers.
  check(av_frame_make_writable(yuv.get()), "frame buffer");
  const uint8_t* src[4] = {staging.data(), nullptr, nullptr, nullptr};
  const int src_stride[4] = {staging_stride, 0, 0, 0};
  sws_scale(sws.get(), src, src_stride, 0, height, yuv->data, yuv->linesize);
  yuv->pts = pts;
  check(avcodec_send_frame(enc.get(), yuv.get()), "encoding failed");
  drain_packets();
  last_pts = pts;
  ++written;
}

void VideoEncoder::Impl::finish() {
  if (finished) return;
  if (!enc) throw VideoError(VideoErrorKind::kEncode, path, "finish() on an encoder that is not open");
  if (written == 0) fail(VideoErrorKind::kEncode, "no frames written");
  check(avcodec_send_frame(enc.get(), nullptr), "flushing the encoder");
  drain_packets();
  int r = av_write_trailer(out.get());
  if (r < 0) fail(VideoErrorKind::kIo, "cannot finish the file: " + ff::error_string(r));
  if (out->pb && !(out->oformat->flags & AVFMT_NOFILE)) {
    r = avio_closep(&out->pb);
    if (r < 0) fail(VideoErrorKind::kIo, "cannot close the file: " + ff::error_string(r));
  }
  try {
    file->commit();  // fsync, rename into place, fsync of the folder
  } catch (const util::WriteError& e) {
    fail(VideoErrorKind::kIo, e.reason());
  }
  finished = true;
  file.reset();
  out.reset();
  enc.reset();
}

VideoEncoder::VideoEncoder() : impl_(std::make_unique<Impl>()) {}
VideoEncoder::~VideoEncoder() = default;
VideoEncoder::VideoEncoder(VideoEncoder&&) noexcept = default;
VideoEncoder& VideoEncoder::operator=(VideoEncoder&&) noexcept = default;

void VideoEncoder::open(const std::string& path, int width, int height, double fps,
                        const EncoderOptions& options) {
  impl_ = std::make_unique<Impl>();
  impl_->open(path, width, height, fps, options);
}
void VideoEncoder::write(const uint8_t* rgb, int64_t pts_override) {
  impl_->write(rgb, pts_override);
}
void VideoEncoder::finish() {
  impl_->finish();
}
int VideoEncoder::frames_written() const {
  return impl_->written;
}
VideoCodec VideoEncoder::codec() const {
  return impl_->used;
}

VideoCodec write_video(const std::string& path, const Frames& frames, double fps,
                       const EncoderOptions& options) {
  if (frames.count <= 0 || frames.rgb.size() < frames.frame_bytes() * static_cast<std::size_t>(frames.count))
    throw VideoError(
        VideoErrorKind::kEncode, path,
        fmt::format("{} frames of {}x{} need {} bytes, got {}", frames.count, frames.width, frames.height,
                    frames.frame_bytes() * std::max(frames.count, 0), frames.rgb.size()));
  VideoEncoder enc;
  enc.open(path, frames.width, frames.height, fps, options);
  for (int i = 0; i < frames.count; ++i) enc.write(frames.frame(i));
  enc.finish();
  return enc.codec();
}

}  // namespace sefar::io
