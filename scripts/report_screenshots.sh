#!/usr/bin/env bash
# Screenshots of a quickstart run's report.html as it follows the run: after the first epoch and at
# the end (docs/report_epoch1.png, docs/report_end.png). Needs build/sefar, the quickstart data
# (scripts/quickstart_data.sh) and a headless Chromium (Debian: chromium-headless-shell, installed
# here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
browser=$(command -v chromium-headless-shell || command -v chromium || true)
if [[ -z $browser ]]; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium-headless-shell
  browser=$(command -v chromium-headless-shell)
fi
bash scripts/quickstart_data.sh
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
run=$work/run

shoot() {  # shoot REPORT PNG
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,4200 \
    --screenshot="$2.tmp.png" "file://$1" >/dev/null 2>&1
  mv "$2.tmp.png" "$2"
  echo "report_screenshots: $2"
}

./build/sefar run pipelines/quickstart.json --quiet --set runtime.run_dir="$run" "$@" &
pid=$!
# The first epoch's report: written when the first eval record is.
until grep -q '"kind":"eval"' "$run/metrics.jsonl" 2>/dev/null && [[ -f $run/report.html ]]; do
  kill -0 "$pid" 2>/dev/null || { echo "report_screenshots: the run ended early" >&2; exit 1; }
  sleep 0.5
done
cp "$run/report.html" "$work/epoch1.html"
shoot "$work/epoch1.html" docs/report_epoch1.png
wait "$pid"
pid=0
shoot "$run/report.html" docs/report_end.png
cp "$run/run.json" "$work/" && sed -n 1,40p "$run/run.json"
tail -n 5 "$run/console.log"
