#!/usr/bin/env bash
# One GPU session's work in one command: build convkit._C with CUDA against the python3 that holds a CUDA torch,
# then the stages named on the command line, each logging to $OUT (default ./gpu_out).
#
#   bash benchmarks/gpu_session.sh env build test            # build + tests/backends/test_cuda.py
#   bash benchmarks/gpu_session.sh build sanitize             # compute-sanitizer memcheck/initcheck/synccheck/racecheck
#   bash benchmarks/gpu_session.sh build bench                # benchmarks/bench_cuda.py, full run (JSON in $OUT)
#   BENCH_ARGS="--quick" bash benchmarks/gpu_session.sh build bench
#
# Stages: env, build, test, sanitize, bench. A failing stage is reported and the next one still runs; the exit
# status is that of the last failing stage (0 when all passed); a failed build ends the run.
set -u -o pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the in-place build, for scripts under benchmarks/
status=0

stage() {  # name, command...: run it, tee its output to $OUT/<name>.log, keep the failure
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || status=$rc
}

SMALL="matches_torch and (c16_o70 or c64_o64_14 or c128_o64 or c60_o20 or s4_k2 or dw_64 or c1_o6 or max_ceil or cl_max or global)"
sanitize() {
  export PYTORCH_NO_CUDA_MEMORY_CACHING=1  # every tensor its own allocation: memcheck sees its bounds
  local tool
  for tool in memcheck initcheck synccheck; do
    echo "--- compute-sanitizer --tool $tool"
    compute-sanitizer --tool $tool --error-exitcode 1 "$PY" -m pytest tests/backends/test_cuda.py -q -x -p no:cacheprovider -k "$SMALL" || return 1
  done
  echo "--- compute-sanitizer --tool racecheck"
  compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 1 \
    "$PY" -m pytest tests/backends/test_cuda.py -q -x -p no:cacheprovider -k "$SMALL"
}

for s in "$@"; do
  case $s in
    env) stage env bash -c "nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; $PY -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(0))'; nproc; lscpu | grep -E \"Model name|Flags\" | cut -c1-200" ;;
    build) # The device image sets CC/CXX to /opt/gcc's wrapper; an extension built with it crashed (SIGSEGV in
           # std::ostream's int64 insertion) on every error message that formats a number, CPU and CUDA alike.
           # The distribution's gcc/g++ (same version, 13.3) builds one that passes every test.
           if [ -x /usr/bin/g++ ] && [ -z "${KEEP_CC:-}" ]; then export CC=/usr/bin/gcc CXX=/usr/bin/g++; fi
           stage build env TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} \
             "$PY" setup.py -q build_ext --inplace
           [ "$status" -eq 0 ] || { echo "build failed: later stages skipped"; exit $status; }
           stage info "$PY" -m convkit info ;;
    test) stage test "$PY" -m pytest tests/backends/test_cuda.py -q -rfEs -p no:cacheprovider \
            --junitxml="$OUT/test_cuda.xml" ${TEST_ARGS:-} ;;
    sanitize) stage sanitize sanitize ;;
    bench) stage bench "$PY" benchmarks/bench_cuda.py --json "$OUT/cuda_h100.json" ${BENCH_ARGS:-} ;;
    *) echo "unknown stage $s (env, build, test, sanitize, bench)"; exit 2 ;;
  esac
done
exit $status
