"""What the user paints: face boxes from a MASK instead of a detector (the face_mask input), and
strokes on the person to follow (the face_marker input).

One rule for both: a pixel above PAINTED (0.5) is painted. The box of a mask frame is the
bounding box of its painted pixels as (min_x, min_y, max_x + 1, max_y + 1), so the mask covers
exactly the box's pixels; an unpainted frame means no face.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..common.errors import HaloLipsyError
from .boxes import empty_boxes


logger = logging.getLogger("HaloLipsy")


class MaskInputError(HaloLipsyError):
    pass


def _mask_frames(mask, name: str, height: int, width: int, fix: str) -> torch.Tensor:
    """A MASK input as [frames, height, width], or MaskInputError naming it and saying `fix`."""
    m = _as_frames(mask, name)
    _check_size(m, name, height, width, fix)
    return m


def _as_frames(mask, name: str) -> torch.Tensor:
    """A MASK input as [frames, H, W] (whatever its size), or MaskInputError naming it."""
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4 and m.shape[-1] == 1:  # a MASK that went through an IMAGE-shaped node
        m = m[..., 0]
    if m.ndim != 3:
        raise MaskInputError(
            f"{name} has shape {tuple(m.shape)}; expected a MASK [frames, height, width].")
    return m


def _check_size(m: torch.Tensor, name: str, height: int, width: int, fix: str):
    if tuple(m.shape[1:]) != (height, width):
        raise MaskInputError(f"{name} is {m.shape[2]}x{m.shape[1]} but {fix}")


PAINTED = 0.5  # a MASK pixel above this is painted (a JPEG mask's faint ringing is not)


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
        chunk = m[start:start + 64].detach().float().cpu() > PAINTED  # NaN compares False: not face
        rows, cols = chunk.any(dim=2).numpy(), chunk.any(dim=1).numpy()
        for k in range(chunk.shape[0]):
            ys, xs = np.flatnonzero(rows[k]), np.flatnonzero(cols[k])
            if ys.size:
                boxes[start + k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    if m.shape[0] == 1:
        boxes[:] = boxes[0]
    return boxes


@dataclass(frozen=True)
class Mark:
    """A stroke on the person to follow: its frame (None where the marker's frames are not the
    video's), its centre, and the picture it was painted on (where its frame is not known: the
    person under the stroke there is the one marked)."""

    frame: int | None
    point: tuple  # (x, y) in the pixels of its frame, or of its picture
    picture: object = None  # IMAGE [1, H, W, C] the stroke was painted on

    def covers(self, face) -> bool:
        """The stroke lies on `face` (x1, y1, x2, y2): its centre is inside the box."""
        x, y = self.point
        return face[0] <= x <= face[2] and face[1] <= y <= face[3]


def marks_from_mask(mask, height: int, width: int, n_frames: int | None = None,
                    pictures=None) -> list:
    """The strokes of a face_marker MASK, one Mark per painted frame. When the MASK has one
    frame per video frame (`n_frames`), each stroke's frame is known; otherwise (a few painted
    frames loaded as images) the pictures they were painted on (`pictures`, an IMAGE of one
    picture per marker frame, or one for all) say whom they mark; without them nobody can know,
    so nothing is marked (said in the log, with what to connect). All strokes mark the same
    person. Nothing painted is said before the size is checked: Load Image of a frame without
    strokes gives a blank 64x64 MASK."""
    m = _as_frames(mask, "face_marker")
    strokes = []  # (frame, centre), read a frame at a time
    for k, frame in enumerate(m):
        ys, xs = np.nonzero(frame.detach().float().cpu().numpy() > PAINTED)
        if ys.size:
            strokes.append((k, (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)))
    if not strokes:
        raise MaskInputError("nothing was painted on the face_marker: paint a stroke on the face "
                             "that speaks (Load Image of a frame, then Open in MaskEditor), or "
                             "choose another face setting.")
    if n_frames is not None and m.shape[0] == n_frames:
        _check_size(m, "face_marker", height, width,
                    f"the frames are {width}x{height}; paint the mark on a frame of this video "
                    "(as it is shown).")
        return [Mark(k, centre) for k, centre in strokes]
    if pictures is None:
        logger.warning(
            "Halo-Lipsy: the face_marker has %d painted frame(s) and which frame of the video each "
            "was painted on is not known, so the person under a stroke cannot be told from "
            "whoever stands there in another shot: nobody is marked, and nobody is lip-synced. "
            "Connect the picture the stroke was painted on (Load Image's IMAGE output) to "
            "face_marker_image (command line: --face-marker-image, or the marker saved as an RGBA "
            "PNG by the mask editor), or give a MASK with one frame per video frame.", m.shape[0])
        return []
    pictures = _as_pictures(pictures)
    if pictures.shape[0] not in (1, m.shape[0]):
        raise MaskInputError(f"face_marker_image has {pictures.shape[0]} pictures but the "
                             f"face_marker {m.shape[0]} frames; give one picture per marker "
                             "frame, or one for all.")
    _check_size(m, "face_marker", int(pictures.shape[1]), int(pictures.shape[2]),
                f"its picture (face_marker_image) is {pictures.shape[2]}x{pictures.shape[1]}; "
                "paint the mark on that picture.")
    return [Mark(None, centre, pictures[k if pictures.shape[0] > 1 else 0][None])
            for k, centre in strokes]


def _as_pictures(pictures) -> torch.Tensor:
    p = pictures if isinstance(pictures, torch.Tensor) else torch.as_tensor(np.asarray(pictures))
    if p.ndim == 3:
        p = p[None]
    if p.ndim != 4 or p.shape[-1] not in (3, 4):
        raise MaskInputError(f"face_marker_image has shape {tuple(p.shape)}; expected an IMAGE "
                             "[pictures, height, width, 3].")
    return p
