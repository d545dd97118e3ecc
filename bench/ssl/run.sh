#!/usr/bin/env bash
# The semi-supervised evidence study on the synthetic fine-grained dataset, one command:
#
#   bash bench/ssl/run.sh
#
# For every labeled fraction in FRACTIONS and every seed in SEEDS it trains and evaluates each
# configuration in CONFIGS (pipelines/synthetic/<config>.json; "config+perturbation=KIND" adds
# `--set perturbation=KIND`), then writes docs/RESULTS.md (final top-1, mean ± std over seeds) and
# docs/RESULTS_curves.svg (validation top-1 per epoch, mean over seeds). It also trains the supervised
# baseline with every label (100%) on the same schedule: the dataset's difficulty, the gap between
# 100% and the small fractions that semi-supervised learning should close. A finished run (its run
# directory holds model.safetensors) is reused when its resolved pipeline is the one this invocation
# would run (`sefar validate` output, byte for byte but for the run directory), so an interrupted study continues and a changed
# setting retrains.
#
# Environment (defaults in brackets):
#   FRACTIONS  labeled fractions in percent                      [5 10]
#   SEEDS      run seeds                                         [0 1 2]
#   CONFIGS    configurations, in run order     [supervised sefar no_dual no_perturb no_adareg
#                                                 supervised_ema sefar+perturbation=all_reverse
#                                                 sefar+perturbation=local_shuffle]
#   PER_CLASS  training clips per class (labeled + unlabeled)    [100: 5% is 5 labeled clips per class]
#   VAL        validation clips per class                        [25]
#   DOC        report path                                       [docs/RESULTS.md]
#   TITLE      report title                                      [SeFAR on synthetic fine-grained data]
#   SET        extra `--set` arguments for every run             []
#   FULL_CONFIGS   configurations also trained with 100% labels  [supervised supervised_long: the
#              difficulty on the study's schedule, and the calibration (a longer supervised schedule
#              within a run's 15-minute budget must reach 90% top-1); one not in CONFIGS runs at 100% only]
#   FULL_LABELS=0  skip the runs with 100% labels                [1]
#   JOBS       runs trained at once, each with one BLAS thread   [nproc: on 2 cores two runs at
#              once finish about 1.8x sooner than one after the other with two BLAS threads]
#   REPORT_ONLY=1  train nothing: write the report from the runs already finished
#   PRETRAIN=1     the paper's regime, with a stand-in for ImageNet: first train the model supervised
#              on a different task (`sefar synth --classes 4 --first-class 8`: four routines none of
#              the study's 8 classes has, other clips (seed 1), every clip labeled), then start every
#              run of the study from it. Its runs have a folder of their own.          [0]
#   PRETRAIN_PARTS  what the runs take from it:                                       [spatial]
#              spatial: the spatial backbone in timm's naming (bench/ssl/spatial_backbone.py) through
#                `pretrained`, exactly as from ImageNet weights: temporal attention copied from the
#                spatial one, temporal_fc zero after block 0, time embeddings and head from scratch;
#              backbone: the whole backbone, temporal branch included, through init_from with
#                init_from_parts=backbone (the head from scratch).
#   PRETRAIN_PER_CLASS  clips per class of the pretraining task                       [200]
#   PRETRAIN_EPOCHS     epochs of the pretraining (800 clips each)                    [30]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fractions=${FRACTIONS:-5 10}
seeds=${SEEDS:-0 1 2}
configs=${CONFIGS:-supervised sefar no_dual no_perturb no_adareg supervised_ema sefar+perturbation=all_reverse sefar+perturbation=local_shuffle}
full_configs=${FULL_CONFIGS-supervised supervised_long}
per_class=${PER_CLASS:-100}
val=${VAL:-25}
doc=${DOC:-docs/RESULTS.md}
out=data/generated/ssl
pretrain=${PRETRAIN:-0}
pretrain_per_class=${PRETRAIN_PER_CLASS:-200}
pretrain_epochs=${PRETRAIN_EPOCHS:-30}
pretrain_parts=${PRETRAIN_PARTS:-spatial}
case "$pretrain_parts" in spatial|backbone) ;; *) echo "$0: PRETRAIN_PARTS must be spatial or backbone, got '$pretrain_parts'" >&2; exit 2;; esac
# Runs are reused only under the same extra settings: SET (and the pretraining) names its own folder.
runs_key=${SET:-}
[ "$pretrain" = 1 ] && runs_key="$runs_key pretrain p$pretrain_per_class e$pretrain_epochs"
[ "$pretrain" = 1 ] && [ "$pretrain_parts" != backbone ] && runs_key="$runs_key $pretrain_parts"
runs=$out/runs${runs_key:+_$(printf '%s' "$runs_key" | md5sum | cut -c1-8)}
command_line="$(printf '%q ' env FRACTIONS="$fractions" SEEDS="$seeds" CONFIGS="$configs" ${FULL_CONFIGS+FULL_CONFIGS="$FULL_CONFIGS"} PER_CLASS="$per_class" VAL="$val" SET="${SET:-}" ${JOBS:+JOBS=$JOBS} ${FULL_LABELS:+FULL_LABELS=$FULL_LABELS} ${REPORT_ONLY:+REPORT_ONLY=$REPORT_ONLY} ${PRETRAIN:+PRETRAIN=$PRETRAIN} ${PRETRAIN_PER_CLASS:+PRETRAIN_PER_CLASS=$PRETRAIN_PER_CLASS} ${PRETRAIN_EPOCHS:+PRETRAIN_EPOCHS=$PRETRAIN_EPOCHS} ${PRETRAIN_PARTS:+PRETRAIN_PARTS=$PRETRAIN_PARTS} ${DOC:+DOC=$DOC} ${TITLE:+TITLE="$TITLE"}) bash bench/ssl/run.sh"

build_sefar
# Every run of the study uses the binary it started with, whatever is rebuilt meanwhile.
mkdir -p "$out"
sefar=$out/sefar.$$
cp build/sefar "$sefar"
trap 'rm -f "$sefar"' EXIT
jobs_max=${JOBS:-$(nproc)}

start=$(date +%s)
full_fraction=""
[ "${FULL_LABELS:-1}" = 1 ] && [ -n "$full_configs" ] && full_fraction=100
# Every configuration trained: CONFIGS, then those of FULL_CONFIGS that run with 100% labels only.
all_configs=$configs
for config in $full_configs; do
  [[ " $configs " == *" $config "* ]] || all_configs="$all_configs $config"
done
for frac in $fractions $full_fraction; do
  data=$out/data_p${per_class}_v${val}_f${frac}
  if [ ! -f "$data/val.csv" ]; then
    labeled=$(awk "BEGIN{print $frac/100}")
    echo "ssl: generating $data (labeled fraction $labeled)"
    "$sefar" synth "$data" --classes 8 --train-per-class "$per_class" --val-per-class "$val" \
      --labeled "$labeled" --size 48x40 --frames 24:40 --seed 0 >/dev/null 2>&1
  fi
done
# One training run: its log goes to the run directory, its wall time to seconds.txt.
train_one() {
  local frac=$1 config=$2 seed=$3 run=$4
  shift 4
  local t0 log
  t0=$(date +%s)
  log=$runs/log.$$.$BASHPID.tmp
  # Parallel runs each keep to one BLAS thread: OpenBLAS's idle workers spin in sched_yield and
  # would take the other runs' cores.
  if [ "$jobs_max" -gt 1 ]; then
    OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} "$sefar" run "$@" --quiet > "$log" 2>&1 || { cat "$log"; return 1; }
  else
    "$sefar" run "$@" --quiet > "$log" 2>&1 || { cat "$log"; return 1; }
  fi
  mv "$log" "$run/log.txt"
  echo "$(( $(date +%s) - t0 ))" > "$run/seconds.txt"
  echo "ssl: $frac% $config seed $seed: $(grep -o 'val top-1 [0-9.]*%' "$run/log.txt" | tail -1) ($(cat "$run/seconds.txt") s)"
}
# A failed run stops the study; the others in flight are stopped with it.
trap 'rm -f "$sefar"; kill $(jobs -pr) 2>/dev/null || true' EXIT
wait_for_slot() {
  while [ "$(jobs -pr | wc -l)" -ge "$1" ]; do
    wait -n || { echo "ssl: a run failed; stopping the study" >&2; exit 1; }
  done
}

# The stand-in for ImageNet: a supervised model of a different task, trained once (and reused).
mkdir -p "$runs"
init_args=()
pretrain_run=""
if [ "$pretrain" = 1 ]; then
  pretrain_data=$out/pretrain_data_p${pretrain_per_class}
  # One pretrained model for both PRETRAIN_PARTS.
  pretrain_run=$out/pretrain_p${pretrain_per_class}_e${pretrain_epochs}
  if [ ! -f "$pretrain_data/val.csv" ]; then
    echo "ssl: generating $pretrain_data (the pretraining task: 4 other routines, every clip labeled)"
    "$sefar" synth "$pretrain_data" --classes 4 --first-class 8 --train-per-class "$pretrain_per_class" \
      --val-per-class "$val" --labeled 1 --size 48x40 --frames 24:40 --seed 1 >/dev/null 2>&1
  fi
  if [ ! -f "$pretrain_run/model.safetensors" ] && [ "${REPORT_ONLY:-0}" != 1 ]; then
    rm -rf "$pretrain_run"
    mkdir -p "$pretrain_run"
    echo "ssl: pretraining on the other task ($pretrain_epochs epochs)"
    train_one pretrain pretrain 0 "$pretrain_run" pipelines/synthetic/supervised.json \
      --set num_classes=4 --set train_list="$pretrain_data/train.csv" --set unlabeled_list="$pretrain_data/train.csv" \
      --set val_list="$pretrain_data/val.csv" --set epochs="$pretrain_epochs" \
      --set warmup_epochs=$((pretrain_epochs < 3 ? pretrain_epochs : 3)) \
      --set labeled_per_epoch=$((4 * pretrain_per_class)) \
      --set optimizer.milestones="[$((pretrain_epochs * 4 / 5))]" --set runtime.seed=0 --set runtime.run_dir="$pretrain_run"
  fi
  if [ "$pretrain_parts" = spatial ]; then
    [ -f "$pretrain_run/spatial_backbone.safetensors" ] ||
      /usr/bin/python3 bench/ssl/spatial_backbone.py "$pretrain_run/model.safetensors" "$pretrain_run/spatial_backbone.safetensors"
    init_args=(--set pretrained="$pretrain_run/spatial_backbone.safetensors")
  else
    init_args=(--set init_from="$pretrain_run/model.safetensors" --set init_from_parts=backbone)
  fi
fi

# Seeds outermost: an interrupted study has every configuration and fraction with its first seeds.
[ "${REPORT_ONLY:-0}" = 1 ] && seeds_to_train="" || seeds_to_train=$seeds
for seed in $seeds_to_train; do
  for config in $all_configs; do
    pipeline=${config%%+*}
    extra=()
    [[ "$config" == *+* ]] && extra=(--set "${config#*+}")
    # With every label only supervised training means anything (nothing is left unlabeled).
    config_fractions=""
    [[ " $configs " == *" $config "* ]] && config_fractions=$fractions
    [[ " $full_configs " == *" $config "* ]] && config_fractions="$config_fractions $full_fraction"
    for frac in $config_fractions; do
      data=$out/data_p${per_class}_v${val}_f${frac}
      run=$runs/p${per_class}_f${frac}/${config}/seed${seed}
      # shellcheck disable=SC2086
      args=("pipelines/synthetic/$pipeline.json" --set train_list="$data/train.csv"
        --set unlabeled_list="$data/unlabel.csv" --set val_list="$data/val.csv" --set runtime.seed="$seed"
        --set runtime.run_dir="$run" "${init_args[@]}" "${extra[@]}" ${SET:-})
      if [ -f "$run/model.safetensors" ] && [ -f "$run/metrics.jsonl" ]; then
        # The run directory is the one setting allowed to differ (a study's runs may be moved).
        if cmp -s <("$sefar" validate "${args[@]}" 2>/dev/null | grep -v '"run_dir":') \
          <(grep -v '"run_dir":' "$run/pipeline.json"); then
          echo "ssl: $frac% $config seed $seed: done before, reused"
          continue
        fi
        echo "ssl: $frac% $config seed $seed: settings changed since it ran, training again"
      fi
      rm -rf "$run"
      wait_for_slot "$jobs_max"
      train_one "$frac" "$config" "$seed" "$run" "${args[@]}" &
    done
  done
done
wait_for_slot 1
elapsed=$(( $(date +%s) - start ))
/usr/bin/python3 bench/ssl/report.py --root "$runs" --per-class "$per_class" --fractions "$fractions" \
  --full-fraction "$full_fraction" \
  --configs "$configs" --full-configs "$full_configs" --seeds "$seeds" --doc "$doc" --svg "${doc%.md}_curves.svg" \
  --command "$command_line" --commit "$(commit_label)" \
  --elapsed "$elapsed" --title "${TITLE:-SeFAR on synthetic fine-grained data}" ${pretrain_run:+--pretrain-run "$pretrain_run" --pretrain-parts "$pretrain_parts"}
echo "report: $doc"
