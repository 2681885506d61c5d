"""One orchestration for the IMAGE node, the VIDEO node and the command line.

    frames (IMAGE tensor, or a decoded stream) + AUDIO
      -> audio.py: one mel window per output frame
      -> face_detect: a box per input frame (S3FD with tracking, or a face_mask)
      -> wav2lip: crop, generate, paste
      -> frames out (a preallocated IMAGE + MASK, or an encoder)

This module knows no ComfyUI. Whoever calls it hands in a `Hooks` object: how to find the
checkpoint, how to place the generator (ComfyUI's model management, or torch's best device),
which face detector to use, where progress goes and how an interrupt is noticed. Data and calls
flow one way: node or command line -> pipeline -> stages.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

logger = logging.getLogger("HaloLipsy")

MODES = ("sequential", "repetitive", "pingpong")
MAX_GAP_SECONDS = 0.2  # faceless stretches up to this long between two faces are bridged
MEMORY_MARGIN_GB = 0.5  # kept free beyond the output, for the models, crops and the OS

LAST_RUN: dict = {}  # the numbers of the most recent run (the summary line, for tools and benchmarks)


class HaloLipsyError(ValueError):
    """Bad input or setup; the message says what to do."""


def _noop(*_args):
    return None


@dataclass
class Hooks:
    """What the caller decides. `load_generator(path, force_cpu, precision)` returns (model,
    device, dtype, memory_format); `detector(batch_size)` a face_detect.FaceDetector;
    `progress(fraction)` gets 0..1 over the whole run; `check_interrupt()` raises to stop."""

    resolve_checkpoint: Callable[[str], Path]
    load_generator: Callable[[Path, bool, str], tuple]
    detector: Callable[[int], object]
    progress: Callable[[float], None] = _noop
    check_interrupt: Callable[[], None] = _noop


def plain_hooks(search_dirs, detector=None, progress=_noop, check_interrupt=_noop) -> Hooks:
    """Hooks without ComfyUI (the command line, tests): checkpoints and the S3FD weights from
    `search_dirs`, the generator on torch's best device."""
    search_dirs = [Path(d) for d in search_dirs]

    def resolve(name):
        from .wav2lip import resolve_checkpoint
        return resolve_checkpoint(name, search_dirs)

    def load(path, force_cpu, precision):
        from .wav2lip import load_generator, pick_device
        device = pick_device(force_cpu)
        dtype, fmt = generator_format(device, precision)
        return load_generator(path, device, dtype, fmt), device, dtype, fmt

    def make_detector(batch_size):
        if detector is not None:
            return detector
        from .face_detect.s3fd import S3FDDetector, find_s3fd_weights
        return S3FDDetector(find_s3fd_weights(search_dirs), batch_size)

    return Hooks(resolve, load, make_detector, progress, check_interrupt)


def generator_format(device, precision: str, force_fp32: bool = False):
    """(dtype, memory format) for the generator on `device`; a precision the device would only
    emulate falls back to fp32, with one log line saying so."""
    from .wav2lip import pick_dtype, pick_memory_format

    dtype, note = pick_dtype(device, precision, force_fp32=force_fp32)
    if note:
        logger.warning("Halo-Lipsy: %s", note)
    return dtype, pick_memory_format(device)


@dataclass
class Settings:
    """The node's settings (its input names), checked by `validated()`."""

    checkpoint: str = "auto"
    mode: str = "sequential"
    face_detect_batch: int = 4
    inference_batch: int = 64
    force_cpu: bool = False
    sync_offset: float = 0
    mel_step_multiplier: float = 1.0
    face_padding: int = 10
    smooth_box_frames: int = 5
    blend_edges: bool = True
    blend_radius: int = 5
    precision: str = "auto"

    def validated(self) -> "Settings":
        from .wav2lip.device import PRECISIONS

        _check_mode(self.mode)
        if self.precision not in PRECISIONS:
            raise HaloLipsyError(f"Halo-Lipsy: precision '{self.precision}' is unknown; use one of "
                                 f"{', '.join(PRECISIONS)}.")
        return Settings(
            checkpoint=self.checkpoint, mode=self.mode,
            face_detect_batch=_whole_number("face_detect_batch", self.face_detect_batch),
            inference_batch=_whole_number("inference_batch", self.inference_batch),
            force_cpu=bool(self.force_cpu),
            sync_offset=_finite("sync_offset", self.sync_offset),
            mel_step_multiplier=_finite("mel_step_multiplier", self.mel_step_multiplier, positive=True),
            face_padding=_whole_number("face_padding", self.face_padding, 0),
            smooth_box_frames=_whole_number("smooth_box_frames", self.smooth_box_frames, 0),
            blend_edges=bool(self.blend_edges),
            blend_radius=_whole_number("blend_radius", self.blend_radius, 0),
            precision=self.precision)


def frame_schedule(mode: str, n_video: int, n_audio: int) -> np.ndarray:
    """For each output frame, the input frame it is made from (the mode table in
    the README)."""
    if mode == "sequential":
        return np.minimum(np.arange(max(n_video, n_audio)), n_video - 1)
    i = np.arange(n_audio)
    if _check_mode(mode) == "repetitive" or n_video == 1:
        return i % n_video
    period = 2 * (n_video - 1)  # pingpong
    j = i % period
    return np.where(j < n_video, j, period - j)


def _check_mode(mode):
    if mode not in MODES:
        raise HaloLipsyError(f"Halo-Lipsy: mode '{mode}' is unknown; use one of {', '.join(MODES)}.")
    return mode


def _validate_images(images):
    import torch

    if images is None:
        raise HaloLipsyError("Halo-Lipsy: no images: connect an IMAGE output (frames of a video, "
                             "or a single image) to the 'images' input.")
    if not isinstance(images, torch.Tensor):
        raise HaloLipsyError(f"Halo-Lipsy: 'images' is a {type(images).__name__}, not a ComfyUI "
                             "IMAGE tensor; connect an IMAGE output.")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise HaloLipsyError(f"Halo-Lipsy: 'images' has shape {tuple(images.shape)}; expected an "
                             "IMAGE [frames, height, width, 3 or 4 channels].")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise HaloLipsyError(f"Halo-Lipsy: 'images' is empty (shape {tuple(images.shape)}); the "
                             "video loader produced no frames. Check its path and frame limits.")
    if not (images.dtype.is_floating_point or images.dtype == torch.uint8):
        raise HaloLipsyError(f"Halo-Lipsy: 'images' has dtype {images.dtype}; expected float "
                             "pixels in [0, 1] (any float precision) or uint8 pixels in 0-255. "
                             "Convert the frames to a ComfyUI IMAGE first.")
    return images


def _whole_number(name, value, minimum=1):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or number < minimum:
        raise HaloLipsyError(f"Halo-Lipsy: {name} is {value!r}; it must be a whole number "
                             f">= {minimum}.")
    return number


def _finite(name, value, positive=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or (positive and number <= 0):
        raise HaloLipsyError(f"Halo-Lipsy: {name} is {value!r}; it must be a "
                             f"{'positive ' if positive else ''}finite number.")
    return number


def _allocate_output(n_out, height, width, channels):
    """(IMAGE, MASK) output tensors, refused with a clear message when they cannot fit in the
    memory actually available: under Linux overcommit torch.empty succeeds and the process is
    killed later while filling it, so the check must come first."""
    import psutil
    import torch

    need = n_out * height * width * (channels + 1) * 4
    available = psutil.virtual_memory().available
    margin = max(MEMORY_MARGIN_GB * 2**30, 0.1 * need)
    message = (f"Halo-Lipsy: not enough memory for the output ({n_out} frames of {width}x{height}: "
               f"{need / 2**30:.1f} GB of float32 IMAGE and MASK, with {available / 2**30:.1f} GB "
               "available). Use shorter audio or video, downscale the frames first, or use the "
               "Halo-Lipsy (Video) node, whose memory does not grow with length.")
    if need + margin > available:
        raise HaloLipsyError(message)
    try:
        return (torch.empty((n_out, height, width, channels), dtype=torch.float32),
                torch.zeros((n_out, height, width), dtype=torch.float32))
    except (RuntimeError, MemoryError):
        raise HaloLipsyError(message) from None


def _frame_list(frames) -> str:
    shown = ", ".join(str(int(f)) for f in frames[:8])
    return shown + (f" and {len(frames) - 8} more" if len(frames) > 8 else "")


@dataclass
class _Stages:
    """What every route sets up the same way: the audio, the generator, the box settings."""

    features: object
    generator: object
    device: object
    dtype: object
    box_settings: object
    setup_s: float = 0.0


def _set_up(audio, fps, settings: Settings, hooks: Hooks) -> _Stages:
    from . import audio as audio_mod
    from . import face_detect as fd
    from .wav2lip import BatchedGenerator, CheckpointError

    started = time.perf_counter()
    try:
        features = audio_mod.AudioFeatures(audio, fps)
    except audio_mod.AudioInputError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    try:
        path = hooks.resolve_checkpoint(settings.checkpoint)
        model, device, dtype, fmt = hooks.load_generator(path, settings.force_cpu, settings.precision)
    except CheckpointError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    box_settings = fd.BoxSettings(face_padding=settings.face_padding,
                                  smooth_box_frames=settings.smooth_box_frames,
                                  max_gap=max(1, int(round(MAX_GAP_SECONDS * features.fps))))
    generator = BatchedGenerator(model, device, dtype, settings.inference_batch, fmt)
    return _Stages(features, generator, device, dtype, box_settings,
                   setup_s=time.perf_counter() - started)


@contextlib.contextmanager
def _detection_errors(width, height):
    """A detector or mask problem becomes a HaloLipsyError with what to do."""
    from . import face_detect as fd
    from .face_detect.s3fd import DetectorWeightsError

    try:
        yield
    except (fd.MaskInputError, DetectorWeightsError) as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    except fd.DetectorError as err:
        raise HaloLipsyError(
            f"Halo-Lipsy: {err}. Frames of {width}x{height} could not be searched for a face; "
            "connect a face_mask (the face's region) to skip face detection.") from None


def _sync_faces(stages: _Stages, settings: Settings, frames, boxes, times, weights=None,
                on_slice=None) -> int:
    """Lip-sync `frames` (a list of H x W x C float32 [0, 1] arrays, written in place) whose
    face boxes are `boxes` (None: no face) and whose audio windows start at output times
    `times` (frame units: i for frame i at the nominal rate). `weights` (optional list of H x W
    arrays) receive the blend weights. Returns how many frames were synced."""
    from .wav2lip import face_input, paste

    faced = [k for k, box in enumerate(boxes) if box is not None]
    if not faced:
        return 0
    faces = np.stack([face_input(frames[k], boxes[k]) for k in faced])
    mels = stages.features.windows(np.asarray([times[k] for k in faced]), settings.sync_offset,
                                   settings.mel_step_multiplier)
    generated = stages.generator(mels, faces, on_slice=on_slice)
    for j, k in enumerate(faced):
        paste(frames[k], boxes[k], generated[j], settings.blend_edges, settings.blend_radius,
              weights_out=None if weights is None else weights[k])
    return len(faced)


def lipsync_images(images, audio, fps, settings: Settings, hooks: Hooks, face_mask=None):
    """The IMAGE route: returns (IMAGE float32 on the CPU, AUDIO, MASK).

    MASK holds, per output frame, the weight each pixel's generated value got (0 where the
    frame passed through)."""
    import torch

    from . import face_detect as fd
    from .wav2lip import clip_box

    images = _validate_images(images)
    settings = settings.validated()
    stages = _set_up(audio, fps, settings, hooks)
    features, fps = stages.features, stages.features.fps
    n_video, height, width, channels = (int(v) for v in images.shape)
    schedule = frame_schedule(settings.mode, n_video, features.n_frames)
    n_out = len(schedule)
    used = int(schedule.max()) + 1  # a prefix of the input frames is ever shown

    # -- face boxes, one row per input frame shown
    detect_share = 0.0 if face_mask is not None else 0.3
    t0 = time.perf_counter()
    stats = None
    with _detection_errors(width, height):
        if face_mask is not None:
            boxes = fd.mask_boxes(face_mask, n_video, height, width, stages.box_settings)[:used]
        else:
            detector = hooks.detector(settings.face_detect_batch)
            boxes, stats = fd.detect_boxes(images, used, detector, stages.box_settings,
                                           on_progress=lambda f: hooks.progress(detect_share * f),
                                           check_interrupt=hooks.check_interrupt)
    detect_s = time.perf_counter() - t0
    usable = [clip_box(b, height, width) if b[0] >= 0 else None for b in boxes]

    def generation_progress(fraction):
        hooks.progress(detect_share + (1.0 - detect_share) * fraction)

    # -- generation, streamed in chunks into one preallocated output
    t0 = time.perf_counter()
    out, mask_out = _allocate_output(n_out, height, width, channels)
    out_np, mask_np = out.numpy(), mask_out.numpy()  # shared memory: pasting writes the outputs
    scale_uint8 = images.dtype == torch.uint8
    synced, copy_s, non_finite = 0, 0.0, []
    batch = settings.inference_batch
    for start in range(0, n_out, batch):
        hooks.check_interrupt()
        stop = min(n_out, start + batch)
        t1 = time.perf_counter()
        for i in range(start, stop):
            out[i].copy_(images[int(schedule[i])])
        if scale_uint8:
            out[start:stop] /= 255.0
        copy_s += time.perf_counter() - t1

        def on_slice(done, total, start=start, stop=stop):
            hooks.check_interrupt()
            generation_progress((start + (stop - start) * done / max(1, total)) / n_out)

        # only float input can hold NaN or inf: the generator sees them as black (face_input)
        non_finite += [i for i in range(start, stop) if usable[schedule[i]] is not None
                       and not _box_is_finite(out_np[i], usable[schedule[i]])]
        synced += _sync_faces(stages, settings, [out_np[i] for i in range(start, stop)],
                              [usable[schedule[i]] for i in range(start, stop)],
                              list(range(start, stop)), [mask_np[i] for i in range(start, stop)],
                              on_slice)
        generation_progress(stop / n_out)
    generate_s = time.perf_counter() - t0

    faces_found = sum(u is not None for u in usable)
    if non_finite:
        logger.warning(
            "Halo-Lipsy: %d output frames have NaN or infinite pixels in the face box (frames %s): "
            "the generator saw them as black, and those pixels keep their invalid values. Check "
            "the node that made the images.", len(non_finite), _frame_list(non_finite))
    _report(stages, settings, n_video, n_out, faces_found, used, synced, detect_s, generate_s,
            stats, frame_copy_s=copy_s)
    return out, features.fitted_audio(n_out), mask_out


def _report(stages, settings, n_in, n_out, faces_found, shown, synced, detect_s, generate_s,
            stats, **extra):
    dtype = str(stages.dtype).replace("torch.", "")
    LAST_RUN.clear()
    LAST_RUN.update(frames_in=n_in, frames_out=n_out, faces_found=faces_found, frames_shown=shown,
                    frames_synced=synced, audio_and_model_s=stages.setup_s, detection_s=detect_s,
                    generation_s=generate_s, detection_stats=stats, device=str(stages.device),
                    dtype=dtype, **extra)
    logger.info(
        "Halo-Lipsy: %d frames in -> %d out (%s, %.3g fps), faces in %d/%d input frames, %d frames "
        "lip-synced; audio+model %.2fs, detection %.2fs%s, generation %.2fs on %s (%s)",
        n_in, n_out, settings.mode, stages.features.fps, faces_found, shown, synced, stages.setup_s,
        detect_s, f" ({stats.summary()})" if stats else " (face_mask)", generate_s, stages.device,
        dtype)
    if faces_found == 0:
        logger.warning("Halo-Lipsy: no face found in any frame; the frames pass through unchanged. "
                       "Check the face is visible and not tiny, or connect a face_mask.")


def _box_is_finite(frame: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = box
    return bool(np.isfinite(frame[y1:y2, x1:x2, :3]).all())




# ---------------------------------------------------------------------------- the VIDEO route

BATCH_BYTES = 256 << 20  # decoded frames held per generation batch (40 frames of 1080p)


def lipsync_video(source, destination, settings: Settings, hooks: Hooks, audio=None,
                  face_mask=None, quality: int = 19) -> dict:
    """The VIDEO route: decode `source` (a path or a file-like object PyAV can open), lip-sync
    it to `audio` (ComfyUI AUDIO; None: the video's own sound) and encode an MP4 (H.264 + AAC)
    to `destination` (a path or a writable file-like object). Memory does not grow with the
    clip: two decoding passes (detection, then generation) through a window of frames.

    Each frame's audio window comes from its own presentation time, so variable frame rate
    video stays in sync. On any failure or interrupt the destination file is deleted."""
    from . import face_detect as fd
    from . import video as video_mod
    from .audio import cut_or_pad
    from .wav2lip import clip_box

    settings = settings.validated()
    quality = _whole_number("quality", quality, 0)
    if quality > 51:
        raise HaloLipsyError(f"Halo-Lipsy: quality is {quality}; use 0 (best) to 51 (smallest).")
    try:
        info = video_mod.probe(source)
        if audio is None:
            track = video_mod.read_audio(source)
            if track is None:
                raise HaloLipsyError(
                    "Halo-Lipsy: the video has no sound and no 'audio' is connected: connect the "
                    "speech (Load Audio, a TTS node) to 'audio'.")
            audio = {"waveform": track[0][None], "sample_rate": track[1]}
    except video_mod.VideoInputError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    fps = float(info.fps)
    stages = _set_up(audio, fps, settings, hooks)
    features, width, height = stages.features, info.width, info.height
    expected = info.frames
    detect_share = 0.3

    # -- pass 1: every frame's time and face box (the tracker sees a window of frames)
    t0 = time.perf_counter()
    pts, times, stats = [], [], None
    with _detection_errors(width, height):
        if face_mask is not None:
            mask_box = _single_mask_box(face_mask, width, height, stages.box_settings)
            raw = None
        else:
            frames = fd.WindowFrames(height, width)
            tracker = fd.FaceTracker(hooks.detector(settings.face_detect_batch),
                                     on_progress=lambda f: hooks.progress(detect_share * f),
                                     check_interrupt=hooks.check_interrupt)
            run = tracker.start(frames, expected)
        try:
            for i, (t, p, rgb) in enumerate(video_mod.decode(source)):
                pts.append(p)
                times.append(t)
                if face_mask is None:
                    frames.put(i, rgb)
                    run.advance(i + 1)
                    frames.drop_before(run.needed_from)
                elif i % 64 == 0:
                    hooks.check_interrupt()
                    hooks.progress(detect_share * min(1.0, i / max(1, expected or i + 1)))
        except video_mod.VideoInputError as err:
            raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
        n_video = len(times)
        if n_video == 0:
            raise HaloLipsyError("Halo-Lipsy: the video has no frames (0 s long, or none could "
                                 "be decoded). Load another video.")
        if face_mask is None:
            raw, starts = run.finish()
            frames.drop_before(n_video)
            boxes = fd.finish_boxes(raw, height, width, stages.box_settings, starts)
            stats = tracker.stats
        else:
            boxes = np.tile(np.asarray(mask_box, dtype=np.int64), (n_video, 1))
    detect_s = time.perf_counter() - t0
    usable = [clip_box(b, height, width) if b[0] >= 0 else None for b in boxes]

    # -- the output's frames: which input frame, at what time (seconds)
    if settings.mode == "sequential":
        extra = max(0, features.n_frames - int(round(times[-1] * fps)) - 1)
        schedule = np.concatenate([np.arange(n_video), np.full(extra, n_video - 1)]).astype(np.int64)
        out_times = np.concatenate([np.asarray(times), times[-1] + np.arange(1, extra + 1) / fps])
    else:
        schedule = frame_schedule(settings.mode, n_video, features.n_frames)
        out_times = np.arange(len(schedule)) / fps
    n_out = len(schedule)

    # -- pass 2: decode again, lip-sync a batch at a time, encode
    t0 = time.perf_counter()
    frame_bytes = width * height * 3
    reader = video_mod.FrameReader(source, pts, times, BATCH_BYTES, frame_bytes)
    batch = max(1, min(settings.inference_batch, BATCH_BYTES // frame_bytes))
    samples, rate = features.samples, features.sample_rate
    writer = None
    try:
        writer = video_mod.VideoWriter(destination, width, height, info.fps, quality, rate,
                                       samples.shape[0])
        synced = 0
        for start in range(0, n_out, batch):
            hooks.check_interrupt()
            stop = min(n_out, start + batch)
            rgbs = [reader.read(int(schedule[k])).copy() for k in range(start, stop)]
            regions, local = [], []
            for k, rgb in zip(range(start, stop), rgbs):
                box = usable[schedule[k]]
                if box is None:
                    regions.append(None)
                    local.append(None)
                    continue
                x1, y1, x2, y2 = box
                regions.append(rgb[y1:y2, x1:x2].astype(np.float32) * np.float32(1 / 255))
                local.append((0, 0, x2 - x1, y2 - y1))

            def on_slice(done, total, start=start, stop=stop):
                hooks.check_interrupt()
                fraction = (start + (stop - start) * done / max(1, total)) / n_out
                hooks.progress(detect_share + (1 - detect_share) * fraction)

            synced += _sync_faces(stages, settings, regions, local,
                                  out_times[start:stop] * fps, None, on_slice)
            for k, rgb, region in zip(range(start, stop), rgbs, regions):
                if region is not None:
                    x1, y1, x2, y2 = usable[schedule[k]]
                    rgb[y1:y2, x1:x2] = np.clip(region * 255.0 + 0.5, 0, 255).astype(np.uint8)
                writer.write(rgb, float(out_times[k]))
            hooks.progress(detect_share + (1 - detect_share) * stop / n_out)
        end = float(out_times[-1]) + 1.0 / fps
        writer.finish(cut_or_pad(samples, video_mod.output_samples(end, rate)))
    except BaseException:
        if writer is not None:
            writer.abort()
        elif isinstance(destination, (str, Path)):
            Path(destination).unlink(missing_ok=True)
        raise
    generate_s = time.perf_counter() - t0

    faces_found = sum(u is not None for u in usable)
    _report(stages, settings, n_video, n_out, faces_found, n_video, synced, detect_s, generate_s,
            stats, seeks=reader.seeks, duration_s=end)
    return dict(LAST_RUN)


def _single_mask_box(face_mask, width, height, box_settings):
    from . import face_detect as fd

    mask = face_mask
    shape = tuple(getattr(mask, "shape", ()))
    if len(shape) == 3 and shape[0] > 1:
        raise HaloLipsyError(
            f"Halo-Lipsy: face_mask has {shape[0]} frames; the video node takes a single frame "
            "(a fixed face region for the whole clip). Use one mask frame.")
    if len(shape) >= 2 and tuple(shape[-2:]) != (height, width) and not (len(shape) == 4 and shape[-1] == 1):
        raise HaloLipsyError(f"Halo-Lipsy: face_mask is {shape[-1]}x{shape[-2]} but the video is "
                             f"{width}x{height}; draw the mask on a frame of this video.")
    box = fd.mask_boxes(mask, 1, height, width, box_settings)[0]
    if box[0] < 0:
        raise HaloLipsyError("Halo-Lipsy: face_mask is empty: paint the face region white.")
    return box
