#!/usr/bin/env bash
# The training-step benchmark (bench/README.md): time per semi-supervised step, clips/s, peak device
# memory and model FLOP utilisation of SeFAR-S and SeFAR-B (sefar_bench_step, random inputs on the
# device), then one end-to-end run from decoded mp4 clips (sefar synth, then `sefar run
# pipelines/sefar_train.json --profile`): its step time, the step nodes' busy share and the training
# loop's input wait. Writes the report ($OUT) from what it measured.
#
# Environment:
#   DEVICE   cuda (default) | cpu
#   SIZE     full (default): S and B at 224, views 2,2,4, K=10, batches 8+24 and 4+12, fp32 and bf16;
#                            end to end: S 8+24 on 640x360 clips, 10 steps
#            tiny:  the tiny model at 32 px, batches 2+4 and 1+2, K=2, 1 warm-up + 2 timed steps; end to
#                   end: 2 steps on 64x48 clips (a dry run: 5-15 s on a 2-core CPU)
#   BUILD    build directory holding sefar and sefar_bench_step (default build)
#   OUT      the report (default docs/PERFORMANCE.md with DEVICE=cuda, else under data/generated/bench_gpu/)
#   WORK     intermediate files (default data/generated/bench_gpu/<build>-<device>-<size>)
#   STEP_BUDGET  seconds for all step measurements (full 210, tiny 300); STEP_TIMEOUT per configuration
#                (full 90, tiny 120); configurations past the budget are reported as not run
#   E2E_BUDGET   seconds for the end-to-end part, clip generation included (full 110, tiny 120)
#   MODELS, BATCHES ("8+24 4+12"), PRECISIONS ("fp32 bf16"), WARMUP, STEPS, K, CROP, THREADS (LibTorch
#   intra-op threads; tiny on cpu: 1, which a busy 2-core machine needs), PEAK_TFLOPS (the MFU's peak
#   where the device has no data-sheet entry, e.g. a CPU), E2E_MODEL, E2E_PRECISION, E2E_STEPS
# Exit status: 0 when every part was measured (an out-of-memory configuration counts as measured), 1
# otherwise; the report is written either way.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-full}
BUILD=${BUILD:-build}
case $DEVICE in cuda | cpu) ;; *) echo "run.sh: DEVICE=$DEVICE: cuda or cpu" >&2; exit 2 ;; esac
build_abs=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run.sh: no build directory $BUILD" >&2; exit 2; }
for b in sefar sefar_bench_step; do
  if [ ! -x "$build_abs/$b" ]; then
    echo "run.sh: $build_abs/$b missing: cmake --build $BUILD --target sefar sefar_bench_step" >&2
    exit 2
  fi
done
tag="$(basename "$build_abs")-$DEVICE-$SIZE"
WORK=${WORK:-data/generated/bench_gpu/$tag}
if [ "$DEVICE" = cuda ]; then OUT=${OUT:-docs/PERFORMANCE.md}; else OUT=${OUT:-data/generated/bench_gpu/PERFORMANCE_$tag.md}; fi

case $SIZE in
  full)
    MODELS=${MODELS:-S B}; BATCHES=${BATCHES:-8+24 4+12}; K=${K:-10}; CROP=${CROP:-224}
    WARMUP=${WARMUP:-2}; STEPS=${STEPS:-5}
    STEP_BUDGET=${STEP_BUDGET:-210}; STEP_TIMEOUT=${STEP_TIMEOUT:-90}; E2E_BUDGET=${E2E_BUDGET:-110}
    E2E_MODEL=${E2E_MODEL:-S}; E2E_BATCH=${E2E_BATCH:-8+24}; E2E_STEPS=${E2E_STEPS:-10}
    clip_size=640x360; clip_frames=40:75; classes=8; short_side=""
    ;;
  tiny)
    MODELS=${MODELS:-tiny}; BATCHES=${BATCHES:-2+4 1+2}; K=${K:-2}; CROP=${CROP:-32}
    WARMUP=${WARMUP:-1}; STEPS=${STEPS:-2}
    STEP_BUDGET=${STEP_BUDGET:-300}; STEP_TIMEOUT=${STEP_TIMEOUT:-120}; E2E_BUDGET=${E2E_BUDGET:-120}
    E2E_MODEL=${E2E_MODEL:-tiny}; E2E_BATCH=${E2E_BATCH:-2+4}; E2E_STEPS=${E2E_STEPS:-2}
    clip_size=64x48; clip_frames=16:24; classes=2; short_side="[36,40]"
    [ "$DEVICE" = cpu ] && THREADS=${THREADS:-1}
    ;;
  *) echo "run.sh: SIZE=$SIZE: full or tiny" >&2; exit 2 ;;
esac
PRECISIONS=${PRECISIONS:-fp32 bf16}
THREADS=${THREADS:-0}
PEAK_TFLOPS=${PEAK_TFLOPS:-}
# On the GPU the end-to-end run shows whether the input side keeps up with the fast (bf16) step; on a
# CPU bf16 is the slow one.
if [ "$DEVICE" = cuda ]; then E2E_PRECISION=${E2E_PRECISION:-bf16}; else E2E_PRECISION=${E2E_PRECISION:-fp32}; fi

# Only this script's own outputs are removed (WORK may be a directory given by the caller).
rm -rf "$WORK/steps" "$WORK/clips" "$WORK/run" "$WORK/profile.json" "$WORK/status.tsv"
mkdir -p "$WORK/steps"
status=$WORK/status.tsv
: >"$status"
log() { echo "[bench/gpu $(date +%T)] $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# What ran where (the report's header).
{
  echo "command=$(printf '%q ' env DEVICE="$DEVICE" SIZE="$SIZE" BUILD="$BUILD" bash bench/gpu/run.sh)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
  if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
    echo "gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  fi
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$WORK/machine.txt"
"$build_abs/sefar" --version | tail -n +2 >"$WORK/version.json"

# Part 1: the step on random inputs, one process per configuration (each its own peak memory).
part_start=$(now)
fail=0
for model in $MODELS; do
  for batch in $BATCHES; do
    for precision in $PRECISIONS; do
      name="${model}_${batch}_${precision}"
      left=$(awk -v s="$(elapsed "$part_start")" -v b="$STEP_BUDGET" 'BEGIN { printf "%d", b - s }')
      if [ "$left" -lt 10 ]; then
        log "$name: not run (step budget of $STEP_BUDGET s spent)"
        printf '%s\tbudget\t0\n' "$name" >>"$status"
        fail=1
        continue
      fi
      limit=$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))
      log "$name (up to $limit s)"
      t0=$(now)
      timeout --signal=TERM --kill-after=10 "$limit" "$build_abs/sefar_bench_step" --model "$model" \
        --crop "$CROP" --views 2,2,4 --teacher-passes "$K" --labeled "${batch%+*}" --unlabeled "${batch#*+}" \
        --device "$DEVICE" --precision "$precision" --warmup "$WARMUP" --steps "$STEPS" --threads "$THREADS" \
        ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"} --json "$WORK/steps/$name.json" >"$WORK/steps/$name.log" 2>&1
      rc=$?
      printf '%s\t%s\t%s\n' "$name" "$rc" "$(elapsed "$t0")" >>"$status"
      tail -n 2 "$WORK/steps/$name.log" >&2
      # 3: out of device memory, a result of its own.
      [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail=1
    done
  done
done

# Part 2: end to end from mp4 clips through the shipped pipeline, with its profile.
part_start=$(now)
eb=${E2E_BATCH%+*}
eu=${E2E_BATCH#*+}
per_class=$((eb * E2E_STEPS / classes))  # labeled clips per class: E2E_STEPS full batches in the epoch
e2e_rc=0
log "end to end: $((per_class * classes)) labeled and as many unlabeled $clip_size clips"
timeout --signal=TERM --kill-after=10 "$E2E_BUDGET" "$build_abs/sefar" synth "$WORK/clips" --classes "$classes" \
  --train-per-class $((2 * per_class)) --val-per-class 0 --labeled 0.5 --size "$clip_size" \
  --frames "$clip_frames" --seed 0 >"$WORK/synth.log" 2>&1 || e2e_rc=$?
synth_s=$(elapsed "$part_start")
printf 'synth\t%s\t%s\n' "$e2e_rc" "$synth_s" >>"$status"
if [ "$e2e_rc" -eq 0 ]; then
  left=$(awk -v s="$synth_s" -v b="$E2E_BUDGET" 'BEGIN { printf "%d", b - s }')
  [ "$left" -ge 10 ] || left=10
  sets=(--set model="$E2E_MODEL" --set num_classes="$classes" --set crop="$CROP"
    --set train_list="$WORK/clips/train.csv" --set unlabeled_list="$WORK/clips/unlabel.csv" --set 'val_list=""'
    --set batch="$eb" --set unlabeled_batch="$eu" --set epochs=1 --set warmup_epochs=0
    --set teacher.passes="$K" --set device="$DEVICE" --set models.net.precision="$E2E_PRECISION"
    --set models.net.threads="$THREADS" --set runtime.run_dir="$WORK/run")
  [ -n "$short_side" ] && sets+=(--set short_side="$short_side")
  for a in sefar run pipelines/sefar_train.json "${sets[@]}" --profile "$WORK/profile.json"; do
    if [[ $a =~ [^A-Za-z0-9_./=:+,-] ]]; then printf "'%s' " "$a"; else printf '%s ' "$a"; fi
  done >"$WORK/e2e_command.txt"
  log "sefar run (up to $left s)"
  t0=$(now)
  timeout --signal=TERM --kill-after=30 "$left" "$build_abs/sefar" run pipelines/sefar_train.json "${sets[@]}" \
    --profile "$WORK/profile.json" --quiet --overwrite >"$WORK/e2e.log" 2>&1 || e2e_rc=$?
  printf 'e2e\t%s\t%s\n' "$e2e_rc" "$(elapsed "$t0")" >>"$status"
  tail -n 3 "$WORK/e2e.log" >&2
fi
[ "$e2e_rc" -eq 0 ] || fail=1

cat >"$WORK/settings.json" <<EOF
{"device": "$DEVICE", "size": "$SIZE", "crop": $CROP, "k": $K, "warmup": $WARMUP, "steps": $STEPS,
 "threads": $THREADS, "peak_tflops": "${PEAK_TFLOPS}", "e2e_model": "$E2E_MODEL", "e2e_batch": "$E2E_BATCH",
 "e2e_precision": "$E2E_PRECISION", "e2e_steps": $E2E_STEPS, "clip_size": "$clip_size",
 "clip_frames": "$clip_frames", "classes": $classes}
EOF
mkdir -p "$(dirname "$OUT")"
python3 bench/gpu/report.py "$WORK" "$OUT" || fail=1
log "report: $OUT"
exit $fail
