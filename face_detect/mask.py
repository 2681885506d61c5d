"""Face boxes from a MASK instead of a detector (the node's face_mask input).

The box of a mask frame is the bounding box of its nonzero pixels as (min_x, min_y, max_x + 1,
max_y + 1), so the mask covers exactly the box's pixels; an empty frame means no face.
"""

from __future__ import annotations

import numpy as np
import torch

from .boxes import empty_boxes


class MaskInputError(ValueError):
    pass


def _mask_frames(mask, name: str, height: int, width: int, fix: str) -> torch.Tensor:
    """A MASK input as [frames, height, width], or MaskInputError naming it and saying `fix`."""
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4 and m.shape[-1] == 1:  # a MASK that went through an IMAGE-shaped node
        m = m[..., 0]
    if m.ndim != 3:
        raise MaskInputError(
            f"{name} has shape {tuple(m.shape)}; expected a MASK [frames, height, width].")
    if tuple(m.shape[1:]) != (height, width):
        raise MaskInputError(f"{name} is {m.shape[2]}x{m.shape[1]} but {fix}")
    return m


def boxes_from_mask(mask, n_frames: int, height: int, width: int) -> np.ndarray:
    """(n_frames, 4) float boxes; a single mask frame applies to every image."""
    m = _mask_frames(mask, "face_mask", height, width,
                     f"the images are {width}x{height}; make the mask from the same frames (or "
                     "resize it to the frame size).")
    if m.shape[0] not in (1, n_frames):
        raise MaskInputError(
            f"face_mask has {m.shape[0]} frames but there are {n_frames} images; give one mask "
            "frame per image, or a single frame to use for all of them.")
    boxes = empty_boxes(n_frames)
    for start in range(0, m.shape[0], 64):
        chunk = m[start:start + 64].detach().float().cpu() > 0  # NaN compares False: not face
        rows, cols = chunk.any(dim=2).numpy(), chunk.any(dim=1).numpy()
        for k in range(chunk.shape[0]):
            ys, xs = np.flatnonzero(rows[k]), np.flatnonzero(cols[k])
            if ys.size:
                boxes[start + k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    if m.shape[0] == 1:
        boxes[:] = boxes[0]
    return boxes


def mark_from_mask(mask, height: int, width: int) -> tuple:
    """(x, y): the centre of the strokes of a face_marker MASK (painted roughly on the face that
    speaks, in any one frame; the first frame with paint counts), in frame pixels."""
    m = _mask_frames(mask, "face_marker", height, width,
                     f"the frames are {width}x{height}; paint the mark on a frame of this video "
                     "(as it is shown).")
    for frame in m:
        painted = frame.detach().float().cpu().numpy() > 0.5
        if painted.any():
            ys, xs = np.nonzero(painted)
            return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
    raise MaskInputError("face_marker is empty: paint a stroke on the face that speaks (white on "
                         "black), or choose another face setting.")
