#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running SeFAR training: install the packages,
# build, generate a small synthetic fine-grained dataset (once), and train the tiny model on it
# with the quickstart pipeline (CPU, a few minutes). Extra arguments go to `sefar run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
data=data/generated/quickstart
if [ ! -f "$data/val.csv" ]; then
  ./build/sefar synth "$data" --classes 8 --train-per-class 100 --val-per-class 16 --labeled 0.25 \
    --size 48x40 --frames 24:40 --seed 0
fi
./build/sefar run pipelines/quickstart.json "$@"
