"""Crop -> 96x96 BGR model input, and the generated face -> back into the frame.

Frames are float32 RGB in [0, 1] (ComfyUI's layout) or uint8 RGB (a decoded video's); the
model was trained on BGR, so the channels are swapped on the way in and out. Nothing outside the
face box is ever written, and with blending on, nothing outside the feathered lower-face mask
either. A uint8 frame is worked on in float only where the paste changes it (the box's lower
half when blending), and reads and writes exactly as the same frame scaled to [0, 1] would.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

FACE_SIZE = 96
UNIT = np.float32(1 / 255)  # uint8 levels to [0, 1]
MIN_FACE_SIDE = 8  # smaller boxes carry no usable mouth; their frames pass through unchanged


def clip_box(box, height: int, width: int):
    """(x1, y1, x2, y2) ints inside the frame, or None when less than MIN_FACE_SIDE remains."""
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(width, x2), min(height, y2)
    if x2 - x1 < MIN_FACE_SIDE or y2 - y1 < MIN_FACE_SIDE:
        return None
    return x1, y1, x2, y2


def face_input(frame: np.ndarray, box) -> np.ndarray:
    """(6, 96, 96) float32: the lower-half-masked BGR crop, then the full BGR crop.

    Non-finite pixels (NaN, inf) reach the model as black: one NaN would otherwise spread
    through every convolution into the whole generated face."""
    x1, y1, x2, y2 = box
    if frame.dtype == np.uint8:  # scaled to [0, 1] in the one pass that copies it
        crop_bgr = np.multiply(frame[y1:y2, x1:x2, 2::-1], UNIT, dtype=np.float32)
    else:
        crop_bgr = np.ascontiguousarray(frame[y1:y2, x1:x2, 2::-1], dtype=np.float32)
        if not np.isfinite(crop_bgr).all():
            np.nan_to_num(crop_bgr, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    face = cv2.resize(crop_bgr, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
    chw = face.transpose(2, 0, 1)
    out = np.empty((6, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    out[3:] = chw
    out[:3] = chw
    out[:3, FACE_SIZE // 2:] = 0.0
    return out


@lru_cache(maxsize=64)
def lower_face_mask(height: int, width: int, radius: int) -> np.ndarray:
    """(h, w, 1) weights: 1 over the mouth and jaw, 0 over the upper half (eyes and brows keep
    the frame's own resolution), feathered over `radius` px at the sides, bottom and mid-line."""
    radius = max(0, min(int(radius), height // 4, width // 4))
    ys = np.arange(height, dtype=np.float64) + 0.5
    xs = np.arange(width, dtype=np.float64) + 0.5
    top = height / 2.0
    if radius == 0:
        wy = (ys >= top).astype(np.float64)
        wx = np.ones(width)
    else:
        wy = np.clip((ys - top) / radius, 0, 1) * np.clip((height - ys) / radius, 0, 1)
        wx = np.clip(np.minimum(xs, width - xs) / radius, 0, 1)
        wy, wx = _smoothstep(wy), _smoothstep(wx)
    mask = (wy[:, None] * wx[None, :]).astype(np.float32)
    mask.setflags(write=False)
    return mask[:, :, None]


def _smoothstep(t):
    return t * t * (3.0 - 2.0 * t)


def blend_weight(height: int, width: int, blend_edges: bool, blend_radius: int,
                 strength: float = 1.0):
    """How strongly each pixel of a `height` x `width` face box takes the mouth: (weight, rows),
    `weight` (h, w, 1) float32 (blend_edges: the feathered lower-face mask) or one float32 (the
    whole box evenly), times `strength` (0..1); `rows` the box rows it can be above 0 in."""
    strength = float(min(1.0, max(0.0, strength)))
    if blend_edges:
        weight = lower_face_mask(height, width, blend_radius)
        if strength < 1.0:
            weight = weight * np.float32(strength)
        return weight, slice(height // 2, height)  # exactly 0 above the mid-line
    return np.float32(strength), slice(0, height)


def paste(frame: np.ndarray, box, generated_bgr: np.ndarray, blend_edges: bool,
          blend_radius: int, weights_out: np.ndarray | None = None, strength: float = 1.0):
    """Write the generated (3, 96, 96) BGR face into `frame` (H, W, C RGB[A], float32 or
    uint8) in place.

    blend_edges=False is Wav2Lip's rectangular paste of the whole box; True replaces only the
    lower face through a feathered mask. `strength` (0..1) scales the blend (a fade between the
    generated mouth and the real one). Alpha (a 4th channel) is never touched. `weights_out`
    (H, W float32), when given, receives the blend weight each pixel got (1: generated,
    0: the frame's own) inside the box.
    """
    x1, y1, x2, y2 = box
    h, w = y2 - y1, x2 - x1
    weight, rows = blend_weight(h, w, blend_edges, blend_radius, strength)
    if weights_out is not None:
        weights_out[y1:y2, x1:x2] = weight[:, :, 0] if blend_edges else weight
    if float(strength) <= 0.0:  # the frame's own pixels throughout
        return
    face_rgb = np.ascontiguousarray(generated_bgr[::-1].transpose(1, 2, 0))
    face_rgb = cv2.resize(face_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    np.clip(face_rgb, 0.0, 1.0, out=face_rgb)
    blend_into(frame[y1:y2, x1:x2, :3], face_rgb, weight, rows, exact=not blend_edges and weight == 1.0)


def blend_into(region: np.ndarray, new_rgb: np.ndarray, weight, rows, exact: bool = False):
    """`region` (h, w, 3 RGB, float32 [0, 1] or uint8, written in place) moved towards
    `new_rgb` (h, w, 3 float32 [0, 1]; consumed) by `weight` ((h, w, 1) or one number) in
    `rows`; `exact`: replaced outright. A uint8 region is worked on in float and rounded back to
    the nearest level."""
    region = region[rows]
    pixels = np.multiply(region, UNIT, dtype=np.float32) if region.dtype == np.uint8 else region
    change = new_rgb[rows]  # ours: becomes (new - pixels) * weight, in place
    if exact:
        pixels[...] = change
    else:
        with np.errstate(invalid="ignore"):  # a non-finite frame pixel stays non-finite, quietly
            change -= pixels
            change *= weight[rows] if np.ndim(weight) else weight
            pixels += change
    if pixels is not region:  # back to uint8, rounded to the nearest level
        pixels *= 255.0
        pixels += 0.5
        region[...] = np.clip(pixels, 0.0, 255.0, out=pixels)
