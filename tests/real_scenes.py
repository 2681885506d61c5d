"""Clips of real people (real_people.py's photographs) placed side by side, touching, covered by
a card, passed in front of, crossing, and cut between, with the true box of every face that can
be seen, and a detector stand-in that answers with those boxes for whatever the tracker renders
(a known-box source in S3FD's place: it knows where faces are, never who they are).

A scene is scene(i) -> (background, [layer, ...]) drawn in order, later layers in front: a
layer is ("person", name, face box, light) or ("card", box, grey level)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from real_people import dlib_box, photo, relit
from synthetic_clip import TruthDetector

# how much of the photograph around the face box a person brings (x its size): hair and collar
AROUND = (0.22, 0.45, 0.22, 0.55)  # left, top, right, bottom
SEEN = 0.6  # of its box a face must show to be found, as a detector would


@functools.cache
def _head(name: str):
    """(patch float32 RGB in [0, 1], the face box inside it) for a person."""
    rgb = photo(name)
    x1, y1, x2, y2 = dlib_box(rgb)
    w, h = x2 - x1, y2 - y1
    px1, py1 = max(0, int(x1 - AROUND[0] * w)), max(0, int(y1 - AROUND[1] * h))
    px2, py2 = min(rgb.shape[1], int(x2 + AROUND[2] * w)), min(rgb.shape[0], int(y2 + AROUND[3] * h))
    patch = rgb[py1:py2, px1:px2].astype(np.float32) / 255.0
    return patch, (x1 - px1, y1 - py1, x2 - px1, y2 - py1)


def backgrounds(height, width):
    """Two different rooms: a warm wall with a window, a cool wall with shelves."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    warm = np.stack([0.55 + 0.1 * xs / width, 0.45 + 0.05 * ys / height, 0.35 + 0 * xs], -1)
    warm[height // 8:height // 2, width // 12:width // 4] = (0.85, 0.9, 0.95)
    cool = np.stack([0.25 + 0 * xs, 0.35 + 0.1 * ys / height, 0.45 + 0.1 * xs / width], -1)
    for k in range(4):
        cool[height // 6 + k * height // 5:height // 6 + k * height // 5 + 6, width // 2:] = (0.5, 0.35, 0.2)
    return warm.astype(np.float32), cool.astype(np.float32)


class Scene:
    def __init__(self, count, height, width, scene):
        self.count, self.height, self.width, self.scene = count, height, width, scene
        self.rooms = backgrounds(height, width)
        self._truth: dict = {}

    def _draw(self, i):
        room, layers = self.scene(i)
        frame = self.rooms[room].copy()
        faces = []  # (box, mask of its pixels still seen)
        for layer in layers:
            if layer[0] == "person":
                _, name, box, light = layer
                patch, inner = _head(name)
                scale = (box[2] - box[0]) / (inner[2] - inner[0])
                ph, pw = int(round(patch.shape[0] * scale)), int(round(patch.shape[1] * scale))
                x, y = int(round(box[0] - inner[0] * scale)), int(round(box[1] - inner[1] * scale))
                scaled = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
                if light != "as taken":
                    scaled = relit((scaled * 255).astype(np.uint8), light).astype(np.float32) / 255
                region = (max(0, x), max(0, y), min(self.width, x + pw), min(self.height, y + ph))
                covered = region
                face_box = (box[0], box[1], box[0] + (inner[2] - inner[0]) * scale,
                            box[1] + (inner[3] - inner[1]) * scale)
                faces.append([np.array(face_box, float), np.zeros((self.height, self.width), bool)])
                faces[-1][1][int(face_box[1]):int(face_box[3]), int(face_box[0]):int(face_box[2])] = True
                frame[region[1]:region[3], region[0]:region[2]] = scaled[
                    region[1] - y:region[3] - y, region[0] - x:region[2] - x]
            else:
                _, covered, level = layer
                frame[covered[1]:covered[3], covered[0]:covered[2]] = level
            for face in faces[:-1] if layer[0] == "person" else faces:
                face[1][covered[1]:covered[3], covered[0]:covered[2]] = False
        return frame, faces

    def truth(self, i):
        """The boxes of the faces in frame i that show at least SEEN of themselves."""
        if i not in self._truth:
            found = []
            for box, seen in self._draw(i)[1]:
                x1, y1, x2, y2 = (int(v) for v in box)
                if seen[y1:y2, x1:x2].mean() >= SEEN:
                    found.append(box)
            self._truth[i] = found
        return self._truth[i]

    def images(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.clip(self._draw(i)[0], 0, 1) for i in range(self.count)]))

    def uint8(self) -> np.ndarray:
        return (self.images().numpy() * 255 + 0.5).astype(np.uint8)


class SceneDetector(TruthDetector):
    """Answers each rendered look with the scene's visible face boxes inside it, as TruthDetector
    does for a synthetic clip. `network` (optional) is run on the images too, for an honest cost."""

    min_side = 32

    def __init__(self, scene: Scene, batch_size=4, network=None):
        super().__init__(scene, batch_size, network)
