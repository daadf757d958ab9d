#!/usr/bin/env bash
# One-shot GPU throughput check: benchmarks/throughput.py --quick on CUDA
# (stock vs project vs plain PyTorch, fp32 vs AMP fp16/bf16, channels-last
# on/off, pinned memory, 8 loader workers vs the default, model-only ceiling).
# About 3 minutes on one H100 once the packages of requirements.txt are in.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]     # default: $OUT or work_dirs/
#
# Writes OUT_DIR/{env.txt,throughput.log,throughput.json,throughput.png,logs/}.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-work_dirs}/benchmarks_gpu}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT_DIR/logs"
{
    date -Is
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    echo "cores: $(nproc)"
    "$PYTHON" -c 'import sys, torch, torchvision, mmengine, mmpretrain, cv2
print(sys.version.split()[0], "torch", torch.__version__, "cuda",
      torch.version.cuda, "available", torch.cuda.is_available(),
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
print("torchvision", torchvision.__version__, "mmengine",
      mmengine.__version__, "mmpretrain", mmpretrain.__version__,
      "opencv", cv2.__version__)'
} 2>&1 | tee "$OUT_DIR/env.txt"
timeout "${TIMEOUT_S:-480}" "$PYTHON" benchmarks/throughput.py --quick \
    --device cuda --out-dir "$OUT_DIR" --log-dir "$OUT_DIR/logs" 2>&1 \
    | grep -v -e 'UserWarning' -e '^  warnings.warn' -e '^  import pkg' \
    | tee "$OUT_DIR/throughput.log"
