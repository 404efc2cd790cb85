"""`fourds export`: a resumable (DCP) checkpoint -> the single-file weights readouts load.

The MAE of the scale is rebuilt on the CPU from its pretraining spec (params.yaml's) and only
its model state is read from the checkpoint (DCP reshards whatever number of processes wrote
it), then written with `fourds.models.weights.save_weights`, the format of the pretrain stage's
checkpoint.pt.
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_model_state_dict

from fourds.config import PretrainSpec
from fourds.models.factory import scale_mae
from fourds.models.weights import check_weights_output, save_weights
from fourds.train.checkpoint import CheckpointError, verify_checkpoint


def export_checkpoint(spec: PretrainSpec, checkpoint_dir: str | Path, out: str | Path) -> Path:
    """Write the model weights of `checkpoint_dir` (a step-N directory of `spec`'s scale) to
    `out`.

    Raises:
        CheckpointError: `checkpoint_dir` is not a complete checkpoint of `scale`, or is
            damaged (fourds.train.checkpoint.verify_checkpoint).
        OutputError: `out` lies in `checkpoint_dir`, is a folder, or a file fourds did not write.
    """
    checkpoint_dir = Path(checkpoint_dir)
    check_weights_output(out, (checkpoint_dir,))
    if not (checkpoint_dir / "trainer.json").is_file():
        raise CheckpointError(
            f"{checkpoint_dir}: not a complete checkpoint (expected a step-N directory with "
            f"trainer.json, under <pretrain out>/resume/<fingerprint>/)"
        )
    verify_checkpoint(checkpoint_dir)
    model = scale_mae(spec)
    state = {"model": get_model_state_dict(model)}
    try:
        dcp.load(state, checkpoint_id=checkpoint_dir, no_dist=True)
    except Exception as error:  # DCP reports missing or mismatched tensors in many ways
        raise CheckpointError(
            f"{checkpoint_dir} does not hold the weights of scale {spec.scale!r} as params.yaml "
            f"describes it ({type(error).__name__}: {error})"
        ) from None
    save_weights(out, state["model"], spec)
    return Path(out)
