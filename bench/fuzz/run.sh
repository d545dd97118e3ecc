#!/usr/bin/env bash
# Fuzzing, one command:
#
#   bash bench/fuzz/run.sh                 # every target for SECONDS each (default 300)
#   SECONDS_EACH=60 TARGETS="fuzz_decode" bash bench/fuzz/run.sh
#
# Builds the libFuzzer targets of tests/fuzz with clang (build-fuzz/, AddressSanitizer and
# UndefinedBehaviorSanitizer on), seeds each from the repository's own inputs (shipped pipelines and
# the malformed-pipeline corpus, the test split lists, a model file written by `sefar`, synthetic
# clips in several codecs), runs each for the set time, and writes docs/FUZZ.md: runs, coverage,
# corpus size and every crash found (its input is kept under data/generated/fuzz/<target>/).
#
# Environment: SECONDS_EACH (default 300), TARGETS (default: all four), DOC (default docs/FUZZ.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
seconds=${SECONDS_EACH:-300}
targets=${TARGETS:-fuzz_pipeline fuzz_split_list fuzz_safetensors fuzz_decode}
doc=${DOC:-docs/FUZZ.md}
out=data/generated/fuzz
command -v clang++ >/dev/null || { echo "bench/fuzz: clang++ not found (Debian: apt-get install clang)" >&2; exit 2; }

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DSEFAR_FUZZ=ON -DSEFAR_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# shellcheck disable=SC2086
cmake --build build-fuzz --target $targets >/dev/null

# Seeds (made once).
mkdir -p "$out"
if [ ! -d "$out/seeds" ]; then
  [ -x build/sefar ] || bash scripts/build.sh
  mkdir -p "$out/seeds"/{fuzz_pipeline,fuzz_split_list,fuzz_safetensors,fuzz_decode}
  i=0
  for f in pipelines/*.json pipelines/*/*.json tests/corpus/bad_pipelines/*; do
    cp "$f" "$out/seeds/fuzz_pipeline/$((i++))_$(basename "$f")"
  done
  cp tests/data/splits/* "$out/seeds/fuzz_split_list/"
  ./build/sefar synth "$out/clips" --classes 2 --train-per-class 2 --val-per-class 1 --size 32x24 --frames 8:12 \
    --codec mpeg4 >/dev/null 2>&1
  ./build/sefar synth "$out/clips_h264" --classes 2 --train-per-class 2 --val-per-class 1 --size 32x24 --frames 8:12 \
    >/dev/null 2>&1
  for f in "$out"/clips/videos/*.mp4 "$out"/clips_h264/videos/*.mp4; do cp "$f" "$out/seeds/fuzz_decode/"; done
  # A model file: the quickstart architecture's weights as `sefar` writes them.
  rm -rf "$out/model"
  ./build/sefar run pipelines/quickstart.json --quiet --set train_list="$out/clips/train.csv" \
    --set unlabeled_list="$out/clips/unlabel.csv" --set val_list="$out/clips/val.csv" --set num_classes=2 \
    --set labeled_per_epoch=1 --set epochs=1 --set warmup_epochs=1 --set batch=1 \
    --set runtime.run_dir="$out/model" >/dev/null 2>&1 || true
  cp "$out"/model/model.safetensors "$out/seeds/fuzz_safetensors/" 2>/dev/null || true
  printf '\x10\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{}}' > "$out/seeds/fuzz_safetensors/empty"
fi

commit=$(commit_label)
start=$(date +%s)
for t in $targets; do
  mkdir -p "$out/$t/corpus" "$out/$t/crashes"
  echo "bench/fuzz: $t for $seconds s"
  set +e
  "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -artifact_prefix="$out/$t/crashes/" "$out/$t/corpus" "$out/seeds/$t" > "$out/$t/log.txt" 2>&1
  status=$?
  set -e
  echo "$status" > "$out/$t/status"
  echo "$seconds s at \`$commit\` on $(date '+%Y-%m-%d %H:%M')" > "$out/$t/when"
done
elapsed=$(( $(date +%s) - start ))

{
  echo "# Fuzzing"
  echo
  echo "Written by \`bash bench/fuzz/run.sh\` (last: \`$(printf '%q ' env SECONDS_EACH="$seconds" TARGETS="$targets") bash bench/fuzz/run.sh\`,"
  echo "$((elapsed / 60)) min $((elapsed % 60)) s, $(nproc) cores). libFuzzer with AddressSanitizer and"
  echo "UndefinedBehaviorSanitizer (clang $(clang++ -dumpversion)); each row is the latest run of its target, figures"
  echo "copied by the script from libFuzzer's last status line."
  echo
  echo "| target | what it exercises | latest run | runs | coverage (edges) | corpus | result |"
  echo "|---|---|---|---|---|---|---|"
  for t in fuzz_pipeline fuzz_split_list fuzz_safetensors fuzz_decode; do
    [ -f "$out/$t/status" ] || continue
    status=$(cat "$out/$t/status")
    log=$out/$t/log.txt
    runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' | cut -d' ' -f2 || true)
    crashes=$(find "$out/$t/crashes" -type f | wc -l)
    case $t in
      fuzz_pipeline) what="pipeline JSON, extends, --set, \${param}";;
      fuzz_split_list) what="split lists, lenient and strict";;
      fuzz_safetensors) what="safetensors header and tensors";;
      fuzz_decode) what="clip open, index, seek, decode, scale";;
      *) what="";;
    esac
    if [ "$status" = 0 ]; then result="no finding"; else
      result="stopped (exit $status), $crashes input(s) in data/generated/fuzz/$t/crashes: $(grep -m1 -oE "what\(\): .*|runtime error: .*|ERROR: AddressSanitizer: [a-z-]+|ERROR: libFuzzer: [a-z -]+" "$log" | head -1 | cut -c1-120 | tr '|' '/')"
    fi
    echo "| \`$t\` | $what | $(cat "$out/$t/when") | ${runs:-?} | ${cov:-?} | ${corp:-?} | $result |"
  done
  echo
  cat bench/fuzz/findings.md
} > "$doc.tmp"
mv "$doc.tmp" "$doc"
cat "$doc"
