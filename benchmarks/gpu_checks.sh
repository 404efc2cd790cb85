#!/bin/bash
# The checks that need a CUDA GPU, in one go, in at most about 8 minutes: benchmarks/gpu_step.py
# (the ceilings, the 4ds ladder's step per scale and batch, compile, attention backends, a
# profile, the loader; results/gpu/summary.json), benchmarks/sdpa_kernels.py (SDPA's kernels
# at the ladder's attention shapes), then `pytest -m gpu`. With ALL=1 it then runs
# the older CUDA benchmarks too (memory model, step per scale, attention memory, masking
# speed-up; about 8 minutes more). Results go to OUT_DIR (default benchmarks/results/gpu), logs
# beside them.
#
# Run from the repository root with the project importable: `pip install -e ".[dev,gpu]"`, or on
# a bare GPU machine with torch and the wheels of benchmarks/gpu_wheels.txt
# (benchmarks/README.md, "On a GPU machine"):
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# Each part has its own time limit, so one that hangs does not take the others with it.
set -u
out=${1:-benchmarks/results/gpu}
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

nvidia-smi -L 2>&1 | tee "$out/gpu.log"
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$out/gpu.log"

timeout "${STEP_LIMIT_S:-400}" "$python" benchmarks/gpu_step.py --out "$out" \
    --budget-s "${STEP_BUDGET_S:-280}" 2>&1 | tee "$out/gpu_step.log"

timeout "${SDPA_LIMIT_S:-90}" "$python" benchmarks/sdpa_kernels.py --out "$out" 2>&1 \
    | tee "$out/sdpa_kernels.log"

timeout "${PYTEST_LIMIT_S:-150}" "$python" -m pytest -m gpu tests/gpu tests/train/test_loader.py \
    -o addopts="-ra" -p no:cacheprovider 2>&1 | tee "$out/pytest_gpu.log"

if [ "${ALL:-0}" = 1 ]; then
    for benchmark in memory_model pretrain_step attention_memory masking_speedup; do
        timeout 120 "$python" "benchmarks/$benchmark.py" --out "$out" 2>&1 | tee -a "$out/benchmarks.log"
    done
fi
