"""dlib's 5-point face landmarks (shape_predictor_5_face_landmarks.dat, CC0), in NumPy.

A cascade of regression-tree forests (Kazemi and Sullivan's ensemble of regression trees): the
mean shape is placed in the face box, and each of the 15 stages reads a few hundred pixel
intensities at places fixed relative to the current shape, walks its trees by comparing pairs
of them, and adds the leaves' corrections. The points come out as the two corners of each eye
(right eye first, as seen in the picture: outer, inner; then the left eye's outer, inner) and
the bottom of the nose, which is what the face recognition network's alignment uses.

dlib's conventions kept here: a box's right and bottom edges are inclusive pixels; a point is
sampled at its coordinates rounded to the nearest pixel (outside the picture it reads 0); a
pixel's intensity is the integer mean of R, G and B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...common.geometry import similarity
from .dlib_file import DlibFormatError, compact_ints, reals

POINTS = 5


@dataclass(frozen=True)
class Stage:
    splits: np.ndarray  # (trees, nodes, 2) int: the two feature pixels each node compares
    thresholds: np.ndarray  # (trees, nodes) float32
    leaves: np.ndarray  # (trees, nodes + 1, 2 * POINTS) float32: each leaf's correction
    anchors: np.ndarray  # (features,) int: the shape point each feature pixel is placed by
    deltas: np.ndarray  # (features, 2) float32: its offset from that point, in the mean shape


# Where dlib's own face detector puts its (square) box, in units of the eyes' distance apart
# around the middle of the eyes (measured on the tests' photographs: 0.25-0.48 below it, sides
# 2.0-2.5). Other detectors frame faces otherwise (S3FD's boxes reach higher), and the cascade
# was trained on dlib's framing, so a face is framed again from its first points.
BOX_BELOW_EYES, BOX_SIDE = 0.36, 2.2
# first framings tried, as (side x the box's shorter side, shift down x its height): the box as
# given, then smaller and lower (a box reaching over the forehead)
FRAMINGS = ((1.0, 0.0), (0.85, 0.08), (0.7, 0.15))
STEADY = 0.06  # a run moving less than this (x the eyes' distance) when framed again started
# well (dlib's own boxes: 0.006-0.044 on the tests' photographs; runs gone astray: 0.09 and more)


class ShapePredictor:
    def __init__(self, mean_shape: np.ndarray, stages: list[Stage]):
        self.mean_shape = mean_shape.reshape(-1, 2).astype(np.float32)  # in the unit box
        self.stages = stages

    def __call__(self, grey: np.ndarray, box) -> np.ndarray:
        """The points (POINTS, 2) x, y of the face in a detector's `box` (x1, y1, x2, y2,
        exclusive right and bottom) of `grey` (H, W) uint8. The cascade is run from the box and
        from the other FRAMINGS, and each run again from the face framed as dlib's detector
        frames it: a run that starts from a good framing barely moves then, one that went astray
        lands elsewhere. Where the box as given barely moves (STEADY: dlib's own box does), its
        own points are kept, so dlib's box gives dlib's points; otherwise the steadiest run's
        second points. On the tests' photographs, boxes from 0.8 to 1.4 times dlib's, shifted up
        or down, square or taller, then read within 0.15 of dlib's own box (one run of the
        cascade from them strayed up to 0.76)."""
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        side, cx, cy = min(x2 - x1, y2 - y1), (x1 + x2) / 2, (y1 + y2) / 2
        best = None
        for scale, down in FRAMINGS:
            half = side * scale / 2
            first = self.points(grey, (cx - half, cy + down * (y2 - y1) - half,
                                       cx + half, cy + down * (y2 - y1) + half))
            again = self.points(grey, dlib_framing(first))
            moved = float(np.abs(again - first).max()) / max(eye_distance(first), 1e-6)
            if best is None and moved < STEADY:
                return first
            if best is None or moved < best[0]:
                best = (moved, again)
        return best[1]

    def points(self, grey: np.ndarray, box) -> np.ndarray:
        """One run of the cascade from `box`, as dlib runs it."""
        left, top = float(box[0]), float(box[1])
        width, height = float(box[2]) - 1 - left, float(box[3]) - 1 - top  # dlib's inclusive edges
        shape = self.mean_shape.copy()
        h, w = grey.shape
        for stage in self.stages:
            linear = similarity(self.mean_shape, shape)[:, :2].astype(np.float32)
            points = stage.deltas @ linear.T + shape[stage.anchors]
            x = np.floor(left + points[:, 0] * width + 0.5).astype(np.int64)
            y = np.floor(top + points[:, 1] * height + 0.5).astype(np.int64)
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            values = np.zeros(len(points), dtype=np.float32)
            values[inside] = grey[y[inside], x[inside]]
            shape = shape + _walk(stage, values).reshape(-1, 2)
        return np.stack([left + shape[:, 0] * width, top + shape[:, 1] * height], axis=1)


def dlib_grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8: how dlib reads an RGB uint8 picture, each pixel the integer mean of R, G, B."""
    return (rgb[..., :3].astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)


def eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[0:2].mean(axis=0) - points[2:4].mean(axis=0)))


def dlib_framing(points: np.ndarray) -> tuple:
    """The square box dlib's detector would give the face with these points."""
    eyes, iod = points[:4].mean(axis=0), eye_distance(points)
    cx, cy = eyes[0], eyes[1] + BOX_BELOW_EYES * iod
    half = BOX_SIDE * iod / 2
    return (cx - half, cy - half, cx + half, cy + half)


def _walk(stage: Stage, values: np.ndarray) -> np.ndarray:
    """The sum of every tree's leaf for these feature values, in float32 as dlib adds them."""
    trees, nodes = stage.thresholds.shape
    node = np.zeros(trees, dtype=np.int64)
    rows = np.arange(trees)
    while True:
        inner = node < nodes
        if not inner.any():
            break
        at = np.minimum(node, nodes - 1)
        pair = stage.splits[rows, at]
        left = values[pair[:, 0]] - values[pair[:, 1]] > stage.thresholds[rows, at]
        node = np.where(inner, np.where(left, 2 * node + 1, 2 * node + 2), node)
    total = np.zeros(stage.leaves.shape[2], dtype=np.float32)
    for leaf in stage.leaves[rows, node - nodes]:  # in order, float32: dlib's sum
        total += leaf
    return total


def load_shape_predictor(data: bytes) -> ShapePredictor:
    """The predictor from the bytes of shape_predictor_5_face_landmarks.dat (raises
    DlibFormatError when they are not a 5-point predictor). The file is nothing but dlib's
    compact integers: a version, the mean shape (a matrix), the forests (each tree: its splits
    as two pixel indices and a float threshold, its leaves as matrices), each stage's anchor
    points and its pixels' offsets."""
    tokens = compact_ints(data)
    at = 0

    def take(count):
        nonlocal at
        if at + count > tokens.size:
            raise DlibFormatError("the predictor ends early")
        out = tokens[at:at + count]
        at += count
        return out

    def matrix():
        rows, cols = -int(take(1)[0]), -int(take(1)[0])
        if rows < 0 or cols < 0:
            raise DlibFormatError("no matrix where the predictor needs one")
        return reals(take(2 * rows * cols)).reshape(rows, cols)

    if int(take(1)[0]) != 1:
        raise DlibFormatError("not a dlib shape predictor (version)")
    mean_shape = matrix().ravel()
    if mean_shape.size != 2 * POINTS:
        raise DlibFormatError(f"a predictor of {mean_shape.size // 2} points, not {POINTS}")
    forests = []
    for _ in range(int(take(1)[0])):
        splits, thresholds, leaves = [], [], []
        for _ in range(int(take(1)[0])):
            split = take(4 * int(take(1)[0])).reshape(-1, 4)
            splits.append(split[:, :2])
            thresholds.append(reals(split[:, 2:]))
            count = int(take(1)[0])  # leaves: each a (2 * POINTS) x 1 matrix
            leaf = take(count * (2 + 4 * POINTS)).reshape(count, 2 + 4 * POINTS)
            if (leaf[:, 0] != -2 * POINTS).any() or (leaf[:, 1] != -1).any():
                raise DlibFormatError("a leaf of the predictor is not a shape correction")
            leaves.append(reals(leaf[:, 2:]).reshape(count, 2 * POINTS))
        forests.append((splits, thresholds, leaves))
    anchors = [take(int(take(1)[0])) for _ in range(int(take(1)[0]))]
    deltas = [reals(take(4 * int(take(1)[0]))).reshape(-1, 2) for _ in range(int(take(1)[0]))]
    if not (len(forests) == len(anchors) == len(deltas)) or at != tokens.size:
        raise DlibFormatError("the predictor's parts do not fit together")
    stages = []
    for (splits, thresholds, leaves), anchor, delta in zip(forests, anchors, deltas):
        try:
            stage = Stage(splits=np.array(splits, dtype=np.int64),
                          thresholds=np.array(thresholds, dtype=np.float32),
                          leaves=np.array(leaves, dtype=np.float32),
                          anchors=np.array(anchor, dtype=np.int64), deltas=np.array(delta, dtype=np.float32))
        except ValueError:
            raise DlibFormatError("the predictor's trees are not all of one shape") from None
        if (stage.splits.max(initial=0) >= len(anchor) or stage.leaves.ndim != 3
                or stage.leaves.shape[1] != stage.splits.shape[1] + 1):
            raise DlibFormatError("a tree of the predictor reads pixels it does not have")
        stages.append(stage)
    return ShapePredictor(mean_shape, stages)
