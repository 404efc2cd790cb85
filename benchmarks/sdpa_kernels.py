"""SDPA's attention kernels at the 4ds ladder's attention shapes: which is fastest per step.

For 4ds_b and 4ds_l at 128 clips a GPU, the self-attention calls of one MAE training step are
read from the model (visible tokens through the first blocks, visible tokens plus query tokens
through the last `mae.query_blocks`; `attention_calls`), and each SDPA kernel (`sdpa` as torch
picks it, and cuDNN's, FlashAttention-2 and the memory-efficient one pinned:
fourds.models.attention.SDPA_KERNELS; and the "math" backend compiled by Inductor, as a
compiled block would run it) is timed forward + backward on random bf16 q, k, v of
each shape: the median of `--rounds` timed calls after warm-up, with CUDA events. A kernel
that does not run here (`probe`) is recorded with why. Result: `sdpa_kernels.json`,

    {"device", "torch", "commit", "dirty", "scales": {scale: {"calls": [[count, [B, heads, N,
     head_dim]], ...], "ms_per_step": {kernel: ms or why not}}}}

`--quick` runs the tiny encoder's shapes on whatever device there is (the CPU here, where only
`sdpa` and `sdpa_flash` run): a smoke test, written to results/quick/gpu.

Run: python benchmarks/sdpa_kernels.py [--quick] [--out DIR]
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os

import harness
import setups
import torch
from gpu_step import quick_params, time_steps

from fourds.config import Params
from fourds.models.attention import SDPA_KERNELS, Attention, attention, probe
from fourds.models.factory import scale_mae

CLIPS = 128  # per GPU: the batch gpu_step.py measures the ladder's step at


def attention_calls(params: Params, scale: str, clips: int) -> dict[tuple[int, ...], int]:
    """{[B, heads, N, head_dim]: calls} of the self-attention calls of one forward pass of
    `scale`'s MAE over `clips` clips, read from the model run on the meta device."""
    spec = dataclasses.replace(params.pretraining(scale), attention="sdpa")  # runs on meta
    with torch.device("meta"):
        model = scale_mae(spec)
    calls: collections.Counter = collections.Counter()

    def record(module: Attention, args: tuple, kwargs: dict) -> None:
        if len(args) == 1 and not kwargs:  # self-attention: no context, no keys_values
            batch, tokens, dim = args[0].shape
            calls[(batch, module.heads, tokens, dim // module.heads)] += 1

    attentions = [module for module in model.modules() if isinstance(module, Attention)]
    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in attentions]
    frames, size = params.curate.clip_frames, params.curate.resolution
    video = torch.empty(clips, frames, size, size, 3, dtype=torch.uint8, device="meta")
    keep_index, mask = model.sample_masks(clips)
    try:
        with torch.no_grad():
            model(video, keep_index.to("meta"), mask.to("meta"))
    finally:
        for handle in handles:
            handle.remove()
    return dict(calls)


def compiled_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The "math" backend as Inductor compiles it inside a compiled block (softmax fused)."""
    return attention(q, k, v, "math")


def kernel_ms(
    kernel: str, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, rounds: int
) -> float:
    """Median ms of one forward + backward of `kernel` (an attention backend, or
    "math_compiled") on random q, k, v of `shape`."""
    generator = torch.Generator(device).manual_seed(0)
    q, k, v = (
        torch.randn(shape, generator=generator, device=device).to(dtype).requires_grad_()
        for _ in range(3)
    )
    grad = torch.randn(shape, generator=generator, device=device).to(dtype)

    if kernel == "math_compiled":
        run = torch.compile(compiled_math, dynamic=False)
    else:
        run = functools.partial(attention, backend=kernel)

    def once() -> None:
        run(q, k, v).backward(grad)

    return time_steps(once, device, warmup=3, steps=5, rounds=rounds)


def main() -> None:
    args = harness.parse_args(__doc__.splitlines()[0])
    out_dir = args.out / "gpu" if args.out.name in ("results", "quick") else args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    device = harness.default_device()
    params = setups.compose_ladder("ladder=4ds")
    if args.quick:
        params = quick_params(params)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    clips = 4 if args.quick else CLIPS
    kernels = ["sdpa", *SDPA_KERNELS]
    failures = {kernel: probe(kernel, device, dtype) for kernel in kernels}
    rounds = 3 if args.quick else 5
    if not args.quick:  # an Inductor compile per shape
        kernels.append("math_compiled")
        failures["math_compiled"] = None
    git = harness.git_state()
    record = {
        "device": harness.describe_device(device).get("gpu", harness.cpu_model()),
        "torch": torch.__version__,
        "commit": git["commit"],
        "dirty": git["dirty"],
        "command": harness.command_line(),
        "quick": args.quick,
        "clips": clips,
        "scales": {},
    }
    for scale in ("4ds_b", "4ds_l"):
        calls = attention_calls(params, scale, clips)
        per_step = {}
        for kernel in kernels:
            if failures[kernel] is not None:
                per_step[kernel] = failures[kernel]
                continue
            total = sum(
                count * kernel_ms(kernel, shape, device, dtype, rounds)
                for shape, count in calls.items()
            )
            per_step[kernel] = round(total, 3)
        record["scales"][scale] = {
            "calls": [[count, list(shape)] for shape, count in calls.items()],
            "ms_per_step": per_step,
        }
        print(scale, json.dumps(record["scales"][scale]), flush=True)
    partial = out_dir / f".sdpa_kernels.json.partial-{os.getpid()}"
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, out_dir / "sdpa_kernels.json")
    fastest = {
        scale: min(
            (ms, kernel) for kernel, ms in entry["ms_per_step"].items() if isinstance(ms, float)
        )
        for scale, entry in record["scales"].items()
    }
    print(f"fastest: {fastest}; wrote {out_dir / 'sdpa_kernels.json'}")


if __name__ == "__main__":
    main()
