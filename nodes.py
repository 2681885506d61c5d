"""The Halo-Lipsy nodes: their inputs and the ComfyUI glue around the routes (routes/), which do the work.

    node (inputs, model folders, model management, progress bar, interrupt) -> a route -> stages

Models are cached across workflows and released when ComfyUI unloads them (see _patchers).

This is the only module that knows ComfyUI. `comfy.*` and `folder_paths` are imported lazily and
are optional, so the node also runs (and is tested) without a ComfyUI checkout. Heavy libraries
(torch, OpenCV, face-alignment) load on the first run, not when ComfyUI starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import routes  # import nothing heavy at module level
from .settings import IMAGE, VIDEO, HaloLipsyError, Settings, settings_for

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


def available_checkpoints() -> dict:
    """{choice: path}: ComfyUI's listing of the `wav2lip` folders (subfolders included) inside
    ComfyUI, the pack's checkpoints/ files otherwise."""
    from .wav2lip.checkpoint import find_checkpoints, is_generator_candidate

    folder_paths = _folder_paths()
    if folder_paths is None:
        return find_checkpoints(model_search_dirs())
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


def resolve_checkpoint_path(checkpoint: str) -> Path:
    from .wav2lip import resolve_checkpoint

    return resolve_checkpoint(checkpoint, model_search_dirs(), available_checkpoints())


def checkpoint_fingerprint(checkpoint: str) -> str:
    """Changes whenever the file `checkpoint` resolves to changes (another file, or the same
    name rewritten), so ComfyUI reruns the node instead of reusing its cached output."""
    try:
        path = resolve_checkpoint_path(checkpoint)
        stat = path.stat()
    except Exception as err:  # noqa: BLE001 - the run itself reports a missing checkpoint
        return f"unresolved: {err}"
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


if _folder_paths() is not None:  # inside ComfyUI: the folder exists from startup on
    register_model_folder()

# where restore models are listed from: face restoration packs register facerestore_models
# (models/facerestore_models), core registers upscale_models
RESTORE_FOLDERS = ("facerestore_models", "upscale_models")
NO_RESTORE_FILE = "none"


def restore_file_choices() -> list[str]:
    """The files in the restore model folders, each as `folder/name`."""
    folder_paths = _folder_paths()
    if folder_paths is None:
        return []
    if RESTORE_FOLDERS[0] not in folder_paths.folder_names_and_paths:  # no face restoration pack
        folder_paths.add_model_folder_path(RESTORE_FOLDERS[0],
                                           str(Path(folder_paths.models_dir) / RESTORE_FOLDERS[0]))
    choices = []
    for folder in RESTORE_FOLDERS:
        try:
            choices += [f"{folder}/{name}" for name in folder_paths.get_filename_list(folder)]
        except Exception:  # noqa: BLE001 - an unreadable folder must not break the node list
            continue
    return choices


_restore_models: dict = {}


def _restore_model_from_file(choice: str, connected):
    """The restore model to use: the connected one, or the file chosen from the restore folders
    (read once, as core's loader reads it, and kept while it is unchanged)."""
    if choice in (None, NO_RESTORE_FILE):
        return connected
    if connected is not None:
        raise HaloLipsyError(f"restore_model is connected and restore_model_file is '{choice}': "
                             "choose one (set restore_model_file to none, or disconnect restore_model).")
    from .restore import RestoreModelError, load_restore_model

    folder, _, name = choice.partition("/")
    folder_paths = _folder_paths()
    path = folder_paths.get_full_path(folder, name) if folder_paths is not None and folder in RESTORE_FOLDERS else None
    if path is None:
        raise RestoreModelError(f"restore_model_file '{choice}' is not in {' or '.join(RESTORE_FOLDERS)}; "
                                "refresh ComfyUI (R) after adding a file, and choose it again.")
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _restore_models:
        _restore_models.clear()  # one at a time: they are hundreds of MB
        _restore_models[key] = load_restore_model(Path(path))
    return _restore_models[key]


class _Progress:
    """ComfyUI's progress bar for one run, fed fractions 0..1 by a route."""

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


def _generator_on_device(path, force_cpu: bool, precision: str):
    """The cached generator, placed through ComfyUI's model management when present (so ComfyUI
    frees VRAM for it and can evict it next to a big video model), else on torch's best device.
    Returns (model, device, dtype, memory format)."""
    import torch

    from .wav2lip import load_generator, pick_device

    comfy = None if force_cpu else _comfy()
    device = torch.device(pick_device(force_cpu) if comfy is None else comfy[1].get_torch_device())
    dtype, fmt = routes.generator_format(device, precision, force_fp32=_force_fp32(_comfy()))
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


def _face_recognizer(search_dirs):
    from .face_detect.recognition import load_recognizer

    return load_recognizer(search_dirs)


def release_models():
    """Drop every cached generator, detector and face recognizer."""
    from .face_detect.recognition import release_recognizer
    from .wav2lip import release_generators

    release_generators()
    release_recognizer()
    _patchers.clear()
    _detectors.clear()
    _restore_models.clear()


# ---------------------------------------------------------------------------- the routes, wired


def _hooks() -> routes.Hooks:
    """The routes' hooks inside (or outside) ComfyUI. Module functions are looked up at call
    time, so a test can replace one with monkeypatch as it would any function."""
    progress = _Progress()
    return routes.Hooks(
        resolve_checkpoint=lambda name: resolve_checkpoint_path(name),
        load_generator=lambda path, force_cpu, precision: _generator_on_device(path, force_cpu, precision),
        detector=lambda batch: _s3fd_detector(batch, model_search_dirs()),
        recognizer=lambda: _face_recognizer(model_search_dirs()),
        progress=progress.set,
        check_interrupt=_check_interrupt,
        make_room=_make_room)


def _make_room(size: int, device):
    """ComfyUI unloads what it must so that `size` bytes fit on `device` (as core's upscale node
    does before it places its model there)."""
    comfy = _comfy()
    if comfy is not None:
        comfy[1].free_memory(size, device)


# ---------------------------------------------------------------------------- the node


def _node_input(setting) -> tuple:
    """A ComfyUI input spec from a setting's declaration (settings.py)."""
    options = {"default": setting.default, "tooltip": setting.tooltip}
    if setting.kind == "CHECKPOINT":
        return checkpoint_choices(), options
    if setting.kind == "CHOICE":
        return list(setting.choices), options
    for key, value in (("min", setting.minimum), ("max", setting.maximum), ("step", setting.step)):
        if value is not None:
            options[key] = value
    return setting.kind, options


def _setting_inputs(front_end: str) -> dict:
    """The settings a node shows, in declaration order (saved workflows depend on it)."""
    return {setting.name: _node_input(setting) for setting in settings_for(front_end)}


class _LipsyNode:
    """What both nodes share: their menu category, and a rerun when the checkpoint file changes."""

    CATEGORY = "Halo-Lipsy"

    @classmethod
    def IS_CHANGED(cls, checkpoint="auto", **_):
        # Inputs are hashed by ComfyUI already; the file behind `checkpoint` is not.
        return checkpoint_fingerprint(checkpoint)


FACE_MARKER_INPUT = ("MASK", {
    "tooltip": "Optional: a rough stroke painted on the person who speaks (Load Image of a "
               "frame, then the mask editor; several painted frames as a MASK batch all mark "
               "the same person). Connect the painted picture (Load Image's IMAGE) to "
               "face_marker_image too, unless the MASK has one frame per video frame. That "
               "person is followed, and after every cut found again by their face, or nobody is "
               "lip-synced in that shot. Unlike face_mask, the box follows the face."})
FACE_MARKER_IMAGE_INPUT = ("IMAGE", {
    "tooltip": "Optional, with face_marker: the picture(s) its strokes were painted on (Load "
               "Image's IMAGE output). The person under a stroke there is the one followed; any "
               "picture of that person works."})


RESTORE_MODEL_INPUT = ("UPSCALE_MODEL", {
    "tooltip": "Optional: a model from Load Upscale Model that makes Wav2Lip's 96x96 mouth as "
               "sharp as the face. A super-resolution model (RealESRGAN x2/x4, 4x-UltraSharp, a "
               "Compact model, SwinIR, HAT) draws the mouth larger before it is pasted; a face "
               "restoration model (GFPGAN 1.2-1.4, RestoreFormer, CodeFormer) restores the face "
               "around the pasted mouth. Only the pixels the mouth is pasted into change; "
               "restore_strength blends it with the plain mouth."})


def _restore_file_input() -> tuple:
    return ([NO_RESTORE_FILE] + restore_file_choices(), {
        "default": NO_RESTORE_FILE,
        "tooltip": "Optional, instead of connecting restore_model: a model from "
                   "models/facerestore_models (where face restoration packs keep GFPGAN and "
                   "CodeFormer) or models/upscale_models, used as restore_model is."})


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
                **_setting_inputs(IMAGE),
            },
            "optional": {
                "face_mask": ("MASK", {
                    "tooltip": "Optional: marks the face's region per frame (or one frame for "
                               "all) and replaces face detection: the box is the mask's bounding "
                               "box, fixed where you painted it."}),
                "face_marker": FACE_MARKER_INPUT,
                "face_marker_image": FACE_MARKER_IMAGE_INPUT,
                "restore_model": RESTORE_MODEL_INPUT,
                "restore_model_file": _restore_file_input(),
            },
        }

    def lipsync(self, images, audio, face_mask=None, face_marker=None, face_marker_image=None,
                restore_model=None, restore_model_file=NO_RESTORE_FILE, **settings):
        restore_model = _restore_model_from_file(restore_model_file, restore_model)
        result = routes.lipsync_images(images, audio, Settings(**settings), _hooks(), face_mask,
                                       face_marker, face_marker_image, restore_model)
        result.report.log()
        return result.outputs()


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
        raise HaloLipsyError("no video: connect a VIDEO (Load Video) to 'video'.")
    if not hasattr(video, "get_stream_source"):
        if hasattr(video, "get_components"):
            return None
        raise HaloLipsyError(f"'video' is a {type(video).__name__}, not a ComfyUI "
                             "VIDEO; connect Load Video (or Create Video).")
    if type(video).__name__ == "VideoFromComponents":
        return None  # its frames are in memory already; encoding them first would only cost
    return video.get_stream_source()


def _video_edits(video):
    """The edits a VIDEO carries: its trim, crop and size after them (ComfyUI 2026: Trim Video,
    Load Video's edit input), which `get_stream_source()` leaves to the consumer. Older VIDEOs
    have none."""
    from .video import Edits

    trim = getattr(video, "get_active_trim_window", None)
    start, duration = trim() if callable(trim) else (0.0, 0.0)
    # VideoFromFile keeps its crop private (no getter); its name-mangled attribute is the crop
    crop = next((value for name, value in vars(video).items() if name.endswith("__crop")), None)
    pending = getattr(video, "has_pending_frame_edits", None)
    edited = callable(pending) and pending()
    # the size its frames have after every edit (a resize too): the stream is checked against it
    size = tuple(int(v) for v in video.get_dimensions()) if edited else None
    edits = Edits(float(start or 0.0), float(duration or 0.0),
                  None if crop is None else tuple(int(v) for v in crop), size)
    if edited and edits.start == 0 and edits.duration == 0 and edits.crop is None:
        raise HaloLipsyError("this VIDEO carries edits that Halo-Lipsy cannot read; "
                             "apply them first (Save Video, then Load Video).")
    return edits


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
                **_setting_inputs(VIDEO),
            },
            "optional": {
                "audio": ("AUDIO", {
                    "tooltip": "The speech to sync to. Leave empty to use the video's own sound."}),
                "face_mask": ("MASK", {
                    "tooltip": "Optional: one mask frame marking the face region for the whole "
                               "clip; replaces face detection (the box stays where you painted "
                               "it)."}),
                "face_marker": FACE_MARKER_INPUT,
                "face_marker_image": FACE_MARKER_IMAGE_INPUT,
                "restore_model": RESTORE_MODEL_INPUT,
                "restore_model_file": _restore_file_input(),
            },
        }

    def lipsync(self, video, audio=None, face_mask=None, face_marker=None, face_marker_image=None,
                restore_model=None, restore_model_file=NO_RESTORE_FILE, **settings):
        restore_model = _restore_model_from_file(restore_model_file, restore_model)
        source = _stream_source(video)
        path = _temp_video_path()
        if source is None:  # frames already in memory: the IMAGE route, encoded the same way
            components = video.get_components()
            report = routes.lipsync_components(
                components.images, audio, str(path),
                Settings(fps=float(components.frame_rate), **settings), _hooks(),
                face_mask=face_mask, face_marker=face_marker, own_sound=components.audio,
                face_marker_image=face_marker_image, restore_model=restore_model)
        else:
            report = routes.lipsync_video(source, str(path), Settings(**settings), _hooks(),
                                          audio=audio, face_mask=face_mask,
                                          edits=_video_edits(video), face_marker=face_marker,
                                          face_marker_image=face_marker_image,
                                          restore_model=restore_model)
        report.log()
        return (_video_from_file(path),)


NODE_CLASS_MAPPINGS = {"HaloLipsy": HaloLipsy, "HaloLipsyVideo": HaloLipsyVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HaloLipsy": "Halo-Lipsy", "HaloLipsyVideo": "Halo-Lipsy (Video)"}
