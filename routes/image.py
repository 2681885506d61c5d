"""The IMAGE route, read top to bottom: IMAGE frames (at `settings.fps`) and AUDIO in; set up ->
timeline -> a box per frame -> mouths generated into one preallocated output -> ImageResult
(IMAGE, MASK, the fitted AUDIO, the Report)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..common.errors import HaloLipsyError
from ..common.stop import StopSignal
from ..settings import Settings
from .steps import (Hooks, Report, detection_errors, face_name,
                    kept_original, log_shots, set_up, speech_strengths, sync_faces, timeline,
                    tracker_config, usable_boxes)

logger = logging.getLogger("HaloLipsy")

MEMORY_MARGIN_GB = 0.5  # kept free beyond the output, for the models, crops and the OS


DETECTION_SHARE = 0.3  # of the progress bar, when a detector runs


@dataclass
class ImageResult:
    """The IMAGE route's outputs: IMAGE (float32, CPU), the fitted AUDIO, the MASK of the
    generated pixels' weights, and the run's numbers."""

    images: object
    audio: dict
    mask: object
    report: Report

    def outputs(self) -> tuple:
        return self.images, self.audio, self.mask

    def __iter__(self):  # images, audio, mask = result
        return iter(self.outputs())


def _batches(n_out: int, batch: int, hooks: Hooks, stop: StopSignal, share_before: float):
    """(start, stop, on_slice) for each batch of output frames, with an interrupt check before
    each; `on_slice` (for the generator) checks again and moves the progress bar per slice, and
    the bar moves after each batch."""
    share = 1.0 - share_before
    for start in range(0, n_out, batch):
        stop.check()
        end = min(n_out, start + batch)

        def on_slice(done, total, start=start, end=end):
            stop.check()
            hooks.progress(share_before + share * (start + (end - start) * done / max(1, total)) / n_out)

        yield start, end, on_slice
        hooks.progress(share_before + share * end / n_out)


def lipsync_images(images, audio, settings: Settings, hooks: Hooks, face_mask=None,
                   face_marker=None, face_marker_image=None, restore_model=None) -> ImageResult:
    """The IMAGE route: frames (IMAGE at `settings.fps`) and AUDIO in, an ImageResult out.
    `face_mask` fixes the face's region (no detection); `face_marker` picks the detected face
    under its strokes (painted on `face_marker_image`, where its frames are not the images');
    `restore_model` (a spandrel super-resolution or face restoration model) sharpens the
    generated mouths.

    MASK holds, per output frame, the weight each pixel's generated value got (0 where the
    frame passed through)."""
    images = validate_images(images)
    config = tracker_config(settings, face_mask, face_marker, int(images.shape[1]),
                            int(images.shape[2]), int(images.shape[0]), face_marker_image)
    stop = StopSignal(hooks.check_interrupt)
    with stop.scope():
        stages = set_up(audio, settings.fps, settings, hooks, restore_model)
        features, fps = stages.features, stages.features.fps
        plan = timeline(settings.mode, np.arange(int(images.shape[0])) / fps, features.duration, fps)
        t0 = time.perf_counter()
        usable, stats = _image_boxes(images, plan, stages, settings, hooks, stop, face_mask, config)
        detect_s = time.perf_counter() - t0
        log_shots(usable, np.arange(len(usable)) / fps, stats, face_name(config))
        t0 = time.perf_counter()
        strengths = speech_strengths(stages, settings, plan.positions, stop.check)
        with stages.placed():
            out, mask, synced, copy_s = _image_generate(images, usable, plan, strengths, stages, settings,
                                                        hooks, stop, 0.0 if config is None else DETECTION_SHARE)
    report = stages.report(
        settings, frames_in=int(images.shape[0]), frames_out=len(plan),
        faces_found=sum(u is not None for u in usable), frames_shown=len(usable),
        frames_synced=synced, detection_s=detect_s, generation_s=time.perf_counter() - t0,
        detection_stats=stats, frame_copy_s=copy_s, face=face_name(config),
        frames_kept_original=kept_original(strengths, [usable[s] for s in plan.source]))
    return ImageResult(out, features.fitted_audio(len(plan)), mask, report)


def _image_boxes(images, plan, stages, settings, hooks, stop, face_mask, config):
    """A usable box (or None) for each input frame the output shows, and the detection stats."""
    from .. import face_detect as fd

    n_video, height, width = (int(v) for v in images.shape[:3])
    used = int(plan.source.max()) + 1  # a prefix of the input frames is ever shown
    stats = None
    with detection_errors(width, height):
        if face_mask is not None:
            boxes = fd.mask_boxes(face_mask, n_video, height, width, stages.box_settings)[:used]
        else:
            detector = hooks.detector(settings.face_detect_batch)
            boxes, stats = fd.detect_boxes(images, used, detector, stages.box_settings, config,
                                           on_progress=lambda f: hooks.progress(DETECTION_SHARE * f),
                                           check_interrupt=stop.check,
                                           recognizer=hooks.recognizer())
    return usable_boxes(boxes, height, width), stats


def _image_generate(images, usable, plan, strengths, stages, settings, hooks, stop, share_before):
    """Copy each output frame's input frame into one preallocated output, a batch at a time,
    and lip-sync it there. Returns (IMAGE, MASK, frames synced, seconds spent copying)."""
    import torch

    n_out, (height, width, channels) = len(plan), (int(v) for v in images.shape[1:])
    out, mask = _allocate_output(n_out, height, width, channels)
    out_np, mask_np = out.numpy(), mask.numpy()  # shared memory: pasting writes the outputs
    source = plan.source
    synced, copy_s, non_finite = 0, 0.0, []
    for start, end, on_slice in _batches(n_out, settings.inference_batch, hooks, stop, share_before):
        t0 = time.perf_counter()
        for i in range(start, end):
            out[i].copy_(images[int(source[i])])
        if images.dtype == torch.uint8:
            out[start:end] /= 255.0
        copy_s += time.perf_counter() - t0
        boxes = [usable[source[i]] for i in range(start, end)]
        # only float input can hold NaN or inf: the generator sees them as black (face_input)
        non_finite += [i for i, box in zip(range(start, end), boxes)
                       if box is not None and not _box_is_finite(out_np[i], box)]
        synced += sync_faces(stages, settings, list(out_np[start:end]), boxes,
                             plan.positions[start:end], strengths[start:end],
                             list(mask_np[start:end]), on_slice)
    if non_finite:
        logger.warning(
            "Halo-Lipsy: %d output frames have NaN or infinite pixels in the face box (frames %s): "
            "the generator saw them as black, and those pixels keep their invalid values. Check "
            "the node that made the images.", len(non_finite), _frame_list(non_finite))
    return out, mask, synced, copy_s


def validate_images(images):
    import torch

    if images is None:
        raise HaloLipsyError("no images: connect an IMAGE output (frames of a video, "
                             "or a single image) to the 'images' input.")
    if not isinstance(images, torch.Tensor):
        raise HaloLipsyError(f"'images' is a {type(images).__name__}, not a ComfyUI "
                             "IMAGE tensor; connect an IMAGE output.")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise HaloLipsyError(f"'images' has shape {tuple(images.shape)}; expected an "
                             "IMAGE [frames, height, width, 3 or 4 channels].")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise HaloLipsyError(f"'images' is empty (shape {tuple(images.shape)}); the "
                             "video loader produced no frames. Check its path and frame limits.")
    if not (images.dtype.is_floating_point or images.dtype == torch.uint8):
        raise HaloLipsyError(f"'images' has dtype {images.dtype}; expected float "
                             "pixels in [0, 1] (any float precision) or uint8 pixels in 0-255. "
                             "Convert the frames to a ComfyUI IMAGE first.")
    return images


def _allocate_output(n_out, height, width, channels):
    """(IMAGE, MASK) output tensors, refused with a clear message when they cannot fit in the
    memory actually available: under Linux overcommit torch.empty succeeds and the process is
    killed later while filling it, so the check must come first."""
    import psutil
    import torch

    need = n_out * height * width * (channels + 1) * 4
    available = psutil.virtual_memory().available
    margin = max(MEMORY_MARGIN_GB * 2**30, 0.1 * need)
    message = (f"not enough memory for the output ({n_out} frames of {width}x{height}: "
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


def _box_is_finite(frame: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = box
    return bool(np.isfinite(frame[y1:y2, x1:x2, :3]).all())
