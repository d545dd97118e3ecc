#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a tested build: install the packages, build, and
# run the test suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${SEFAR_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
