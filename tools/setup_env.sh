#!/usr/bin/env bash
# Create .venv and install densekit with its pinned stack (see README "Install").
#
# Order matters on a CPU-only machine:
#   1. torch==2.13.0 first (the CPU wheel); later ranges are then satisfied without pulling CUDA.
#   2. setuptools<81 + wheel, because mmcv 2.1.0's setup.py imports pkg_resources.
#   3. mmcv 2.1.0 built from source with its compiled ops (mmseg and mmdet need mmcv._ext).
#      The first build takes about 12 minutes on 2 cores; pip caches the wheel afterwards.
#   4. densekit itself, editable, with the test extra (peers used as test oracles).
set -euo pipefail

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIP="$VENV/bin/python -m pip"

say() { printf '\033[1m[densekit setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi

pip_quiet() { $PIP install --disable-pip-version-check -q "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'is ignored' || true; }

say "installing torch 2.13.0 (CPU wheel) and build tools"
pip_quiet "torch==2.13.0" "setuptools<81" wheel numpy
"$VENV/bin/python" -c "import torch" >/dev/null 2>&1 || { say "torch failed to install"; exit 1; }

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; from mmcv import _ext" >/dev/null 2>&1; then
  say "mmcv with compiled ops already present"
else
  say "building mmcv 2.1.0 with compiled ops from source."
  say "FIRST TIME ONLY: this compiles C++ for about 12 minutes on 2 cores (seconds once pip has cached the wheel)."
  log=$(mktemp -t mmcv-build.XXXXXX.log)
  ( MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} $PIP install --disable-pip-version-check \
      --no-build-isolation "mmcv==2.1.0" >"$log" 2>&1 ) &
  pid=$!
  start=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    if kill -0 "$pid" 2>/dev/null; then
      el=$(( $(date +%s) - start ))
      say "still building mmcv ... $((el / 60))m$((el % 60))s elapsed (expected ~12 min; log: $log)"
    fi
  done
  if ! wait "$pid"; then
    say "mmcv build failed; last lines of $log:"; tail -n 30 "$log"; exit 1
  fi
  say "mmcv built in $(( $(date +%s) - start ))s"
fi

say "installing densekit and its dependencies (editable, with test extra)"
pip_quiet -e ".[test]"
"$VENV/bin/python" -c "import densekit, mmseg.models, mmdet.models; print('densekit', densekit.__version__, 'ready')"
