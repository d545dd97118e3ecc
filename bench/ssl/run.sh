#!/usr/bin/env bash
# The semi-supervised evidence study on the synthetic fine-grained dataset, one command:
#
#   bash bench/ssl/run.sh
#
# For every labeled fraction in FRACTIONS and every seed in SEEDS it trains and evaluates each
# configuration in CONFIGS (pipelines/synthetic/<config>.json; "config+perturbation=KIND" adds
# `--set perturbation=KIND`), then writes docs/RESULTS.md (final top-1, mean ± std over seeds) and
# docs/RESULTS_curves.svg (validation top-1 per epoch, mean over seeds). Runs already finished (their
# run directory holds model.safetensors) are reused, so an interrupted study continues.
#
# Environment (defaults in brackets):
#   FRACTIONS  labeled fractions in percent                      [5 10]
#   SEEDS      run seeds                                         [0 1 2]
#   CONFIGS    configurations, in run order     [supervised sefar no_dual no_perturb no_adareg
#                                                 sefar+perturbation=all_reverse sefar+perturbation=local_shuffle]
#   PER_CLASS  training clips per class (labeled + unlabeled)    [100: 5% is 5 labeled clips per class]
#   VAL        validation clips per class                        [25]
#   DOC        report path                                       [docs/RESULTS.md]
#   TITLE      report title                                      [SeFAR on synthetic fine-grained data]
#   SET        extra `--set` arguments for every run             []
#   REPORT_ONLY=1  train nothing: write the report from the runs already finished
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
fractions=${FRACTIONS:-5 10}
seeds=${SEEDS:-0 1 2}
configs=${CONFIGS:-supervised sefar no_dual no_perturb no_adareg sefar+perturbation=all_reverse sefar+perturbation=local_shuffle}
per_class=${PER_CLASS:-100}
val=${VAL:-25}
doc=${DOC:-docs/RESULTS.md}
out=data/generated/ssl
# Runs are reused only under the same extra settings: SET names its own runs folder.
runs=$out/runs${SET:+_$(printf '%s' "$SET" | md5sum | cut -c1-8)}
command_line="$(printf '%q ' env FRACTIONS="$fractions" SEEDS="$seeds" CONFIGS="$configs" PER_CLASS="$per_class" VAL="$val" SET="${SET:-}" ${REPORT_ONLY:+REPORT_ONLY=$REPORT_ONLY}) bash bench/ssl/run.sh"

[ -x build/sefar ] || bash scripts/build.sh
cmake --build build --target sefar >/dev/null
# Every run of the study uses the binary it started with, whatever is rebuilt meanwhile.
mkdir -p "$out"
sefar=$out/sefar.$$
cp build/sefar "$sefar"
trap 'rm -f "$sefar"' EXIT

start=$(date +%s)
for frac in $fractions; do
  data=$out/data_p${per_class}_v${val}_f${frac}
  if [ ! -f "$data/val.csv" ]; then
    labeled=$(awk "BEGIN{print $frac/100}")
    echo "ssl: generating $data (labeled fraction $labeled)"
    "$sefar" synth "$data" --classes 8 --train-per-class "$per_class" --val-per-class "$val" \
      --labeled "$labeled" --size 48x40 --frames 24:40 --seed 0 >/dev/null 2>&1
  fi
done
# Seeds outermost: an interrupted study has every configuration and fraction with its first seeds.
[ "${REPORT_ONLY:-0}" = 1 ] && seeds_to_train="" || seeds_to_train=$seeds
for seed in $seeds_to_train; do
  for config in $configs; do
    pipeline=${config%%+*}
    extra=()
    [[ "$config" == *+* ]] && extra=(--set "${config#*+}")
    for frac in $fractions; do
      data=$out/data_p${per_class}_v${val}_f${frac}
      run=$runs/p${per_class}_f${frac}/${config}/seed${seed}
      if [ -f "$run/model.safetensors" ] && [ -f "$run/metrics.jsonl" ]; then
        echo "ssl: $frac% $config seed $seed: done before, reused"
        continue
      fi
      rm -rf "$run"
      t0=$(date +%s)
      log=$runs/log.$$.tmp
      mkdir -p "$runs"
      # shellcheck disable=SC2086
      "$sefar" run "pipelines/synthetic/$pipeline.json" --quiet \
        --set train_list="$data/train.csv" --set unlabeled_list="$data/unlabel.csv" \
        --set val_list="$data/val.csv" --set runtime.seed="$seed" --set runtime.run_dir="$run" \
        "${extra[@]}" ${SET:-} > "$log" 2>&1 || { cat "$log"; exit 1; }
      mv "$log" "$run/log.txt"
      echo "$(( $(date +%s) - t0 ))" > "$run/seconds.txt"
      last=$(grep -o 'val top-1 [0-9.]*%' "$run/log.txt" | tail -1)
      echo "ssl: $frac% $config seed $seed: $last ($(cat "$run/seconds.txt") s)"
    done
  done
done
elapsed=$(( $(date +%s) - start ))
/usr/bin/python3 bench/ssl/report.py --root "$runs" --per-class "$per_class" --fractions "$fractions" \
  --configs "$configs" --seeds "$seeds" --doc "$doc" --svg "${doc%.md}_curves.svg" \
  --command "$command_line" --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo '+changes')" \
  --elapsed "$elapsed" --title "${TITLE:-SeFAR on synthetic fine-grained data}"
echo "report: $doc"
