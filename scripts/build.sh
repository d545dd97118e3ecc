#!/usr/bin/env bash
# Configures and builds sefar into ./build (Release-with-debug-info, Ninja, ccache when present).
# Extra arguments go to the CMake configure step, e.g. -DSEFAR_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SEFAR_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
