#!/usr/bin/env bash
# Generates the decode benchmark's clips with the ffmpeg CLI, both sizes, and their split lists.
#
#   bash bench/decode/make_clips.sh OUT_DIR [CLIPS_PER_SIZE]
#
# OUT_DIR/<W>x<H>/clip_NNN.mp4 and OUT_DIR/<W>x<H>/unlabel.csv ("path label" per line, paths relative
# to the list's folder). 75 frames at 30 fps (2.5 s), yuv420p, libx264 with its default preset, GOP
# and B-frames (as DESIGN §5's anchors). Content cycles through four lavfi sources so decode cost
# varies as it does on real data: testsrc2 (clean graphics), a mandelbrot zoom, Conway's life
# (blobs, upscaled), a cellular automaton, each with hue rotation and temporal grain, seeded by the
# clip number. Idempotent: a size folder is reused when its stamp matches the parameters.
set -euo pipefail

out=${1:?usage: make_clips.sh OUT_DIR [CLIPS_PER_SIZE]}
count=${2:-40}
frames=75
fps=30

gen_one() {  # size index path
  local w=${1%x*} h=${1#*x} i=$2 path=$3 src
  case $((i % 4)) in
    0) src="testsrc2=s=${w}x${h}:r=${fps}" ;;
    1) src="mandelbrot=s=${w}x${h}:r=${fps}:start_scale=$((2 + i % 3)):end_scale=0.05:end_pts=$((60 + i))" ;;
    2) src="life=s=$((w / 4))x$((h / 4)):r=${fps}:seed=${i}:ratio=0.4:mold=8:life_color=#d0b060:death_color=#3040a0:mold_color=#405020,scale=${w}:${h}:flags=bilinear" ;;
    3) src="cellauto=s=${w}x${h}:r=${fps}:seed=${i}:rule=$((18 + 8 * (i % 8))):random_fill_ratio=0.3" ;;
  esac
  ffmpeg -nostdin -loglevel error -y -f lavfi -i "$src" -frames:v "$frames" \
    -vf "hue=h=$((i * 37 % 360)),noise=alls=6:allf=t:all_seed=$((i + 1)),format=yuv420p" \
    -c:v libx264 -threads 1 -r "$fps" "$path.tmp.mp4"
  mv "$path.tmp.mp4" "$path"
}
export -f gen_one
export frames fps

stamp="frames=$frames fps=$fps count=$count gen=v1 $(ffmpeg -version | head -1)"
for size in 640x360 320x240; do
  dir="$out/$size"
  if [[ -f "$dir/stamp" && "$(cat "$dir/stamp")" == "$stamp" && -f "$dir/unlabel.csv" ]]; then
    echo "clips: $dir (reused)"
    continue
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "clips: generating $count clips of $size into $dir"
  for ((i = 0; i < count; ++i)); do printf '%s %d %s\n' "$size" "$i" "$dir/$(printf 'clip_%03d.mp4' "$i")"; done |
    xargs -P 2 -L 1 bash -c 'gen_one "$0" "$1" "$2"'
  : >"$dir/unlabel.csv"
  for ((i = 0; i < count; ++i)); do printf 'clip_%03d.mp4 %d\n' "$i" $((i % 4)) >>"$dir/unlabel.csv"; done
  echo "$stamp" >"$dir/stamp"
done
