"""Attention memory: peak memory of the attention backends, side by side.

The backends of fourds.models.attention: `sdpa` and `math` everywhere, and `xformers` on a GPU
where it has a kernel (`pip install -e '.[gpu]'`). Two cases, each measured for every backend:

- encoder: forward + backward of the 4DS-B encoder (VideoViT, width 768, depth 12, 12 heads,
  MLP 3072, tubelet 2x16x16) on one 16x224x224 clip with all 1568 tokens (no masking); the loss
  is the mean of the squared output features. Includes the parameter gradients (the same for
  every backend).
- attention_call: the attention function alone on q, k, v [1, 12, 1568, 64], forward only
  (no_grad) and forward + backward (gradients of q, k, v from the sum of the output).

Every measurement runs in a freshly spawned Python process. On the CPU the figure is the peak
resident-set growth (ru_maxrss after the work minus the RSS from /proc/self/statm just before,
with the kernel's peak mark reset first); on a GPU it is torch.cuda.max_memory_allocated growth.
Inputs and weights exist before the measurement starts, so they are not counted.

Run: python benchmarks/attention_memory.py [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import harness
import setups
import torch

from fourds.models.attention import attention
from fourds.models.factory import build_encoder

NAME = "attention_memory"


def backends(device: torch.device) -> tuple[str, ...]:
    """The attention backends measured on `device`: xformers only on CUDA, where it imports
    and has a kernel for this torch (a wheel built for another torch imports without any)."""
    if device.type != "cuda":
        return ("sdpa", "math")
    try:
        q = torch.zeros(1, 1, 8, 16, device=device)  # [B, heads, N, head_dim]
        attention(q, q, q, "xformers")
    except (ImportError, NotImplementedError) as error:
        print(f"xformers not measured: {str(error).splitlines()[0]}", flush=True)
        return ("sdpa", "math")
    return ("sdpa", "math", "xformers")


def encoder_forward_backward(shape: setups.Shape, backend: str) -> dict:
    """Peak memory and wall time of forward + backward of `shape`'s encoder on one clip."""
    device = harness.default_device()
    torch.manual_seed(0)
    encoder = build_encoder(shape.model, shape.frames, shape.size, backend).to(device)
    video = setups.random_video(shape, 1, device)  # [1, T, H, W, 3]

    def work() -> None:
        features = encoder(video)  # [1, N, width]
        features.square().mean().backward()

    return _measure(work, device)


def attention_call(
    heads: int, tokens: int, head_dim: int, backend: str, with_backward: bool
) -> dict:
    """Peak memory and wall time of one attention call on q, k, v [1, heads, tokens, head_dim]."""
    device = harness.default_device()
    generator = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, heads, tokens, head_dim, generator=generator)
        .to(device)
        .requires_grad_(with_backward)
        for _ in range(3)
    )

    def work() -> None:
        if with_backward:
            attention(q, k, v, backend).sum().backward()
        else:
            with torch.no_grad():
                attention(q, k, v, backend)

    return _measure(work, device)


def _measure(work: Callable[[], None], device: torch.device) -> dict:
    """`harness.measure_peak_memory` of `work`, plus its wall time in seconds."""
    start = time.perf_counter()
    _, memory = harness.measure_peak_memory(work, device)
    return {**memory, "wall_s": round(time.perf_counter() - start, 3)}


def side_by_side(runs: dict[str, list[dict]]) -> dict:
    """Per backend: median peak growth over fresh processes, every run; plus each other
    backend against sdpa (difference in MiB and ratio)."""
    table = {
        backend: {
            "peak_growth_mib": round(
                statistics.median(run["peak_growth_mib"] for run in backend_runs), 1
            ),
            "runs": backend_runs,
        }
        for backend, backend_runs in runs.items()
    }
    sdpa = table["sdpa"]["peak_growth_mib"]
    for backend in [name for name in runs if name != "sdpa"]:
        other = table[backend]["peak_growth_mib"]
        table[f"{backend}_minus_sdpa_mib"] = round(other - sdpa, 1)
        table[f"{backend}_over_sdpa"] = round(other / sdpa, 2) if sdpa > 0 else None
    return table


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    measured = backends(device)
    shape, _ = setups.four_ds_b(args.quick)
    repeats = 1 if args.quick else 2
    heads, head_dim = shape.model.heads, shape.model.width // shape.model.heads
    cases = {
        "encoder_forward_backward": lambda backend: (encoder_forward_backward, shape, backend),
        "attention_call_forward": lambda backend: (
            attention_call,
            heads,
            shape.tokens,
            head_dim,
            backend,
            False,
        ),
        "attention_call_forward_backward": lambda backend: (
            attention_call,
            heads,
            shape.tokens,
            head_dim,
            backend,
            True,
        ),
    }
    results = {}
    for case, job in cases.items():
        runs = {backend: [] for backend in measured}
        for _ in range(repeats):
            for backend in measured:  # sdpa, math, sdpa, math, ...
                function, *job_args = job(backend)
                runs[backend].append(harness.run_in_fresh_process(function, *job_args))
        results[case] = side_by_side(runs)
        peaks = ", ".join(f"{b} {results[case][b]['peak_growth_mib']} MiB" for b in measured)
        print(f"{case}: {peaks}", flush=True)
    results["metric"] = results["encoder_forward_backward"]["sdpa"]["runs"][0]["metric"]
    config = {
        "quick": args.quick,
        "shape": shape.describe(),
        "encoder_batch": 1,
        "attention_call_qkv_shape": [1, heads, shape.tokens, head_dim],
        "backends": list(measured),
        "fresh_processes_per_backend": repeats,
        "precision": "fp32",
        "encoder_loss": "mean of squared output features",
        "attention_call_loss": "sum of the output (forward_backward case)",
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
