"""MAE reconstructions of clips in pixels, and their PSNR.

A reconstruction keeps the visible patches of the input and takes the masked ones from the
decoder's prediction (MAE's "reconstruction + visible"). With `norm_pix_loss` the decoder
predicts per-patch normalised pixels; they are mapped back with the mean and variance of the
true patch, as the MAE papers do to show their reconstructions.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from fourds.models.mae import MaskedAutoencoder, patchify, unpatchify
from fourds.models.vit import token_grid

MASKED_GREY = 128  # masked pixels in the "masked input" picture


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """Clips, the MAE's prediction of them and its mask; uint8 on the CPU.

    target: [B, T, H, W, 3] the input clips.
    prediction: [B, T, H, W, 3] the decoder's pixels of every patch, clipped to [0, 255].
    masked: [B, T, H, W] True on the pixels of masked tubelets.
    """

    target: torch.Tensor
    prediction: torch.Tensor
    masked: torch.Tensor

    @property
    def composite(self) -> torch.Tensor:
        """[B, T, H, W, 3]: visible pixels from the input, masked ones predicted."""
        return torch.where(self.masked[..., None], self.prediction, self.target)

    @property
    def masked_input(self) -> torch.Tensor:
        """[B, T, H, W, 3]: what the encoder sees, masked pixels grey."""
        return self.target.masked_fill(self.masked[..., None], MASKED_GREY)

    def mean_colour_baseline(self) -> Reconstruction:
        """The same masks with no learning: every masked pixel predicted as its clip's mean
        colour over the visible pixels (what a model that learned nothing could do)."""
        visible = (~self.masked)[..., None].double()  # [B, T, H, W, 1]
        total = (self.target.double() * visible).sum(dim=(1, 2, 3))
        mean = total / visible.sum(dim=(1, 2, 3)).clamp_min(1)  # [B, 3]
        colour = mean.round().to(torch.uint8)[:, None, None, None]
        return Reconstruction(self.target, colour.expand_as(self.target).clone(), self.masked)

    def __getitem__(self, clips: slice) -> Reconstruction:
        """The reconstructions of some of the clips."""
        return Reconstruction(self.target[clips], self.prediction[clips], self.masked[clips])

    @staticmethod
    def concatenate(parts: list[Reconstruction]) -> Reconstruction:
        """The reconstructions of several batches as one, in order."""
        return Reconstruction(
            torch.cat([part.target for part in parts]),
            torch.cat([part.prediction for part in parts]),
            torch.cat([part.masked for part in parts]),
        )


@torch.no_grad()
def reconstruct(
    mae: MaskedAutoencoder, video: torch.Tensor, keep_index: torch.Tensor, mask: torch.Tensor
) -> Reconstruction:
    """Run the MAE on clips with the given masks and return pixels.

    Args:
        video: [B, T, H, W, 3] uint8 clips, on the MAE's device.
        keep_index: [B, n_keep] visible tokens and mask: [B, N] bool (True = masked), as drawn
            by `MaskedAutoencoder.sample_masks`.
    """
    clips = video.float() / 255.0
    _, prediction = mae(clips, keep_index, mask)
    prediction = prediction.float()  # [B, P, 3 * prod(target_patch)]
    patch = mae.target_patch
    if mae.norm_pix_loss:
        target = patchify(clips, patch)
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        prediction = prediction * (var + 1e-6).sqrt() + mean
    pixels = unpatchify(prediction, patch, token_grid(patch, clips.shape[1], clips.shape[2]))
    tubelet = mae.encoder.cfg.tubelet
    per_pixel = mask.to(clips.device, torch.float32)[..., None].expand(-1, -1, math.prod(tubelet))
    masked = unpatchify(per_pixel, tubelet, mae.encoder.grid)[..., 0] > 0.5
    return Reconstruction(
        target=video.cpu(),
        prediction=(pixels * 255.0).round().clamp(0, 255).to(torch.uint8).cpu(),
        masked=masked.cpu(),
    )


def psnr(
    prediction: torch.Tensor, target: torch.Tensor, where: torch.Tensor | None = None
) -> float:
    """Peak signal-to-noise ratio of 8-bit images, in dB: 10 log10(255^2 / MSE).

    The mean squared error is pooled over every value compared (all images at once, not a mean
    of per-image PSNRs), so pixels that are rarely selected by `where` weigh as much as others.

    Args:
        prediction, target: [..., C] uint8.
        where: [...] bool, the pixels to compare (None: all).

    Raises:
        ValueError: `where` selects no pixel.
    """
    error = (prediction.double() - target.double()) ** 2
    if where is not None:
        if not where.any():
            raise ValueError("psnr: no pixel selected")
        error = error[where]
    mse = error.mean().item()
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
