"""The loader benchmark on a GPU machine: it also times the feed to the GPU (pinned batches,
asynchronous copies, crops on the device) and records it."""

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT
from tests.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY


def test_the_loader_benchmark_times_the_feed_to_the_gpu(tmp_path):
    script = REPO_ROOT / "benchmarks" / "loader_throughput.py"
    command = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "loader_throughput.json").read_text())["results"]
    assert results["feed_to_gpu"]["clips_per_s"] > 0
    assert "cuda" in json.dumps(results["device_augment"]["device"]).lower()
