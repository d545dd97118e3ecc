#!/usr/bin/env bash
# Everything docs/GPU.md runs on a CUDA machine, as one command from the project's root: oneTBB and
# FFmpeg from .gpu/ (when present), configure and build sefar, sefar_bench_step and test_cuda against
# the LibTorch of a PyTorch 2.x installation, run the CUDA tests (ctest -R test_cuda), then
# bench/gpu/run.sh (docs/PERFORMANCE.md). A failing CUDA test is reported; the benchmark runs anyway.
# A second run reuses the build directory (only changed sources recompile).
#
# Environment: TORCH_PYTHON (default /opt/torch/.venv/bin/python), BUILD (default build-gpu), JOBS
# (default: every core), DEVICE (default cuda); the rest (SIZE, OUT, budgets) goes to run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_PYTHON=${TORCH_PYTHON:-/opt/torch/.venv/bin/python}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
export DEVICE=${DEVICE:-cuda}
t0=$(date +%s)
stamp() { echo "[gpu_machine +$(($(date +%s) - t0)) s] $*" >&2; }

# .gpu/setup.sh asks `python3` for torch's CMake prefix: the one with torch first on PATH.
export PATH="$(dirname "$TORCH_PYTHON"):$PATH"
if [ -f .gpu/setup.sh ]; then
  stamp "source .gpu/setup.sh"
  # shellcheck disable=SC1091
  source .gpu/setup.sh
else
  stamp "no .gpu/setup.sh: oneTBB, FFmpeg, fmt, nlohmann-json from the system"
fi
# The wheel's CMake config needs a CUDA toolkit (cmake/sefar_torch.cmake): /usr/local/cuda, else the
# nvcc on PATH.
if [ -z "${CUDA_HOME:-}" ] && [ ! -x /usr/local/cuda/bin/nvcc ] && command -v nvcc >/dev/null; then
  CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
  export CUDA_HOME
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

stamp "configure $BUILD"
mkdir -p "$BUILD"
generator=Ninja
command -v ninja >/dev/null || generator="Unix Makefiles"
cmake -S . -B "$BUILD" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DSEFAR_TORCH=venv \
  -DSEFAR_TORCH_PYTHON="$TORCH_PYTHON" -DSEFAR_BUILD_TESTS=ON >"$BUILD/configure.log" 2>&1 ||
  { tail -n 30 "$BUILD/configure.log" >&2; exit 1; }
grep "sefar:" "$BUILD/configure.log" >&2 || true
stamp "build sefar sefar_bench_step test_cuda (-j $JOBS)"
cmake --build "$BUILD" -j "$JOBS" --target sefar sefar_bench_step test_cuda >"$BUILD/build.log" 2>&1 ||
  { tail -n 30 "$BUILD/build.log" >&2; exit 1; }
stamp "CUDA tests"
tests=0
ctest --test-dir "$BUILD" -R test_cuda --output-on-failure --timeout 120 >&2 || tests=$?
stamp "bench/gpu/run.sh"
status=0
BUILD="$BUILD" bash bench/gpu/run.sh || status=$?
stamp "done (benchmark exit $status, CUDA tests exit $tests)"
[ "$status" -eq 0 ] && status=$tests
exit $status
