#!/bin/bash
# The checks that need a CUDA GPU, in one go: `pytest -m gpu`, then the benchmarks that measure
# something different on a GPU (fourds.plan's memory model against
# torch.cuda.max_memory_allocated, step speed and memory per scale, attention memory with
# xformers, the masking speed-up). Results go to OUT_DIR (default benchmarks/results/gpu), logs
# beside them.
#
# Run from the repository root with the project importable (`pip install -e ".[dev,gpu]"`):
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# Each part has its own time limit, so one that hangs does not take the others with it.
set -u
out=${1:-benchmarks/results/gpu}
mkdir -p "$out"
python=${PYTHON:-python}
export PYTHONUNBUFFERED=1

nvidia-smi -L 2>&1 | tee "$out/gpu.log"
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$out/gpu.log"

timeout 200 "$python" -m pytest -m gpu tests/gpu -o addopts="-ra" -p no:cacheprovider \
    2>&1 | tee "$out/pytest_gpu.log"

for benchmark in memory_model pretrain_step attention_memory masking_speedup; do
    timeout 120 "$python" "benchmarks/$benchmark.py" --out "$out" 2>&1 | tee -a "$out/benchmarks.log"
done
