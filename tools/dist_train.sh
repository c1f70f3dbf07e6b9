#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's pytorch launcher.
#   tools/dist_train.sh CONFIG NPROC [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
# The backend is nccl on GPUs and gloo on CPU-only machines (chosen by densekit at start-up).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [train.py args...]" >&2; exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-$( [ -x "$HERE/../.venv/bin/python" ] && echo "$HERE/../.venv/bin/python" || echo python)}
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
