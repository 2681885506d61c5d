"""Decoding: every frame of the used part in order, as upright RGB or as the source's own YUV, and
frames by index in bounded memory."""

from __future__ import annotations

import logging
import threading

import numpy as np

from .probe import INTERPOLATION, VideoInfo, frames_from, video_stream
from .source import VideoInputError, open_source
from .yuv import pack_yuv, plane_array, planes_of

logger = logging.getLogger("HaloLipsy")

_reformatters = threading.local()


def reformat(frame, **options):
    """`frame.reformat(**options)` with the pack's chroma filter, through a swscale context kept
    per thread: made again only when the size or format changes, not for every frame (making
    one costs more than converting a face's region)."""
    reformatter = getattr(_reformatters, "current", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _reformatters.current = VideoReformatter()
    return reformatter.reformat(frame, interpolation=INTERPOLATION, **options)


def to_rgb(frame, info: VideoInfo) -> np.ndarray:
    """One decoded frame as the pipeline sees it: RGB uint8, converted with the source's matrix
    and range, at the stream's first size, upright, cropped."""
    colour = info.colour
    coded_w, coded_h = info.coded_size
    rgb = reformat(frame, width=coded_w, height=coded_h, format="rgb24",
                   src_colorspace=colour.conversion_matrix(coded_w, coded_h),
                   src_color_range="JPEG" if colour.full else "MPEG").to_ndarray()
    if info.quarter_turns:
        rgb = np.rot90(rgb, k=info.quarter_turns)
    crop = info.edits.crop
    if crop is not None:
        x, y, w, h = crop
        rgb = rgb[y:y + h, x:x + w]
    return np.ascontiguousarray(rgb)


def to_yuv(frame, info: VideoInfo) -> np.ndarray | None:
    """One decoded frame's 8-bit YUV 4:2:0 samples as stored (no colour conversion: 8-bit
    4:2:0 frames are copied as they are), upright, cropped, its sides padded to even: packed
    (H * 3/2, W) as VideoFrame.from_ndarray takes it. Encoding from these keeps every pixel no
    face touched as it was. None where a crop starts on an odd pixel (4:2:0 chroma cannot be
    cut there) and for sources that are not 4:2:0: such frames are encoded from RGB."""
    crop = info.edits.crop
    if crop is not None and (crop[0] % 2 or crop[1] % 2):
        return None
    if "420" not in frame.format.name:
        # 4:4:4, 4:2:2 and RGB sources (screen recordings, x264rgb, ProRes 4444): their chroma
        # must be reduced anyway, and the frame's RGB, converted whole, comes out as close to
        # the source as FFmpeg's own conversion (the YUV route measured 0.6 dB below it)
        return None
    coded_w, coded_h = info.coded_size
    if frame.format.name not in ("yuv420p", "yuvj420p") or (frame.width, frame.height) != (coded_w, coded_h):
        matrix = info.colour.conversion_matrix(coded_w, coded_h)
        value_range = "JPEG" if info.colour.full else "MPEG"
        frame = reformat(frame, width=coded_w, height=coded_h, format="yuv420p",
                         src_colorspace=matrix, dst_colorspace=matrix,
                         src_color_range=value_range, dst_color_range=value_range)
    y, u, v = (plane_array(p) for p in frame.planes[:3])
    if info.quarter_turns:
        y, u, v = (np.rot90(p, k=info.quarter_turns) for p in (y, u, v))
    if crop is not None:
        x0, y0, w, h = crop
        y = y[y0:y0 + h, x0:x0 + w]
        u, v = (p[y0 // 2:(y0 + h + 1) // 2, x0 // 2:(x0 + w + 1) // 2] for p in (u, v))
    return pack_yuv(y, u, v)


REGION_MARGIN = 8  # pixels converted around a region, so its edge sees what the whole frame's does


def rgb_region(yuv: np.ndarray, box, info: VideoInfo) -> np.ndarray:
    """The RGB of `box` (x1, y1, x2, y2, even) of a frame's packed YUV (`to_yuv`), converted as
    `to_rgb` converts the whole frame (same matrix, range and chroma filter; a margin around the
    box gives the filter what it reads): only the pixels that may change leave YUV."""
    import av

    x1, y1, x2, y2 = box
    plane_y, plane_u, plane_v = planes_of(yuv)
    h2, w2 = plane_y.shape
    rx1, ry1 = max(0, x1 - REGION_MARGIN), max(0, y1 - REGION_MARGIN)
    rx2, ry2 = min(w2, x2 + REGION_MARGIN), min(h2, y2 + REGION_MARGIN)
    packed = pack_yuv(plane_y[ry1:ry2, rx1:rx2], plane_u[ry1 // 2:ry2 // 2, rx1 // 2:rx2 // 2],
                      plane_v[ry1 // 2:ry2 // 2, rx1 // 2:rx2 // 2])
    colour = info.colour
    rgb = reformat(av.VideoFrame.from_ndarray(packed, format="yuv420p"), format="rgb24",
                   src_colorspace=colour.conversion_matrix(*info.coded_size),
                   src_color_range="JPEG" if colour.full else "MPEG").to_ndarray()
    return np.ascontiguousarray(rgb[y1 - ry1:y2 - ry1, x1 - rx1:x2 - rx1])


def frame_duration(frame) -> float | None:
    """How long the file shows `frame` (seconds), when it says (PyAV 15+ exposes it)."""
    duration = getattr(frame, "duration", None)
    if not duration or frame.time_base is None:
        return None
    return float(duration * frame.time_base)


def decode(source, info: VideoInfo, seek_to: float | None = None):
    """Yield (time in seconds on the file's clock, pts, decoded frame) for every frame in
    `info.edits` (see `frames_from`: damaged packets and repeated timestamps are skipped, a seek
    that lands late is made again earlier); `to_rgb` and `to_yuv` turn a frame into what the
    pipeline works on, scaling a frame of another size to the first one's."""
    with open_source(source) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        resized = False
        for t, pts, frame in frames_from(container, stream, info.edits, info.restarts, seek_to):
            if not resized and (frame.width, frame.height) != tuple(info.coded_size):
                resized = True
                logger.warning("Halo-Lipsy: the video changes size at %.2f s (%dx%d -> %dx%d); "
                               "later frames are scaled to the first size.", t,
                               *info.coded_size, frame.width, frame.height)
            yield t, pts, frame


# ---------------------------------------------------------------------------- random access


class FrameReader:
    """Decoded frames by index, in any order, holding at most a block of frames: forward runs
    decode straight on, a jump back seeks to the keyframe before it, and a backward run (the
    pingpong mode) is read a block at a time and served from the end of the block. Frames are
    identified by their presentation timestamps from a first pass (`pts`, one per index;
    `times`, seconds on the file's clock)."""

    def __init__(self, source, info: VideoInfo, pts: list[int], times: list[float],
                 block_bytes: int = 256 << 20):
        self.source, self.info = source, info
        self.index_of = {p: i for i, p in enumerate(pts)}
        self.times = times
        self.block = max(4, block_bytes // max(1, info.width * info.height * 3))
        self._stream = None  # (generator, index of the next frame it yields)
        self._cache: dict[int, np.ndarray] = {}
        self._previous = -1
        self.seeks = 0

    def read(self, index: int):
        """Frame `index`, as decoded (see `to_rgb` and `to_yuv`)."""
        going_back = index < self._previous
        self._previous = index
        if index in self._cache:
            return self._cache[index]
        if going_back:
            return self._read_block(index)
        if self._stream is None or self._stream[1] > index:
            self._start(index)
        generator, _ = self._stream
        for _, pts, frame in generator:
            i = self.index_of.get(pts)
            if i is None or i < index:
                continue
            self._stream = (generator, i + 1)
            self._cache = {i: frame}  # the last frame stays: a held frame is read again
            if i == index:
                return frame
            break
        raise VideoInputError(f"frame {index} could not be decoded again; the file changed or is "
                              "damaged.")

    def _start(self, index: int):
        self.seeks += 1 if index > 0 else 0
        self._stream = (decode(self.source, self.info, self.times[index] if index > 0 else None), 0)

    def _read_block(self, index: int):
        first = max(0, index - self.block + 1)
        self.seeks += 1
        cache = {}
        for _, pts, frame in decode(self.source, self.info, self.times[first] if first > 0 else None):
            i = self.index_of.get(pts)
            if i is None or i < first:
                continue
            cache[i] = frame
            if i >= index:
                break
        if index not in cache:
            raise VideoInputError(f"frame {index} could not be decoded again; the file changed or "
                                  "is damaged.")
        self._cache, self._stream = cache, None
        return cache[index]
