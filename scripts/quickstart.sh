#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running SeFAR training: install the packages,
# build, generate a small synthetic fine-grained dataset (once), and train the tiny model on it
# with the quickstart pipeline (CPU, a few minutes). Extra arguments go to `sefar run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/quickstart_data.sh
# A run directory of its own: an earlier quickstart run is kept (sefar refuses to train over it).
run_dir=runs/quickstart
n=1
while [ -e "$run_dir" ]; do
  n=$((n + 1))
  run_dir=runs/quickstart-$n
done
./build/sefar run pipelines/quickstart.json --set runtime.run_dir="$run_dir" "$@"
