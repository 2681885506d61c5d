"""The Halo-Lipsy node: inputs, validation, ComfyUI glue and the orchestration of the stages.

    IMAGE + AUDIO -> audio.py (mel windows) + face_detect (boxes) -> wav2lip (crop, generate,
    paste) -> IMAGE (+ AUDIO, + MASK of the pasted pixels)

Models are cached across workflows and released when ComfyUI unloads them (see _patchers).

This is the only module that knows ComfyUI. `comfy.*` and `folder_paths` are imported lazily and
are optional, so the node also runs (and is tested) without a ComfyUI checkout. Heavy libraries
(torch, OpenCV, face-alignment) load on the first run, not when ComfyUI starts.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("HaloLipsy")

PACK_DIR = Path(__file__).resolve().parent
PACK_CHECKPOINTS = PACK_DIR / "checkpoints"
MODEL_FOLDER = "wav2lip"  # ComfyUI/models/wav2lip, also configurable in extra_model_paths.yaml
MODES = ("sequential", "repetitive", "pingpong")
MAX_GAP_SECONDS = 0.2  # faceless stretches up to this long between two faces are bridged


LAST_RUN: dict = {}  # the numbers of the most recent run (the summary line, for tools and benchmarks)


class HaloLipsyError(ValueError):
    """Bad input or setup; the message says what to do."""


# ---------------------------------------------------------------------------- ComfyUI glue


def _comfy():
    """(folder_paths, model_management, model_patcher, utils) or None outside ComfyUI."""
    try:
        import comfy.model_management as model_management
        import comfy.model_patcher as model_patcher
        import comfy.utils as utils
        import folder_paths
    except Exception:  # noqa: BLE001 - any failure means "not inside ComfyUI"
        return None
    return folder_paths, model_management, model_patcher, utils


def _folder_paths():
    """ComfyUI's folder_paths module (plain Python, cheap to import), or None outside ComfyUI."""
    try:
        import folder_paths
    except Exception:  # noqa: BLE001 - not inside ComfyUI
        return None
    return folder_paths


def register_model_folder(folder_paths=None):
    """models/wav2lip becomes ComfyUI's `wav2lip` model folder (extra_model_paths.yaml may add
    more under that name) and the pack's checkpoints/ an extra location after it."""
    folder_paths = folder_paths or _folder_paths()
    if folder_paths is None:
        return
    folder_paths.add_model_folder_path(MODEL_FOLDER, str(Path(folder_paths.models_dir) / MODEL_FOLDER),
                                       is_default=True)
    folder_paths.add_model_folder_path(MODEL_FOLDER, str(PACK_CHECKPOINTS))
    paths, extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    if not extensions:  # registered by us or by extra_model_paths.yaml: no extension filter yet
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = (
            paths, set(getattr(folder_paths, "supported_pt_extensions", ())))


def model_search_dirs() -> list[Path]:
    """Where checkpoints and the S3FD weights are looked for: every ComfyUI `wav2lip` folder
    (models/wav2lip first), the pack's checkpoints/ among them; outside ComfyUI just the latter."""
    folder_paths = _folder_paths()
    if folder_paths is None:
        return [PACK_CHECKPOINTS]
    register_model_folder(folder_paths)
    return [Path(p) for p in folder_paths.get_folder_paths(MODEL_FOLDER)]


def available_checkpoints(search_dirs=None) -> dict:
    """{choice: path}: ComfyUI's listing of the `wav2lip` folders (subfolders included) inside
    ComfyUI, the given folders' files otherwise."""
    from .wav2lip.checkpoint import find_checkpoints, is_generator_candidate

    folder_paths = _folder_paths() if search_dirs is None else None
    if folder_paths is None:
        return find_checkpoints(model_search_dirs() if search_dirs is None else search_dirs)
    register_model_folder(folder_paths)
    found = {}
    for name in folder_paths.get_filename_list(MODEL_FOLDER):
        path = folder_paths.get_full_path(MODEL_FOLDER, name)
        if path is not None and is_generator_candidate(name):
            found[name] = Path(path)
    return found


def checkpoint_choices() -> list[str]:
    try:
        return ["auto"] + sorted(available_checkpoints())
    except Exception:  # noqa: BLE001 - an unreadable folder must not break the node list
        return ["auto"]


def resolve_checkpoint_path(checkpoint: str, search_dirs=None) -> Path:
    from .wav2lip import resolve_checkpoint

    dirs = model_search_dirs() if search_dirs is None else [Path(d) for d in search_dirs]
    return resolve_checkpoint(checkpoint, dirs, available_checkpoints(search_dirs))


def checkpoint_fingerprint(checkpoint: str, search_dirs=None) -> str:
    """Changes whenever the file `checkpoint` resolves to changes (another file, or the same
    name rewritten), so ComfyUI reruns the node instead of reusing its cached output."""
    try:
        path = resolve_checkpoint_path(checkpoint, search_dirs)
        stat = path.stat()
    except Exception as err:  # noqa: BLE001 - the run itself reports a missing checkpoint
        return f"unresolved: {err}"
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


if _folder_paths() is not None:  # inside ComfyUI: the folder exists from startup on
    register_model_folder()


class _Progress:
    """Detection fills the first `detect_share` of the bar, generation the rest."""

    STEPS = 1000

    def __init__(self, detect_share: float):
        comfy = _comfy()
        self.bar = comfy[3].ProgressBar(self.STEPS) if comfy is not None else None
        self.detect_share = detect_share

    def _set(self, fraction):
        if self.bar is not None:
            self.bar.update_absolute(int(round(min(1.0, max(0.0, fraction)) * self.STEPS)))

    def detection(self, fraction):
        self._set(self.detect_share * fraction)

    def generation(self, fraction):
        self._set(self.detect_share + (1.0 - self.detect_share) * fraction)


def _check_interrupt():
    comfy = _comfy()
    if comfy is not None:
        comfy[1].throw_exception_if_processing_interrupted()


def _force_fp32(comfy) -> bool:
    """ComfyUI started with --force-fp32."""
    args = getattr(comfy[1], "args", None) if comfy is not None else None
    return bool(getattr(args, "force_fp32", False))


# id(model) -> its ModelPatcher. Models stay cached across workflows (a workflow without this node
# leaves them alone) until ComfyUI unloads them: "Unload models", "Free model and node cache" and
# its own eviction under memory pressure all end in ModelPatcher.detach(), which releases ours.
_patchers: dict = {}
_releasing_classes: dict = {}


def _releasing_patcher_class(base):
    """A ModelPatcher subclass whose detach() (ComfyUI unloading the model) also drops our cached
    generator and detector, so their memory is really returned."""
    cls = _releasing_classes.get(base)
    if cls is None:
        class HaloLipsyPatcher(base):
            def detach(self, *args, **kwargs):
                result = super().detach(*args, **kwargs)
                _release_for(self.model)
                return result

        cls = _releasing_classes[base] = HaloLipsyPatcher
    return cls


def _release_for(model):
    from .wav2lip import release_generator

    release_generator(model)
    _patchers.pop(id(model), None)
    _detectors.clear()
    logger.info("Halo-Lipsy: ComfyUI unloaded the generator; cached models released.")


def _generator_on_device(path, force_cpu: bool, precision: str = "auto"):
    """The cached generator, placed through ComfyUI's model management when present (so ComfyUI
    frees VRAM for it and can evict it next to a big video model), else on torch's best device.
    Returns (model, device, dtype, memory format)."""
    import torch

    from .wav2lip import load_generator, pick_device, pick_dtype, pick_memory_format

    comfy = None if force_cpu else _comfy()
    device = torch.device(pick_device(force_cpu) if comfy is None else comfy[1].get_torch_device())
    try:
        dtype, note = pick_dtype(device, precision, force_fp32=_force_fp32(_comfy()))
    except ValueError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    if note:
        logger.warning("Halo-Lipsy: %s", note)
    fmt = pick_memory_format(device)
    if comfy is None:
        return load_generator(path, device, dtype, fmt), device, dtype, fmt
    _, model_management, model_patcher, _ = comfy
    offload = model_management.unet_offload_device()
    model = load_generator(path, offload, dtype, fmt)
    patcher = _patchers.get(id(model))
    if patcher is None or patcher.model is not model:
        patcher_class = _releasing_patcher_class(model_patcher.ModelPatcher)
        patcher = patcher_class(model, load_device=device, offload_device=offload)
        _patchers[id(model)] = patcher
    model_management.load_models_gpu([patcher], force_full_load=True)
    return model, device, dtype, fmt


_detectors: dict = {}


def _s3fd_detector(batch_size: int, search_dirs):
    from .face_detect.s3fd import S3FDDetector, find_s3fd_weights

    path = find_s3fd_weights(search_dirs)
    detector = _detectors.get(path)
    if detector is None:
        _detectors.clear()
        detector = _detectors[path] = S3FDDetector(path, batch_size)
    detector.batch_size = max(1, int(batch_size))
    return detector


def release_models():
    """Drop every cached generator and detector."""
    from .wav2lip import release_generators

    release_generators()
    _patchers.clear()
    _detectors.clear()


# ---------------------------------------------------------------------------- plain logic


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


MEMORY_MARGIN_GB = 0.5  # kept free beyond the output, for the models, crops and the OS


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


def run_lipsync(images, audio, checkpoint="auto", mode="sequential", fps=25.0,
                face_detect_batch=4, inference_batch=64, force_cpu=False, sync_offset=0,
                mel_step_multiplier=1.0, face_padding=10, smooth_box_frames=5, blend_edges=True,
                blend_radius=5, face_mask=None, precision="auto", detector=None, search_dirs=None):
    """Lip-sync `images` to `audio`; returns (IMAGE float32 on the CPU, AUDIO, MASK).

    MASK holds, per output frame, the weight each pixel's generated value got (0 where the
    frame passed through). `detector` and `search_dirs` replace S3FD and the model folders
    (tests, benchmarks)."""
    from . import audio as audio_mod
    from . import face_detect as fd
    from .face_detect.s3fd import DetectorWeightsError
    from .wav2lip import BatchedGenerator, CheckpointError, clip_box, face_input, paste

    import torch

    started = time.perf_counter()
    images = _validate_images(images)
    _check_mode(mode)
    face_detect_batch = _whole_number("face_detect_batch", face_detect_batch)
    inference_batch = _whole_number("inference_batch", inference_batch)
    face_padding = _whole_number("face_padding", face_padding, 0)
    smooth_box_frames = _whole_number("smooth_box_frames", smooth_box_frames, 0)
    blend_radius = _whole_number("blend_radius", blend_radius, 0)
    sync_offset = _finite("sync_offset", sync_offset)
    mel_step_multiplier = _finite("mel_step_multiplier", mel_step_multiplier, positive=True)

    try:
        features = audio_mod.AudioFeatures(audio, fps)
    except audio_mod.AudioInputError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    fps = features.fps
    n_video, height, width, channels = (int(v) for v in images.shape)
    schedule = frame_schedule(mode, n_video, features.n_frames)
    n_out = len(schedule)
    used = int(schedule.max()) + 1  # a prefix of the input frames is ever shown

    dirs = model_search_dirs() if search_dirs is None else [Path(d) for d in search_dirs]
    try:
        path = resolve_checkpoint_path(checkpoint, search_dirs)
        model, device, dtype, fmt = _generator_on_device(path, force_cpu, precision)
    except CheckpointError as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    mel_s = time.perf_counter() - started

    # -- face boxes, one row per input frame shown
    settings = fd.BoxSettings(face_padding=face_padding, smooth_box_frames=smooth_box_frames,
                              max_gap=max(1, int(round(MAX_GAP_SECONDS * fps))))
    progress = _Progress(detect_share=0.0 if face_mask is not None else 0.3)
    t0 = time.perf_counter()
    stats = None
    try:
        if face_mask is not None:
            boxes = fd.mask_boxes(face_mask, n_video, height, width, settings)[:used]
        else:
            if detector is None:
                detector = _s3fd_detector(face_detect_batch, dirs)
            boxes, stats = fd.detect_boxes(images, used, detector, settings,
                                           on_progress=progress.detection,
                                           check_interrupt=_check_interrupt)
    except (fd.MaskInputError, DetectorWeightsError) as err:
        raise HaloLipsyError(f"Halo-Lipsy: {err}") from None
    except fd.DetectorError as err:
        raise HaloLipsyError(
            f"Halo-Lipsy: {err}. Frames of {width}x{height} could not be searched for a face; "
            "connect a face_mask (the face's region) to skip face detection.") from None
    detect_s = time.perf_counter() - t0
    usable = [clip_box(b, height, width) if b[0] >= 0 else None for b in boxes]

    # -- generation, streamed in chunks into one preallocated output
    t0 = time.perf_counter()
    generator = BatchedGenerator(model, device, dtype, inference_batch, fmt)
    out, mask_out = _allocate_output(n_out, height, width, channels)
    out_np, mask_np = out.numpy(), mask_out.numpy()  # shared memory: pasting writes the outputs
    scale_uint8 = images.dtype == torch.uint8
    synced, copy_s, non_finite = 0, 0.0, []
    for start in range(0, n_out, inference_batch):
        _check_interrupt()
        stop = min(n_out, start + inference_batch)
        t1 = time.perf_counter()
        for i in range(start, stop):
            out[i].copy_(images[int(schedule[i])])
        if scale_uint8:
            out[start:stop] /= 255.0
        copy_s += time.perf_counter() - t1
        faced = [i for i in range(start, stop) if usable[schedule[i]] is not None]
        if faced:
            faces = np.stack([face_input(out_np[i], usable[schedule[i]]) for i in faced])
            non_finite += [i for i in faced if not _box_is_finite(out_np[i], usable[schedule[i]])]
            mels = features.windows(faced, sync_offset, mel_step_multiplier)

            def on_slice(done, total, start=start, stop=stop):
                _check_interrupt()
                progress.generation((start + (stop - start) * done / max(1, total)) / n_out)

            generated = generator(mels, faces, on_slice=on_slice)
            for k, i in enumerate(faced):
                paste(out_np[i], usable[schedule[i]], generated[k], blend_edges, blend_radius,
                      weights_out=mask_np[i])
            synced += len(faced)
        progress.generation(stop / n_out)
    generate_s = time.perf_counter() - t0

    if non_finite:
        logger.warning(
            "Halo-Lipsy: %d output frames have NaN or infinite pixels in the face box (frames %s): "
            "the generator saw them as black, and those pixels keep their invalid values. Check "
            "the node that made the images.", len(non_finite), _frame_list(non_finite))
    faces_found = sum(u is not None for u in usable)
    LAST_RUN.clear()
    LAST_RUN.update(frames_in=n_video, frames_out=n_out, faces_found=faces_found, frames_shown=used,
                    frames_synced=synced, audio_and_model_s=mel_s, detection_s=detect_s,
                    generation_s=generate_s, frame_copy_s=copy_s, detection_stats=stats,
                    device=str(device), dtype=str(dtype).replace("torch.", ""))
    logger.info(
        "Halo-Lipsy: %d frames in -> %d out (%s, %.3g fps), faces in %d/%d input frames, %d frames "
        "lip-synced; audio+model %.2fs, detection %.2fs%s, generation %.2fs on %s (%s)",
        n_video, n_out, mode, fps, faces_found, used, synced, mel_s, detect_s,
        f" ({stats.summary()})" if stats else " (face_mask)", generate_s, device,
        str(dtype).replace("torch.", ""))
    if faces_found == 0:
        logger.warning("Halo-Lipsy: no face found in any frame; the frames pass through unchanged. "
                       "Check the face is visible and not tiny, or connect a face_mask.")
    return out, features.fitted_audio(n_out), mask_out


def _box_is_finite(frame: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = box
    return bool(np.isfinite(frame[y1:y2, x1:x2, :3]).all())


# ---------------------------------------------------------------------------- the node


class HaloLipsy:
    """Lip-sync video frames to speech with Wav2Lip."""

    CATEGORY = "Halo-Lipsy"
    RETURN_TYPES = ("IMAGE", "AUDIO", "MASK")
    RETURN_NAMES = ("images", "audio", "mask")
    OUTPUT_TOOLTIPS = ("The lip-synced frames (same size as the input; length set by mode).",
                       "The input audio cut or padded to exactly the output's length, for "
                       "CreateVideo or Video Combine.",
                       "Per output frame, where the generated mouth was pasted and how strongly "
                       "(1: generated, 0: the frame's own pixels). Use it to restore or sharpen "
                       "only the pixels that changed.")
    FUNCTION = "lipsync"
    DESCRIPTION = ("Lip-syncs the faces in a video (or a single image) to speech with Wav2Lip. "
                   "Face detection runs on the CPU; the generator on your GPU (CUDA, ROCm, MPS) "
                   "or the CPU.")

    @classmethod
    def INPUT_TYPES(cls):
        from .wav2lip.device import PRECISIONS

        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Video frames (or one image) with a face to lip-sync."}),
                "audio": ("AUDIO", {"tooltip": "The speech to sync to (any rate, mono or stereo)."}),
                "checkpoint": (checkpoint_choices(), {
                    "default": "auto",
                    "tooltip": "Wav2Lip weights from models/wav2lip (and its subfolders, and any "
                               "wav2lip folder in extra_model_paths.yaml) or this pack's "
                               "checkpoints/. auto prefers wav2lip_gan.pth, then wav2lip.pth."}),
                "mode": (list(MODES), {
                    "default": "sequential",
                    "tooltip": "sequential: frames in order, the last held while audio remains. "
                               "repetitive: the clip loops to the audio's length. pingpong: the "
                               "clip plays forward then backward (no jump cut)."}),
                "fps": ("FLOAT", {
                    "default": 25.0, "min": 0.01, "max": 240.0, "step": 0.001,
                    "tooltip": "Frame rate of the images. Wire it from GetVideoComponents or VHS "
                               "Video Info; a wrong fps drifts out of sync."}),
                "face_detect_batch": ("INT", {
                    "default": 4, "min": 1, "max": 64,
                    "tooltip": "Images per face-detector call (CPU)."}),
                "inference_batch": ("INT", {
                    "default": 64, "min": 1, "max": 1024,
                    "tooltip": "Frames per generator batch; halved automatically on out-of-memory."}),
                "force_cpu": ("BOOLEAN", {
                    "default": False, "tooltip": "Run the generator on the CPU even if a GPU is present."}),
                "sync_offset": ("INT", {
                    "default": 0, "min": -10, "max": 10,
                    "tooltip": "Shift the mouth by whole frames: positive makes the lips later, "
                               "negative earlier (lips behind the audio: try -2)."}),
                "mel_step_multiplier": ("FLOAT", {
                    "default": 1.0, "min": 0.1, "max": 4.0, "step": 0.01,
                    "tooltip": "Audio advanced per frame relative to the frame rate; 1.0 is exact sync."}),
                "face_padding": ("INT", {
                    "default": 10, "min": 0, "max": 200,
                    "tooltip": "Pixels added below the face box (the chin side), as Wav2Lip's default "
                               "pads 0 10 0 0."}),
                "smooth_box_frames": ("INT", {
                    "default": 5, "min": 0, "max": 61,
                    "tooltip": "Average face boxes over this many frames (centred) against jitter; 0 or 1 is off."}),
                "blend_edges": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "Blend only the mouth and jaw through a feathered mask, keeping the "
                               "eyes sharp. Off: Wav2Lip's plain rectangular paste."}),
                "blend_radius": ("INT", {
                    "default": 5, "min": 0, "max": 64,
                    "tooltip": "Feather width of the blend mask in pixels."}),
                "precision": (list(PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Generator precision. auto: fp16 on NVIDIA (Volta+) and AMD GPUs, "
                               "fp32 elsewhere (and with --force-fp32). bf16: ~2x faster on CPUs "
                               "with AVX-512 BF16 or AMX, slightly different mouth texture. A "
                               "precision the device does not run natively falls back to fp32."}),
            },
            "optional": {
                "face_mask": ("MASK", {
                    "tooltip": "Optional: marks the face per frame (or one frame for all) and "
                               "replaces face detection; the box is the mask's bounding box."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, checkpoint="auto", **_):
        # Inputs are hashed by ComfyUI already; the file behind `checkpoint` is not.
        return checkpoint_fingerprint(checkpoint)

    def lipsync(self, images, audio, checkpoint="auto", mode="sequential", fps=25.0,
                face_detect_batch=4, inference_batch=64, force_cpu=False, sync_offset=0,
                mel_step_multiplier=1.0, face_padding=10, smooth_box_frames=5, blend_edges=True,
                blend_radius=5, precision="auto", face_mask=None):
        return run_lipsync(images, audio, checkpoint, mode, fps, face_detect_batch,
                           inference_batch, force_cpu, sync_offset, mel_step_multiplier,
                           face_padding, smooth_box_frames, blend_edges, blend_radius, face_mask,
                           precision)


NODE_CLASS_MAPPINGS = {"HaloLipsy": HaloLipsy}
NODE_DISPLAY_NAME_MAPPINGS = {"HaloLipsy": "Halo-Lipsy"}
