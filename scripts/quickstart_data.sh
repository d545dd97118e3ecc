#!/usr/bin/env bash
# Generates the quickstart's synthetic dataset once (8 classes, 100 training clips per class of which
# 25% labeled, 16 validation clips per class) into DIR (default data/generated/quickstart). Needs
# build/sefar (or the binary in $SEFAR). Used by scripts/quickstart.sh, the benchmarks and
# test_quickstart, so all train on the same clips.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/generated/quickstart}
sefar=${SEFAR:-./build/sefar}
if [ ! -f "$data/val.csv" ]; then
  "$sefar" synth "$data" --classes 8 --train-per-class 100 --val-per-class 16 --labeled 0.25 \
    --size 48x40 --frames 24:40 --seed 0
fi
