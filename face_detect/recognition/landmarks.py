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

from .align import similarity
from .dlib_file import DlibFormatError, compact_ints, reals

POINTS = 5


@dataclass(frozen=True)
class Stage:
    splits: np.ndarray  # (trees, nodes, 2) int: the two feature pixels each node compares
    thresholds: np.ndarray  # (trees, nodes) float32
    leaves: np.ndarray  # (trees, nodes + 1, 2 * POINTS) float32: each leaf's correction
    anchors: np.ndarray  # (features,) int: the shape point each feature pixel is placed by
    deltas: np.ndarray  # (features, 2) float32: its offset from that point, in the mean shape


class ShapePredictor:
    def __init__(self, mean_shape: np.ndarray, stages: list[Stage]):
        self.mean_shape = mean_shape.reshape(-1, 2).astype(np.float32)  # in the unit box
        self.stages = stages

    def __call__(self, grey: np.ndarray, box) -> np.ndarray:
        """The points (POINTS, 2) x, y of the face in `box` (x1, y1, x2, y2, exclusive right and
        bottom) of `grey` (H, W) uint8 intensities."""
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
