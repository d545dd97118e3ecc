#!/usr/bin/env bash
# Generates the quickstart's synthetic dataset into data/generated/quickstart once (8 classes, 100
# training clips per class of which 25% labeled, 16 validation clips per class). Needs build/sefar.
# Used by scripts/quickstart.sh and the data-parallel benchmarks, so all train on the same clips.
set -euo pipefail
cd "$(dirname "$0")/.."
data=data/generated/quickstart
if [ ! -f "$data/val.csv" ]; then
  ./build/sefar synth "$data" --classes 8 --train-per-class 100 --val-per-class 16 --labeled 0.25 \
    --size 48x40 --frames 24:40 --seed 0
fi
