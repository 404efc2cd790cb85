"""The procedural 4D world: scene sampling and rendering with exact ground truth."""

from fourds.world.render import Rendering, render_clip
from fourds.world.scene import Scene, sample_scene

__all__ = ["Rendering", "Scene", "render_clip", "sample_scene"]
