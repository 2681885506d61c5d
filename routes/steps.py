"""The named steps every route is built on, knowing no route: what callers hand in (`Hooks`) and
what a run returns (`Report`); the timeline (which input frame, at what time, for each output
frame, in every mode); setting up the audio and the generator; the tracker's settings and the
usable boxes; the lip-sync step (mouth inputs -> generator -> mouths pasted); the speech
strengths. Knows no ComfyUI: whoever calls hands in `Hooks` (how to find the checkpoint, place
the generator, which face detector and recognizer, where progress goes, how an interrupt is
noticed); keeps nothing between runs."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..common.errors import HaloLipsyError
from ..common.progress import part
from ..common.runs import runs_of
from ..settings import MODES, Settings

logger = logging.getLogger("HaloLipsy")

MAX_GAP_SECONDS = 0.2  # faceless stretches up to this long between two faces are bridged
TIME_TOLERANCE = 1e-7  # seconds: float noise never adds a frame (4.4 s at 25 fps is 110 frames)


def _noop(*_args):
    return None


# ---------------------------------------------------------------------------- what callers hand in


@dataclass
class Hooks:
    """What the caller decides. `load_generator(path, force_cpu, precision)` returns (model,
    device, dtype, memory_format); `detector(batch_size)` a face_detect.FaceDetector;
    `recognizer()` the face recognizer that tells people apart (None: its files are missing);
    `progress(fraction)` gets 0..1 over the whole run; `check_interrupt()` is the caller's own
    interrupt check (ComfyUI's Cancel, the command line's SIGTERM): it raises to stop, and each
    route asks it through its one cancel signal (common.stop.StopSignal); `make_room(bytes,
    device)` frees that much of `device` for a restore model before the run places it there
    (ComfyUI's model management unloads other models as it must)."""

    resolve_checkpoint: Callable[[str], Path]
    load_generator: Callable[[Path, bool, str], tuple]
    detector: Callable[[int], object]
    recognizer: Callable[[], object]
    progress: Callable[[float], None] = _noop
    check_interrupt: Callable[[], None] = _noop
    make_room: Callable[[int, object], None] = _noop


def plain_hooks(search_dirs, progress=_noop, check_interrupt=_noop) -> Hooks:
    """Hooks without ComfyUI (the command line): checkpoints, the S3FD weights and the face
    recognition files from `search_dirs`, the generator on torch's best device."""
    search_dirs = [Path(d) for d in search_dirs]

    def resolve(name):
        from ..wav2lip import resolve_checkpoint
        return resolve_checkpoint(name, search_dirs)

    def load(path, force_cpu, precision):
        from ..wav2lip import load_generator, pick_device
        device = pick_device(force_cpu)
        dtype, fmt = generator_format(device, precision)
        return load_generator(path, device, dtype, fmt), device, dtype, fmt

    def make_detector(batch_size):
        from ..face_detect.s3fd import S3FDDetector, find_s3fd_weights
        return S3FDDetector(find_s3fd_weights(search_dirs), batch_size)

    def recognizer():
        from ..face_detect.recognition import load_recognizer
        return load_recognizer(search_dirs)

    return Hooks(resolve, load, make_detector, recognizer, progress, check_interrupt)


def generator_format(device, precision: str, force_fp32: bool = False):
    """(dtype, memory format) for the generator on `device`; a precision the device would only
    emulate falls back to fp32, with one log line saying so."""
    from ..wav2lip import MEMORY_FORMAT, pick_dtype

    dtype, note = pick_dtype(device, precision, force_fp32=force_fp32)
    if note:
        logger.warning("Halo-Lipsy: %s", note)
    return dtype, MEMORY_FORMAT


# ---------------------------------------------------------------------------- what a run returns


@dataclass
class Report:
    """The numbers of one run: what the node logs, the command line prints, and benchmarks and
    tests read."""

    frames_in: int
    frames_out: int
    faces_found: int  # input frames with a face
    frames_shown: int  # input frames the output shows
    frames_synced: int  # output frames with a generated mouth
    mode: str
    fps: float
    device: str
    dtype: str
    audio_and_model_s: float
    detection_s: float
    generation_s: float
    detection_stats: object = None  # face_detect.DetectionStats; None with a face_mask
    frame_copy_s: float = 0.0  # IMAGE route: copying input frames into the output
    seeks: int = 0  # VIDEO route: jumps back in the file (loop modes)
    duration_s: float = 0.0  # VIDEO route: the output's length
    face: str = "face_mask"  # which face was followed: the face setting, or the face_mask
    frames_kept_original: int = 0  # output frames with a face that kept their real mouth (silence)
    faces_restored: int = 0  # with a face restoration model: faces restored around their mouth
    faces_unaligned: int = 0  # and faces its alignment could not read (their plain mouth kept)

    def summary(self) -> str:
        detection = f" ({self.detection_stats.summary()})" if self.detection_stats else ""
        kept = (f", {self.frames_kept_original} kept their real mouth (silence)"
                if self.frames_kept_original else "")
        if self.faces_restored or self.faces_unaligned:
            kept += f", {self.faces_restored} faces restored"
            if self.faces_unaligned:
                kept += (f" ({self.faces_unaligned} kept the plain mouth: their landmarks could not be "
                         "read)")
        return (f"Halo-Lipsy: {self.frames_in} frames in -> {self.frames_out} out ({self.mode}, "
                f"{self.fps:.3g} fps), followed the {self.face} face, faces in "
                f"{self.faces_found}/{self.frames_shown} input frames, {self.frames_synced} frames "
                f"lip-synced{kept}; audio+model {self.audio_and_model_s:.2f}s, detection "
                f"{self.detection_s:.2f}s{detection}, generation {self.generation_s:.2f}s on "
                f"{self.device} ({self.dtype})")

    def log(self):
        logger.info("%s", self.summary())
        if self.frames_synced == 0:
            logger.warning("Halo-Lipsy: %s", self.why_nothing_was_lip_synced())

    def why_nothing_was_lip_synced(self) -> str:
        """What to tell a user whose run changed no frame: the reason, and what to do."""
        seen = self.detection_stats.most_faces if self.detection_stats is not None else 0
        if self.faces_found == 0 and seen and self.face == "marked":
            return (f"nothing was lip-synced: the marked person was not found in any frame (other "
                    f"faces were, up to {seen} at once), so every frame keeps its real mouth. "
                    "Check that the face_marker's stroke lies on the speaker's face in the "
                    "picture connected to face_marker_image.")
        if self.faces_found == 0:
            return ("nothing was lip-synced: no face was found in any frame; the frames pass "
                    "through unchanged. Check the face is visible and not tiny, or give a "
                    "face_mask (the node's face_mask input, or --face-mask).")
        if self.frames_kept_original:
            return ("nothing was lip-synced: no speech was found in the audio, so with silence "
                    "'keep_original' every frame keeps its real mouth (music, room tone, breaths "
                    "and coughs are not speech). If the audio does hold speech, check it is the "
                    "speech track, or choose silence 'generate'.")
        return "nothing was lip-synced; the frames pass through unchanged."


# ---------------------------------------------------------------------------- the timeline


@dataclass
class Timeline:
    """What the output is: for each output frame, the input frame it is made from (`source`),
    when it is shown (`times`, seconds from the first input frame) and where its audio window
    starts (`positions`, in frames of the nominal rate: `times * fps`, exact for constant-rate
    video so both routes pick the same mel windows). `end` is when the last frame ends."""

    source: np.ndarray
    times: np.ndarray
    positions: np.ndarray
    end: float

    def __len__(self):
        return len(self.source)

    def durations(self) -> np.ndarray:
        """How long each output frame is shown, the last one until `end`."""
        return np.diff(self.times, append=self.end)


def timeline(mode: str, frame_times, audio_end: float, fps: float,
             last_duration: float | None = None) -> Timeline:
    """The output frames for `mode` (the README's mode table), given the input frames' times
    (seconds from the first, ascending) and where the audio ends (seconds from the first frame).

    Each input frame lasts until the next one; the last one `last_duration` (what the file
    says; default 1/fps). sequential: every input frame at its own time, then the last one held
    (at 1/fps steps) while audio remains. repetitive and pingpong: the clip loops (pingpong:
    forward then backward) with each frame keeping its own duration, until the audio ends. So
    variable-frame-rate video keeps its rhythm in every mode, and constant-rate video gives
    frame i at i / fps."""
    if mode not in MODES:
        raise HaloLipsyError(f"mode '{mode}' is unknown; use one of {', '.join(MODES)}.")
    times = np.asarray(frame_times, dtype=np.float64)
    n, step = len(times), 1.0 / float(fps)
    last = step if not last_duration or last_duration <= 0 else float(last_duration)
    durations = np.diff(times, append=times[-1] + last)
    limit = audio_end - TIME_TOLERANCE
    if mode == "sequential":
        first_held = times[-1] + last
        # held frames at first_held + j * step while they start before the audio ends
        held = max(0, math.ceil(round((limit - first_held) * fps, 6))) if limit > first_held else 0
        source = np.concatenate([np.arange(n), np.full(held, n - 1)]).astype(np.int64)
        out = np.concatenate([times, first_held + step * np.arange(held)])
        end = float(out[-1] + (step if held else last))
    else:
        if mode == "repetitive" or n == 1:
            cycle = np.arange(n)
        else:  # pingpong: 0..n-1, n-2..1, then again
            cycle = np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)])
        loops = max(1, math.ceil(max(0.0, limit) / float(durations[cycle].sum())) + 1)
        source = np.tile(cycle, loops)
        out = np.concatenate([[0.0], np.cumsum(durations[source])[:-1]])
        keep = int(np.searchsorted(out, limit, side="left")) if limit > 0 else 0
        source, out = source[:keep], out[:keep]
        end = float(out[-1] + durations[source[-1]]) if keep else 0.0
    return Timeline(source, out, np.round(out * fps, 6), end)


# ---------------------------------------------------------------------------- shared steps


@dataclass
class _Stages:
    """What every route sets up the same way: the audio, the generator, the box settings, and a
    restore model's step (`restoring`: a restore.MouthSharpener inside the generator, or a
    restore.FaceRestorer after the paste; None without a model)."""

    features: object
    generator: object
    device: object
    dtype: object
    box_settings: object
    make_room: Callable[[int, object], None]
    restoring: object = None
    setup_s: float = 0.0

    @property
    def face_restorer(self):
        """The restore step when it restores faces after the paste (None otherwise)."""
        from ..restore import FaceRestorer

        return self.restoring if isinstance(self.restoring, FaceRestorer) else None

    @property
    def region_margin(self) -> float:
        """How far past a face box (x its side, each side) the picture around it is needed."""
        from ..restore import CONTEXT

        return CONTEXT if self.face_restorer is not None else 0.0

    @contextlib.contextmanager
    def placed(self):
        """The run's restore model on the generator's device for the run (room made for it
        first), put back where it was afterwards."""
        if self.restoring is None:
            yield self
            return
        if self.restoring.device.type != "cpu":
            self.make_room(self.restoring.bytes_needed(), self.restoring.device)
        with self.restoring.placed():
            yield self

    def report(self, settings: Settings, **numbers) -> Report:
        restorer = self.face_restorer
        return Report(mode=settings.mode, fps=self.features.fps, device=str(self.device),
                      dtype=str(self.dtype).replace("torch.", ""), audio_and_model_s=self.setup_s,
                      faces_restored=0 if restorer is None else restorer.faces_restored,
                      faces_unaligned=0 if restorer is None else restorer.faces_unaligned, **numbers)


def set_up(audio, fps, settings: Settings, hooks: Hooks, restore_model=None) -> _Stages:
    """The audio's features, the generator on its device, the box settings and, where
    `restore_model` (a spandrel model) is given and restore_strength is above 0, its step: a
    super-resolution model sharpens the generator's mouths, a face restoration model restores
    the faces they are pasted into. The restore model is placed on the device by
    `_Stages.placed`, for the run."""
    from .. import audio as audio_mod
    from .. import face_detect as fd
    from ..wav2lip import BatchedGenerator

    started = time.perf_counter()
    kind = None
    if restore_model is not None:
        from ..restore import kind_of

        kind = kind_of(restore_model)  # one it cannot apply is refused first, naming what to load
    features = audio_mod.AudioFeatures(audio, fps)
    path = hooks.resolve_checkpoint(settings.checkpoint)
    model, device, dtype, fmt = hooks.load_generator(path, settings.force_cpu, settings.precision)
    box_settings = fd.BoxSettings(face_padding=settings.face_padding,
                                  smooth_box_frames=settings.smooth_box_frames,
                                  max_gap=max(1, int(round(MAX_GAP_SECONDS * features.fps))))
    generator = BatchedGenerator(model, device, dtype, settings.inference_batch, fmt)
    stages = _Stages(features, generator, device, dtype, box_settings, hooks.make_room)
    if kind is not None and settings.restore_strength > 0:
        from .. import restore

        if kind == restore.SUPER_RESOLUTION:
            stages.restoring = restore.MouthSharpener(restore_model, device, dtype, generator.batch_size,
                                                      settings.restore_strength)
            stages.generator = restore.SharpenedGenerator(generator, stages.restoring)
        else:
            stages.restoring = restore.FaceRestorer(
                restore_model, device, dtype, generator.batch_size, settings.codeformer_fidelity,
                _landmarks(hooks))
    stages.setup_s = time.perf_counter() - started
    return stages


def _landmarks(hooks: Hooks):
    """dlib's five face landmarks (the face recognizer's), which face restoration aligns by."""
    from ..restore import RestoreModelError

    recognizer = hooks.recognizer()
    if recognizer is None:
        raise RestoreModelError(
            "a face restoration model aligns each face by dlib's 5-point landmarks, whose file is "
            "not installed: python -m pip install face_recognition_models (or put "
            "shape_predictor_5_face_landmarks.dat in models/wav2lip), or use a super-resolution "
            "restore model.")
    return recognizer.points


@contextlib.contextmanager
def detection_errors(width, height):
    """A detector failure says what to do about it."""
    from .. import face_detect as fd

    try:
        yield
    except fd.DetectorError as err:  # the backend failed: say what skips detection
        raise HaloLipsyError(
            f"{err}. Frames of {width}x{height} could not be searched for a face; "
            "give a face_mask (the face's region: the node's face_mask input, or --face-mask) to "
            "skip face detection.") from None


def sync_faces(stages: _Stages, settings: Settings, frames, boxes, positions, strengths,
               weights=None, on_slice=None) -> int:
    """Lip-sync `frames` (a list of H x W x C arrays, float32 in [0, 1] or uint8, written in
    place) whose face boxes are `boxes` (None: no face) and whose audio windows start at
    `positions` (frame units: i for frame i at the nominal rate), each as much as its `strengths`
    value (0: the frame is left as it is). `weights` (optional list of H x W arrays) receive the
    blend weights. Returns how many frames were synced."""
    work = mouth_inputs(stages, settings, frames, boxes, positions, strengths)
    if work is None:
        return 0
    parts = 1 if stages.face_restorer is None else 2  # the generator's share, then the restorer's
    generated = stages.generator(work.mels, work.faces, on_slice=part(on_slice, 0, parts))
    return paste_mouths(stages, settings, frames, boxes, strengths, work, generated, weights,
                        part(on_slice, 1, parts))


@dataclass
class MouthInputs:
    """What the generator gets for a batch: the frames that get a mouth (their indices), their
    face crops (n, 6, 96, 96) and mel windows (n, 80, 16); with a face restorer, each face's
    layout (restore.FaceRestorer.layout, from the frame before its mouth is pasted)."""

    faced: list
    faces: np.ndarray
    mels: np.ndarray
    layouts: list | None = None


def mouth_inputs(stages: _Stages, settings: Settings, frames, boxes, positions,
                 strengths) -> MouthInputs | None:
    """sync_faces' first half: the generator's inputs (None: no frame gets a mouth)."""
    from ..wav2lip import face_input

    faced = [k for k, box in enumerate(boxes) if box is not None and strengths[k] > 0]
    if not faced:
        return None
    faces = np.stack(side_by_side(lambda k: face_input(frames[k], boxes[k]), faced))
    mels = stages.features.windows(np.asarray([positions[k] for k in faced]), settings.sync_offset,
                                   settings.mel_step_multiplier)
    layouts = None
    if stages.face_restorer is not None:
        layouts = side_by_side(lambda k: stages.face_restorer.layout(frames[k], boxes[k]), faced)
    return MouthInputs(faced, faces, mels, layouts)


def paste_mouths(stages: _Stages, settings: Settings, frames, boxes, strengths, work: MouthInputs,
                 generated, weights=None, on_slice=None) -> int:
    """sync_faces' second half: the `generated` mouths pasted into `frames`; with a face
    restorer, the faces restored and kept where the mouth was pasted, as strongly as it was
    (times restore_strength). `on_slice` follows the restorer."""
    from ..wav2lip import blend_into, blend_weight, paste

    def paste_one(j):
        k = work.faced[j]
        paste(frames[k], boxes[k], generated[j], settings.blend_edges, settings.blend_radius,
              weights_out=None if weights is None else weights[k], strength=float(strengths[k]))

    side_by_side(paste_one, range(len(work.faced)))
    if stages.face_restorer is not None:
        def keep(j, restored):
            k = work.faced[j]
            strength = float(strengths[k]) * settings.restore_strength
            if strength <= 0:
                return
            x1, y1, x2, y2 = boxes[k]
            weight, rows = blend_weight(y2 - y1, x2 - x1, settings.blend_edges, settings.blend_radius,
                                        strength)
            blend_into(frames[k][y1:y2, x1:x2, :3], restored, weight, rows)

        # faces whose landmarks are not believable (no layout) keep the plain mouth
        stages.face_restorer.restore([frames[k] for k in work.faced], [boxes[k] for k in work.faced],
                                     work.layouts, keep, on_slice)
    return len(work.faced)


def side_by_side(work, items) -> list:
    """`work` on each of `items` (frames of a batch, each its own pixels), side by side on as
    many threads as torch computes on (NumPy and OpenCV release the GIL while they work)."""
    import torch

    items = list(items)
    workers = min(len(items), max(1, torch.get_num_threads()))
    if workers <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="Halo-Lipsy frames") as pool:
        return list(pool.map(work, items))


def speech_strengths(stages: _Stages, settings: Settings, positions, check_interrupt) -> np.ndarray:
    """How much of the generated mouth each output frame (whose audio windows start at
    `positions`) gets: 1 everywhere, or with silence 'keep_original', 0 in pauses with fades
    around them."""
    if settings.silence != "keep_original":
        return np.ones(len(positions), dtype=np.float32)
    return stages.features.speech_strength(positions, settings.sync_offset,
                                           settings.mel_step_multiplier, check_interrupt)


def kept_original(strengths, faces) -> int:
    return int(sum(1 for s, box in zip(strengths, faces) if box is not None and s <= 0))


def tracker_config(settings: Settings, face_mask, face_marker, height: int, width: int,
                   n_frames: int | None = None, face_marker_image=None):
    """The tracker's face choice from the `face` setting and a face_marker (which picks the
    marked person whatever the setting says; with `n_frames` marker frames, one per frame, each
    stroke's frame is known; otherwise `face_marker_image`, the pictures the strokes were painted
    on, says whom they mark). None with a face_mask: nothing is detected."""
    from .. import face_detect as fd

    if face_mask is not None:
        if face_marker is not None:
            raise HaloLipsyError(
                "both face_mask and face_marker are connected. face_mask fixes the "
                "face's region (no detection); face_marker picks which detected face is tracked. "
                "Connect one of them.")
        return None
    if face_marker is None:
        if settings.face == "marked":
            raise HaloLipsyError(
                "face is 'marked' but no face_marker is given: paint a stroke on the "
                "speaker's face in one frame (Load Image of a frame, then the mask editor) and "
                "connect it to face_marker (or --face-marker), or choose largest, left-most or "
                "right-most.")
        return fd.TrackerConfig(choice=settings.face)
    marks = fd.marks_from_mask(face_marker, height, width, n_frames, face_marker_image)
    return fd.TrackerConfig(choice="marked", marks=tuple(marks))


def log_shots(usable, times, stats, choice: str):
    """One log line per shot: whom it followed, and where it kept the original (the face not in
    view, or lost and not yet found again). `usable`: each frame's box or None, `times` each
    frame's time in seconds."""

    if stats is None:
        return
    if stats.unmatched_marks:
        logger.warning("Halo-Lipsy: no face was found under %d face_marker stroke(s) in the "
                       "picture or frame each was painted on; paint the stroke on the speaker's "
                       "face.", len(stats.unmatched_marks))
    n = len(usable)
    no_face = np.array([box is None for box in usable])
    starts = sorted({0, *(int(s) for s in stats.shot_starts if 0 < s < n)})
    end_time = float(times[-1]) + (float(times[-1] - times[-2]) if n > 1 else 0.0)
    for number, (start, stop) in enumerate(zip(starts, starts[1:] + [n]), 1):
        span = f"shot {number}, {times[start]:.2f}-{times[stop] if stop < n else end_time:.2f} s"
        faceless = no_face[start:stop]
        if faceless.all():
            logger.info("Halo-Lipsy: %s: the %s face is not in view; kept the original.", span, choice)
            continue
        gaps = [f"{times[start + a]:.2f}-{times[start + b] if start + b < n else end_time:.2f} s"
                for a, b in runs_of(faceless)]
        more = " ..." if len(gaps) > 6 else ""
        lost = f"; not found at {', '.join(gaps[:6])}{more} (kept the original)" if gaps else ""
        logger.info("Halo-Lipsy: %s: followed the %s face%s.", span, choice, lost)


def usable_boxes(boxes, height, width) -> list:
    """Boxes clipped to the frame, None where there is no face (or too small a one)."""
    from ..wav2lip import clip_box

    return [clip_box(b, height, width) if b[0] >= 0 else None for b in boxes]


# ---------------------------------------------------------------------------- the IMAGE route


def face_name(config) -> str:
    return "face_mask" if config is None else config.choice


