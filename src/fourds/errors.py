"""Every error fourds reports in one line (the message says what is wrong and what to do)
instead of a traceback: bad params, bad or damaged inputs, refused outputs. Each module raises
its own from here; `fourds` (fourds.cli) catches exactly these and the OS errors it names. The
module imports nothing, so every command can know them without loading torch or PyAV.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid param: the message names the key path and the rule it breaks."""


class OutputError(Exception):
    """An output path fourds refuses to write: it would replace, delete or ingest files that
    fourds did not write, or it cannot be written."""


class DiskFullError(OutputError):
    """A write that found no space left on its disk (or no quota left)."""


class WorkerError(RuntimeError):
    """A decoding worker process died (killed, out of memory): the message names the source."""


class PinError(ValueError):
    """A pinned folder whose content is not the pinned one: one line, naming both digests."""


class ReaderError(ValueError):
    """A benchmark file that cannot be read as its format: the message names the file and why."""


class UnsafePickleError(ReaderError):
    """A pickle that names something other than numpy's array rebuilders, or that exceeds its
    PickleLimits."""


class ShardError(ValueError):
    """Shards that cannot be written or used as asked: clips of one split that cannot share a
    shard (some with ground truth, some without), pretrain segments shorter than a window, or
    shard files that are damaged, truncated, or not the ones their index describes."""


class VideoError(RuntimeError):
    """A video file that cannot be read: the message names the file and the cause."""


class SidecarError(VideoError):
    """A ground-truth sidecar that cannot be used: the message names the file and why."""


class ConvertError(ValueError):
    """An official checkpoint that is missing, not an npz, or not laid out as expected."""


class WeightsError(RuntimeError):
    """A weights file that is missing, malformed or unsafe."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from here."""


class JobError(RuntimeError):
    """A job run in a forked process failed or died: the message names the job and the
    child's own error."""


class ParamsChangedError(RuntimeError):
    """The params file was rewritten while a stage ran: the message names it; the stage
    recorded nothing (fourds.config.guard)."""


class ResultsError(ValueError):
    """A results file (metrics.json, clips.csv) that cannot be read: the message names it."""


EXPECTED_ERRORS = (
    ConfigError,
    OutputError,
    WorkerError,
    PinError,
    ReaderError,
    ShardError,
    VideoError,
    ConvertError,
    WeightsError,
    CheckpointError,
    ResultsError,
    JobError,
    ParamsChangedError,
)
