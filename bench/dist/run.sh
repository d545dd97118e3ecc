#!/usr/bin/env bash
# Data-parallel scaling on CPU, one command:
#
#   bash bench/dist/run.sh
#
# Trains the same SeFAR steps (pipelines/synthetic/sefar.json on the quickstart's synthetic data:
# a supervised warm-up epoch, then a semi-supervised one) with the same total batch two ways, each
# process on one thread:
#   1 process  : labeled batch 2B, unlabeled batch 2U
#   2 processes: labeled batch B, unlabeled batch U each (torchrun, Gloo over loopback)
# and writes docs/BENCH_DIST.md: time per step of each epoch kind, the speed-up, and the share of
# the 2-process step spent averaging gradients (metrics.jsonl's comm_seconds), from the runs'
# metrics and profiles. Every configuration runs REPEATS times, alternating; the median counts.
#
# Environment: STEPS (labeled steps per epoch, default 12), B (default 8), U (default 16),
# REPEATS (default 3), DOC (default docs/BENCH_DIST.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
steps=${STEPS:-12}
b=${B:-8}
u=${U:-16}
repeats=${REPEATS:-3}
doc=${DOC:-docs/BENCH_DIST.md}
out=data/generated/bench_dist
data=data/generated/quickstart

need_torchrun
prepare_quickstart_bench "$out"

common=(--set train_list="$data/train.csv" --set unlabeled_list="$data/unlabel.csv" --set val_list="$data/val.csv"
  --set epochs=2 --set warmup_epochs=1 --set train.eval_limit=16 --set train.log_every=0 --quiet)
total=$((2 * b * steps))  # labeled clips per epoch, the same for both
port=$((29600 + RANDOM % 300))
start=$(date +%s)
for rep in $(seq 1 "$repeats"); do
  echo "bench/dist: repeat $rep/$repeats: 1 process"
  OMP_NUM_THREADS=1 ./build/sefar run pipelines/synthetic/sefar.json "${common[@]}" --threads 1 \
    --set labeled_per_epoch=$total --set batch=$((2 * b)) --set unlabeled_batch=$((2 * u)) \
    --set runtime.run_dir="$out/p1_r$rep" > "$out/p1_r$rep.log" 2>&1
  echo "bench/dist: repeat $rep/$repeats: 2 processes"
  # Debian 12's torchrun (1.13 on Python 3.11) needs --redirects/--tee other than 0 (see README).
  OMP_NUM_THREADS=1 torchrun --no_python --nproc_per_node 2 --master_port $((port + rep)) --redirects 2 --tee 2 \
    ./build/sefar run pipelines/synthetic/sefar.json "${common[@]}" --threads 1 \
    --set labeled_per_epoch=$total --set batch=$b --set unlabeled_batch=$u \
    --set runtime.run_dir="$out/p2_r$rep" > "$out/p2_r$rep.log" 2>&1
done
/usr/bin/python3 bench/dist/report.py --root "$out" --repeats "$repeats" --doc "$doc" \
  --command "$(printf '%q ' env STEPS="$steps" B="$b" U="$u" REPEATS="$repeats") bash bench/dist/run.sh" \
  --commit "$(commit_label)" \
  --elapsed $(( $(date +%s) - start )) --batch "$b" --unlabeled "$u"
echo "report: $doc"
