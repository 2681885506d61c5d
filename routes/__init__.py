"""The routes, each one orchestrator read top to bottom, over the named shared steps: the IMAGE
route (`image`), the streamed VIDEO route (`stream`), a VIDEO held as frames (`held_video`);
`steps` holds what they share and knows no route. Callers (the nodes, the command line) use the
names below."""

from .held_video import lipsync_components
from .image import ImageResult, lipsync_images
from .steps import Hooks, Report, generator_format, plain_hooks, timeline
from .stream import lipsync_video

__all__ = ["Hooks", "ImageResult", "Report", "generator_format", "lipsync_components", "lipsync_images", "lipsync_video",
           "plain_hooks", "timeline"]
