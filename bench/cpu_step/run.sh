#!/usr/bin/env bash
# CPU time of one SeFAR-S semi-supervised training step, side by side, one command:
#
#   bash bench/cpu_step/run.sh               # full run (~16 min on an idle 2-core machine, 3 repeats),
#                                            # writes docs/CPU_STEP.md
#   SIZE=tiny bash bench/cpu_step/run.sh     # quick check (tiny model, 32 px, 1 repeat, 2 steps),
#                                            # report to data/generated/cpu_step/CPU_STEP.tiny.md
#
# Configurations (bench/cpu_step/bench.py, numbered as in the report): 1 base: LibTorch 1.13 (build/sefar),
# fp32, explicit attention, sefar's malloc settings; 2 t2: LibTorch 2.11 (build-torch2/sefar), fp32,
# explicit; 3 t2_fused; 4 t2_bf16_fused; 5 t2_bf16; on the baseline: 6 glibc (SEFAR_MALLOC=glibc),
# 7 mmap1g (mmap threshold 1 GiB), 8 jemalloc, 9 tcmalloc (LD_PRELOAD), 10 openblas1
# (OPENBLAS_NUM_THREADS=1: how much of the 1.13 system time is OpenBLAS's thread pool).
#
# 1. installs the bench-only allocators when missing (libjemalloc2, libtcmalloc-minimal4);
# 2. builds build/sefar or build-torch2/sefar only when missing or without the precision and attention
#    parameters (under the build locks other builds of the tree use);
# 3. generates the clips with `sefar synth` (reused when present);
# 4. runs every configuration REPEATS times, round-robin (a round forward, the next backward), each
#    run after a wait for a quiet machine, and writes the report from the runs' metrics; a run during
#    which other processes took more than a quarter of a core is run again (twice at most; the
#    dropped runs are listed in the report).
#
# Environment: SIZE (full | tiny), REPEATS (default 3; tiny 1), STEPS (steps per run, the first one
# uncounted; default 4; tiny 2), CONFIGS (names or numbers, e.g. "1,2,8"; default all), DOC (report
# path), QUIET_WAIT (longest wait for a quiet machine per run, s; default 1800).
# `bench/cpu_step/run.sh --report-only` rewrites the report from the last results.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

size=${SIZE:-full}
case "$size" in
  full)
    repeats=${REPEATS:-3}
    steps=${STEPS:-4}
    doc=${DOC:-docs/CPU_STEP.md}
    model=S crop=112 short='[128,160]' eval_short=128 frames=160x128 lengths=40:60
    ;;
  tiny)
    repeats=${REPEATS:-1}
    steps=${STEPS:-2}
    doc=${DOC:-data/generated/cpu_step/CPU_STEP.tiny.md}
    model=tiny crop=32 short='[36,44]' eval_short=36 frames=48x40 lengths=24:40
    ;;
  *) echo "run.sh: SIZE must be full or tiny" >&2; exit 2 ;;
esac
out=data/generated/cpu_step/$size
data=$out/data
mkdir -p "$out" "$(dirname "$doc")"

if [[ "${1:-}" == "--report-only" ]]; then
  exec /usr/bin/python3 bench/cpu_step/bench.py --report-only --out "$out" --doc "$doc" --steps "$steps"
fi

# 1. Bench-only allocators.
missing=()
for pkg in libjemalloc2 libtcmalloc-minimal4; do
  if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then missing+=("$pkg"); fi
done
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "run.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  # The package lists may be missing or stale on a fresh machine.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    { "${sudo[@]}" apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

# 2. The two binaries. Other builds of this tree take the same locks; an existing binary is used as it
# is (the report names the commit each was built from).
ensure_binary() {  # build_dir lock
  local bin=$1/sefar
  if [[ -x "$bin" ]] && "$bin" nodes sefar_model 2>/dev/null | grep -q "^    precision "; then return; fi
  [[ -f $1/build.ninja || -f $1/Makefile ]] || {
    echo "run.sh: $1 is not configured (bash scripts/build.sh; SEFAR_TORCH=venv bash scripts/build.sh for build-torch2)" >&2
    exit 1
  }
  echo "run.sh: building $bin"
  flock "$2" nice cmake --build "$1" -j2 --target sefar
}
ensure_binary build /tmp/sefar-build.lock
ensure_binary build-torch2 /tmp/sefar-build2.lock

# 3. Clips: 8 classes, 8 labeled and 32 unlabeled training clips (the runs cycle through them).
if [[ ! -f $data/unlabel.csv ]]; then
  rm -rf "$data"
  build/sefar synth "$data" --classes 8 --train-per-class 5 --val-per-class 1 --labeled 0.25 \
    --size "$frames" --frames "$lengths" --seed 0
fi

# 4. Measure and report. Labeled batch 2, unlabeled 6, one epoch of STEPS steps, no warm-up epoch (every
# step semi-supervised), no evaluation.
sets=(
  "train_list=$data/train.csv" "unlabeled_list=$data/unlabel.csv" "val_list="
  "model=$model" "crop=$crop" "short_side=$short" "eval_short_side=$eval_short" "views=[2,2,4]"
  "batch=2" "unlabeled_batch=6" "teacher.passes=10" "epochs=1" "warmup_epochs=0"
  "labeled_per_epoch=$((2 * steps))" "runtime.threads=2" "train.log_every=0"
)
set_args=()
for s in "${sets[@]}"; do set_args+=(--set "$s"); done
shown=(env SIZE="$size" REPEATS="$repeats" STEPS="$steps")
[[ -z "${CONFIGS:-}" ]] || shown+=(CONFIGS="$CONFIGS")
command_line="$(printf '%q ' "${shown[@]}")bash bench/cpu_step/run.sh"
commit=$(commit_label ':!bench/cpu_step')
uptime
/usr/bin/python3 bench/cpu_step/bench.py "${set_args[@]}" --configs "${CONFIGS:-}" --repeats "$repeats" \
  --steps "$steps" --size "$size" --out "$out" --doc "$doc" --command "$command_line" --commit "$commit" \
  --quiet-wait "${QUIET_WAIT:-1800}" \
  --step-desc "\`pipelines/synthetic/sefar.json\` with model $model, crop $crop px (short side $short), views [2,2,4], labeled batch 2 + unlabeled batch 6, teacher K=10 Monte-Carlo head passes, 8 classes, 2 LibTorch threads (\`runtime.threads=2\`), no evaluation; clips from \`sefar synth\` at $frames"
