"""What rank 0 shows while pretraining runs: a progress bar with ETA and DVCLive metrics.

Logged at every logging point (DVCLive step = training step), under `<out_dir>/live/`:
    train/loss, train/lr
    heldout/loss (at the held-out curve's steps, fourds.train.heldout)
    perf/clips_per_second, perf/tokens_per_second (input tubelet tokens), perf/mfu (only when
    the accelerator's peak is known, see fourds.accelerators)
The folder is no DVC output (.dvcignore hides it): the perf/ curves change from run to run, and
after a resumption the train/ ones start at the resumed step. The stage's DVC plot is loss.csv,
the whole curve. A run killed while DVCLive rewrote its summary (live/metrics.json) leaves that
file cut short; the resumed run says so in one line and DVCLive starts the summary again (the
tsv curves under live/plots are kept). DVCLive is imported by rank 0's monitor only, so that
the training code imports without it; where it is not installed (a bare GPU machine that runs
the benchmarks and the GPU tests) the monitor says so in one line and shows the progress bar
alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
from pathlib import Path

from tqdm import tqdm

from fourds.accelerators import model_flops_utilisation


def live_metrics_available() -> bool:
    """Whether DVCLive is installed; if not, one line says the run logs no live metrics."""
    if importlib.util.find_spec("dvclive") is not None:
        return True
    print("DVCLive is not installed: no live metrics under live/ (loss.csv is still written)")
    return False


def drop_a_cut_short_summary(summary: Path) -> None:
    """Remove DVCLive's summary of an earlier try of this run if a kill left it unreadable.

    DVCLive rewrites the summary in place at every logging point and reads it back to resume; a
    kill during that rewrite leaves a partial file it cannot parse. The summary only repeats the
    latest logged values, which the resumed run logs again, so nothing is lost with it.
    """
    try:
        json.loads(summary.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (json.JSONDecodeError, UnicodeDecodeError):
        print(f"{summary} was cut short by the interruption: DVCLive starts its summary again")
        summary.unlink()


@dataclasses.dataclass(frozen=True)
class RunShape:
    """What a monitored run trains, for its progress bar and throughput.

    desc: progress bar label.
    steps: total steps.
    clips_per_step: the global batch size.
    tokens_per_clip: input tokens (tubelets) per clip.
    flops_per_clip: training FLOPs per clip (for MFU).
    peak_flops: the peak FLOP/s of the job's devices together (one device's times the
        processes: the logged MFU is per device), or None when unknown (no MFU).
    """

    desc: str
    steps: int
    clips_per_step: int
    tokens_per_clip: int
    flops_per_clip: float
    peak_flops: float | None


class Monitor:
    """Progress and metrics of one pretraining run; a silent no-op on ranks other than 0.

    Args:
        out_dir: the run's output directory (DVCLive writes into out_dir/live).
        run: what the run trains.
        start: the step the run (re)starts from.
        enabled: True on rank 0.
    """

    def __init__(self, out_dir: Path, run: RunShape, start: int, enabled: bool):
        self.enabled, self.run = enabled, run
        self.bar = tqdm(
            total=run.steps, initial=start, desc=run.desc, unit="step", disable=not enabled
        )
        self.live = None
        if enabled and live_metrics_available():
            from dvclive import Live

            if start > 0:
                drop_a_cut_short_summary(out_dir / "live" / "metrics.json")
            self.live = Live(
                dir=str(out_dir / "live"),
                resume=start > 0,
                report=None,
                save_dvc_exp=False,
                dvcyaml=None,
            )
        self._mark = (start, time.perf_counter())

    def step_done(self) -> None:
        self.bar.update(1)

    def log(self, step: int, loss: float, lr: float) -> dict[str, float]:
        """Record the logging window that ends after `step` steps; returns its throughput."""
        previous_step, previous_time = self._mark
        now = time.perf_counter()
        self._mark = (step, now)
        run = self.run
        clips_per_second = (step - previous_step) * run.clips_per_step / (now - previous_time)
        perf = {
            "clips_per_second": clips_per_second,
            "tokens_per_second": clips_per_second * run.tokens_per_clip,
        }
        mfu = model_flops_utilisation(run.flops_per_clip, clips_per_second, run.peak_flops)
        if mfu is not None:
            perf["mfu"] = mfu
        if self.live is not None:
            self.live.step = step
            self.live.log_metric("train/loss", loss)
            self.live.log_metric("train/lr", lr)
            for name, value in perf.items():
                self.live.log_metric(f"perf/{name}", value)
            self.live.next_step()
        self.bar.set_postfix(loss=f"{loss:.4f}", clips_s=f"{clips_per_second:.1f}")
        return perf

    def log_heldout(self, step: int, loss: float) -> None:
        """Record the held-out loss after `step` steps."""
        if self.live is not None:
            self.live.step = step
            self.live.log_metric("heldout/loss", loss)
        if self.enabled:
            self.bar.write(f"{self.run.desc}: held-out loss {loss:.6f} after {step} steps")

    def close(self) -> None:
        self.bar.close()
        if self.live is not None:
            self.live.end()
