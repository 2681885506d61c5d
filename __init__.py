"""Halo-Lipsy: Wav2Lip lip sync as a native ComfyUI node.

Only the node mappings are exported here; torch, OpenCV and face-alignment are imported when
the node first runs, so ComfyUI starts fast even when a dependency is missing.
"""

if __package__:  # ComfyUI (and tests/conftest.py) load this folder as a package
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # Imported as a lone module: pytest does that to a root __init__.py when the folder's name is
    # not an identifier (a clone named Halo-Lipsy). There is no package to load nodes from.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
