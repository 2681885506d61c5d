"""Per-frame face boxes as float arrays: (n, 4) x1, y1, x2, y2 in frame pixels, NaN rows where a
frame has no face. Gap filling, temporal smoothing and padding work on these."""

from __future__ import annotations

import numpy as np

from ..common.runs import runs_of


def empty_boxes(n: int) -> np.ndarray:
    return np.full((n, 4), np.nan, dtype=np.float64)


def iou(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def area(box) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def nearest(boxes: np.ndarray, point) -> int:
    """Which of `boxes` has its centre nearest `point` (x, y)."""
    return int(np.argmin([np.hypot(*(centre(b) - point)) for b in boxes]))


def pick_face(boxes: np.ndarray, choice: str) -> int:
    """Which of `boxes` (k, 4+) a new track starts on by place or size: the largest, the
    left-most or the right-most (by centre). ("marked" is a person, not a place: the tracker
    chooses it by what the face looks like.)"""
    if choice == "left-most":
        return int(np.argmin([centre(b)[0] for b in boxes]))
    if choice == "right-most":
        return int(np.argmax([centre(b)[0] for b in boxes]))
    return int(np.argmax([area(b) for b in boxes]))


def lerp(a, b, t):
    return (1.0 - t) * np.asarray(a, float) + t * np.asarray(b, float)


def fill_gaps(boxes: np.ndarray, max_gap: int, shot_starts=()) -> np.ndarray:
    """Interpolate runs of at most `max_gap` faceless frames that have a face on both sides in the
    same shot; longer, leading and trailing runs stay faceless."""
    out = boxes.copy()
    cuts = set(int(s) for s in shot_starts)
    missing = np.isnan(out[:, 0])
    for start, stop in runs_of(missing):
        if start == 0 or stop == len(out) or stop - start > max_gap:
            continue
        if any(start <= c <= stop for c in cuts):  # never bridge a shot cut
            continue
        left, right = out[start - 1], out[stop]
        for k in range(start, stop):
            out[k] = lerp(left, right, (k - start + 1) / (stop - start + 1))
    return out


def smooth(boxes: np.ndarray, window: int, shot_starts=()) -> np.ndarray:
    """Centred moving average over `window` frames (even sizes round up to the next odd), within
    each run of faces and shot; near a run's ends the window shrinks symmetrically, so there is
    no lag and no box is dragged across a cut or a faceless stretch. window <= 1 is off."""
    if window is None or window <= 1:
        return boxes.copy()
    half = int(window) // 2
    out = boxes.copy()
    valid = ~np.isnan(boxes[:, 0])
    cuts = sorted(int(s) for s in shot_starts)
    for start, stop in runs_of(valid):
        bounds = [start] + [c for c in cuts if start < c < stop] + [stop]
        for s, e in zip(bounds[:-1], bounds[1:]):
            seg = boxes[s:e]
            csum = np.concatenate((np.zeros((1, 4)), np.cumsum(seg, axis=0)))
            idx = np.arange(e - s)
            h = np.minimum(half, np.minimum(idx, e - s - 1 - idx))
            out[s:e] = (csum[idx + h + 1] - csum[idx - h]) / (2 * h + 1)[:, None]
    return out


def pad_and_clip(boxes: np.ndarray, height: int, width: int, pad_bottom: int) -> np.ndarray:
    """Integer boxes grown `pad_bottom` px below (the chin side: Wav2Lip pads nowhere else) and
    clipped to the frame; rows without a face are -1."""
    out = np.full(boxes.shape, -1, dtype=np.int64)
    valid = ~np.isnan(boxes[:, 0])
    b = boxes[valid]
    out[valid, 0] = np.clip(np.round(b[:, 0]), 0, width)
    out[valid, 1] = np.clip(np.round(b[:, 1]), 0, height)
    out[valid, 2] = np.clip(np.round(b[:, 2]), 0, width)
    out[valid, 3] = np.clip(np.round(b[:, 3] + pad_bottom), 0, height)
    return out
