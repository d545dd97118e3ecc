#!/usr/bin/env bash
# Configures and builds sefar (Release-with-debug-info, Ninja, ccache when present).
# Extra arguments go to the CMake configure step, e.g. -DSEFAR_SANITIZE=ON.
# SEFAR_TORCH picks the LibTorch (see CMakeLists.txt): system (Debian's 1.13, default) builds into
# ./build, venv (PyTorch 2.x from ./.venv: bash scripts/setup_python.sh torch) into ./build-torch2.
# SEFAR_BUILD_DIR overrides the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
torch=${SEFAR_TORCH:-system}
case $torch in
  system) default_dir=build ;;
  venv) default_dir=build-torch2 ;;
  *) echo "build.sh: SEFAR_TORCH=$torch: valid are system and venv" >&2; exit 1 ;;
esac
build_dir=${SEFAR_BUILD_DIR:-$default_dir}
cmake -S . -B "$build_dir" -G Ninja -DSEFAR_TORCH="$torch" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
