// Video in and out on FFmpeg (libavformat/libavcodec/libswscale), with no torch dependency.
//
// Frame i of a clip is the i-th frame in presentation order: the packets are indexed once (pts +
// keyframe flag) and sorted by pts, so B-frame reordering and variable frame rate are handled without
// trusting the container's frame count or fps. A decode call takes any list of indices (unsorted,
// repeated) and decodes the sorted union in one forward pass from the keyframe at or before the first.
//
// Errors are VideoError (kind + file + reason). io/ does not depend on graph/: the node layer turns a
// VideoError into graph::InputError so the runtime skips and counts the clip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "util/enum_table.h"

// FFmpeg's C structs, declared so the RAII aliases below need no FFmpeg header here.
struct AVFormatContext;
struct AVCodecContext;
struct AVFrame;
struct AVPacket;
struct SwsContext;

namespace sefar::io {

// ---------------------------------------------------------------------------------------------------
// RAII ownership of FFmpeg objects (deleters defined in video_decoder.cpp).
namespace ff {
struct InputFormatDeleter {  // avformat_close_input
  void operator()(AVFormatContext* p) const;
};
struct OutputFormatDeleter {  // closes the AVIOContext it opened, then avformat_free_context
  void operator()(AVFormatContext* p) const;
};
struct CodecContextDeleter {  // avcodec_free_context
  void operator()(AVCodecContext* p) const;
};
struct FrameDeleter {  // av_frame_free
  void operator()(AVFrame* p) const;
};
struct PacketDeleter {  // av_packet_free
  void operator()(AVPacket* p) const;
};
struct SwsDeleter {  // sws_freeContext
  void operator()(SwsContext* p) const;
};
using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

FramePtr make_frame();    // throws std::bad_alloc
PacketPtr make_packet();  // throws std::bad_alloc
std::string error_string(int averror);
}  // namespace ff

// ---------------------------------------------------------------------------------------------------
// Errors.
enum class VideoErrorKind {
  kMissing,          // no such file
  kEmpty,            // zero bytes
  kNotVideo,         // not a media file FFmpeg can parse (or not a regular file)
  kNoVideoStream,    // a media file without a video stream (audio-only, cover art only)
  kTruncated,        // container recognised but cut short
  kCorrupt,          // damaged data: a demux error, or a requested frame that cannot be decoded
  kUnsupported,      // no decoder/encoder for the codec, a pixel format we cannot convert
  kTooLarge,         // frames above DecoderOptions::max_dimension / max_pixels
  kIndexOutOfRange,  // a requested frame index outside [0, frame_count)
  kIo,               // cannot read/write the file (permissions, disk full, rename)
  kEncode,           // the encoder or muxer failed or was given bad frames
};
// The names are the skip categories the pipeline reports.
inline constexpr auto kVideoErrorKinds = util::enum_table<VideoErrorKind>(
    {
        {VideoErrorKind::kMissing, "missing"},
        {VideoErrorKind::kEmpty, "empty"},
        {VideoErrorKind::kNotVideo, "not_video"},
        {VideoErrorKind::kNoVideoStream, "no_video_stream"},
        {VideoErrorKind::kTruncated, "truncated"},
        {VideoErrorKind::kCorrupt, "corrupt"},
        {VideoErrorKind::kUnsupported, "unsupported"},
        {VideoErrorKind::kTooLarge, "too_large"},
        {VideoErrorKind::kIndexOutOfRange, "index_out_of_range"},
        {VideoErrorKind::kIo, "io"},
        {VideoErrorKind::kEncode, "encode"},
    },
    "video error kind");
inline const char* to_string(VideoErrorKind kind) {
  return kVideoErrorKinds.name(kind);
}

class VideoError : public std::runtime_error {
 public:
  // what() is "<path>: <reason>".
  VideoError(VideoErrorKind kind, std::string path, std::string reason);
  VideoErrorKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  VideoErrorKind kind_;
  std::string path_, reason_;
};

// FFmpeg logs to stderr through a process-wide level; bad clips are expected in a dataset, so the CLI
// and tests usually want only fatal messages. Not thread-safe against concurrent decoders' logging
// configuration, only meant to be called at start-up.
enum class FfmpegLog { kQuiet, kErrors, kWarnings, kInfo };
// The names are the values of the CLI's SEFAR_FFMPEG_LOG.
inline constexpr auto kFfmpegLogs = util::enum_table<FfmpegLog>(
    {
        {FfmpegLog::kQuiet, "quiet"},
        {FfmpegLog::kErrors, "error"},
        {FfmpegLog::kWarnings, "warning"},
        {FfmpegLog::kInfo, "info"},
    },
    "FFmpeg log level");
void set_ffmpeg_log(FfmpegLog level);

// ---------------------------------------------------------------------------------------------------
// Decoded frames: RGB24, one HWC image per requested index, in the order requested.
struct Frames {
  int count = 0, height = 0, width = 0;
  std::vector<uint8_t> rgb;  // count * height * width * 3
  std::vector<int> indices;  // the frame index of each image

  std::size_t frame_bytes() const { return static_cast<std::size_t>(height) * width * 3; }
  uint8_t* frame(int i) { return rgb.data() + frame_bytes() * i; }
  const uint8_t* frame(int i) const { return rgb.data() + frame_bytes() * i; }
};

// Output size. short_side > 0: scale so the shorter side equals it (aspect kept, the other side
// rounded to nearest). width and height both > 0: exactly that size (takes precedence). Otherwise the
// clip's own (display) size.
struct ResizeSpec {
  int short_side = 0;
  int width = 0, height = 0;
};
// {width, height} of the output for a source of src_width x src_height.
std::pair<int, int> resized_size(int src_width, int src_height, const ResizeSpec& spec);

// How a size change is done (bilinear either way). Each reproduces an ffmpeg CLI chain bit for bit:
//  kPlanarRgb  -vf scale=W:H:flags=bilinear,format=gbrp -pix_fmt rgb24: chroma interpolated per output
//              pixel; measured here 2-3x faster than kDirect and closer to a high-quality reference.
//  kDirect     -vf scale=W:H:flags=bilinear -pix_fmt rgb24: one swscale pass to packed RGB24 (C code;
//              chroma shared by pixel pairs, visibly worse at some ratios such as exactly 2:1).
// Without a size change both are the CLI's plain "-pix_fmt rgb24" conversion.
enum class ScalePath { kPlanarRgb, kDirect };

struct DecoderOptions {
  // FFmpeg decoder threads (frame + slice threading; 0 = FFmpeg's automatic choice). Default 1: the
  // pipeline runs one decoder per TBB worker already, and frame threading delays output by about
  // threads - 1 frames, i.e. more frames decoded past the last needed one in a short forward pass.
  int threads = 1;
  // Apply 90/180/270 degree display rotation (container display matrix) as the ffmpeg CLI does, so
  // width()/height() and the frames are in display orientation. Other angles and flips are ignored.
  bool apply_rotation = true;
  // Packets read while indexing are kept (up to this many bytes) so decode() starts at the keyframe
  // without a demuxer seek or a second read of the file. Beyond it the packets are dropped and
  // decode() seeks (av_seek_frame to the keyframe's exact pts). 0 always seeks.
  std::size_t packet_cache_bytes = std::size_t{64} << 20;
  // Skip decoding frames that are neither requested nor referenced by others (non-reference B-frames
  // and the like, via AVDISCARD_NONREF per packet). Output is unchanged; only frames identified by
  // pts can be skipped.
  bool skip_unneeded = true;
  ScalePath scale_path = ScalePath::kPlanarRgb;
  // Refuse frames larger than this (corrupt headers can claim huge sizes): width or height above
  // max_dimension, or width x height above max_pixels (a 8192x4320 DCI-8K frame is the default
  // limit; a decoded 8K frame takes ~53 MB as YUV 4:2:0, and the decoder keeps several). Smaller
  // frames of any size are decoded and scaled. Checked on open(), before any frame is decoded.
  int max_dimension = 16384;
  std::int64_t max_pixels = std::int64_t(8192) * 4320;
};

// What the last decode() did, for tests and profiling.
struct DecodeStats {
  int packets_sent = 0;     // packets fed to the decoder
  int frames_decoded = 0;   // frames the decoder returned
  int packets_skipped = 0;  // packets sent with AVDISCARD_NONREF (unneeded; skipped unless a reference)
  int keyframes_decoded = 0;
  int frames_converted = 0;  // swscale conversions (unique needed frames)
  int decode_errors = 0;     // packets/frames the decoder rejected (tolerated)
  bool seeked = false;       // a demuxer seek was done (packet cache off or too small)
  bool reopened = false;     // decoded from a freshly reopened file: the seek landed wrong, or no pts
  int start_frame = 0;       // frame index of the keyframe decoding started from
};

class VideoDecoder {
 public:
  VideoDecoder();
  explicit VideoDecoder(const DecoderOptions& options);
  ~VideoDecoder();
  VideoDecoder(VideoDecoder&&) noexcept;
  VideoDecoder& operator=(VideoDecoder&&) noexcept;
  VideoDecoder(const VideoDecoder&) = delete;
  VideoDecoder& operator=(const VideoDecoder&) = delete;

  // Opens and indexes a clip (reads every packet of the video stream once, no decoding). Replaces a
  // clip opened before. Throws VideoError.
  void open(const std::string& path);
  void close();
  bool is_open() const;
  const std::string& path() const;

  int frame_count() const;
  int width() const;  // display size: after rotation when apply_rotation
  int height() const;
  std::string codec_name() const;  // FFmpeg's short name: "h264", "mpeg4", "vp9", ...
  int rotation() const;            // clockwise degrees the decoded image is turned for display (0/90/180/270)
  double fps() const;              // average over the indexed frames (informative only; indexing uses pts)
  // Presentation time of frame i in seconds from the first frame (VFR aware).
  double frame_time(int index) const;
  // True when frames are identified by pts (normal); false when the container lacks pts on some
  // packets (e.g. AVI with B-frames) and frames are counted in output order, decoding from the start.
  bool pts_indexed() const;
  // Frame indices of the keyframes (pts mode; {0} otherwise): where a forward pass may start.
  std::vector<int> keyframes() const;

  // The frames at the given indices, in the order given (repeats allowed), resized and as RGB24.
  // Throws VideoError (kIndexOutOfRange, kCorrupt when a requested frame cannot be produced).
  Frames decode(const std::vector<int>& indices, const ResizeSpec& resize = {});
  const DecodeStats& last_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------------
// Encoding.
enum class VideoCodec {
  kAuto,   // H.264 (libx264) when available, else MPEG-4 part 2
  kH264,   // libx264
  kMpeg4,  // FFmpeg's native MPEG-4 part 2 encoder
  kVp9,    // libvpx-vp9 (webm)
};
inline constexpr auto kVideoCodecs = util::enum_table<VideoCodec>(
    {
        {VideoCodec::kAuto, "auto"},
        {VideoCodec::kH264, "h264"},
        {VideoCodec::kMpeg4, "mpeg4"},
        {VideoCodec::kVp9, "vp9"},
    },
    "video codec");
inline const char* to_string(VideoCodec codec) {
  return kVideoCodecs.name(codec);
}
// True when FFmpeg here has an encoder for the codec (kAuto: always true when mpeg4 exists).
bool encoder_available(VideoCodec codec);

struct EncoderOptions {
  VideoCodec codec = VideoCodec::kAuto;
  int gop = 0;            // keyframe interval; 0 = the encoder's default
  int max_b_frames = -1;  // -1 = the encoder's default
  // Quality: CRF for H.264 / VP9 (lower is better; x264 default 23), qscale 1-31 for MPEG-4.
  // -1 = the encoder's default.
  int crf = -1;
  std::string preset;  // x264 preset ("ultrafast" ... "veryslow"); empty = x264's default
  int threads = 1;     // encoder threads; 1 keeps the output independent of the machine
  // Variable frame rate: explicit presentation times, one per frame, strictly increasing, in units of
  // 1/timescale seconds. Empty = constant frame rate fps.
  std::vector<int64_t> pts;
  int timescale = 0;  // 0: fps when fps is a whole number and pts is empty, else 90000
  // Container: empty = from the path's extension (.mp4 .mov .m4v .mkv .webm .avi), else "mp4"
  // ("webm" for VP9).
  std::string container;
  bool faststart = true;  // mp4/mov: index (moov) at the front of the file
};

// Writes frames as they come; the file appears at `path` (atomically, via rename of a temporary file in
// the same directory) only when finish() succeeds. Throws VideoError (kEncode/kIo/kUnsupported).
class VideoEncoder {
 public:
  VideoEncoder();
  ~VideoEncoder();  // without finish(): the temporary file is removed
  VideoEncoder(VideoEncoder&&) noexcept;
  VideoEncoder& operator=(VideoEncoder&&) noexcept;
  VideoEncoder(const VideoEncoder&) = delete;
  VideoEncoder& operator=(const VideoEncoder&) = delete;

  // width and height must be even for 4:2:0 codecs (all of ours).
  void open(const std::string& path, int width, int height, double fps, const EncoderOptions& options = {});
  // One RGB24 HWC frame of the opened size. pts_override: used instead of options.pts / fps when >= 0.
  void write(const uint8_t* rgb, int64_t pts_override = -1);
  void finish();
  int frames_written() const;
  VideoCodec codec() const;  // the codec actually used (kAuto resolved)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// All frames of `frames` (rgb, count, width, height) to one file. Returns the codec used.
VideoCodec write_video(const std::string& path, const Frames& frames, double fps,
                       const EncoderOptions& options = {});

}  // namespace sefar::io
