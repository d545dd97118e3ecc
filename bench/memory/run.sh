#!/usr/bin/env bash
# Resident memory of a long CPU training run, one command:
#
#   bash bench/memory/run.sh            # 30 minutes
#   DURATION=300 bash bench/memory/run.sh
#
# Trains pipelines/quickstart.json (SeFAR: labeled, unlabeled and validation clips decoded on the
# fly, EMA teacher, an evaluation after every epoch) with enough epochs to outlast DURATION seconds,
# samples the process's resident set (VmRSS in /proc/PID/status) every INTERVAL seconds, then stops
# it with SIGTERM (a clean stop that writes a checkpoint and the profile). Writes docs/MEMORY.md and
# docs/MEMORY_rss.svg from the samples and the run's profile (items in flight per source against
# their budget). Environment: DURATION (default 1800), INTERVAL (default 5), DOC, THREADS;
# REPORT_ONLY=1 rewrites the report from the last run's samples without running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
duration=${DURATION:-1800}
interval=${INTERVAL:-5}
doc=${DOC:-docs/MEMORY.md}
out=data/generated/bench_memory
if [ "${REPORT_ONLY:-0}" = 1 ]; then
  exec python3 bench/memory/report.py --dir "$out" --doc "$doc" @"$out/report_args.txt"
fi
prepare_quickstart_bench "$out"
# A private copy: a rebuild during the run must not change the binary under it.
cp build/sefar "$out/sefar"
threads_args=()
[ -n "${THREADS:-}" ] && threads_args=(--threads "$THREADS")
commit=$(commit_label)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
"$out/sefar" run pipelines/quickstart.json --quiet --set epochs=100000 --set runtime.run_dir="$out/run" \
  --profile "$out/profile.json" "${threads_args[@]}" > "$out/run.log" 2>&1 &
pid=$!
t0=$(date +%s.%N)
echo "t_seconds,rss_kib,hwm_kib,metrics_lines" > "$out/rss.csv"
echo "sampling pid $pid every ${interval}s for ${duration}s"
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s.%N)
  elapsed=$(awk -v a="$now" -v b="$t0" 'BEGIN{printf "%.1f", a-b}')
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
  hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
  lines=0
  [ -f "$out/run/metrics.jsonl" ] && lines=$(wc -l < "$out/run/metrics.jsonl")
  [ -n "$rss" ] && echo "$elapsed,$rss,$hwm,$lines" >> "$out/rss.csv"
  if awk -v e="$elapsed" -v d="$duration" 'BEGIN{exit !(e >= d)}'; then break; fi
  # Progress once a minute on long runs.
  if (( ${elapsed%.*} % 60 < interval )); then echo "  ${elapsed%.*} s: RSS $((rss / 1024)) MiB, metrics lines $lines"; fi
  sleep "$interval"
done
kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
status=0
wait "$pid" || status=$?
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run ended with exit status $status"
# What the report needs besides the samples, kept so that REPORT_ONLY=1 can rewrite it.
printf '%s\n' "--commit" "$commit" "--status" "$status" "--duration" "$duration" "--interval" "$interval" \
  "--load" "$load_start" "$load_end" "--cores" "$(nproc)" > "$out/report_args.txt"
python3 bench/memory/report.py --dir "$out" --doc "$doc" @"$out/report_args.txt"
