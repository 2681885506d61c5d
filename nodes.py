"""The Halo-Lipsy nodes: their inputs and the ComfyUI glue around pipeline.py, which does the work.

    node (inputs, model folders, model management, progress bar, interrupt) -> pipeline -> stages

Models are cached across workflows and released when ComfyUI unloads them (see _patchers).

This is the only module that knows ComfyUI. `comfy.*` and `folder_paths` are imported lazily and
are optional, so the node also runs (and is tested) without a ComfyUI checkout. Heavy libraries
(torch, OpenCV, face-alignment) load on the first run, not when ComfyUI starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import pipeline  # imports nothing heavy at module level
# the plain logic's names, re-exported for tools and tests that use the node module
from .pipeline import LAST_RUN, MODES, HaloLipsyError, frame_schedule  # noqa: F401

logger = logging.getLogger("HaloLipsy")

PACK_DIR = Path(__file__).resolve().parent
PACK_CHECKPOINTS = PACK_DIR / "checkpoints"
MODEL_FOLDER = "wav2lip"  # ComfyUI/models/wav2lip, also configurable in extra_model_paths.yaml


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
    """ComfyUI's progress bar for one run, fed fractions 0..1 by the pipeline."""

    STEPS = 1000

    def __init__(self):
        comfy = _comfy()
        self.bar = comfy[3].ProgressBar(self.STEPS) if comfy is not None else None

    def set(self, fraction):
        if self.bar is not None:
            self.bar.update_absolute(int(round(min(1.0, max(0.0, fraction)) * self.STEPS)))


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

    from .wav2lip import load_generator, pick_device

    comfy = None if force_cpu else _comfy()
    device = torch.device(pick_device(force_cpu) if comfy is None else comfy[1].get_torch_device())
    dtype, fmt = pipeline.generator_format(device, precision, force_fp32=_force_fp32(_comfy()))
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


# ---------------------------------------------------------------------------- the pipeline, wired


def _hooks(search_dirs=None, detector=None) -> pipeline.Hooks:
    """The pipeline's hooks inside (or outside) ComfyUI. Module functions are looked up at call
    time, so tests can replace them."""
    dirs = model_search_dirs() if search_dirs is None else [Path(d) for d in search_dirs]
    progress = _Progress()
    return pipeline.Hooks(
        resolve_checkpoint=lambda name: resolve_checkpoint_path(name, search_dirs),
        load_generator=lambda path, force_cpu, precision: _generator_on_device(path, force_cpu, precision),
        detector=lambda batch: detector if detector is not None else _s3fd_detector(batch, dirs),
        progress=progress.set,
        check_interrupt=_check_interrupt)


def run_lipsync(images, audio, checkpoint="auto", mode="sequential", fps=25.0,
                face_detect_batch=4, inference_batch=64, force_cpu=False, sync_offset=0,
                mel_step_multiplier=1.0, face_padding=10, smooth_box_frames=5, blend_edges=True,
                blend_radius=5, face_mask=None, precision="auto", detector=None, search_dirs=None):
    """Lip-sync `images` to `audio`; returns (IMAGE float32 on the CPU, AUDIO, MASK).

    `detector` and `search_dirs` replace S3FD and the model folders (tests, benchmarks)."""
    settings = pipeline.Settings(checkpoint, mode, face_detect_batch, inference_batch, force_cpu,
                                 sync_offset, mel_step_multiplier, face_padding, smooth_box_frames,
                                 blend_edges, blend_radius, precision)
    return pipeline.lipsync_images(images, audio, fps, settings, _hooks(search_dirs, detector),
                                   face_mask)


# ---------------------------------------------------------------------------- the node


def _setting_inputs(with_fps: bool) -> dict:
    """The settings both nodes share, in the IMAGE node's order (saved workflows depend on it)."""
    from .wav2lip.device import PRECISIONS

    inputs = {
        "checkpoint": (checkpoint_choices(), {
            "default": "auto",
            "tooltip": "Wav2Lip weights from models/wav2lip (and its subfolders, and any wav2lip "
                       "folder in extra_model_paths.yaml) or this pack's checkpoints/. auto prefers "
                       "wav2lip_gan.pth, then wav2lip.pth."}),
        "mode": (list(MODES), {
            "default": "sequential",
            "tooltip": "sequential: frames in order, the last held while audio remains. "
                       "repetitive: the clip loops to the audio's length. pingpong: the clip plays "
                       "forward then backward (no jump cut)."}),
        "fps": ("FLOAT", {
            "default": 25.0, "min": 0.01, "max": 240.0, "step": 0.001,
            "tooltip": "Frame rate of the images. Wire it from GetVideoComponents or VHS Video "
                       "Info; a wrong fps drifts out of sync."}),
        "face_detect_batch": ("INT", {
            "default": 4, "min": 1, "max": 64, "tooltip": "Images per face-detector call (CPU)."}),
        "inference_batch": ("INT", {
            "default": 64, "min": 1, "max": 1024,
            "tooltip": "Frames per generator batch; halved automatically on out-of-memory."}),
        "force_cpu": ("BOOLEAN", {
            "default": False, "tooltip": "Run the generator on the CPU even if a GPU is present."}),
        "sync_offset": ("INT", {
            "default": 0, "min": -10, "max": 10,
            "tooltip": "Shift the mouth by whole frames: positive makes the lips later, negative "
                       "earlier (lips behind the audio: try -2)."}),
        "mel_step_multiplier": ("FLOAT", {
            "default": 1.0, "min": 0.1, "max": 4.0, "step": 0.01,
            "tooltip": "Audio advanced per frame relative to the frame rate; 1.0 is exact sync."}),
        "face_padding": ("INT", {
            "default": 10, "min": 0, "max": 200,
            "tooltip": "Pixels added below the face box (the chin side), as Wav2Lip's default pads "
                       "0 10 0 0."}),
        "smooth_box_frames": ("INT", {
            "default": 5, "min": 0, "max": 61,
            "tooltip": "Average face boxes over this many frames (centred) against jitter; 0 or 1 is off."}),
        "blend_edges": ("BOOLEAN", {
            "default": True,
            "tooltip": "Blend only the mouth and jaw through a feathered mask, keeping the eyes "
                       "sharp. Off: Wav2Lip's plain rectangular paste."}),
        "blend_radius": ("INT", {
            "default": 5, "min": 0, "max": 64, "tooltip": "Feather width of the blend mask in pixels."}),
        "precision": (list(PRECISIONS), {
            "default": "auto",
            "tooltip": "Generator precision. auto: fp16 on NVIDIA (Volta+) and AMD GPUs, fp32 "
                       "elsewhere (and with --force-fp32). bf16: ~2x faster on CPUs with AVX-512 "
                       "BF16 or AMX, slightly different mouth texture. A precision the device does "
                       "not run natively falls back to fp32."}),
    }
    if not with_fps:
        del inputs["fps"]
    return inputs


class _LipsyNode:
    """What both nodes share: their menu category, and a rerun when the checkpoint file changes."""

    CATEGORY = "Halo-Lipsy"

    @classmethod
    def IS_CHANGED(cls, checkpoint="auto", **_):
        # Inputs are hashed by ComfyUI already; the file behind `checkpoint` is not.
        return checkpoint_fingerprint(checkpoint)


class HaloLipsy(_LipsyNode):
    """Lip-sync video frames to speech with Wav2Lip."""

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
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Video frames (or one image) with a face to lip-sync."}),
                "audio": ("AUDIO", {"tooltip": "The speech to sync to (any rate, mono or stereo)."}),
                **_setting_inputs(with_fps=True),
            },
            "optional": {
                "face_mask": ("MASK", {
                    "tooltip": "Optional: marks the face per frame (or one frame for all) and "
                               "replaces face detection; the box is the mask's bounding box."}),
            },
        }

    def lipsync(self, images, audio, checkpoint="auto", mode="sequential", fps=25.0,
                face_detect_batch=4, inference_batch=64, force_cpu=False, sync_offset=0,
                mel_step_multiplier=1.0, face_padding=10, smooth_box_frames=5, blend_edges=True,
                blend_radius=5, precision="auto", face_mask=None):
        return run_lipsync(images, audio, checkpoint, mode, fps, face_detect_batch,
                           inference_batch, force_cpu, sync_offset, mel_step_multiplier,
                           face_padding, smooth_box_frames, blend_edges, blend_radius, face_mask,
                           precision)


def _temp_video_path() -> Path:
    """A fresh file in ComfyUI's temp folder (which ComfyUI empties at start), or the system's."""
    import tempfile
    import uuid

    folder_paths = _folder_paths()
    base = Path(folder_paths.get_temp_directory()) if folder_paths is not None else Path(tempfile.gettempdir())
    folder = base / "halo-lipsy"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"lipsync_{uuid.uuid4().hex[:12]}.mp4"


def _video_from_file(path):
    from comfy_api.input_impl import VideoFromFile
    return VideoFromFile(str(path))


def _stream_source(video):
    """A path or file object PyAV can read, or None for a VIDEO held as frames in memory."""
    if video is None:
        raise HaloLipsyError("Halo-Lipsy: no video: connect a VIDEO (Load Video) to 'video'.")
    if not hasattr(video, "get_stream_source"):
        if hasattr(video, "get_components"):
            return None
        raise HaloLipsyError(f"Halo-Lipsy: 'video' is a {type(video).__name__}, not a ComfyUI "
                             "VIDEO; connect Load Video (or Create Video).")
    if type(video).__name__ == "VideoFromComponents":
        return None  # its frames are in memory already; encoding them first would only cost
    return video.get_stream_source()


def _video_window(video):
    """The trim window and crop a VIDEO carries (ComfyUI 2026: Trim Video, Load Video's edit
    input), which `get_stream_source()` leaves to the consumer. Older VIDEOs have neither."""
    from .video import Window

    trim = getattr(video, "get_active_trim_window", None)
    start, duration = trim() if callable(trim) else (0.0, 0.0)
    # VideoFromFile keeps its crop private (no getter); its name-mangled attribute is the crop
    crop = next((value for name, value in vars(video).items() if name.endswith("__crop")), None)
    window = Window(float(start or 0.0), float(duration or 0.0),
                    None if crop is None else tuple(int(v) for v in crop))
    pending = getattr(video, "has_pending_frame_edits", None)
    if callable(pending) and pending() and window == Window():
        raise HaloLipsyError("Halo-Lipsy: this VIDEO carries edits (trim or crop) that Halo-Lipsy "
                             "cannot read; apply them first (Save Video, then Load Video).")
    return window


class HaloLipsyVideo(_LipsyNode):
    """Lip-sync a whole video, streamed: any length in constant memory."""

    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The lip-synced video (H.264 + AAC in MP4) with the audio cut or padded to "
                       "its length. Save Video with format and codec auto stores it as it is.",)
    FUNCTION = "lipsync"
    DESCRIPTION = ("Lip-syncs a VIDEO (Load Video) to its own sound or to the AUDIO you connect, "
                   "decoding and encoding a window of frames at a time: memory stays flat for "
                   "any length, and each frame's timing comes from the file (variable frame rate "
                   "included).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The video to lip-sync (Load Video)."}),
                **_setting_inputs(with_fps=False),
                "quality": ("INT", {
                    "default": 19, "min": 1, "max": 51,
                    "tooltip": "H.264 quality of the output (x264 CRF): 1 best and largest, "
                               "18-23 look like the source, 51 smallest. (0, lossless, is left "
                               "out: it needs a profile browsers and most players refuse.)"}),
            },
            "optional": {
                "audio": ("AUDIO", {
                    "tooltip": "The speech to sync to. Leave empty to use the video's own sound."}),
                "face_mask": ("MASK", {
                    "tooltip": "Optional: one mask frame marking the face region for the whole "
                               "clip; replaces face detection."}),
            },
        }

    def lipsync(self, video, checkpoint="auto", mode="sequential", face_detect_batch=4,
                inference_batch=64, force_cpu=False, sync_offset=0, mel_step_multiplier=1.0,
                face_padding=10, smooth_box_frames=5, blend_edges=True, blend_radius=5,
                precision="auto", quality=19, audio=None, face_mask=None):
        settings = pipeline.Settings(checkpoint, mode, face_detect_batch, inference_batch,
                                     force_cpu, sync_offset, mel_step_multiplier, face_padding,
                                     smooth_box_frames, blend_edges, blend_radius, precision)
        source = _stream_source(video)
        path = _temp_video_path()
        if source is None:  # frames already in memory: the IMAGE route, encoded the same way
            components = video.get_components()
            pipeline.lipsync_components(
                components.images, audio if audio is not None else components.audio,
                float(components.frame_rate), str(path), settings, _hooks(),
                face_mask=face_mask, quality=quality)
        else:
            pipeline.lipsync_video(source, str(path), settings, _hooks(), audio=audio,
                                   face_mask=face_mask, quality=quality,
                                   window=_video_window(video))
        return (_video_from_file(path),)


NODE_CLASS_MAPPINGS = {"HaloLipsy": HaloLipsy, "HaloLipsyVideo": HaloLipsyVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HaloLipsy": "Halo-Lipsy", "HaloLipsyVideo": "Halo-Lipsy (Video)"}
