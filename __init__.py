"""Halo-Lipsy: Wav2Lip lip sync as a native ComfyUI node.

Only the node mappings are exported here; torch, OpenCV and face-alignment are imported when
the node first runs, so ComfyUI starts fast even when a dependency is missing.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
