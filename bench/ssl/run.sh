#!/usr/bin/env bash
# The semi-supervised evidence study on the synthetic fine-grained dataset, one command:
#
#   bash bench/ssl/run.sh
#
# For every labeled fraction in FRACTIONS and every seed in SEEDS it trains and evaluates each
# configuration in CONFIGS (pipelines/synthetic/<config>.json; "config+perturbation=KIND" adds
# `--set perturbation=KIND`), then writes docs/RESULTS.md (final top-1, mean ± std over seeds) and
# docs/results_curves.svg (validation top-1 per epoch, mean over seeds). Runs already finished (their
# run directory holds model.safetensors) are reused, so an interrupted study continues.
#
# Environment (defaults in brackets):
#   FRACTIONS  labeled fractions in percent                      [5 10]
#   SEEDS      run seeds                                         [0 1 2]
#   CONFIGS    configurations                                    [supervised sefar no_dual no_perturb no_adareg]
#   PER_CLASS  training clips per class (labeled + unlabeled)    [150]
#   VAL        validation clips per class                        [25]
#   DOC        report path                                       [docs/RESULTS.md]
#   TITLE      report title                                      [SeFAR on synthetic fine-grained data]
#   SET        extra `--set` arguments for every run             []
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
fractions=${FRACTIONS:-5 10}
seeds=${SEEDS:-0 1 2}
configs=${CONFIGS:-supervised sefar no_dual no_perturb no_adareg}
per_class=${PER_CLASS:-150}
val=${VAL:-25}
doc=${DOC:-docs/RESULTS.md}
out=data/generated/ssl
command_line="$(printf '%q ' env FRACTIONS="$fractions" SEEDS="$seeds" CONFIGS="$configs" PER_CLASS="$per_class" VAL="$val" SET="${SET:-}") bash bench/ssl/run.sh"

[ -x build/sefar ] || bash scripts/build.sh
cmake --build build --target sefar >/dev/null

start=$(date +%s)
for frac in $fractions; do
  data=$out/data_p${per_class}_v${val}_f${frac}
  if [ ! -f "$data/val.csv" ]; then
    labeled=$(awk "BEGIN{print $frac/100}")
    echo "ssl: generating $data (labeled fraction $labeled)"
    ./build/sefar synth "$data" --classes 8 --train-per-class "$per_class" --val-per-class "$val" \
      --labeled "$labeled" --size 48x40 --frames 24:40 --seed 0 >/dev/null
  fi
  for config in $configs; do
    pipeline=${config%%+*}
    extra=()
    [[ "$config" == *+* ]] && extra=(--set "${config#*+}")
    for seed in $seeds; do
      run=$out/runs/p${per_class}_f${frac}/${config}/seed${seed}
      if [ -f "$run/model.safetensors" ] && [ -f "$run/metrics.jsonl" ]; then
        echo "ssl: $frac% $config seed $seed: done before, reused"
        continue
      fi
      rm -rf "$run"
      t0=$(date +%s)
      # shellcheck disable=SC2086
      ./build/sefar run "pipelines/synthetic/$pipeline.json" --quiet \
        --set train_list="$data/train.csv" --set unlabeled_list="$data/unlabel.csv" \
        --set val_list="$data/val.csv" --set runtime.seed="$seed" --set runtime.run_dir="$run" \
        "${extra[@]}" ${SET:-} > "$out/log.tmp" 2>&1 || { cat "$out/log.tmp"; exit 1; }
      mv "$out/log.tmp" "$run/log.txt"
      last=$(grep -o 'val top-1 [0-9.]*%' "$run/log.txt" | tail -1)
      echo "ssl: $frac% $config seed $seed: $last ($(( $(date +%s) - t0 )) s)"
    done
  done
done
elapsed=$(( $(date +%s) - start ))
/usr/bin/python3 bench/ssl/report.py --root "$out/runs" --per-class "$per_class" --fractions "$fractions" \
  --configs "$configs" --seeds "$seeds" --doc "$doc" --svg "${doc%.md}_curves.svg" \
  --command "$command_line" --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo '+changes')" \
  --elapsed "$elapsed" --title "${TITLE:-SeFAR on synthetic fine-grained data}"
echo "report: $doc"
