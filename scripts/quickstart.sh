#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running pipeline: install the packages, build,
# and run the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/sefar run pipelines/quickstart.json "$@"
