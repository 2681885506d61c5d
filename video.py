"""Streamed video in and out with PyAV (ComfyUI's own video library): frames are decoded and
encoded one at a time, so no step holds a whole clip. No ComfyUI import.

What a player shows is what the pipeline sees and what it writes back:
- frames are turned upright by the display matrix (portrait phone video) and written upright;
- YUV is converted with the source's own matrix and range (untagged: the players' convention,
  BT.709 from HD up, BT.601 below) and written back with the same matrix, range and colour
  description, so a pixel no face touched decodes as it did, in any player;
- times are the file's own presentation times (seconds on its clock), so a sound track that
  starts before or after the picture stays where it was.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")

OUTPUT_TIME_BASE = Fraction(1, 90000)  # fine enough for any frame time (the MPEG clock)
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
AUDIO_AHEAD = 0.5  # seconds of sound muxed ahead of the picture: the two streams interleave
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # what the output may be
# FFmpeg demuxers that open any text or data file as "video"; none of them is a recording.
NOT_VIDEO_FORMATS = {"tty", "bin", "xbin", "adf", "idf", "image2pipe", "data"}

# AVColorSpace values (libavutil/pixfmt.h) -> swscale's SWS_CS_* number for that YUV matrix
# (numbers, not names: PyAV 14 has no name for BT.2020)
_SWS_BT709, _SWS_BT601 = 1, 5
_MATRIX_NAMES = {1: _SWS_BT709, 4: 4, 5: _SWS_BT601, 6: _SWS_BT601, 7: 7, 9: 9, 10: 9}
_UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED
_RANGE_JPEG = 2  # AVCOL_RANGE_JPEG: full range
_HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}
# bicubic chroma, as FFmpeg's own scaler defaults to (bilinear blurs colour edges)
_INTERPOLATION = "BICUBIC"


class VideoInputError(HaloLipsyError):
    """The video cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Window:
    """The part of a file that is used: a trim on its clock (seconds; duration 0: to the end)
    and a crop (x, y, width, height) of the upright picture. ComfyUI's Trim Video and Load
    Video's edit input make these."""

    start: float = 0.0
    duration: float = 0.0
    crop: tuple | None = None
    size: tuple | None = None  # (width, height) the VIDEO says its frames have, when it says

    def contains(self, t: float) -> bool:
        return t >= self.start - 1e-9 and (not self.duration or t < self.start + self.duration - 1e-9)


@dataclass(frozen=True)
class Colour:
    """How the source's YUV maps to RGB (AVColorSpace / AVColorRange / primaries / transfer
    values; 2 = unspecified)."""

    matrix: int = _UNSPECIFIED
    range: int = 0
    primaries: int = _UNSPECIFIED
    trc: int = _UNSPECIFIED
    full_range_format: bool = False  # a yuvj* pixel format: full range whatever the tag says

    @property
    def full(self) -> bool:
        return self.range == _RANGE_JPEG or self.full_range_format

    def conversion_matrix(self, width: int, height: int) -> int:
        """swscale's number for the matrix to convert with: the tagged one, or for untagged
        video the one players assume (BT.709 from HD up, BT.601 below; mpv's rule). Encoding
        back with the same matrix and no tag keeps the YUV values, so every player shows input
        and output alike."""
        matrix = _MATRIX_NAMES.get(self.matrix)
        if matrix is None:
            matrix = _SWS_BT709 if width >= 1280 or height > 576 else _SWS_BT601
        return matrix

    def for_output(self, width: int, height: int, coded_size) -> "Colour":
        """The description to write on an output of `width` x `height`: the source's, except
        for an untagged source cropped across the HD line, whose matrix players would then
        guess differently: that output names the matrix its samples were made with."""
        if self.matrix in _MATRIX_NAMES:
            return self
        used = self.conversion_matrix(*coded_size)
        if used == self.conversion_matrix(width, height):
            return self
        return replace(self, matrix=1 if used == _SWS_BT709 else 6)  # bt709 / smpte170m

    @property
    def hdr(self) -> str | None:
        return _HDR_TRANSFERS.get(self.trc)



@dataclass
class VideoInfo:
    width: int  # of the frames the pipeline sees: upright, cropped
    height: int
    fps: Fraction  # the stream's nominal (average) rate
    duration: float | None  # seconds, when the container says
    frames: int | None  # frame count, when the container says (an estimate: progress only)
    has_audio: bool
    start: float = 0.0  # presentation time of the first frame used, on the file's clock
    quarter_turns: int = 0  # counter-clockwise quarter turns that make the picture upright
    colour: Colour = field(default_factory=Colour)
    coded_size: tuple = (0, 0)  # the stream's own width and height (before rotation)
    window: Window = field(default_factory=Window)
    end: float | None = None  # where the stream's last frame ends, when the container says

    def last_frame_duration(self, last_time: float, said: float | None) -> float | None:
        """How long the last frame (shown at `last_time`) lasts: what its frame said, else
        what the stream's end implies (PyAV 14 has no frame durations), if plausible."""
        if said:
            return said
        if self.end is not None and 0 < self.end - last_time <= 10 / float(self.fps):
            return self.end - last_time
        return None


def _rewind(source):
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _name(source, what: str) -> str:
    return f"{what} '{source}'" if isinstance(source, (str, os.PathLike)) else what


def _open(source, what: str = "the video"):
    """Open `source` for reading; `what` names it in messages (the video, the speech file)."""
    import av

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists() and "%" not in path.name:  # img%03d.png: FFmpeg's image sequences
            raise VideoInputError(f"{_name(source, what)} does not exist; check the path.")
        if path.is_dir():
            raise VideoInputError(f"{_name(source, what)} is a folder; give a file.")
        if path.exists() and not os.access(path, os.R_OK):
            raise VideoInputError(f"{_name(source, what)} cannot be read (permission denied); "
                                  "check the file's permissions.")
    try:
        container = av.open(_rewind(source), mode="r")
    except PermissionError:
        raise VideoInputError(f"{_name(source, what)} cannot be read (permission denied); check "
                              "the file's permissions.") from None
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoInputError(f"{_name(source, what)} is not a media file that can be read "
                              f"({err}). Give a video (mp4, mov, mkv, webm ...) or, for speech, "
                              "an audio file (wav, mp3, m4a, flac ...).") from None
    if container.format.name in NOT_VIDEO_FORMATS:
        container.close()
        raise VideoInputError(f"{_name(source, what)} is not a media file (FFmpeg reads it as "
                              f"'{container.format.name}', a text or data file). Give a video "
                              "or audio file.")
    return container


# ---------------------------------------------------------------------------- the picture


def probe(source, window: Window = Window()) -> VideoInfo:
    """What the first video stream is: size as shown, rate, colour and where it starts. Decodes
    the first frame in `window` (the display matrix and colour tags live on frames)."""
    with _open(source) as container:
        stream = _video_stream(container)
        if stream is None:
            kind = "an audio file" if container.streams.audio else "no video"
            raise VideoInputError(f"{_name(source, 'the video')} has no video stream ({kind}). "
                                  "Give a video with picture; speech alone goes into the audio "
                                  "input (the node's 'audio', or --audio).")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise VideoInputError(f"{_name(source, 'the video')} has no frame rate; re-encode it "
                                  "with one.")
        duration = end = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
            end = float(((stream.start_time or 0) + stream.duration) * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if window.start or window.duration:
            end = duration if duration is not None else math.inf
            if window.duration:
                end = min(end, window.start + window.duration)
            duration = max(0.0, end - window.start) if math.isfinite(end) else None
        frames = int(stream.frames) if stream.frames and not (window.start or window.duration) \
            else (int(round(duration * float(rate))) if duration else None)
        first = _first_frame(container, stream, window)
        if first is None:
            raise VideoInputError(f"{_name(source, 'the video')} has no frames that can be decoded"
                                  f"{' in the trimmed part' if window.start or window.duration else ''}"
                                  " (0 s long, or damaged). Give another video.")
        frame, time_s = first
        turns = int(round((frame.rotation or 0) / 90)) % 4
        colour = _colour_of(frame, stream)
        width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        crop = _crop_rect(window.crop, width, height)
        if crop is not None:
            width, height = crop[2], crop[3]
        said = None if window.size is None else tuple(int(v) for v in window.size)
        if said is not None and said != (width, height) and (crop is not None or said != (frame.width, frame.height)):
            raise VideoInputError(
                f"this VIDEO's frames are {said[0]}x{said[1]} (it was resized), but its file holds "
                f"{width}x{height}, and Halo-Lipsy (Video) streams the file: it cannot apply the "
                "resize. Resize after Halo-Lipsy (Video), or Save Video and Load Video the resized "
                "result first.")
        return VideoInfo(int(width), int(height), Fraction(rate), duration, frames,
                         _audio_stream(container) is not None, time_s, turns, colour,
                         (int(frame.width), int(frame.height)),
                         Window(window.start, window.duration, crop, window.size),
                         None if window.duration and end is not None and end > window.start + window.duration else end)


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: cover art, stored as a one-frame video stream


def _video_stream(container):
    """The picture: the first video stream that is not cover art (MP4 and MKV files may list
    an attached picture first); None when there is none."""
    for stream in container.streams.video:
        if not _flags(getattr(stream, "disposition", 0)) & _ATTACHED_PIC:
            return stream
    return None


def _first_frame(container, stream, window: Window):
    """The first decodable frame inside `window` and its time, or None."""
    for t, _, frame in _frames_in(container, stream, window, quiet=True):
        return frame, t
    return None


def _frames_in(container, stream, window: Window, seek_to: float | None = None, quiet=False):
    """(time on the file's clock, pts, frame) for each frame of an open stream inside `window`,
    from the keyframe before `seek_to` (earlier frames are yielded too: callers skip by time).
    A packet that fails to decode is skipped, with a warning naming its time unless `quiet`;
    a frame that repeats the previous one's timestamp is skipped (no player can show both)."""
    import av

    start = max(window.start, seek_to or 0.0)
    if start > 0:
        _seek(container, stream, start)
    last_pts, repeats = None, 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as err:
            if not quiet:  # threaded decoders report an error a few packets late: "near"
                when = "" if packet.pts is None else f" near {float(packet.pts * stream.time_base):.2f} s"
                logger.warning("Halo-Lipsy: a damaged video packet%s could not be decoded (%s); "
                               "its frame is missing from the output.", when, err)
            continue
        for frame in frames:
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                continue
            t = float(pts * stream.time_base)
            if t < window.start - 1e-9:
                continue
            if not window.contains(t):
                return
            if last_pts is not None and pts <= last_pts:
                repeats += 1
                if repeats == 1 and not quiet:
                    logger.warning("Halo-Lipsy: frames at %.3f s repeat an earlier timestamp; "
                                   "such frames are skipped (a player cannot show them).", t)
                continue
            last_pts = pts
            yield t, pts, frame


def _seek(container, stream, seconds: float):
    import av

    try:
        container.seek(int(seconds / stream.time_base), backward=True, any_frame=False,
                       stream=stream)
    except av.error.FFmpegError:
        container.seek(0, stream=stream)


def _colour_of(frame, stream) -> Colour:
    context = stream.codec_context

    def tag(name):  # the frame's tag, else the stream's; 0 (reserved / RGB) counts as unset
        for value in (getattr(frame, name, None), getattr(context, name, None)):
            if value is not None and int(value) not in (0, _UNSPECIFIED):
                return int(value)
        return _UNSPECIFIED

    color_range = int(getattr(frame, "color_range", 0) or getattr(context, "color_range", 0) or 0)
    return Colour(matrix=tag("colorspace"), range=color_range, primaries=tag("color_primaries"),
                  trc=tag("color_trc"), full_range_format=frame.format.name.startswith("yuvj"))


def _crop_rect(crop, width: int, height: int):
    """(x, y, w, h) clamped inside width x height, or None for no crop (as ComfyUI clamps)."""
    if crop is None:
        return None
    x, y, w, h = (int(v) for v in crop)
    x, y = max(0, min(x, width - 1)), max(0, min(y, height - 1))
    w, h = max(1, min(w, width - x)), max(1, min(h, height - y))
    if (x, y, w, h) == (0, 0, width, height):
        return None
    return x, y, w, h


def to_rgb(frame, info: VideoInfo) -> np.ndarray:
    """One decoded frame as the pipeline sees it: RGB uint8, converted with the source's matrix
    and range, at the stream's first size, upright, cropped."""
    colour = info.colour
    coded_w, coded_h = info.coded_size
    rgb = frame.reformat(
        width=coded_w, height=coded_h, format="rgb24",
        src_colorspace=colour.conversion_matrix(coded_w, coded_h),
        src_color_range="JPEG" if colour.full else "MPEG",
        interpolation=_INTERPOLATION).to_ndarray()
    if info.quarter_turns:
        rgb = np.rot90(rgb, k=info.quarter_turns)
    crop = info.window.crop
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
    crop = info.window.crop
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
        frame = frame.reformat(width=coded_w, height=coded_h, format="yuv420p",
                               src_colorspace=matrix, dst_colorspace=matrix,
                               src_color_range=value_range, dst_color_range=value_range,
                               interpolation=_INTERPOLATION)
    y, u, v = (_plane(p) for p in frame.planes[:3])
    if info.quarter_turns:
        y, u, v = (np.rot90(p, k=info.quarter_turns) for p in (y, u, v))
    if crop is not None:
        x0, y0, w, h = crop
        y = y[y0:y0 + h, x0:x0 + w]
        u, v = (p[y0 // 2:(y0 + h + 1) // 2, x0 // 2:(x0 + w + 1) // 2] for p in (u, v))
    return pack_yuv(y, u, v)


def _plane(plane) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def pack_yuv(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Y (H x W) and chroma (ceil(H/2) x ceil(W/2)) planes -> a new packed (H2 * 3/2, W2)
    yuv420p array with H2, W2 even (the last row or column repeated)."""
    height, width = y.shape
    h2, w2 = _even(height), _even(width)
    out = np.empty((h2 * 3 // 2, w2), np.uint8)
    out[:height, :width] = y
    out[height:h2, :width] = y[-1:]  # odd sides: repeat the edge
    out[:h2, width:w2] = out[:h2, width - 1:width]
    chroma = out[h2:].reshape(-1)
    quarter = h2 * w2 // 4
    chroma[:quarter] = u.reshape(-1)
    chroma[quarter:] = v.reshape(-1)
    return out


def _planes_of(packed: np.ndarray):
    """Views of a packed yuv420p array's Y, U and V planes."""
    h2, w2 = packed.shape[0] * 2 // 3, packed.shape[1]
    chroma = packed[h2:].reshape(-1)
    quarter = h2 * w2 // 4
    return (packed[:h2], chroma[:quarter].reshape(h2 // 2, w2 // 2),
            chroma[quarter:].reshape(h2 // 2, w2 // 2))


def frame_duration(frame) -> float | None:
    """How long the file shows `frame` (seconds), when it says (PyAV 15+ exposes it)."""
    duration = getattr(frame, "duration", None)
    if not duration or frame.time_base is None:
        return None
    return float(duration * frame.time_base)


def decode(source, info: VideoInfo, seek_to: float | None = None):
    """Yield (time in seconds on the file's clock, pts, decoded frame) for every frame in
    `info.window` (see `_frames_in`: damaged packets and repeated timestamps are skipped);
    `to_rgb` and `to_yuv` turn a frame into what the pipeline works on, scaling a frame of
    another size to the first one's."""
    with _open(source) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        resized = False
        for t, pts, frame in _frames_in(container, stream, info.window, seek_to):
            if not resized and (frame.width, frame.height) != tuple(info.coded_size):
                resized = True
                logger.warning("Halo-Lipsy: the video changes size at %.2f s (%dx%d -> %dx%d); "
                               "later frames are scaled to the first size.", t,
                               *info.coded_size, frame.width, frame.height)
            yield t, pts, frame


# ---------------------------------------------------------------------------- the sound


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
        if _flags(getattr(stream, "disposition", 0)) & 1:  # AV_DISPOSITION_DEFAULT
            return stream
    return streams[0] if streams else None


def _flags(value) -> int:
    """An FFmpeg flag set as an int (PyAV gives an int, or a Flag enum on some versions)."""
    return int(getattr(value, "value", value) or 0)


SOUND_TOLERANCE = 0.002  # seconds: timestamps closer than this to where the sound runs are on time


class _Placement:
    """Decoded sound placed on the file's clock by each chunk's own timestamp, as players place
    it: a hole (dropped audio, a damaged packet) stays a hole, filled with silence; an overlap is
    trimmed. Chunks before `window` are skipped and the sound stops at its end."""

    def __init__(self, rate: int, window: Window):
        self.rate, self.window = rate, window
        self.chunks, self.length, self.start = [], 0, None
        self.holes: list[tuple[float, float]] = []  # (where, how long) in seconds

    def put(self, t: float | None, data: np.ndarray):
        """`data` [C, n] whose first sample is shown at `t` (None: right after the last)."""
        if self.start is None:
            end = (t or 0.0) + data.shape[1] / self.rate
            if end <= self.window.start + 1e-9:
                return
            t = t or 0.0
            skip = max(0, int(round((self.window.start - t) * self.rate)))
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
        if self.window.duration:
            limit = int(round((self.window.start + self.window.duration - self.start) * self.rate))
            data = data[:, :max(0, limit - self.length)]
        if data.shape[1]:
            self.chunks.append(np.ascontiguousarray(data, dtype=np.float32))
            self.length += data.shape[1]

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks, axis=1)


def read_audio(source, window: Window = Window(), what: str = "the video") -> AudioTrack | None:
    """The file's audio stream (the default one) within `window`, in its own channels and rate,
    placed by every chunk's timestamp (see _Placement), with the time of its first sample and its
    channels' names; None without one. Damaged packets are replaced by silence of their length,
    and one warning names where the sound had holes."""
    import av

    with _open(source, what) as container:
        stream = _audio_stream(container)
        if stream is None:
            return None
        resampler = placement = names = None
        damaged = []
        for packet in container.demux(stream):
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
                    placement = _Placement(frame.sample_rate, window)
                    names = _channel_names(frame.layout)
                t = float(frame.pts * frame.time_base) if frame.pts is not None else None
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


# ---------------------------------------------------------------------------- the output


def container_format(destination) -> str:
    """The muxer for `destination`'s extension (mp4, mov, mkv); a file object gets MP4."""
    if not isinstance(destination, (str, os.PathLike)):
        return "mp4"
    suffix = Path(destination).suffix.lower()
    if suffix not in CONTAINERS:
        raise VideoInputError(f"the output '{destination}' must end in "
                              f"{', '.join(CONTAINERS)} (H.264 + AAC fits those containers).")
    return CONTAINERS[suffix]


@dataclass
class Sound:
    """An output's sound track: samples [channels, T] float32 from time 0, their rate, and the
    AAC layout they are in (aac_layout)."""

    samples: np.ndarray
    rate: int
    layout: str


class VideoWriter:
    """H.264 + AAC, frames written as they come, each at its own time. `quality` is x264's CRF
    (1 best, 51 worst; 18-23 look like the source). `colour` is the source's: the YUV is made
    with its matrix and range and carries its description (untagged stays untagged). The
    `sound` is muxed as the picture goes (the streams interleave) and an MP4 or MOV file gets its
    index at the front, so it starts playing before it has fully arrived. On any failure,
    `abort()` closes and deletes the file, so nothing half-written stays behind. The container
    follows the destination's extension (a file object gets MP4)."""

    def __init__(self, destination, width: int, height: int, fps: Fraction, quality: int,
                 colour: Colour = Colour(), sound: Sound | None = None):
        import av

        self.destination = destination
        fmt = container_format(destination)
        faststart = fmt in ("mp4", "mov") and isinstance(destination, (str, os.PathLike))
        self.container = av.open(destination, mode="w", format=fmt,
                                 options={"movflags": "+faststart"} if faststart else {})
        stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        stream.width, stream.height = _even(width), _even(height)
        stream.pix_fmt = "yuv420p"
        stream.time_base = OUTPUT_TIME_BASE
        context = stream.codec_context
        context.time_base = OUTPUT_TIME_BASE
        # the source's description goes into the H.264 VUI and the container; unspecified
        # values write nothing, so an untagged source stays untagged
        context.colorspace, context.color_range = colour.matrix, _RANGE_JPEG if colour.full else colour.range
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        stream.options = {"crf": str(int(quality)), "preset": "veryfast"}
        self.stream, self.colour = stream, colour
        self.matrix = colour.conversion_matrix(width, height)
        self.audio = None if sound is None or sound.samples.shape[-1] == 0 else _AudioOut(self.container, sound)
        self.size = (width, height)
        self.frames = 0
        self.last_pts = -1
        self.durations: dict[int, int] = {}  # pts -> duration of frames still in the encoder
        self.end_pts = 0  # where the last frame written ends
        self.first_dts = None

    def write(self, rgb: np.ndarray, time_s: float, duration_s: float, yuv: np.ndarray | None = None,
              edits=()):
        """Encode one frame shown at `time_s` for `duration_s` (the file then says how long each
        frame lasts, the last one included, so the picture ends where the sound does). With
        `yuv` (`to_yuv` of the source frame) the frame is encoded from the source's own samples
        and only the pixels `edits` changed are converted from `rgb`: each edit is (box, the
        box's pixels before the change). Without it, the whole frame is converted from `rgb`."""
        import av

        if yuv is None:
            if rgb.shape[1] % 2 or rgb.shape[0] % 2:  # yuv420p needs even sides: repeat the edge
                rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
            frame = self._to_yuv420(rgb)
        else:
            for box, before in edits:
                self._merge(yuv, rgb, box, before)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.colorspace = self.colour.matrix
        frame.color_range = _RANGE_JPEG if self.colour.full else self.colour.range
        pts = max(self.last_pts + 1, int(round(time_s / OUTPUT_TIME_BASE)))
        frame.pts, frame.time_base = pts, OUTPUT_TIME_BASE
        self.last_pts = pts
        self.durations[pts] = max(1, int(round(duration_s / OUTPUT_TIME_BASE)))
        self.end_pts = pts + self.durations[pts]
        self._mux(self.stream.encode(frame))
        if self.audio is not None:
            self.audio.write_until(time_s + AUDIO_AHEAD)
        self.frames += 1

    def _to_yuv420(self, rgb: np.ndarray):
        import av

        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p", dst_colorspace=self.matrix,
            dst_color_range="JPEG" if self.colour.full else "MPEG", interpolation=_INTERPOLATION)

    def _merge(self, yuv: np.ndarray, rgb: np.ndarray, box, before: np.ndarray):
        """Write the pixels of `rgb` inside `box` that differ from `before` into `yuv` (luma per
        pixel, chroma per 2x2 block that holds a changed pixel)."""
        x1, y1, x2, y2 = box
        changed_box = (rgb[y1:y2, x1:x2] != before).any(axis=-1)
        if not changed_box.any():
            return
        h2, w2 = yuv.shape[0] * 2 // 3, yuv.shape[1]
        ex1, ey1 = x1 - x1 % 2, y1 - y1 % 2  # the box grown to whole 2x2 chroma blocks
        ex2, ey2 = min(w2, x2 + x2 % 2), min(h2, y2 + y2 % 2)
        region = rgb[ey1:ey2, ex1:ex2]
        if region.shape[:2] != (ey2 - ey1, ex2 - ex1):  # an odd frame's padded edge
            region = np.pad(region, ((0, ey2 - ey1 - region.shape[0]), (0, ex2 - ex1 - region.shape[1]),
                                     (0, 0)), mode="edge")
        changed = np.zeros((ey2 - ey1, ex2 - ex1), bool)
        changed[y1 - ey1:y2 - ey1, x1 - ex1:x2 - ex1] = changed_box
        converted = self._to_yuv420(region)
        new_y, new_u, new_v = (_plane(p) for p in converted.planes[:3])
        plane_y, plane_u, plane_v = _planes_of(yuv)
        plane_y[ey1:ey2, ex1:ex2][changed] = new_y[changed]
        blocks = changed.reshape(changed.shape[0] // 2, 2, changed.shape[1] // 2, 2).any(axis=(1, 3))
        plane_u[ey1 // 2:ey2 // 2, ex1 // 2:ex2 // 2][blocks] = new_u[blocks]
        plane_v[ey1 // 2:ey2 // 2, ex1 // 2:ex2 // 2][blocks] = new_v[blocks]

    def _mux(self, packets, last: bool = False):
        """Mux the encoder's packets, each with its frame's own duration (the encoder returns
        them later and in another order: matched by pts). MP4 counts a track's length in
        decoding order, from the first packet's dts to the last one's dts plus its duration;
        with reordered (B-) frames the last packet decoded is not the last shown, so with
        `last` the final packet's duration is the one that ends the track where the last frame
        shown ends (a VFR clip's picture then ends with its sound)."""
        packets = list(packets)
        for k, packet in enumerate(packets):
            if self.first_dts is None and packet.dts is not None:
                self.first_dts = packet.dts
            duration = self.durations.pop(packet.pts, None)
            if last and k == len(packets) - 1 and packet.dts is not None:
                duration = self.end_pts - packet.dts + min(0, self.first_dts)
            if duration and duration > 0:
                packet.duration = duration
            self.container.mux(packet)

    def finish(self):
        """Flush the picture and the rest of the sound, and close."""
        self._mux(self.stream.encode(), last=True)
        if self.audio is not None:
            self.audio.write_until(None)
        self.container.close()

    def abort(self):
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        if isinstance(self.destination, (str, os.PathLike)):
            Path(self.destination).unlink(missing_ok=True)


class _AudioOut:
    """The sound of a VideoWriter: AAC at the AAC rate nearest its own, written a chunk at a time
    as the picture advances. Frames are made packed and converted to planar by FFmpeg (making
    planar frames of 8 channels crashes PyAV 18)."""

    def __init__(self, container, sound: Sound):
        import av

        self.rate = aac_rate(int(sound.rate))
        samples = sound.samples if self.rate == sound.rate else resample(sound.samples, sound.rate, self.rate)
        self.samples = np.ascontiguousarray(samples.T, dtype=np.float32)  # [T, C]: packed
        self.layout = sound.layout
        self.stream = container.add_stream("aac", rate=self.rate, layout=self.layout)
        self.container = container
        self.to_planar = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.done = 0

    def write_until(self, time_s: float | None):
        """Encode the sound up to `time_s` seconds (None: all of it, then flush)."""
        import av

        stop = len(self.samples) if time_s is None else min(len(self.samples), int(time_s * self.rate))
        while self.done < stop:
            chunk = self.samples[self.done:self.done + AUDIO_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=self.layout)
            frame.sample_rate, frame.pts = self.rate, self.done
            for planar in self.to_planar.resample(frame):
                self._encode(planar)
            self.done += len(chunk)
        if time_s is None:
            for planar in self.to_planar.resample(None):
                self._encode(planar)
            self._encode(None)

    def _encode(self, frame):
        for packet in self.stream.encode(frame):
            self.container.mux(packet)


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """[C, T] band-limited polyphase resampling."""
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(new_rate))
    return resample_poly(samples, new_rate // g, rate // g, axis=1).astype(np.float32, copy=False)


def _even(n: int) -> int:
    return int(n) + int(n) % 2


def output_samples(end_time: float, sample_rate: int) -> int:
    return int(math.floor(end_time * sample_rate + 0.5))


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
