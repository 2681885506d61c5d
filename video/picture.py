"""Decoded frames as the VIDEO route keeps them, decoded ahead in a thread of their own: the
source's own YUV (8-bit 4:2:0), or whole RGB where that YUV cannot be kept. Only the pixels
somebody asks for leave YUV: a region's RGB for the detector, the face recognizer and the
generator, the luma for shot-cut thumbnails."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..common.ahead import run_ahead
from ..common.stop import StopSignal
from .decode import decode, frame_duration, rgb_region, to_rgb, to_yuv
from .probe import VideoInfo
from .yuv import even_box, planes_of


@dataclass
class Picture:
    """One upright, cropped frame: `yuv` (packed, `to_yuv`) or, where there is none, `rgb`."""

    yuv: np.ndarray | None
    rgb: np.ndarray | None
    info: VideoInfo

    @classmethod
    def of(cls, frame, info: VideoInfo) -> "Picture":
        """A decoded frame, converted once: to packed YUV (a copy of its samples), or to RGB."""
        yuv = to_yuv(frame, info)
        return cls(yuv, to_rgb(frame, info) if yuv is None else None, info)

    def copy(self) -> "Picture":
        """A picture of its own (the writer changes the arrays it is given)."""
        return Picture(None if self.yuv is None else self.yuv.copy(),
                       None if self.rgb is None else self.rgb.copy(), self.info)

    def crop(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        """(y2 - y1, x2 - x1, 3) uint8 RGB of a region inside the frame, converted as `to_rgb`
        converts the whole frame."""
        if self.yuv is None:
            return self.rgb[y1:y2, x1:x2]
        ex1, ey1, ex2, ey2 = even_box((x1, y1, x2, y2), self.info.width, self.info.height)
        return rgb_region(self.yuv, (ex1, ey1, ex2, ey2), self.info)[y1 - ey1:y2 - ey1, x1 - ex1:x2 - ex1]

    def grey(self, step_y: int, step_x: int) -> np.ndarray:
        """Every `step_y`-th row and `step_x`-th column of the frame's brightness, float32 in
        [0, 1]: the luma as stored (limited range stretched to full), the mean of R, G and B
        where the frame is held as RGB."""
        if self.yuv is None:
            return self.rgb[::step_y, ::step_x].astype(np.float32).mean(axis=-1) * np.float32(1 / 255)
        luma = planes_of(self.yuv)[0][:self.info.height:step_y, :self.info.width:step_x].astype(np.float32)
        if self.info.colour.full:
            return luma * np.float32(1 / 255)
        return np.clip((luma - 16) * np.float32(1 / 219), 0, 1)


DECODE_AHEAD = 8  # pictures a decoding thread may hold ready (~25 MB at 1080p)


def decode_pictures(source, info: VideoInfo, stop: StopSignal):
    """Every frame in `info.edits`, in order, as (time on the file's clock, pts, how long the
    file shows it or None, Picture): decoded and converted in a thread of its own, at most
    DECODE_AHEAD frames ahead of the caller, so the caller's work and FFmpeg's decoding (which
    releases the GIL) overlap. A context manager (ahead.run_ahead): a decoding error is raised
    in the caller's thread; leaving the `with` block, however it is left, stops the thread and
    closes the file. The run's `stop` is checked while the caller waits for a frame, so a source
    that stalls does not hold the caller."""

    def pictures(_left):
        with contextlib.closing(decode(source, info)) as frames:
            for t, pts, frame in frames:
                yield t, pts, frame_duration(frame), Picture.of(frame, info)

    return run_ahead(pictures, DECODE_AHEAD, "Halo-Lipsy decoder", stop)
