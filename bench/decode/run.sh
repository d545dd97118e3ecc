#!/usr/bin/env bash
# The decode/view benchmark of issue 3, one command:
#
#   bash bench/decode/run.sh            # full run (~5 min on 2 cores, +2-3 min to make the clips once), writes docs/BENCH_DECODE.md
#   QUICK=1 bash bench/decode/run.sh    # smoke run (8 clips, 1 repeat), report to data/generated/
#
# 1. installs the peer's Debian packages if missing (python3-av, python3-torch, python3-numpy);
# 2. builds `sefar` and `sefar_bench_decode` (build/ must be configured: scripts/build.sh);
# 3. generates the clips (bench/decode/make_clips.sh; reused when present);
# 4. measures the FFmpeg ceiling, ours and the Python peer (bench/decode/bench.py) and writes the report.
#
# Environment: CLIPS (clips per size, default 40), REPEATS (default 3), QUICK=1, DOC (report path).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
out=data/generated/bench_decode

if [[ "${QUICK:-0}" == 1 ]]; then
  clips=${CLIPS:-8}
  repeats=${REPEATS:-1}
  doc=${DOC:-$out/BENCH_DECODE.quick.md}
  extra=(--official-repeats 1 --tool-repeats 1 --ours-epochs 1 --quiet-wait 0)
  clip_dir=$out/clips_quick
  results=$out/results_quick.json
else
  clips=${CLIPS:-40}
  repeats=${REPEATS:-3}
  doc=${DOC:-docs/BENCH_DECODE.md}
  extra=()
  clip_dir=$out/clips
  results=$out/results.json
fi

# 1. Bench-only Debian packages (the peer runs on Debian's /usr/bin/python3).
missing=()
for pkg in python3-av python3-torch python3-numpy; do
  if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then missing+=("$pkg"); fi
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
for tool in ffmpeg ninja; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (bash scripts/setup.sh installs it)" >&2; exit 1; }
done

# 2. Build.
if [[ ! -f build/build.ninja ]]; then
  echo "run.sh: build/ is not configured; run bash scripts/build.sh first" >&2
  exit 1
fi
ninja -C build -j2 sefar sefar_bench_decode

# 3. Clips.
bash bench/decode/make_clips.sh "$clip_dir" "$clips"

# 4. Measure and report.
uptime
/usr/bin/python3 bench/decode/bench.py --clips "$clip_dir" --clips-per-size "$clips" --repeats "$repeats" \
  --json "$results" --doc "$doc" "${extra[@]}"
