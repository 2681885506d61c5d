"""Who a face is: an appearance signature of a face and its surroundings, to tell people apart.

Position and size cannot tell a turn of the head from another person, and a cut changes every
position, so the tracker also asks what a face looks like. The signature is read from the frame
the detector already looked at: the face box widened to take in hair and collar, shrunk to a few
hundred pixels. It holds the colours of the face and of that wider region (a chromaticity x
brightness histogram each: skin, hair and clothes) and the face's layout of light and dark.
No network, no weights: about 7 ms for a face of 350x400 px in a 1080p frame (2-core EPYC),
read once for each box the tracker keeps (a look every few frames), not for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIDE = 24  # pixels a side the region is shrunk to
WIDEN = (0.3, 0.35, 0.3, 0.6)  # left, top, right, bottom: the region around the face box, x its size
CHROMA_BINS, LEVEL_BINS = 6, 4
LAYOUT = 6  # the face's light and dark, LAYOUT x LAYOUT
# how much each part counts in a similarity
WEIGHTS = {"face": 0.3, "region": 0.45, "layout": 0.25}
SAME = 0.72  # a face at least this similar may be the same person ...
CLEAR_LEAD = 0.08  # ... when it leads every other face in view by this much
NOT_SOMEONE_ELSE = 0.55  # alone in view, a face below this is someone else


@dataclass(frozen=True)
class Signature:
    face: np.ndarray  # colour histogram of the face box
    region: np.ndarray  # colour histogram of the wider region
    layout: np.ndarray  # zero-mean, unit-norm grey thumbnail of the face

    def similarity(self, other: "Signature") -> float:
        """0 (nothing alike) to 1 (the same picture)."""
        face = float(np.minimum(self.face, other.face).sum())
        region = float(np.minimum(self.region, other.region).sum())
        layout = 0.5 * (1.0 + float(self.layout @ other.layout))
        return WEIGHTS["face"] * face + WEIGHTS["region"] * region + WEIGHTS["layout"] * layout

    def blend(self, other: "Signature", weight: float) -> "Signature":
        """A running average, so slow changes (light, a turn of the head) are followed."""
        layout = (1 - weight) * self.layout + weight * other.layout
        return Signature((1 - weight) * self.face + weight * other.face,
                         (1 - weight) * self.region + weight * other.region,
                         layout / max(1e-9, float(np.linalg.norm(layout))))


def signature(frames, index: int, box) -> Signature | None:
    """The signature of the face at `box` (x1, y1, x2, y2) in frame `index` of a face_detect
    frame source (anything with `resized`, `width`, `height`); None for a box too small to read."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    if w < 4 or h < 4:
        return None
    region = _clipped((x1 - WIDEN[0] * w, y1 - WIDEN[1] * h, x2 + WIDEN[2] * w, y2 + WIDEN[3] * h),
                      frames.width, frames.height)
    face = _clipped((x1, y1, x2, y2), frames.width, frames.height)
    if region is None or face is None:
        return None
    wide, inner = (_unit(frames.resized(index, r, SIDE, SIDE)) for r in (region, face))
    grey = cv2.resize(inner.mean(axis=-1), (LAYOUT, LAYOUT), interpolation=cv2.INTER_AREA).ravel()
    grey = grey - grey.mean()
    norm = float(np.linalg.norm(grey))
    layout = grey / norm if norm > 1e-6 else np.zeros_like(grey)
    return Signature(_colours(inner), _colours(wide), layout.astype(np.float64))


def _clipped(box, width, height):
    x1, y1 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x2, y2 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
    return (x1, y1, x2, y2) if x2 - x1 >= 2 and y2 - y1 >= 2 else None


def _unit(rgb: np.ndarray) -> np.ndarray:
    """RGB as float32 in [0, 1], from uint8 or float."""
    return rgb.astype(np.float32) * np.float32(1 / 255) if rgb.dtype == np.uint8 else rgb


def _colours(rgb: np.ndarray) -> np.ndarray:
    """A normalised histogram over chromaticity (r, g share of the brightness) and brightness
    relative to the region's mean (so a shot lit brighter or darker reads alike): skin, hair
    and clothes by hue and by how light they are against each other."""
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    total = pixels.sum(axis=1) + 1e-6
    r = np.clip(pixels[:, 0] / total * CHROMA_BINS, 0, CHROMA_BINS - 1e-6).astype(int)
    g = np.clip(pixels[:, 1] / total * CHROMA_BINS, 0, CHROMA_BINS - 1e-6).astype(int)
    relative = total / max(1e-6, float(total.mean()))  # 1: the region's mean brightness
    level = np.clip(relative / 2.0 * LEVEL_BINS, 0, LEVEL_BINS - 1e-6).astype(int)
    bins = (r * CHROMA_BINS + g) * LEVEL_BINS + level
    hist = np.bincount(bins, minlength=CHROMA_BINS * CHROMA_BINS * LEVEL_BINS).astype(np.float64)
    return hist / max(1.0, hist.sum())


def best_match(candidates: list, known: list) -> int | None:
    """Which of `candidates` (signatures, None for unreadable) is one of the `known` people with
    confidence: at least SAME alike, and ahead of every other candidate by CLEAR_LEAD. None when
    no face is."""
    scores = [max((c.similarity(k) for k in known), default=0.0) if c is not None else 0.0
              for c in candidates]
    if not scores:
        return None
    order = np.argsort(scores)[::-1]
    best = int(order[0])
    if scores[best] < SAME:
        return None
    if len(order) > 1 and scores[best] - scores[int(order[1])] < CLEAR_LEAD:
        return None
    return best
