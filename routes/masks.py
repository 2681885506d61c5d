"""What the user paints, as the VIDEO routes take it: one mask frame for the whole clip, drawn on
the upright frame (a mask painted on a phone video's stored frame is turned upright)."""

from __future__ import annotations

import logging

from ..common.errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")


def upright_mask(mask, info, picture=None):
    """A MASK painted on a frame as the file stores it (ComfyUI 0.3.64's Get Video Components
    hands a phone video's frames over unturned: landscape), turned upright as the frames are.
    Told apart by its size, so a quarter turn only; a mask of the upright size is left as it is.
    With `picture` (an IMAGE the size of `mask`), the picture is turned instead, likewise."""
    import torch

    if mask is None or info.quarter_turns % 2 == 0 or info.edits.crop is not None:
        return mask if picture is None else picture
    m = torch.as_tensor(mask)
    if m.ndim == 4 and m.shape[-1] == 1:  # a MASK that went through an IMAGE-shaped node
        m = m[..., 0]
    stored = (info.coded_size[1], info.coded_size[0])  # (height, width) before the turn
    if m.ndim < 2 or tuple(m.shape[-2:]) != stored:
        return mask if picture is None else picture
    if picture is not None:
        return torch.rot90(torch.as_tensor(picture), k=info.quarter_turns, dims=(1, 2))
    logger.info("Halo-Lipsy: the mask was painted on the stored (unturned) frame of this %dx%d "
                "video; turned upright to match.", info.width, info.height)
    return torch.rot90(m, k=info.quarter_turns, dims=(-2, -1))


def one_mask_frame(face_mask, width, height):
    """The video routes take one mask frame, drawn on the upright frame the user sees."""
    shape = tuple(getattr(face_mask, "shape", ()))
    if len(shape) == 3 and shape[0] > 1:
        raise HaloLipsyError(
            f"face_mask has {shape[0]} frames; the video node takes a single frame "
            "(a fixed face region for the whole clip). Use one mask frame.")
    if len(shape) >= 2 and tuple(shape[-2:]) != (height, width) and not (len(shape) == 4 and shape[-1] == 1):
        raise HaloLipsyError(f"face_mask is {shape[-1]}x{shape[-2]} but the video is "
                             f"{width}x{height} (upright, as shown); draw the mask on a frame of "
                             "this video.")


def single_mask_box(face_mask, width, height, box_settings):
    from .. import face_detect as fd

    one_mask_frame(face_mask, width, height)
    box = fd.mask_boxes(face_mask, 1, height, width, box_settings)[0]
    if box[0] < 0:
        raise HaloLipsyError("face_mask is empty: paint the face region white.")
    return box
