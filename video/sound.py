"""The sound track: read on the file's clock (run on where it starts again: clock.py) with its
channels' names, and the layouts and rates AAC carries."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .clock import demux_on_clock
from .source import Edits, flag_bits, open_source

logger = logging.getLogger("HaloLipsy")


AUDIO_CHUNK = 1024  # samples per AAC frame
# The rates AAC can carry; others are resampled to the nearest of these from 16 kHz up (below
# 16 kHz the encoder's last frame overshoots the picture by up to 128 ms).
AAC_RATES = (16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
# The layouts AAC in MP4 carries, by their channels (FFmpeg's names, in its order); any other
# sound is mixed to stereo by channel name. Side speakers of 5.0 and 5.1 are written as the back
# ones: AAC has no side variant of those, and players put both to the sides.
AAC_LAYOUTS = {("FC",): "mono", ("FL", "FR"): "stereo", ("FL", "FR", "FC"): "3.0",
               ("FL", "FR", "BL", "BR"): "quad", ("FL", "FR", "FC", "BC"): "4.0",
               ("FL", "FR", "FC", "BL", "BR"): "5.0", ("FL", "FR", "FC", "LFE", "BL", "BR"): "5.1",
               ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"): "7.1"}
_SIDE_AS_BACK = {"SL": "BL", "SR": "BR"}


@dataclass
class AudioTrack:
    samples: np.ndarray  # [channels, T] float32
    rate: int
    start: float  # time of the first sample, on the file's clock (seconds)
    channels: tuple | None = None  # FFmpeg's channel names (FL, FR, FC, LFE, BL ...), when known


def _audio_stream(container):
    """The audio stream a player picks: the one marked default, else the first; streams FFmpeg
    cannot decode are passed over."""
    streams = [s for s in container.streams.audio if s.codec_context is not None]
    for stream in streams:
        if flag_bits(getattr(stream, "disposition", 0)) & 1:  # AV_DISPOSITION_DEFAULT
            return stream
    return streams[0] if streams else None


SOUND_TOLERANCE = 0.002  # seconds: timestamps closer than this to where the sound runs are on time


class _Placement:
    """Decoded sound placed on the file's clock by each chunk's own timestamp, as players place
    it: a hole (dropped audio, a damaged packet) stays a hole, filled with silence; an overlap is
    trimmed. Chunks before `edits` are skipped and the sound stops at its end."""

    def __init__(self, rate: int, edits: Edits):
        self.rate, self.edits = rate, edits
        self.chunks, self.length, self.start = [], 0, None
        self.holes: list[tuple[float, float]] = []  # (where, how long) in seconds

    def put(self, t: float | None, data: np.ndarray):
        """`data` [C, n] whose first sample is shown at `t` (None: right after the last)."""
        if self.start is None:
            end = (t or 0.0) + data.shape[1] / self.rate
            if end <= self.edits.start + 1e-9:
                return
            t = t or 0.0
            skip = max(0, int(round((self.edits.start - t) * self.rate)))
            data, self.start = data[:, skip:], t + skip / self.rate
        elif t is not None:
            at = int(round((t - self.start) * self.rate))
            if at > self.length + SOUND_TOLERANCE * self.rate:  # a hole: silence in its place
                self.holes.append((self.start + self.length / self.rate, (at - self.length) / self.rate))
                self._append(np.zeros((data.shape[0], at - self.length), np.float32))
            elif at < self.length - SOUND_TOLERANCE * self.rate:  # an overlap: keep what came first
                data = data[:, self.length - at:]
        self._append(data)

    def _append(self, data: np.ndarray):
        if self.edits.duration:
            limit = int(round((self.edits.start + self.edits.duration - self.start) * self.rate))
            data = data[:, :max(0, limit - self.length)]
        if data.shape[1]:
            self.chunks.append(np.ascontiguousarray(data, dtype=np.float32))
            self.length += data.shape[1]

    @property
    def full(self) -> bool:
        """The trim's end is reached: nothing after it is kept."""
        return bool(self.edits.duration) and self.start is not None and \
            self.start + self.length / self.rate >= self.edits.start + self.edits.duration - 1e-9

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks, axis=1)


def read_audio(source, edits: Edits = Edits(), what: str = "the video") -> AudioTrack | None:
    """The file's audio stream (the default one) within `edits`, in its own channels and rate,
    placed by every chunk's timestamp (see _Placement), with the time of its first sample and its
    channels' names; None without one. Damaged packets are replaced by silence of their length,
    and one warning names where the sound had holes."""
    import av

    with open_source(source, what) as container:
        stream = _audio_stream(container)
        if stream is None:
            return None
        resampler = placement = names = None
        damaged = []
        packets, clock = demux_on_clock(container, stream)
        for packet in packets:
            if placement is not None and placement.full:
                break  # the rest of a long file lies past the trim
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                if packet.pts is not None:
                    damaged.append(float(packet.pts * stream.time_base))
                continue
            for frame in decoded:
                if resampler is None:
                    # packed float in the frame's own layout and rate: reading planar frames of
                    # 8 channels crashes PyAV 18 (a bad plane pointer), packed ones never
                    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
                    placement = _Placement(frame.sample_rate, edits)
                    names = _channel_names(frame.layout)
                t = float(frame.pts * frame.time_base) if frame.pts is not None else None
                if clock is not None and t is not None:
                    t = clock.frame_time(stream.index, t)
                for out in resampler.resample(frame):
                    placement.put(t, _unpacked(out))
                    t = None
        if resampler is not None:
            for out in resampler.resample(None):
                placement.put(None, _unpacked(out))
        if placement is None or placement.start is None:
            return None
        _warn_holes(placement.holes, damaged)
        return AudioTrack(placement.samples(), int(placement.rate), placement.start, names)


def _unpacked(frame) -> np.ndarray:
    """A packed float frame's samples as [channels, n]."""
    channels = len(frame.layout.channels)
    return frame.to_ndarray().reshape(-1, channels).T


def _channel_names(layout) -> tuple | None:
    """FFmpeg's names for a layout's channels, or None where the layout only counts them."""
    names = tuple(getattr(c, "name", "") for c in layout.channels)
    return names if all(n and not n.startswith("USR") and n != "NONE" for n in names) else None


def _warn_holes(holes, damaged):
    if not holes and not damaged:
        return
    where = ", ".join(f"{at:.2f} s ({length:.2f} s)" for at, length in holes[:6])
    more = f" and {len(holes) - 6} more" if len(holes) > 6 else ""
    broken = (f"; {len(damaged)} damaged packet(s) near {', '.join(f'{t:.2f} s' for t in damaged[:6])} "
              "could not be decoded" if damaged else "")
    logger.warning("Halo-Lipsy: the sound has holes at %s%s%s: filled with silence of their "
                   "length, so everything after them stays on the file's clock.", where or "none",
                   more, broken)


def aac_layout(channels: tuple) -> str | None:
    """The AAC layout that carries `channels` (FFmpeg's names) as they are, or None."""
    channels = tuple(channels)
    return AAC_LAYOUTS.get(channels) or AAC_LAYOUTS.get(tuple(_SIDE_AS_BACK.get(c, c) for c in channels))


def aac_rate(rate: int) -> int:
    """The AAC rate closest to `rate` (from 16 kHz up)."""
    return min(AAC_RATES, key=lambda r: (abs(r - rate), -r))


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """[C, T] band-limited polyphase resampling."""
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(new_rate))
    return resample_poly(samples, new_rate // g, rate // g, axis=1).astype(np.float32, copy=False)


def output_samples(end_time: float, sample_rate: int) -> int:
    return int(math.floor(end_time * sample_rate + 0.5))
