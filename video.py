"""Streamed video in and out with PyAV (ComfyUI's own video library): frames are decoded and
encoded one at a time, so no step holds a whole clip. No ComfyUI import.

Times are seconds from the first video frame (its presentation timestamp), so variable frame
rate video keeps each frame's own time.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

logger = logging.getLogger("HaloLipsy")

OUTPUT_TIME_BASE = Fraction(1, 90000)  # fine enough for any frame time (the MPEG clock)
AUDIO_CHUNK = 1024  # samples per AAC frame


class VideoInputError(ValueError):
    """The video cannot be used; the message says why and what to do."""


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: Fraction  # the stream's nominal (average) rate
    duration: float | None  # seconds, when the container says
    frames: int | None  # frame count, when the container says (an estimate: progress only)
    has_audio: bool


def _rewind(source):
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _name(source) -> str:
    return f"'{source}'" if isinstance(source, (str, os.PathLike)) else "the video"


def _open(source):
    import av

    try:
        return av.open(_rewind(source), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoInputError(f"{_name(source)} is not a video file that can be read ({err}). "
                              "Load a video file (mp4, mov, mkv, webm ...).") from None


def probe(source) -> VideoInfo:
    """What the container says about its first video stream."""
    with _open(source) as container:
        if not container.streams.video:
            kind = "an audio file" if container.streams.audio else "no video"
            raise VideoInputError(f"{_name(source)} has no video stream ({kind}). Connect a video "
                                  "with picture; speech alone goes into the 'audio' input.")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise VideoInputError(f"{_name(source)} has no frame rate; re-encode it with one.")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frames = int(stream.frames) if stream.frames else (
            int(round(duration * float(rate))) if duration else None)
        return VideoInfo(int(stream.codec_context.width), int(stream.codec_context.height),
                         Fraction(rate), duration, frames, bool(container.streams.audio))


def decode(source, start_time: float | None = None):
    """Yield (time in seconds from the first frame, pts, RGB uint8 H x W x 3) for every frame.

    `start_time` (seconds, from the first frame) seeks to the keyframe before it first; frames
    before it are still yielded, so callers skip by time. A packet that fails to decode is
    skipped with a warning naming its time: the frames around it still come."""
    import av

    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = _first_pts(container, stream) if start_time else None
        if start_time:
            target = first + int(start_time / stream.time_base)
            container.seek(target, backward=True, any_frame=False, stream=stream)
        base = first
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                when = "" if packet.pts is None else f" at {float(packet.pts * stream.time_base):.2f} s"
                logger.warning("Halo-Lipsy: a damaged video packet%s could not be decoded (%s); "
                               "its frame is missing from the output.", when, err)
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else frame.dts
                if pts is None:
                    continue
                if base is None:
                    base = pts
                yield float((pts - base) * stream.time_base), pts, frame.to_ndarray(format="rgb24")


def _first_pts(container, stream) -> int:
    for frame in container.decode(stream):
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is not None:
            return pts
    return 0


def read_audio(source) -> tuple[np.ndarray, int] | None:
    """The first audio stream as (float32 samples [channels, T], rate), or None without one."""
    import av

    with _open(source) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        channels = max(1, stream.codec_context.channels or 1)
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=stream.rate)
        chunks = []
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as err:
                logger.warning("Halo-Lipsy: a damaged audio packet was skipped (%s).", err)
                continue
            for frame in decoded:
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
        if not chunks:
            return None
        return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), int(stream.rate)


class VideoWriter:
    """H.264 + AAC in an MP4, frames written as they come, each at its own time. `quality` is
    x264's CRF (0 best, 51 worst; 18-23 look like the source). On any failure, `abort()` closes
    and deletes the file, so nothing half-written stays behind."""

    def __init__(self, destination, width: int, height: int, fps: Fraction, quality: int = 19,
                 audio_rate: int | None = None, audio_channels: int = 1):
        import av

        self.destination = destination
        self.container = av.open(destination, mode="w", format="mp4")
        stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        stream.width, stream.height = _even(width), _even(height)
        stream.pix_fmt = "yuv420p"
        stream.time_base = OUTPUT_TIME_BASE
        stream.codec_context.time_base = OUTPUT_TIME_BASE
        stream.options = {"crf": str(int(quality)), "preset": "veryfast"}
        self.stream = stream
        self.audio_stream = None
        if audio_rate:  # every stream must exist before the first packet is written
            self.audio_stream = self.container.add_stream("aac", rate=int(audio_rate))
            self.audio_stream.layout = "mono" if audio_channels == 1 else "stereo"
        self.size = (width, height)
        self.frames = 0
        self.last_pts = -1

    def write(self, rgb: np.ndarray, time_s: float):
        import av

        if rgb.shape[1] % 2 or rgb.shape[0] % 2:  # yuv420p needs even sides: repeat the edge
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = max(self.last_pts + 1, int(round(time_s / OUTPUT_TIME_BASE)))
        frame.pts, frame.time_base = pts, OUTPUT_TIME_BASE
        self.last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def finish(self, audio: np.ndarray | None = None):
        """Flush the video, then write `audio` ([channels, T] float32 at the rate given to the
        constructor) as AAC, and close."""
        import av

        for packet in self.stream.encode():
            self.container.mux(packet)
        astream = self.audio_stream
        if astream is not None and audio is not None and audio.shape[-1] > 0:
            layout = "mono" if astream.layout.nb_channels == 1 else "stereo"
            samples = audio[:1] if layout == "mono" else (
                audio[:2] if audio.shape[0] >= 2 else np.repeat(audio[:1], 2, axis=0))
            sample_rate = astream.rate
            for start in range(0, samples.shape[1], AUDIO_CHUNK):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start:start + AUDIO_CHUNK]), format="fltp",
                    layout=layout)
                frame.sample_rate, frame.pts = int(sample_rate), start
                for packet in astream.encode(frame):
                    self.container.mux(packet)
            for packet in astream.encode():
                self.container.mux(packet)
        self.container.close()

    def abort(self):
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        if isinstance(self.destination, (str, os.PathLike)):
            Path(self.destination).unlink(missing_ok=True)


def _even(n: int) -> int:
    return int(n) + int(n) % 2


def output_samples(end_time: float, sample_rate: int) -> int:
    return int(math.floor(end_time * sample_rate + 0.5))


class FrameReader:
    """Decoded frames by index, in any order, holding at most a block of frames: forward runs
    decode straight on, a jump back seeks to the keyframe before it, and a backward run (the
    pingpong mode) is read a block at a time and served from the end of the block. Frames are
    identified by their presentation timestamps from a first pass (`pts`, one per index)."""

    def __init__(self, source, pts: list[int], times: list[float], block_bytes: int = 256 << 20,
                 frame_bytes: int = 1):
        self.source = source
        self.index_of = {p: i for i, p in enumerate(pts)}
        self.times = times
        self.block = max(4, block_bytes // max(1, frame_bytes))
        self._stream = None  # (generator, index of the next frame it yields)
        self._cache: dict[int, np.ndarray] = {}
        self._previous = -1
        self.seeks = 0

    def read(self, index: int) -> np.ndarray:
        """Frame `index` (RGB uint8); the array may be shared with the next read of the same
        index, so copy it before changing it."""
        going_back = index < self._previous
        self._previous = index
        if index in self._cache:
            return self._cache[index]
        if going_back:
            return self._read_block(index)
        if self._stream is None or self._stream[1] > index:
            self._start(index)
        generator, _ = self._stream
        for _, pts, rgb in generator:
            i = self.index_of.get(pts)
            if i is None or i < index:
                continue
            self._stream = (generator, i + 1)
            self._cache = {i: rgb}  # the last frame stays: a held frame is read again
            if i == index:
                return rgb
            break
        raise VideoInputError(f"frame {index} could not be decoded again; the file changed or is "
                              "damaged.")

    def _start(self, index: int):
        self.seeks += 1 if index > 0 else 0
        self._stream = (decode(self.source, start_time=self.times[index] if index > 0 else None), 0)

    def _read_block(self, index: int) -> np.ndarray:
        first = max(0, index - self.block + 1)
        self.seeks += 1
        cache = {}
        for _, pts, rgb in decode(self.source, start_time=self.times[first] if first > 0 else None):
            i = self.index_of.get(pts)
            if i is None or i < first:
                continue
            cache[i] = rgb
            if i >= index:
                break
        if index not in cache:
            raise VideoInputError(f"frame {index} could not be decoded again; the file changed or "
                                  "is damaged.")
        self._cache, self._stream = cache, None
        return cache[index]
