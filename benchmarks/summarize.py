"""Markdown tables of the latest benchmark results (benchmarks/results/*.json).

Prints the tables; with --write-readme it also replaces the part of benchmarks/README.md between
the `<!-- results:begin -->` and `<!-- results:end -->` markers, so that the README shows exactly
what the result files hold.

Run: python benchmarks/summarize.py [--results DIR] [--write-readme]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import harness

README = harness.BENCHMARKS / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "**no**"


def machine(record: dict) -> str:
    """One line: where and when a result was measured, and by which command."""
    device = record["device"]
    where = device.get("gpu") or (
        f"{device['cpu_model']}, {device['cpu_count']} cores, "
        f"{device['torch_num_threads']} torch threads"
    )
    return (
        f"_{where}; torch {record['torch']}; {record['date']}; "
        f"`{record['command']}` ({record['benchmark_wall_s']} s)._"
    )


def masking_section(record: dict) -> str:
    config, results = record["config"], record["results"]
    rows = []
    for decoder, result in results.items():
        times = result["step_time"]
        rows.append(
            [
                decoder,
                times["mask_0.0"]["median_s"],
                times["mask_0.9"]["median_s"],
                f"**{result['speedup']}x**",
                f"{result['speedup_paired_median']}x",
                f"{result['encoder_only_flop_ratio']}x",
                yes_no(result["target_met"]),
            ]
        )
    header = [
        "decoder",
        "step, mask 0.0 (s)",
        "step, mask 0.9 (s)",
        "speed-up",
        "paired median",
        "encoder-only FLOP ratio",
        f">= {results['mae_st']['target_speedup']}x",
    ]
    shape = config["shape"]
    return (
        f"### Masking speed-up ({shape['name']}, {shape['tokens']} tokens, batch "
        f"{config['batch']}, sdpa, fp32)\n\n{table(header, rows)}\n\n{machine(record)}"
    )


def baseline_section(record: dict) -> str:
    config, results = record["config"], record["results"]
    rows = [
        [
            f"`{name}`",
            config["variants"][name],
            results["step_time"][name]["median_s"],
            f"{results['speedup_vs_baseline'][name]}x",
            f"{results['parameters'][name]:,}",
        ]
        for name in results["step_time"]
    ]
    header = ["variant", "what", "step (s)", "speed-up vs baseline", "parameters"]
    shape = config["shape"]
    verdict = yes_no(results["target_met"])
    median = {name: times["median_s"] for name, times in results["step_time"].items()}
    kernel = median["baseline"] / median["ours_mae_st_sdpa"]
    scheme = median["ours_mae_st_sdpa"] / median["ours_4ds"]
    return (
        f"### One step vs the MAE-ST-style baseline ({shape['name']}, {shape['tokens']} tokens, "
        f"{config['visible_tokens']} visible, batch {config['batch']}, fp32)\n\n"
        f"{table(header, rows)}\n\n"
        f"Target ours (`ours_4ds`) >= {results['target_speedup']}x faster: {verdict}. "
        f"Where it comes from: the fused sdpa kernel instead of explicit attention "
        f"(`baseline` -> `ours_mae_st_sdpa`) {kernel:.2f}x, then the 4DS query decoding instead "
        f"of the MAE-ST decoder (`ours_mae_st_sdpa` -> `ours_4ds`) {scheme:.2f}x. "
        f"`ours_mae_st_math` checks that our code doing the baseline's arithmetic is about as "
        f"fast as the baseline.\n\n"
        f"{machine(record)}"
    )


def memory_section(record: dict) -> str:
    config, results = record["config"], record["results"]
    cases = [name for name in results if name != "metric"]
    rows = [
        [
            case,
            results[case]["sdpa"]["peak_growth_mib"],
            results[case]["math"]["peak_growth_mib"],
            results[case]["math_minus_sdpa_mib"],
            f"{results[case]['math_over_sdpa']}x",
        ]
        for case in cases
    ]
    header = ["case", "sdpa (MiB)", "math (MiB)", "math - sdpa (MiB)", "math / sdpa"]
    shape = config["shape"]
    return (
        f"### Attention memory ({shape['name']}, {shape['tokens']} tokens; q, k, v "
        f"{config['attention_call_qkv_shape']}; metric: {results['metric']}, median of "
        f"{config['fresh_processes_per_backend']} fresh processes)\n\n"
        f"{table(header, rows)}\n\n{machine(record)}"
    )


def throughput_section(record: dict) -> str:
    rows = []
    for scale, result in record["results"].items():
        memory = result["memory"]
        rows.append(
            [
                scale,
                f"{result['encoder_params'] / 1e6:.1f}M",
                "x".join(str(size) for size in result["clip"][:3]),
                f"{result['mae']['decoder']}, {result['mae']['mask_ratio']}",
                result["batch"],
                "on" if result["activation_checkpointing"] else "off",
                f"{result['visible_tokens_per_clip']}/{result['tokens_per_clip']}",
                result["step_time"]["median_s"],
                result["clips_per_s"],
                result["encoder_tokens_per_s"],
                result["achieved_gflops_per_s"],
                memory["first_step_growth_mib"],
                memory["timed_steps_peak_mib"],
            ]
        )
    header = [
        "scale",
        "encoder",
        "clip",
        "decoder, mask",
        "batch",
        "act. ckpt",
        "visible/tokens",
        "step (s)",
        "clips/s",
        "encoder tokens/s",
        "GFLOP/s",
        "first-step growth (MiB)",
        "peak (MiB)",
    ]
    metric = next(iter(record["results"].values()))["memory"]["metric"]
    return (
        f"### Pretraining step per scale (memory: {metric})\n\n"
        f"{table(header, rows)}\n\n{machine(record)}"
    )


SECTIONS = {
    "masking_speedup": masking_section,
    "step_vs_baseline": baseline_section,
    "attention_memory": memory_section,
    "pretrain_step": throughput_section,
}


def render(results_dir: Path) -> str:
    """All sections whose result file exists, in the order of SECTIONS."""
    parts = []
    for name, section in SECTIONS.items():
        path = results_dir / f"{name}.json"
        if path.is_file():
            parts.append(section(json.loads(path.read_text())))
        else:
            parts.append(f"### {name}\n\nNo result yet (`python benchmarks/{name}.py`).")
    return "\n\n".join(parts)


def write_readme(markdown: str) -> None:
    """Replace the README's results block (between the markers) with `markdown`."""
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{markdown}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=harness.RESULTS)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    markdown = render(args.results)
    print(markdown)
    if args.write_readme:
        write_readme(markdown)


if __name__ == "__main__":
    main()
