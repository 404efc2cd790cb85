"""The main job: README's "Quick start" block (`dvc repro --pull`, the default study) run as
written in a fresh `git clone` of this repository, each command and stage timed (clone_run.py),
then `fourds compare HEAD` on what it regenerated: silent when every number is the pin's within
reports/tolerances.yaml.

`--kernels avx2` runs it under ATEN_CPU_CAPABILITY=avx2 (torch's kernels for a CPU without
AVX-512). The result file is named by the kernels that ran: main_job_avx2.json (forced, or a CPU
without AVX-512) or main_job_avx512.json.

Run alone: python benchmarks/main_job.py [--kernels avx2] [--keep DIR] (about 20 to 45 minutes on
2 cores; --keep copies the clone, its outputs and DVC cache, to the new folder DIR)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from clone_run import run_in_clone
from harness import REPO, parse_args, write_result

sys.path.insert(0, str(REPO))
from tests.conftest import doc_commands  # noqa: E402

SECTION = "Quick start"
TARGET_SECONDS = 30 * 60  # the default study within 30 minutes on a 2-core CPU
COMPARE = "fourds compare HEAD"


def has_avx512(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AVX-512 (its flags name avx512f)."""
    return "avx512f" in cpuinfo.read_text().split()


def kernels_run(forced: str) -> str:
    """The CPU kernels torch runs: "avx2" where forced or where the CPU has no AVX-512."""
    return "avx2" if forced == "avx2" or not has_avx512() else "avx512"


def main() -> None:
    def add_arguments(parser) -> None:
        parser.add_argument("--kernels", choices=("default", "avx2"), default="default")
        parser.add_argument(
            "--keep", type=Path, default=None, help="copy the clone here at the end (new folder)"
        )

    args = parse_args(__doc__.splitlines()[0], add_arguments)
    started = time.perf_counter()
    commands = doc_commands(SECTION, page="README.md")
    env = {"ATEN_CPU_CAPABILITY": "avx2"} if args.kernels == "avx2" else {}
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"main_job.py: --keep {args.keep} exists: name a new folder")
    run, checked = run_in_clone(commands, env, after=(COMPARE,), keep=args.keep)
    status, compared = checked[COMPARE]
    results = run.results()
    results |= {
        "within_target": run.seconds <= TARGET_SECONDS,
        "target_seconds": TARGET_SECONDS,
        "compare_silent": status == 0 and not compared.strip(),
        "compare_output": compared,
    }
    print(
        f"the default study in {run.seconds:.1f} s (target {TARGET_SECONDS} s), "
        f"`{COMPARE}` {'silent' if results['compare_silent'] else 'reports:'}\n{compared}"
    )
    kernels = kernels_run(args.kernels)
    config = {"section": SECTION, "commands": commands, "kernels": kernels, **env}
    name = f"main_job_{kernels}"
    write_result(name, args.out, torch.device("cpu"), config, results, started, git=run.git)


if __name__ == "__main__":
    main()
