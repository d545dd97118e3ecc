// Turning decoded frames upright: the rotation a stream's display matrix asks for, and turning
// 8-bit planes or packed RGB24 by 90, 180 or 270 degrees (internal to io/video_decoder.cpp).
#pragma once

#include <cstdint>

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
}

namespace sefar::io {

// Rotation the ffmpeg CLI would apply (clockwise degrees, 0/90/180/270) from the stream's display
// matrix.
int stream_rotation(const AVStream* st);

// Planar 8-bit layouts whose planes can be turned as plain byte matrices, with equal horizontal and
// vertical chroma subsampling so the turned image is again a valid frame of the same format.
bool turnable(const AVPixFmtDescriptor* d);

// dst = src turned clockwise by `degrees`; src is sw x sh, dst is (dw x dh) = turned size.
void turn_plane(const uint8_t* src, int src_ls, int sw, int sh, uint8_t* dst, int dst_ls, int degrees);

// Same as turn_plane for packed RGB24 (3 bytes per pixel).
void turn_rgb(const uint8_t* src, int sw, int sh, uint8_t* dst, int degrees);

}  // namespace sefar::io
