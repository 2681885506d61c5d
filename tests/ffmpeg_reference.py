"""An independent reference for the media tests: the ffmpeg binary of the imageio-ffmpeg wheel
makes the inputs (real colour tags, display matrices, start offsets, channel layouts, odd rates)
and reads the outputs back. Nothing here uses the pack's reader or writer, so a test built on it
checks what a player would show, not a round trip through our own code."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import imageio_ffmpeg
    FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
except Exception:  # noqa: BLE001 - the tests that need it fail with this message
    FFMPEG = None


def ffmpeg(*args) -> bytes:
    """Run the ffmpeg binary; its stdout, or AssertionError with its stderr."""
    assert FFMPEG, "the imageio-ffmpeg wheel (requirements-test.txt) provides the reference ffmpeg"
    done = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", *map(str, args)],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout


def encode(path, frames: np.ndarray, fps: float = 25.0, *, video_args=(), rgb_filter="",
           audio: np.ndarray | None = None, audio_rate: int = 48000, layout: str | None = None,
           video_delay: float = 0.0, audio_args=("-c:a", "aac")) -> Path:
    """Write RGB uint8 `frames` [N, H, W, 3] (and float `audio` [C, T]) with ffmpeg.
    `rgb_filter` converts the RGB (e.g. "scale=out_color_matrix=bt709,format=yuv420p");
    `video_args` add encoder options; `video_delay` starts the picture that many seconds after
    the sound (negative: before), as an edited or OBS-recorded file does."""
    path = Path(path)
    if audio is not None and video_delay:
        picture = encode(path.with_name(f"{path.stem}.picture{path.suffix}"), frames, fps,
                         video_args=video_args, rgb_filter=rgb_filter)
        sound = _encode_sound(path.with_name(f"{path.stem}.sound.mka"), audio, audio_rate, layout,
                              audio_args)
        late, early = (picture, sound) if video_delay > 0 else (sound, picture)
        ffmpeg("-itsoffset", abs(video_delay), "-i", late, "-i", early, "-map", "0", "-map", "1",
               "-c", "copy", path)
        picture.unlink()
        sound.unlink()
        return path
    raw = path.with_suffix(".rgb.raw")
    raw.write_bytes(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
    n, h, w, _ = frames.shape
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", fps, "-i", raw]
    pcm = None
    if audio is not None:
        pcm = _raw_pcm(path, audio)
        args += _pcm_input(pcm, audio, audio_rate, layout)
    args += ["-map", "0:v"] + (["-map", "1:a", *audio_args] if audio is not None else [])
    if rgb_filter:
        args += ["-vf", rgb_filter]
    args += ["-c:v", "libx264", "-preset", "ultrafast", *video_args, path]
    try:
        ffmpeg(*args)
    finally:
        raw.unlink(missing_ok=True)
        if pcm is not None:
            pcm.unlink(missing_ok=True)
    return path


def _raw_pcm(path: Path, audio: np.ndarray) -> Path:
    pcm = path.with_suffix(".pcm.raw")
    pcm.write_bytes(np.ascontiguousarray(audio.T, dtype="<f4").tobytes())
    return pcm


def _pcm_input(pcm: Path, audio: np.ndarray, rate: int, layout: str | None) -> list:
    return ["-f", "f32le", "-ar", rate, "-ac", audio.shape[0],
            *(["-ch_layout", layout] if layout else []), "-i", pcm]


def _encode_sound(path: Path, audio: np.ndarray, rate: int, layout, audio_args) -> Path:
    pcm = _raw_pcm(path, audio)
    try:
        ffmpeg(*_pcm_input(pcm, audio, rate, layout), *audio_args, path)
    finally:
        pcm.unlink(missing_ok=True)
    return path


def remux(source, target, *before_input) -> Path:
    """Copy the streams into a new file, with input options (e.g. -display_rotation 90)."""
    ffmpeg(*before_input, "-i", source, "-c", "copy", target)
    return Path(target)


@dataclass
class Description:
    width: int
    height: int
    pix_fmt: str
    colour: str  # what ffmpeg prints in the brackets: "tv, bt709", "pc", "" (untagged) ...
    rotation: float  # the display matrix's rotation, 0 without one
    audio_rate: int | None
    audio_layout: str | None
    container: str


def stream_text(path) -> str:
    """ffmpeg's own description of a file's streams (codec, profile, tags, side data)."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, timeout=60)
    return done.stderr.decode(errors="replace")


def describe(path) -> Description:
    """What ffmpeg says of the file's first video and audio streams."""
    text = stream_text(path)
    video = re.search(r"Stream #0:\d+[^:]*: Video: [^,]+(?:\([^)]*\))*, (\w+)(?:\(([^)]*)\))?, (\d+)x(\d+)", text)
    assert video, text
    tags = [t.strip() for t in (video.group(2) or "").split(",")
            if t.strip() not in ("progressive", "top first", "bottom first", "")]
    rotation = re.search(r"(?:displaymatrix|Display Matrix): rotation of (-?[\d.]+) degrees", text)
    audio = re.search(r"Audio: [^,]+, (\d+) Hz, ([^,]+),", text)
    container = re.search(r"Input #0, ([^,]+(?:,[^,' ]+)*), from", text)
    return Description(int(video.group(3)), int(video.group(4)), video.group(1), ", ".join(tags),
                       float(rotation.group(1)) if rotation else 0.0,
                       int(audio.group(1)) if audio else None, audio.group(2) if audio else None,
                       container.group(1) if container else "")


def frames(path, pix_fmt: str = "rgb24", vf: str = "") -> np.ndarray:
    """Every frame as a player shows it (ffmpeg rotates by the display matrix; none is
    repeated or dropped to make a constant rate), [N, H, W, 3]
    for rgb24; for yuv420p the raw planes of each frame, [N, H * 3 // 2, W]."""
    info = describe(path)
    w, h = (info.height, info.width) if round(info.rotation) % 180 else (info.width, info.height)
    data = ffmpeg("-i", path, *(["-vf", vf] if vf else []), "-fps_mode", "passthrough",
                  "-f", "rawvideo", "-pix_fmt", pix_fmt, "-")
    if vf and "crop" in vf:  # a test that crops knows the size; the caller reshapes
        return np.frombuffer(data, np.uint8)
    if pix_fmt == "rgb24":
        return np.frombuffer(data, np.uint8).reshape(-1, h, w, 3)
    return np.frombuffer(data, np.uint8).reshape(-1, h * 3 // 2, w)


def yuv_planes(path, vf: str = "format=yuv420p") -> np.ndarray:
    """The YUV 4:2:0 8-bit samples of every frame as stored (no colour conversion, no rotation):
    what the file says, before any player's assumption. [N, H * 3 // 2, W]."""
    info = describe(path)
    data = ffmpeg("-noautorotate", "-i", path, "-vf", vf, "-fps_mode", "passthrough", "-f",
                  "rawvideo", "-pix_fmt", "yuv420p", "-")
    return np.frombuffer(data, np.uint8).reshape(-1, info.height * 3 // 2, info.width)


def frame_times(path) -> tuple[np.ndarray, np.ndarray]:
    """(presentation times, mean luma) of each video frame, on the file's clock as a player
    starts it (the earliest stream at 0)."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-vf",
                           "showinfo", "-f", "null", "-"], capture_output=True, timeout=120)
    text = done.stderr.decode(errors="replace")
    times = [float(t) for t in re.findall(r"pts_time:\s*(-?[\d.e+-]+)", text)]
    means = [float(m) for m in re.findall(r"mean:\[(\d+(?:\.\d+)?)", text)]
    return np.asarray(times), np.asarray(means)


def audio(path, channels: int | None = None, rate: int | None = None) -> tuple[np.ndarray, int, float]:
    """(samples [C, T] float32, rate, start time on the same clock as frame_times)."""
    info = describe(path)
    rate = rate or info.audio_rate
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-af",
                           "ashowinfo", "-f", "null", "-"], capture_output=True, timeout=120)
    starts = re.findall(r"pts_time:\s*(-?[\d.e+-]+)", done.stderr.decode(errors="replace"))
    args = ["-i", path, "-map", "0:a:0"] + (["-ac", channels] if channels else []) + [
        "-ar", rate, "-f", "f32le", "-"]
    data = np.frombuffer(ffmpeg(*args), "<f4")
    count = channels or _channels(info.audio_layout)
    return data.reshape(-1, count).T.copy(), rate, float(starts[0]) if starts else 0.0


def _channels(layout: str) -> int:
    named = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "4.0": 4, "quad": 4, "5.0": 5,
             "5.0(side)": 5, "5.1": 6, "5.1(side)": 6, "6.1": 7, "7.1": 8}
    if layout in named:
        return named[layout]
    match = re.match(r"(\d+) channels", layout or "")
    return int(match.group(1)) if match else 2


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
