"""The batched world on CUDA: a clip key gives the CPU's scene, and the frames of the CPU's
renderer, within the stated tolerance (fourds.world.batch_render)."""

import torch

from fourds.world.batch import sample_scenes
from fourds.world.batch_render import render_batch
from fourds.world.draws import clip_keys
from tests.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY


def test_a_key_gives_the_same_scene_and_frames_on_cpu_and_gpu():
    """The draws are bit for bit the same; a placement test on a last-bit sine may place a body
    on one device and not the other, so a few scenes may differ whole (at most 1 in 16 here)."""
    keys = clip_keys(0, 5, torch.arange(16))
    on_cpu, on_gpu = sample_scenes(keys), sample_scenes(keys.cuda())
    assert torch.equal(on_cpu.lattice, on_gpu.lattice.cpu())  # integer draws: bit for bit
    same = (on_cpu.shape == on_gpu.shape.cpu()).all(1)
    assert same.sum() >= 15
    torch.testing.assert_close(on_gpu.start.cpu()[same], on_cpu.start[same], rtol=1e-5, atol=1e-5)
    times = (torch.arange(8) / 6.0).expand(16, -1)
    cpu_clips = render_batch(on_cpu, times, 32)
    gpu_clips = render_batch(on_gpu, times.cuda(), 32)
    levels = (gpu_clips.video.cpu().int() - cpu_clips.video.int()).abs()[same]
    assert (levels > 1).float().mean() < 1e-3
    moved = gpu_clips.instances.cpu()[same] != cpu_clips.instances[same]
    assert moved.float().mean() < 1e-3


def test_the_compiled_pass_draws_the_eager_frames():
    """Within the tolerance of the batched world against the numpy renderer."""
    scenes = sample_scenes(clip_keys(0, 6, torch.arange(8)).cuda())
    times = (torch.arange(8, device="cuda") / 6.0).expand(8, -1)
    eager = render_batch(scenes, times, 64, truth=False)
    compiled = render_batch(scenes, times, 64, truth=False, compiled=True)
    levels = (compiled.video.int() - eager.video.int()).abs()
    # fused kernels round differently: a ray grazing an edge or a shadow's rim may flip
    assert (levels > 1).float().mean() < 1e-3
