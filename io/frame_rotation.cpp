#include "io/frame_rotation.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/display.h>
}

#include <cmath>
#include <cstddef>
#include <cstring>
#include <initializer_list>

namespace sefar::io {

// Rotation the ffmpeg CLI would apply (clockwise degrees, 0/90/180/270) from the stream's display
// matrix. The matrix is read from codecpar's coded side data on FFmpeg >= 6.1 and from AVStream's
// side data before (av_stream_get_side_data is deprecated there).
int stream_rotation(const AVStream* st) {
  const uint8_t* matrix = nullptr;
  std::size_t size = 0;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
  const AVPacketSideData* sd = av_packet_side_data_get(
      st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  if (sd) matrix = sd->data, size = sd->size;
#else
  for (int i = 0; i < st->nb_side_data; ++i) {
    if (st->side_data[i].type == AV_PKT_DATA_DISPLAYMATRIX) {
      matrix = st->side_data[i].data;
      size = st->side_data[i].size;
    }
  }
#endif
  if (!matrix || size < 9 * sizeof(int32_t)) return 0;
  const double angle = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
  if (std::isnan(angle)) return 0;
  // The matrix rotates counter-clockwise; display needs the opposite turn.
  double theta = -std::round(angle);
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  for (int r : {90, 180, 270})
    if (std::fabs(theta - r) < 1.0) return r;
  return 0;
}

// Planar 8-bit layouts whose planes can be turned as plain byte matrices, with equal horizontal and
// vertical chroma subsampling so the turned image is again a valid frame of the same format.
bool turnable(const AVPixFmtDescriptor* d) {
  if (!d || (d->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_PAL)))
    return false;
  if (!(d->flags & AV_PIX_FMT_FLAG_PLANAR) && d->nb_components != 1) return false;
  if (d->log2_chroma_w != d->log2_chroma_h) return false;
  for (int c = 0; c < d->nb_components; ++c)
    if (d->comp[c].depth != 8 || d->comp[c].step != 1) return false;
  return true;
}

// dst = src turned clockwise by `degrees`; src is sw x sh, dst is (dw x dh) = turned size.
void turn_plane(const uint8_t* src, int src_ls, int sw, int sh, uint8_t* dst, int dst_ls, int degrees) {
  if (degrees == 90) {  // dst(r, c) = src(sh - 1 - c, r), dst is sh wide
    for (int r = 0; r < sw; ++r) {
      uint8_t* out = dst + static_cast<std::ptrdiff_t>(r) * dst_ls;
      for (int c = 0; c < sh; ++c) out[c] = src[static_cast<std::ptrdiff_t>(sh - 1 - c) * src_ls + r];
    }
  } else if (degrees == 270) {  // dst(r, c) = src(c, sw - 1 - r)
    for (int r = 0; r < sw; ++r) {
      uint8_t* out = dst + static_cast<std::ptrdiff_t>(r) * dst_ls;
      for (int c = 0; c < sh; ++c) out[c] = src[static_cast<std::ptrdiff_t>(c) * src_ls + (sw - 1 - r)];
    }
  } else {  // 180: dst(r, c) = src(sh - 1 - r, sw - 1 - c)
    for (int r = 0; r < sh; ++r) {
      const uint8_t* in = src + static_cast<std::ptrdiff_t>(sh - 1 - r) * src_ls;
      uint8_t* out = dst + static_cast<std::ptrdiff_t>(r) * dst_ls;
      for (int c = 0; c < sw; ++c) out[c] = in[sw - 1 - c];
    }
  }
}

// Same as turn_plane for packed RGB24 (3 bytes per pixel).
void turn_rgb(const uint8_t* src, int sw, int sh, uint8_t* dst, int degrees) {
  const int dw = degrees == 180 ? sw : sh;
  for (int y = 0; y < sh; ++y) {
    for (int x = 0; x < sw; ++x) {
      int dx, dy;
      if (degrees == 90)
        dx = sh - 1 - y, dy = x;
      else if (degrees == 270)
        dx = y, dy = sw - 1 - x;
      else
        dx = sw - 1 - x, dy = sh - 1 - y;
      std::memcpy(dst + (static_cast<std::size_t>(dy) * dw + dx) * 3,
                  src + (static_cast<std::size_t>(y) * sw + x) * 3, 3);
    }
  }
}

}  // namespace sefar::io
