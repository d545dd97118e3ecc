#!/usr/bin/env bash
# The training step as graph nodes against the single training node it replaced (commit d574170),
# side by side on this machine: the same numbers (per-step losses and accuracies of the quickstart,
# the synthetic supervised baseline and the no_adareg ablation, diffed field by field) and the
# quickstart's wall time, as the ratio new / old. Writes docs/STEP_NODES.md.
#
# Environment: BASE (default d574170), REPEATS (quickstart timings per build, default 8, interleaved),
# DOC (default docs/STEP_NODES.md), OLD_BIN (a sefar binary already built from BASE: skips that build).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
base=${BASE:-d574170}
repeats=${REPEATS:-8}
doc=${DOC:-docs/STEP_NODES.md}
work=$root/data/generated/step_nodes
mkdir -p "$work/runs"

bash scripts/build.sh
# The old tree (its pipeline files) in a worktree of its own, and its build.
if [ ! -d "$work/base" ]; then
  git worktree prune
  git worktree add --detach "$work/base" "$base" >/dev/null
fi
old=${OLD_BIN:-$work/base/build/sefar}
if [ ! -x "$old" ]; then (cd "$work/base" && bash scripts/build.sh); fi
new=$root/build/sefar

# One dataset for both, generated on one thread (byte-identical for a seed).
data=$work/data
if [ ! -f "$data/val.csv" ]; then
  "$new" synth "$data" --classes 8 --train-per-class 100 --val-per-class 16 --labeled 0.25 --size 48x40 \
    --frames 24:40 --seed 0 --threads 1 2>/dev/null
fi
lists="--set train_list=$data/train.csv --set unlabeled_list=$data/unlabel.csv --set val_list=$data/val.csv"
short="--set epochs=6 --set warmup_epochs=2 --set labeled_per_epoch=200"

# run BUILD(old|new) PIPELINE RUN_NAME [extra...]: the pipeline file of that build's own tree.
run() {
  local which=$1 pipeline=$2 name=$3; shift 3
  local bin=$new tree=$root
  if [ "$which" = old ]; then bin=$old; tree=$work/base; fi
  local dir=$work/runs/${name}_$which
  rm -rf "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$tree" && "$bin" run "$pipeline" $lists --set runtime.run_dir="$dir" --quiet --profile "$dir.profile.json" "$@" \
    >"$dir.log" 2>&1)
  t1=$(date +%s.%N)
  echo "$which $name $(echo "$t1 - $t0" | bc)" >>"$work/times.txt"
}

rm -f "$work/times.txt"
for i in $(seq 1 "$repeats"); do
  run old pipelines/quickstart.json quickstart
  run new pipelines/quickstart.json quickstart
done
for which in old new; do
  run "$which" pipelines/synthetic/supervised.json supervised $short
  run "$which" pipelines/synthetic/no_adareg.json no_adareg $short
done
python3 bench/step_nodes/report.py "$work" "$base" "$doc"
