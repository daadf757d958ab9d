#!/usr/bin/env bash
# Data-parallel training with torchrun: one process per GPU, or NPROC
# processes on a machine without GPUs (gloo backend, docs/distributed.md).
#
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py ARGS]
#
# Several machines: run it on each with NNODES, NODE_RANK (0 on the master),
# MASTER_ADDR (the master's address) and PORT set alike.
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NPROC [tools/train.py arguments]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
