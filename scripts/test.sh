#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a tested build: install the packages, build, and
# run the test suite through ctest.
#
# SEFAR_TORCH=venv builds against PyTorch 2.x's LibTorch instead (installed into ./.venv, built into
# ./build-torch2; CUDA paths compiled, their tests skipped without a GPU). CI runs both (.ci/run).
# SEFAR_SANITIZE=1 builds into ./build-asan with AddressSanitizer and UndefinedBehaviorSanitizer
# (CMake -DSEFAR_SANITIZE=ON) and runs the same tests there; any finding fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ "${SEFAR_TORCH:-system}" == venv ]]; then
  bash scripts/setup_python.sh test torch reference   # reference: timm, torchvision (test_pretrained)
  export SEFAR_BUILD_DIR=${SEFAR_BUILD_DIR:-build-torch2}
else
  bash scripts/setup_python.sh test
fi
if [[ "${SEFAR_SANITIZE:-0}" == 1 ]]; then
  export SEFAR_BUILD_DIR=${SEFAR_BUILD_DIR:-build-asan}
  SEFAR_BUILD_DIR=$SEFAR_BUILD_DIR bash scripts/build.sh -DSEFAR_SANITIZE=ON
  # LeakSanitizer stays on; the suppressions name the leaks that are not ours (see the file).
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:check_initialization_order=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  bash scripts/build.sh
fi
cd "${SEFAR_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
