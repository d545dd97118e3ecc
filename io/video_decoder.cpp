// Frame-exact video decoding on FFmpeg: index once, then one forward pass per request.
#include "io/video.h"
#include "io/frame_rotation.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

namespace sefar::io {

std::pair<int, int> resized_size(int src_width, int src_height, const ResizeSpec& spec) {
  if (spec.width > 0 && spec.height > 0) return {spec.width, spec.height};
  if (spec.short_side > 0 && src_width > 0 && src_height > 0) {
    const double s = static_cast<double>(spec.short_side) / std::min(src_width, src_height);
    if (src_width <= src_height)
      return {spec.short_side, std::max(1, static_cast<int>(std::lround(src_height * s)))};
    return {std::max(1, static_cast<int>(std::lround(src_width * s))), spec.short_side};
  }
  return {src_width, src_height};
}

namespace {

bool frame_is_key(const AVFrame* f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 7, 100)
  return (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return f->key_frame != 0;  // the only key flag before AV_FRAME_FLAG_KEY existed
#endif
}

struct CachedScaler {
  ff::SwsPtr ctx;
  std::array<int, 8> key{};
  SwsContext* get(const AVFrame* src, int w, int h, int dst_format);  // nullptr: unsupported
};

struct PacketEntry {
  int64_t pts;
  bool key;
  bool discard;  // decoded for reference but never shown (e.g. before an mp4 edit list's start)
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
struct VideoDecoder::Impl {
  DecoderOptions opt;
  std::string path;
  ff::InputFormatPtr input;
  ff::CodecContextPtr dec;
  ff::FramePtr frame = ff::make_frame();
  ff::FramePtr turned = ff::make_frame();
  ff::PacketPtr pkt = ff::make_packet();
  int stream = -1;
  AVRational time_base{1, 1};
  int coded_w = 0, coded_h = 0;  // decoded picture size from the container
  int rotation = 0;              // applied rotation (0 unless apply_rotation)

  std::vector<PacketEntry> packets;  // decode order, every packet of the video stream
  std::vector<ff::PacketPtr> cache;  // the same packets, while cache_ok
  bool cache_ok = false;
  bool pts_mode = true;
  std::vector<int64_t> frame_pts;  // pts of frame i (sorted), pts mode only
  int nframes = 0;
  double avg_fps = 0;

  CachedScaler scaler;
  std::vector<uint8_t> staging;  // aligned, padded scaler output (swscale SIMD may write past a row)
  std::vector<uint8_t> unturned;
  DecodeStats stats;

  [[noreturn]] void fail(VideoErrorKind kind, const std::string& reason) const {
    throw VideoError(kind, path, reason);
  }

  void open_demuxer();
  int read_video_packet(AVPacket* p);
  void open(const std::string& p);
  void index();
  Frames decode(const std::vector<int>& indices, const ResizeSpec& resize);
  void convert(const AVFrame* f, uint8_t* dst, int out_w, int out_h);
  const AVFrame* turn_frame(const AVFrame* f);
};

void VideoDecoder::Impl::open_demuxer() {
  input.reset();
  AVFormatContext* raw = nullptr;
  int r = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (r < 0) {
    if (r == AVERROR(EACCES) || r == AVERROR(EPERM))
      fail(VideoErrorKind::kIo, "cannot read: " + ff::error_string(r));
    // Same failure for a damaged container and for a file that is no media at all: tell them apart by
    // probing the content alone (no file-name hint).
    std::vector<uint8_t> head(4096 + AVPROBE_PADDING_SIZE, 0);
    std::size_t got = 0;
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      got = std::fread(head.data(), 1, 4096, f);
      std::fclose(f);
    }
    AVProbeData pd{};
    pd.filename = "";
    pd.buf = head.data();
    pd.buf_size = static_cast<int>(got);
    int score = 0;
    const AVInputFormat* guess = got > 0 ? av_probe_input_format2(&pd, 1, &score) : nullptr;
    if (guess && score >= AVPROBE_SCORE_MAX / 4)
      fail(VideoErrorKind::kTruncated,
           fmt::format("looks like {} but cannot be parsed (truncated or damaged): {}", guess->name,
                       ff::error_string(r)));
    fail(VideoErrorKind::kNotVideo, "not a recognised video file: " + ff::error_string(r));
  }
  input.reset(raw);

  // Containers with a real header (mp4, mkv, avi, ...) describe the streams already; probing them with
  // avformat_find_stream_info would decode frames. Only when the header is missing or incomplete.
  bool need_probe = input->nb_streams == 0 || (input->ctx_flags & AVFMTCTX_NOHEADER);
  bool any_video = false;
  for (unsigned i = 0; i < input->nb_streams; ++i) {
    const AVCodecParameters* par = input->streams[i]->codecpar;
    if (par->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    any_video = true;
    if (par->codec_id == AV_CODEC_ID_NONE || par->width <= 0 || par->height <= 0) need_probe = true;
  }
  if (!any_video && input->nb_streams == 0) need_probe = true;
  if (need_probe) {
    r = avformat_find_stream_info(input.get(), nullptr);
    if (r < 0) fail(VideoErrorKind::kCorrupt, "cannot read stream information: " + ff::error_string(r));
  }

  // Cover art in audio files is a "video" stream of one attached picture: not a clip.
  stream = -1;
  int best = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  auto usable = [&](int i) {
    const AVStream* st = input->streams[i];
    return st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC);
  };
  if (best >= 0 && usable(best)) stream = best;
  for (unsigned i = 0; stream < 0 && i < input->nb_streams; ++i)
    if (usable(static_cast<int>(i))) stream = static_cast<int>(i);
  if (stream < 0) {
    bool audio = false;
    for (unsigned i = 0; i < input->nb_streams; ++i)
      audio |= input->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO;
    fail(VideoErrorKind::kNoVideoStream, audio ? "no video stream (audio only)" : "no video stream");
  }
  // Let the demuxer skip everything else cheaply.
  for (unsigned i = 0; i < input->nb_streams; ++i)
    if (static_cast<int>(i) != stream) input->streams[i]->discard = AVDISCARD_ALL;
}

void VideoDecoder::Impl::open(const std::string& p) {
  path = p;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail(VideoErrorKind::kMissing, "no such file");
  // FIFOs and devices could block forever; directories are not clips.
  if (!std::filesystem::is_regular_file(status)) fail(VideoErrorKind::kNotVideo, "not a regular file");
  if (std::filesystem::file_size(path, ec) == 0 && !ec) fail(VideoErrorKind::kEmpty, "empty file (0 bytes)");

  open_demuxer();
  AVStream* st = input->streams[stream];
  time_base = st->time_base;
  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec)
    fail(VideoErrorKind::kUnsupported,
         fmt::format("no decoder for codec '{}'", avcodec_get_name(st->codecpar->codec_id)));
  coded_w = st->codecpar->width;
  coded_h = st->codecpar->height;
  if (coded_w <= 0 || coded_h <= 0) fail(VideoErrorKind::kCorrupt, "video stream without a frame size");
  if (coded_w > opt.max_dimension || coded_h > opt.max_dimension)
    fail(VideoErrorKind::kTooLarge, fmt::format("frame size {}x{} above the limit of {} pixels per side",
                                                coded_w, coded_h, opt.max_dimension));
  if (std::int64_t(coded_w) * coded_h > opt.max_pixels)
    fail(VideoErrorKind::kTooLarge,
         fmt::format(
             "frame size {}x{} ({:.1f} Mpixels) above the limit of {:.1f} Mpixels (decode param max_pixels)",
             coded_w, coded_h, coded_w * double(coded_h) * 1e-6, double(opt.max_pixels) * 1e-6));
  rotation = opt.apply_rotation ? stream_rotation(st) : 0;

  dec.reset(avcodec_alloc_context3(codec));
  if (!dec) throw std::bad_alloc();
  int r = avcodec_parameters_to_context(dec.get(), st->codecpar);
  if (r < 0) fail(VideoErrorKind::kUnsupported, "bad codec parameters: " + ff::error_string(r));
  dec->pkt_timebase = st->time_base;
  dec->thread_count = std::max(0, opt.threads);
  dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  r = avcodec_open2(dec.get(), codec, nullptr);
  if (r < 0) fail(VideoErrorKind::kUnsupported, "cannot open the decoder: " + ff::error_string(r));

  index();
}

// Next packet of the video stream (0), or the demuxer's end/error code. EAGAIN only comes from
// non-blocking I/O, never from local files; bounded anyway.
int VideoDecoder::Impl::read_video_packet(AVPacket* p) {
  for (int again = 0;;) {
    int r = av_read_frame(input.get(), p);
    if (r == AVERROR(EAGAIN) && ++again < 1000) continue;
    if (r < 0) return r;
    if (p->stream_index == stream) return 0;
    av_packet_unref(p);
  }
}

// Reads every packet of the video stream once: pts, keyframe flag, and (within the byte budget) the
// packet itself so decode() needs neither a seek nor a second read.
void VideoDecoder::Impl::index() {
  packets.clear();
  cache.clear();
  cache_ok = opt.packet_cache_bytes > 0;
  std::size_t cached_bytes = 0;
  int read_error = 0;
  bool last_incomplete = false;
  for (;;) {
    int r = read_video_packet(pkt.get());
    if (r < 0) {
      if (r != AVERROR_EOF) read_error = r;
      break;
    }
    last_incomplete = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
    packets.push_back(
        {pkt->pts, (pkt->flags & AV_PKT_FLAG_KEY) != 0, (pkt->flags & AV_PKT_FLAG_DISCARD) != 0});
    if (cache_ok) {
      cached_bytes += static_cast<std::size_t>(pkt->size);
      if (cached_bytes > opt.packet_cache_bytes) {
        cache_ok = false;
        cache.clear();
      } else {
        ff::PacketPtr keep = ff::make_packet();
        av_packet_move_ref(keep.get(), pkt.get());
        cache.push_back(std::move(keep));
      }
    }
    av_packet_unref(pkt.get());
  }

  // mp4/mov list every sample in the header, so a file cut short lists samples beyond its end (the
  // demuxer just stops, or returns a short last packet flagged corrupt). Other containers' indexes
  // cover keyframes only or may list empty chunks (avi), so only read errors tell there.
  if (std::strstr(input->iformat->name, "mp4")) {
    const int listed = avformat_index_get_entries_count(input->streams[stream]);
    if (listed > static_cast<int>(packets.size()))
      fail(VideoErrorKind::kTruncated,
           fmt::format("truncated: the header lists {} video samples, {} could be read", listed,
                       packets.size()));
  }
  if (last_incomplete) fail(VideoErrorKind::kTruncated, "truncated: the last video packet is incomplete");
  if (read_error)
    fail(VideoErrorKind::kCorrupt,
         fmt::format("read error after {} video packets: {}", packets.size(), ff::error_string(read_error)));

  pts_mode = true;
  frame_pts.clear();
  for (const PacketEntry& e : packets) {
    if (e.discard) continue;
    if (e.pts == AV_NOPTS_VALUE) pts_mode = false;
    frame_pts.push_back(e.pts);
  }
  nframes = static_cast<int>(frame_pts.size());
  if (nframes == 0) fail(VideoErrorKind::kCorrupt, "the video stream has no frames");
  if (pts_mode) {
    std::sort(frame_pts.begin(), frame_pts.end());
    // Identical timestamps make "the i-th pts" ambiguous: count frames in output order instead.
    if (std::adjacent_find(frame_pts.begin(), frame_pts.end()) != frame_pts.end()) pts_mode = false;
  }
  if (!pts_mode) frame_pts.clear();

  avg_fps = 0;
  if (pts_mode && nframes > 1 && frame_pts.back() > frame_pts.front())
    avg_fps = (nframes - 1) / (static_cast<double>(frame_pts.back() - frame_pts.front()) * av_q2d(time_base));
  if (avg_fps <= 0) {
    const AVStream* st = input->streams[stream];
    AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    avg_fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
  }
}

const AVFrame* VideoDecoder::Impl::turn_frame(const AVFrame* f) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(f->format));
  if (!turnable(d)) return nullptr;
  av_frame_unref(turned.get());
  const bool swap = rotation != 180;
  turned->format = f->format;
  turned->width = swap ? f->height : f->width;
  turned->height = swap ? f->width : f->height;
  if (av_frame_get_buffer(turned.get(), 0) < 0) throw std::bad_alloc();
  av_frame_copy_props(turned.get(), f);
  const int planes = av_pix_fmt_count_planes(static_cast<AVPixelFormat>(f->format));
  for (int p = 0; p < planes; ++p) {
    const bool chroma = (p == 1 || p == 2);
    const int sw = chroma ? AV_CEIL_RSHIFT(f->width, d->log2_chroma_w) : f->width;
    const int sh = chroma ? AV_CEIL_RSHIFT(f->height, d->log2_chroma_h) : f->height;
    turn_plane(f->data[p], f->linesize[p], sw, sh, turned->data[p], turned->linesize[p], rotation);
  }
  return turned.get();
}

// A swscale context configured the way the ffmpeg CLI's scale filter configures one (flags=bilinear;
// colour matrix from the frame's colorspace, BT.601 when unknown; input range from the frame when
// tagged), rebuilt only when the source or target changes. Mirroring the filter is what makes our
// frames compare bit for bit with the CLI's.
SwsContext* CachedScaler::get(const AVFrame* src, int w, int h, int dst_format) {
  const std::array<int, 8> k = {src->width,
                                src->height,
                                src->format,
                                w,
                                h,
                                dst_format,
                                static_cast<int>(src->colorspace),
                                static_cast<int>(src->color_range)};
  if (ctx && k == key) return ctx.get();
  ctx.reset(sws_getContext(src->width, src->height, static_cast<AVPixelFormat>(src->format), w, h,
                           static_cast<AVPixelFormat>(dst_format), SWS_BILINEAR, nullptr, nullptr, nullptr));
  if (!ctx) return nullptr;
  int *inv_table = nullptr, *table = nullptr;
  int src_full_range = 0, dst_full_range = 0, brightness = 0, contrast = 0, saturation = 0;
  sws_getColorspaceDetails(ctx.get(), &inv_table, &src_full_range, &table, &dst_full_range, &brightness, &contrast,
                           &saturation);
  int cs = src->colorspace;
  if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;  // the filter's "auto" fallback
  const int* coefs = sws_getCoefficients(cs);
  if (src->color_range != AVCOL_RANGE_UNSPECIFIED) src_full_range = src->color_range == AVCOL_RANGE_JPEG;
  sws_setColorspaceDetails(ctx.get(), coefs, src_full_range, coefs, dst_full_range, brightness, contrast, saturation);
  key = k;
  return ctx.get();
}

// One decoded frame to RGB24 at out_w x out_h. A size change goes through planar RGB (kPlanarRgb,
// swscale's per-pixel chroma path with SIMD, then an interleave) or straight to packed RGB24
// (kDirect). The same size is one packed conversion, as the CLI's "-pix_fmt rgb24" does.
void VideoDecoder::Impl::convert(const AVFrame* f, uint8_t* dst, int out_w, int out_h) {
  const AVFrame* src = f;
  bool turn_after = false;
  if (rotation != 0) {
    // Turning the planes before scaling is what the CLI's transpose/hflip+vflip filters do.
    const AVFrame* t = turn_frame(f);
    if (t)
      src = t;
    else
      turn_after = true;
  }
  // With a fallback RGB turn, scale to the unturned shape first.
  const int scale_w = (turn_after && rotation != 180) ? out_h : out_w;
  const int scale_h = (turn_after && rotation != 180) ? out_w : out_h;
  const bool planar =
      opt.scale_path == ScalePath::kPlanarRgb && (src->width != scale_w || src->height != scale_h);

  SwsContext* c = scaler.get(src, scale_w, scale_h, planar ? AV_PIX_FMT_GBRP : AV_PIX_FMT_RGB24);
  if (!c)
    fail(VideoErrorKind::kUnsupported,
         fmt::format("cannot convert {} {}x{} to RGB",
                     av_get_pix_fmt_name(static_cast<AVPixelFormat>(src->format)), src->width, src->height));
  // Scaler output goes to aligned, padded rows: swscale's SIMD may write a little past a row's end.
  const int row = scale_w * 3;
  const int stride = ((planar ? scale_w : row) + 63) / 64 * 64;
  const std::size_t plane = static_cast<std::size_t>(stride) * scale_h;
  staging.resize(plane * (planar ? 3 : 1) + 64);
  uint8_t* out_planes[4] = {staging.data(), nullptr, nullptr, nullptr};
  int out_strides[4] = {stride, 0, 0, 0};
  if (planar) {  // GBRP: G, B, R planes
    out_planes[1] = staging.data() + plane;
    out_planes[2] = staging.data() + 2 * plane;
    out_strides[1] = out_strides[2] = stride;
  }
  sws_scale(c, src->data, src->linesize, 0, src->height, out_planes, out_strides);

  uint8_t* packed = dst;
  if (turn_after) {
    unturned.resize(static_cast<std::size_t>(row) * scale_h);
    packed = unturned.data();
  }
  for (int y = 0; y < scale_h; ++y) {
    uint8_t* out = packed + static_cast<std::size_t>(y) * row;
    const std::size_t at = static_cast<std::size_t>(y) * stride;
    if (!planar) {
      std::memcpy(out, staging.data() + at, row);
      continue;
    }
    const uint8_t* g = out_planes[0] + at;
    const uint8_t* b = out_planes[1] + at;
    const uint8_t* r = out_planes[2] + at;
    for (int x = 0; x < scale_w; ++x) {
      out[3 * x] = r[x];
      out[3 * x + 1] = g[x];
      out[3 * x + 2] = b[x];
    }
  }
  if (turn_after) turn_rgb(packed, scale_w, scale_h, dst, rotation);
}

Frames VideoDecoder::Impl::decode(const std::vector<int>& indices, const ResizeSpec& resize) {
  if (!input) throw VideoError(VideoErrorKind::kIo, path, "decode() before open()");
  stats = DecodeStats{};
  const bool swap = rotation == 90 || rotation == 270;
  // Plain ints, not a structured binding: C++17 lambdas (below) cannot capture those (clang refuses).
  const std::pair<int, int> out_size =
      resized_size(swap ? coded_h : coded_w, swap ? coded_w : coded_h, resize);
  const int out_w = out_size.first, out_h = out_size.second;
  if (out_w <= 0 || out_h <= 0)
    fail(VideoErrorKind::kUnsupported, fmt::format("bad output size {}x{}", out_w, out_h));
  if (out_w > opt.max_dimension || out_h > opt.max_dimension)
    fail(VideoErrorKind::kTooLarge,
         fmt::format(
             "{}x{} frames scale to {}x{}, above the limit of {} pixels per side (extreme aspect ratio)",
             swap ? coded_h : coded_w, swap ? coded_w : coded_h, out_w, out_h, opt.max_dimension));

  Frames out;
  out.width = out_w;
  out.height = out_h;
  out.count = static_cast<int>(indices.size());
  out.indices = indices;
  for (int i : indices)
    if (i < 0 || i >= nframes)
      fail(VideoErrorKind::kIndexOutOfRange, fmt::format("frame index {} out of range [0, {})", i, nframes));
  if (indices.empty()) return out;
  out.rgb.resize(out.frame_bytes() * indices.size());

  // Sorted unique frames, each with the output slots it fills.
  std::vector<int> wanted(indices);
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<std::vector<int>> slots(wanted.size());
  for (std::size_t s = 0; s < indices.size(); ++s) {
    auto it = std::lower_bound(wanted.begin(), wanted.end(), indices[s]);
    slots[it - wanted.begin()].push_back(static_cast<int>(s));
  }
  std::vector<bool> done(wanted.size(), false);
  std::size_t remaining = wanted.size();

  // Where to start: the keyframe (decode order position) with the largest pts at or before the first
  // wanted frame. Without usable pts, or without such a keyframe, from the very first packet.
  std::size_t start = 0;
  int64_t start_pts = AV_NOPTS_VALUE;
  if (pts_mode) {
    const int64_t first = frame_pts[wanted.front()];
    for (std::size_t i = 0; i < packets.size(); ++i) {
      const PacketEntry& e = packets[i];
      if (e.key && e.pts != AV_NOPTS_VALUE && e.pts <= first &&
          (start_pts == AV_NOPTS_VALUE || e.pts > start_pts)) {
        start = i;
        start_pts = e.pts;
      }
    }
    if (start_pts != AV_NOPTS_VALUE)
      stats.start_frame = static_cast<int>(std::lower_bound(frame_pts.begin(), frame_pts.end(), start_pts) -
                                           frame_pts.begin());
  }

  // Packet source: the cache, or the demuxer after a seek.
  std::size_t next_cached = start;
  bool have_pending = false;  // seek mode: a packet read while checking where the seek landed
  if (!cache_ok) {
    stats.seeked = true;
    bool landed = false;
    if (pts_mode && start_pts != AV_NOPTS_VALUE &&
        av_seek_frame(input.get(), stream, start_pts, AVSEEK_FLAG_BACKWARD) >= 0) {
      // Accept any keyframe at or before the target: decoding from an earlier one is only slower.
      if (read_video_packet(pkt.get()) >= 0) {
        landed = (pkt->flags & AV_PKT_FLAG_KEY) && pkt->pts != AV_NOPTS_VALUE && pkt->pts <= start_pts;
        have_pending = landed;
        if (!landed) av_packet_unref(pkt.get());
      }
    }
    if (!landed) {
      // Seeking failed or landed past the keyframe: reopen and decode from the start, always correct.
      stats.reopened = true;
      stats.start_frame = 0;
      open_demuxer();
    }
  }
  auto next_packet = [&]() -> AVPacket* {
    if (cache_ok) return next_cached < cache.size() ? cache[next_cached++].get() : nullptr;
    if (have_pending) {
      have_pending = false;
      return pkt.get();
    }
    av_packet_unref(pkt.get());
    // End, or a read error: drain what the decoder has.
    return read_video_packet(pkt.get()) >= 0 ? pkt.get() : nullptr;
  };

  int ordinal = 0;  // output order count, for streams without usable pts (always decoded from the start)
  auto take = [&](const AVFrame* f) {
    int frame_index = -1;
    if (pts_mode) {
      const int64_t t = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
      if (t == AV_NOPTS_VALUE) return;
      auto it = std::lower_bound(frame_pts.begin(), frame_pts.end(), t);
      if (it == frame_pts.end() || *it != t) return;
      frame_index = static_cast<int>(it - frame_pts.begin());
    } else {
      frame_index = ordinal++;
    }
    auto w = std::lower_bound(wanted.begin(), wanted.end(), frame_index);
    if (w == wanted.end() || *w != frame_index) return;
    const std::size_t k = static_cast<std::size_t>(w - wanted.begin());
    if (done[k]) return;
    const std::vector<int>& s = slots[k];
    convert(f, out.frame(s[0]), out_w, out_h);
    ++stats.frames_converted;
    for (std::size_t j = 1; j < s.size(); ++j)
      std::memcpy(out.frame(s[j]), out.frame(s[0]), out.frame_bytes());
    done[k] = true;
    --remaining;
  };
  // Receives every frame the decoder has ready. Decode errors are counted and tolerated; a bounded run
  // of consecutive errors ends the call so a broken decoder cannot spin.
  auto receive = [&]() {
    for (int errors = 0; remaining > 0 && errors < 64;) {
      int r = avcodec_receive_frame(dec.get(), frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return r;
      if (r < 0) {
        ++stats.decode_errors;
        ++errors;
        continue;
      }
      ++stats.frames_decoded;
      stats.keyframes_decoded += frame_is_key(frame.get());
      take(frame.get());
      av_frame_unref(frame.get());
    }
    return 0;
  };

  // Sorted pts of the wanted frames, to tell needed packets from skippable ones.
  std::vector<int64_t> wanted_pts;
  const bool skipping = opt.skip_unneeded && pts_mode;
  if (skipping)
    for (int w : wanted) wanted_pts.push_back(frame_pts[w]);

  avcodec_flush_buffers(dec.get());
  while (remaining > 0) {
    AVPacket* p = next_packet();
    if (!p) break;
    ++stats.packets_sent;
    if (skipping) {
      // Frame threads copy skip_frame from this context when the packet is submitted, so it applies
      // per packet.
      const bool needed = std::binary_search(wanted_pts.begin(), wanted_pts.end(), p->pts);
      dec->skip_frame = needed ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
      stats.packets_skipped += !needed;
    }
    int r = avcodec_send_packet(dec.get(), p);
    if (r == AVERROR(EAGAIN)) {  // output full: take frames, then the packet fits
      receive();
      r = avcodec_send_packet(dec.get(), p);
    }
    if (r < 0 && r != AVERROR(EAGAIN)) ++stats.decode_errors;
    receive();
  }
  if (remaining > 0) {
    // Flush: frames still held for reordering or by frame threads.
    dec->skip_frame = AVDISCARD_DEFAULT;
    avcodec_send_packet(dec.get(), nullptr);
    for (int rounds = 0; remaining > 0 && rounds < 1024; ++rounds)
      if (receive() == AVERROR_EOF) break;
  }
  if (!cache_ok) av_packet_unref(pkt.get());
  if (remaining > 0) {
    std::size_t k = 0;
    while (done[k]) ++k;
    fail(VideoErrorKind::kCorrupt,
         fmt::format("frame {} could not be decoded ({} decode errors)", wanted[k], stats.decode_errors));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
VideoDecoder::VideoDecoder() : VideoDecoder(DecoderOptions{}) {}
VideoDecoder::VideoDecoder(const DecoderOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = options;
}
VideoDecoder::~VideoDecoder() = default;
VideoDecoder::VideoDecoder(VideoDecoder&&) noexcept = default;
VideoDecoder& VideoDecoder::operator=(VideoDecoder&&) noexcept = default;

void VideoDecoder::open(const std::string& path) {
  // A failed open leaves the decoder closed, not half open.
  auto fresh = std::make_unique<Impl>();
  fresh->opt = impl_->opt;
  try {
    fresh->open(path);
  } catch (...) {
    close();
    impl_->path = path;
    throw;
  }
  impl_ = std::move(fresh);
}
void VideoDecoder::close() {
  DecoderOptions opt = impl_->opt;
  impl_ = std::make_unique<Impl>();
  impl_->opt = opt;
}
bool VideoDecoder::is_open() const {
  return impl_->input != nullptr;
}
const std::string& VideoDecoder::path() const {
  return impl_->path;
}
int VideoDecoder::frame_count() const {
  return impl_->nframes;
}
int VideoDecoder::width() const {
  return (impl_->rotation == 90 || impl_->rotation == 270) ? impl_->coded_h : impl_->coded_w;
}
int VideoDecoder::height() const {
  return (impl_->rotation == 90 || impl_->rotation == 270) ? impl_->coded_w : impl_->coded_h;
}
int VideoDecoder::rotation() const {
  return impl_->rotation;
}
std::string VideoDecoder::codec_name() const {
  return impl_->dec ? avcodec_get_name(impl_->dec->codec_id) : std::string();
}
double VideoDecoder::fps() const {
  return impl_->avg_fps;
}
double VideoDecoder::frame_time(int index) const {
  const Impl& m = *impl_;
  if (index < 0 || index >= m.nframes)
    throw VideoError(VideoErrorKind::kIndexOutOfRange, m.path,
                     fmt::format("frame index {} out of range [0, {})", index, m.nframes));
  if (m.pts_mode) return static_cast<double>(m.frame_pts[index] - m.frame_pts[0]) * av_q2d(m.time_base);
  return m.avg_fps > 0 ? index / m.avg_fps : 0.0;
}
bool VideoDecoder::pts_indexed() const {
  return impl_->pts_mode;
}
std::vector<int> VideoDecoder::keyframes() const {
  const Impl& m = *impl_;
  if (!m.pts_mode) return m.nframes > 0 ? std::vector<int>{0} : std::vector<int>{};
  std::vector<int> keys;
  for (const PacketEntry& e : m.packets) {
    if (!e.key || e.pts == AV_NOPTS_VALUE) continue;
    auto it = std::lower_bound(m.frame_pts.begin(), m.frame_pts.end(), e.pts);
    if (it != m.frame_pts.end() && *it == e.pts) keys.push_back(static_cast<int>(it - m.frame_pts.begin()));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}
Frames VideoDecoder::decode(const std::vector<int>& indices, const ResizeSpec& resize) {
  return impl_->decode(indices, resize);
}
const DecodeStats& VideoDecoder::last_stats() const {
  return impl_->stats;
}

}  // namespace sefar::io
