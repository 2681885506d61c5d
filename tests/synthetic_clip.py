"""Synthetic talking-head clips with known face boxes, made from scikit-image's astronaut photo.

Frames are drawn on demand (a 10 s 720p clip would be 2.8 GB as float32), so the same clip serves
the tracking tests, the node tests (small sizes, materialised) and the benchmark.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

# The astronaut's head in skimage.data.astronaut(), and her face box inside that patch, measured
# once by eye on the 512x512 photo.
HEAD_ROWS, HEAD_COLS = slice(10, 220), slice(135, 315)
FACE_IN_HEAD = (35, 55, 145, 185)  # x1, y1, x2, y2 in head-patch pixels


def astronaut_head() -> np.ndarray:
    from skimage import data
    return data.astronaut()[HEAD_ROWS, HEAD_COLS].astype(np.float32) / 255.0


class Clip:
    """`scenario` "tracking": moving and scaling face, a hard cut at 3 s, no face from 5 s to 6 s,
    a larger second face entering at 7.6 s. "gentle": one face with slow head motion."""

    def __init__(self, width=1280, height=720, fps=25.0, seconds=10.0, scenario="gentle", seed=0):
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.count = int(round(seconds * fps))
        self.scenario = scenario
        self.unit = self.height / 720.0  # positions are scripted for 720p and scaled
        rng = np.random.default_rng(seed)
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        base = 0.35 + 0.25 * (xs / self.width) + 0.1 * np.sin(ys / (40 * self.unit))
        texture = cv2.resize(rng.random((45, 80)).astype(np.float32), (self.width, self.height))
        self.background = np.stack([base * 0.9, base, base * 0.8 + 0.1 * texture], axis=-1)
        self.background = np.clip(self.background, 0, 1).astype(np.float32)
        self.head = astronaut_head()
        self._scaled: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ script

    def faces(self, i: int):
        """[(cx, cy, face_height)] in frame pixels, the tracked face first."""
        t = i / self.fps
        u = self.unit
        if self.scenario == "gentle":
            return [(640 * u + 40 * u * math.sin(2 * math.pi * t / 4.0),
                     340 * u + 12 * u * math.sin(2 * math.pi * t / 3.0),
                     260 * u + 10 * u * math.sin(2 * math.pi * t / 5.0))]
        if t < 3.0:
            return [(400 * u + 60 * u * math.sin(2 * math.pi * t / 4.0),
                     360 * u + 20 * u * math.sin(2 * math.pi * t / 2.8), (220 + 40 * t / 3.0) * u)]
        if t < 5.0:
            return [(900 * u + 50 * u * math.sin(2 * math.pi * t / 3.0), 380 * u, 180 * u)]
        if t < 6.0:
            return []
        first = (500 * u + 40 * u * math.sin(2 * math.pi * t / 4.0), 360 * u, 200 * u)
        if t < 7.6:
            return [first]
        entering = min(1.0, (t - 7.6) / 1.2)
        return [first, ((1350 - 350 * entering) * u, 330 * u, 300 * u)]

    def _placement(self, cx, cy, face_h):
        scale = face_h / (FACE_IN_HEAD[3] - FACE_IN_HEAD[1])
        ph, pw = int(round(self.head.shape[0] * scale)), int(round(self.head.shape[1] * scale))
        fcx = (FACE_IN_HEAD[0] + FACE_IN_HEAD[2]) / 2 * pw / self.head.shape[1]
        fcy = (FACE_IN_HEAD[1] + FACE_IN_HEAD[3]) / 2 * ph / self.head.shape[0]
        return int(round(cx - fcx)), int(round(cy - fcy)), pw, ph

    def truth(self, i: int) -> list[np.ndarray]:
        """The face boxes (x1, y1, x2, y2) in frame i, the tracked face first."""
        boxes = []
        for cx, cy, face_h in self.faces(i):
            x, y, pw, ph = self._placement(cx, cy, face_h)
            sx, sy = pw / self.head.shape[1], ph / self.head.shape[0]
            boxes.append(np.array([x + FACE_IN_HEAD[0] * sx, y + FACE_IN_HEAD[1] * sy,
                                   x + FACE_IN_HEAD[2] * sx, y + FACE_IN_HEAD[3] * sy]))
        return boxes

    # ------------------------------------------------------------------ pixels

    def frame(self, i: int) -> np.ndarray:
        out = self.background.copy()
        for cx, cy, face_h in self.faces(i):
            x, y, pw, ph = self._placement(cx, cy, face_h)
            patch = cv2.resize(self.head, (pw, ph), interpolation=cv2.INTER_AREA)
            x1, y1 = max(0, x), max(0, y)
            x2, y2 = min(self.width, x + pw), min(self.height, y + ph)
            if x2 > x1 and y2 > y1:
                out[y1:y2, x1:x2] = patch[y1 - y:y2 - y, x1 - x:x2 - x]
        return out

    def images(self, count=None, dtype=torch.float32) -> torch.Tensor:
        count = self.count if count is None else count
        out = torch.empty((count, self.height, self.width, 3), dtype=dtype)
        for i in range(count):
            out[i] = torch.from_numpy(self.frame(i))
        return out


class LazyFrames:
    """A clip seen through the face_detect frame-source interface, drawing frames on demand."""

    def __init__(self, clip: Clip, frames_cls):
        self.clip = clip
        self.count, self.height, self.width = clip.count, clip.height, clip.width
        self._render, self._resized = frames_cls.render, frames_cls.resized
        self._cached = (None, None)

    def frame(self, i):
        if self._cached[0] != i:
            self._cached = (i, self.clip.frame(i))
        return self._cached[1]

    def pixels(self, index, x1, y1, x2, y2):
        return np.ascontiguousarray(self.frame(index)[y1:y2, x1:x2], dtype=np.float32)

    def render(self, request):
        return self._render(self, request)

    def resized(self, index, region, width, height):
        return self._resized(self, index, region, width, height)

    def thumbnails(self, start, stop):
        return np.stack([cv2.resize(self.frame(i).mean(axis=-1), (32, 18), interpolation=cv2.INTER_AREA)
                         for i in range(start, stop)])


class RenderedRequests:
    """What the tracker asked to look at, in order: watching TensorFrames.render (which every
    frame source renders through; the test session patches it, as monkeypatch would), so a
    stand-in that answers from known boxes can tell which frame and region each image it is
    handed shows. Detectors themselves only ever get images."""

    def __init__(self):
        self.pending = []

    def install(self, frames_cls):
        """Watch frames_cls.render; returns the function that puts the original back."""
        real = frames_cls.render

        def render(frames, request):
            self.pending.append(request)
            return real(frames, request)

        frames_cls.render = render
        return lambda: setattr(frames_cls, "render", real)

    def take(self, images) -> list:
        """The requests behind `images` (the next len(images) renders)."""
        assert len(self.pending) >= len(images), "images the tracker did not render"
        taken, self.pending = self.pending[:len(images)], self.pending[len(images):]
        for request, image in zip(taken, images):
            assert tuple(request.size) == image.shape[:2], "rendered requests out of step"
        return taken


class TruthDetector:
    """A detector stand-in that answers with the clip's true boxes for whatever frame, region and
    resolution each image shows (learnt from `rendered`, see RenderedRequests): faces at least
    60% inside the region and at least 10 px tall in the rendered image, mapped into that image's
    pixels."""

    def __init__(self, clip: Clip, batch_size=4, network=None, rendered=None):
        self.clip = clip
        self.batch_size = batch_size
        self.network = network  # optional: run a real network on the images for honest cost
        self.rendered = rendered if rendered is not None else RENDERED
        self.requests = []

    def detect(self, images):
        if self.network is not None:
            self.network(images)
        out = []
        for request in self.rendered.take(images):
            self.requests.append(request)
            x1, y1, x2, y2 = request.region
            sx, sy = request.scale
            found = []
            for box in self.clip.truth(request.frame_index):
                ix1, iy1 = max(box[0], x1), max(box[1], y1)
                ix2, iy2 = min(box[2], x2), min(box[3], y2)
                inside = max(0, ix2 - ix1) * max(0, iy2 - iy1) / ((box[2] - box[0]) * (box[3] - box[1]))
                if inside < 0.6 or (box[3] - box[1]) * sy < 10:
                    continue
                found.append([(ix1 - x1) * sx, (iy1 - y1) * sy, (ix2 - x1) * sx, (iy2 - y1) * sy, 0.99])
            out.append(np.array(found, dtype=np.float64).reshape(-1, 5))
        return out


RENDERED = RenderedRequests()  # conftest installs it for every test; benchmarks install it too


# ------------------------------------------------------------------ a detector that looks at pixels

MARKER_RGB = (0.0, 1.0, 0.0)  # pure green: nothing else in a marker clip is


def marker_frames(count, height, width, boxes_for, seed=0) -> torch.Tensor:
    """An IMAGE of `count` frames: a textured background (never pure green) with a pure green
    rectangle at boxes_for(i) = (x1, y1, x2, y2) in frame i (None: no marker)."""
    rng = np.random.default_rng(seed)
    out = torch.empty((count, height, width, 3))
    for i in range(count):
        frame = rng.random((height, width, 3)).astype(np.float32) * 0.6
        frame[..., 1] *= 0.5
        box = boxes_for(i)
        if box is not None:
            x1, y1, x2, y2 = box
            frame[y1:y2, x1:x2] = MARKER_RGB
        out[i] = torch.from_numpy(frame)
    return out


class MarkerDetector:
    """A detector stand-in that sees only the rendered BGR image it is handed: it answers with
    the bounding box of the pixels that are mostly marker green, in that image's pixels. So it
    checks the whole path from a frame region to a rendered image and back to frame pixels."""

    min_side = 32  # like S3FD, refuses smaller images: the tracker must pad, not stretch

    def __init__(self, batch_size=4, min_face=6):
        self.batch_size = batch_size
        self.min_face = min_face
        self.requests = []
        self.images_seen = []

    def detect(self, images):
        assert len(images) <= self.batch_size
        out = []
        for request, image in zip(RENDERED.take(images), images):
            assert min(image.shape[:2]) >= self.min_side, image.shape
            self.requests.append(request)  # recorded for tests: the answer comes from pixels
            self.images_seen.append(image.shape[:2])
            b, g, r = (image[..., k].astype(np.int32) for k in range(3))
            green = (g - np.maximum(r, b)) > 127  # at least half of the pixel is marker
            ys, xs = np.nonzero(green)
            if ys.size == 0 or np.ptp(ys) + 1 < self.min_face or np.ptp(xs) + 1 < self.min_face:
                out.append(np.zeros((0, 5)))
                continue
            out.append(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.99]], np.float64))
        return out


class FaceBlobsDetector:
    """A detector stand-in that reads pixels and sees several faces: each separate patch of
    marker green in the rendered image is one face (its bounding box, scored by its fill)."""

    min_side = 32
    min_fill = 0.0  # of its bounding box a patch must fill

    def __init__(self, batch_size=4, min_face=6):
        self.batch_size = batch_size
        self.min_face = min_face

    def face_pixels(self, b, g, r):
        return (g - np.maximum(r, b)) > 127

    def detect(self, images):
        out = []
        for image in images:
            b, g, r = (image[..., k].astype(np.int32) for k in range(3))
            pixels = self.face_pixels(b, g, r).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(pixels, connectivity=8)
            boxes = [[x, y, x + w, y + h, 0.99] for x, y, w, h, n in stats[1:count]
                     if w >= self.min_face and h >= self.min_face and n >= self.min_fill * w * h]
            out.append(np.array(boxes, np.float64).reshape(-1, 5))
        return out


def two_faces(count, height, width, faces_for, seed=0, background=0.35):
    """An IMAGE of `count` frames with marker-green faces at faces_for(i) -> [(x1, y1, x2, y2)]
    on a textured background (never pure green); `background` may change per frame (a cut)."""
    rng = np.random.default_rng(seed)
    texture = rng.random((height, width, 3)).astype(np.float32) * 0.3
    texture[..., 1] *= 0.5
    out = torch.empty((count, height, width, 3))
    for i in range(count):
        level = background(i) if callable(background) else background
        frame = texture + level
        for x1, y1, x2, y2 in faces_for(i):
            frame[y1:y2, x1:x2] = MARKER_RGB
        out[i] = torch.from_numpy(np.clip(frame, 0, 1))
    return out


# ------------------------------------------------------------------ two different-looking people

# Drawn people who differ as real ones do: skin, hair, clothes, glasses. Only skin is "skin" to
# SkinDetector (R > G > B with a warm cast, not too dark): hair, clothes, eyes, mouth, glasses
# and the bluish background are not.
PEOPLE = {
    "A": {"skin": (0.92, 0.76, 0.64), "hair": (0.12, 0.10, 0.08), "clothes": (0.80, 0.12, 0.16),
          "glasses": False},
    "B": {"skin": (0.50, 0.32, 0.21), "hair": (0.62, 0.62, 0.64), "clothes": (0.14, 0.52, 0.24),
          "glasses": True},
}
PEOPLE["A in a coat and hat"] = {**PEOPLE["A"], "clothes": (0.22, 0.26, 0.52),
                                 "hair": (0.30, 0.32, 0.55), "glasses": True}


def draw_person(frame: np.ndarray, face, person: dict, light: float = 1.0):
    """Draw `person` into `frame` (H x W x 3 float RGB, in place) with the face's skin filling
    the box `face` (x1, y1, x2, y2): hair above and beside it, clothes below, eyes and a mouth.
    `light` scales every colour (a shot lit differently). Parts outside the frame are cut."""
    x1, y1, x2, y2 = (int(v) for v in face)
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2

    def colour(name):
        return tuple(float(min(1.0, c * light)) for c in person[name])

    out = np.ascontiguousarray(frame)
    cv2.rectangle(out, (x1 - w // 3, y2 + h // 8), (x2 + w // 3, y2 + h), colour("clothes"), -1)
    cv2.ellipse(out, (cx, y1 + h // 6), (w // 2 + w // 8, h // 2), 0, 180, 360, colour("hair"), -1)
    cv2.rectangle(out, (x1 - w // 8, y1), (x1, cy), colour("hair"), -1)
    cv2.rectangle(out, (x2, y1), (x2 + w // 8, cy), colour("hair"), -1)
    cv2.ellipse(out, (cx, cy), (w // 2, h // 2), 0, 0, 360, colour("skin"), -1)
    eye = max(2, w // 12)
    for dx in (-w // 5, w // 5):
        if person["glasses"]:  # tinted lenses
            cv2.circle(out, (cx + dx, cy - h // 8), 2 * eye, (0.15, 0.12, 0.2), -1)
        cv2.circle(out, (cx + dx, cy - h // 8), eye, (0.08, 0.08, 0.1), -1)
    cv2.ellipse(out, (cx, cy + h // 4), (w // 6, h // 14), 0, 0, 360, (0.6, 0.2, 0.25), -1)
    frame[...] = out


def people_frames(count, height, width, scene, seed=0) -> torch.Tensor:
    """An IMAGE of `count` frames: scene(i) -> (background level, [(person name, face box,
    light)]) on a bluish textured wall (never skin)."""
    rng = np.random.default_rng(seed)
    texture = rng.random((height, width, 3)).astype(np.float32) * 0.08
    out = torch.empty((count, height, width, 3))
    for i in range(count):
        level, people = scene(i)
        frame = texture + np.array([0.5, 0.6, 0.8], np.float32) * level
        for name, face, light in people:
            draw_person(frame, face, PEOPLE[name], light)
        out[i] = torch.from_numpy(np.clip(frame, 0, 1))
    return out


class SkinDetector(FaceBlobsDetector):
    """A detector stand-in that reads pixels and knows nothing of who is who: each separate patch
    of skin-coloured pixels in the rendered BGR image is a face (its bounding box)."""

    min_fill = 0.4

    def __init__(self, batch_size=4, min_face=8):
        super().__init__(batch_size, min_face)

    def face_pixels(self, b, g, r):
        return (r > g) & (g > b) & (r - b > 40) & (r + g + b > 180)
