// FFmpeg's objects owned by RAII (io/video.h declares the ff:: types), its error strings and log
// level, and VideoError: shared by the decoder, the encoder and the clip cutter.
#include "io/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}

#include <new>

namespace sefar::io {

namespace ff {
void InputFormatDeleter::operator()(AVFormatContext* p) const {
  avformat_close_input(&p);
}
void OutputFormatDeleter::operator()(AVFormatContext* p) const {
  if (p->oformat && !(p->oformat->flags & AVFMT_NOFILE) && p->pb) avio_closep(&p->pb);
  avformat_free_context(p);
}
void CodecContextDeleter::operator()(AVCodecContext* p) const {
  avcodec_free_context(&p);
}
void FrameDeleter::operator()(AVFrame* p) const {
  av_frame_free(&p);
}
void PacketDeleter::operator()(AVPacket* p) const {
  av_packet_free(&p);
}
void SwsDeleter::operator()(SwsContext* p) const {
  sws_freeContext(p);
}

FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  if (!f) throw std::bad_alloc();
  return f;
}
PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  if (!p) throw std::bad_alloc();
  return p;
}
std::string error_string(int averror) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(averror, buf, sizeof buf);
  return buf;
}
}  // namespace ff

VideoError::VideoError(VideoErrorKind kind, std::string path, std::string reason)
    : std::runtime_error(path + ": " + reason),
      kind_(kind),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

void set_ffmpeg_log(FfmpegLog level) {
  switch (level) {
    case FfmpegLog::kQuiet:
      av_log_set_level(AV_LOG_QUIET);
      break;
    case FfmpegLog::kErrors:
      av_log_set_level(AV_LOG_ERROR);
      break;
    case FfmpegLog::kWarnings:
      av_log_set_level(AV_LOG_WARNING);
      break;
    case FfmpegLog::kInfo:
      av_log_set_level(AV_LOG_INFO);
      break;
  }
}

}  // namespace sefar::io
