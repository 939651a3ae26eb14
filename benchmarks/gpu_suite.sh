#!/usr/bin/env bash
# Every benchmark on one CUDA machine, in one go; JSON results and a log under $OUT.
#
#   OUT=/tmp/bench bash benchmarks/gpu_suite.sh          # from anywhere; runs in the repository root
#   SMOKE=1 DEVICE=cpu OUT=/tmp/smoke bash benchmarks/gpu_suite.sh   # tiny sizes: checks the script itself
#
# Data: CIFAR-10 is synthetic (CIFAR-shaped uint8 noise: throughput does not depend on the
# pixels); MNIST is the real dataset from .device/data/MNIST/raw (git-ignored; copy
# ../shared/data/MNIST there and carry `.device` to the machine). Nothing is downloaded.
# Each step has its own time limit and a failing step does not stop the others; the whole
# suite is sized for about 10 minutes on one modern GPU. Afterwards, on the development
# machine: copy the *-cuda.json files to benchmarks/reported/ and run
# `python benchmarks/report.py --write benchmarks/README.md`.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:?set OUT to the folder for the results}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"
export BENCH_OUT="$OUT"
export PYTHONUNBUFFERED=1
MNIST_DIR="${MNIST_DIR:-.device/data}"
LOG="$OUT/suite.log"
WORKERS=$(( $(nproc) > 8 ? 8 : $(nproc) ))

if [ "${SMOKE:-0}" = 1 ]; then        # sizes that only prove every command runs
  AUG=(--batch-size 64 --images 128 --passes 2 --repeats 1)
  TRAIN=(--images 256 --batch-size 16 --steps 1 --repeats 1 --warmup 1)
  MNIST_TRAIN=(--images 256 --batch-size 16 --steps 1 --repeats 1 --warmup 1)
  SETTINGS=(--batch-size 16 --steps 1 --repeats 1 --warmup 1)
  WORKERS=1
else
  AUG=(--batch-size 1024 --images 8192 --passes 20 --repeats 5)
  TRAIN=(--images 50000 --steps 40 --repeats 3)
  MNIST_TRAIN=(--images 60000 --steps 40 --repeats 3)
  SETTINGS=(--batch-size 512 --steps 20 --repeats 3 --compile)
fi

step() {   # step SECONDS NAME COMMAND...
  local limit=$1 name=$2; shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$LOG"
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; } \
  > "$OUT/nvidia-smi.txt" 2>&1
python - <<'EOF' 2>&1 | tee -a "$LOG"
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

step 120 augment-cifar10-re python benchmarks/augment_throughput.py --task cifar10 --device "$DEVICE" "${AUG[@]}"
step 90 augment-cifar10-plain python benchmarks/augment_throughput.py --task cifar10 --device "$DEVICE" \
  "${AUG[@]}" --no-random-erasing
step 150 train-cifar10 python benchmarks/train_throughput.py --task cifar10 --device "$DEVICE" \
  "${TRAIN[@]}" --workers "$WORKERS" --other-precision
step 300 step-settings-cifar10 python benchmarks/step_settings.py --task cifar10 --device "$DEVICE" \
  "${SETTINGS[@]}"
step 150 train-cifar10-compile python benchmarks/train_throughput.py --task cifar10 --device "$DEVICE" \
  "${TRAIN[@]}" --compile --only cnn_studio --tag compile
if [ -f "$MNIST_DIR/MNIST/raw/train-images-idx3-ubyte" ]; then
  step 120 train-mnist python benchmarks/train_throughput.py --task mnist --data-dir "$MNIST_DIR" \
    --device "$DEVICE" "${MNIST_TRAIN[@]}" --workers "$WORKERS"
else
  echo "=== no MNIST at $MNIST_DIR: MNIST steps skipped" | tee -a "$LOG"
fi
ls -l "$OUT" | tee -a "$LOG"
