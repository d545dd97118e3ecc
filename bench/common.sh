# Shell functions the bench scripts share. A script sources it first thing after `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
#
# which also moves to the repository's root folder, $repo: the scripts' paths are relative to it.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# build/sefar, configured and built when missing, brought up to date otherwise.
build_sefar() {
  [ -x build/sefar ] || bash scripts/build.sh
  cmake --build build --target sefar >/dev/null
}

# Stops with exit status 2 unless torchrun is on PATH.
need_torchrun() {
  command -v torchrun >/dev/null || { echo "$0: torchrun not found (Debian: apt-get install python3-torch)" >&2; exit 2; }
}

# What a benchmark on the quickstart's data does first: build_sefar, the quickstart's synthetic
# dataset (data/generated/quickstart) made when missing, and folder $1 (its output) emptied of an
# earlier run's files.
prepare_quickstart_bench() {
  build_sefar
  bash scripts/quickstart_data.sh >/dev/null 2>&1
  rm -rf "$1"
  mkdir -p "$1"
}

# The commit a report's figures come from: its short hash, with "+changes" when the tree differs from
# it outside docs/ (and outside the pathspecs given, e.g. ':!bench/cpu_step').
commit_label() {
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' "$@" || echo '+changes')"
}
