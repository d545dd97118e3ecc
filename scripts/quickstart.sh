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
# The result beside the supervised run of the same length, as bench/quickstart/run.sh recorded it.
top1=$(grep '"kind":"eval"' "$run_dir/metrics.jsonl" | tail -n 1 | grep -o '"top1":[0-9.e-]*' | cut -d: -f2)
supervised=$(grep -o 'supervised_top1=[0-9.]*' docs/QUICKSTART.md | cut -d= -f2)
if [[ -n $top1 && -n $supervised ]]; then
  awk -v t="$top1" -v s="$supervised" 'BEGIN {
    printf "quickstart: SeFAR %.1f%% top-1; a supervised run of the same length: %.1f%% (docs/QUICKSTART.md, recorded by bash bench/quickstart/run.sh)\n", 100 * t, s }'
fi
