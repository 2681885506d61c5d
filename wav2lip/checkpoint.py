"""Finding, safely loading, checking and caching Wav2Lip generator checkpoints.

A checkpoint is never unpickled freely: `.pth` files go through `torch.load(weights_only=True)`
(which refuses anything but tensors and plain containers) and `.safetensors` through
safetensors. Every key and shape is checked against the network before use.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from ..common.errors import HaloLipsyError
from .model import Wav2Lip

logger = logging.getLogger("HaloLipsy")

CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
PREFERRED = ("wav2lip_gan.pth", "wav2lip.pth")
RELEASED_SIZE_TEXT = ("about 416 MB for the released wav2lip_gan.pth / wav2lip.pth (weights with "
                      "optimizer state), or about 145 MB for the weights alone")
WEIGHTS_HELP = ("Download wav2lip_gan.pth (or wav2lip.pth) from the Wav2Lip authors' release "
                "(github.com/Rudrabha/Wav2Lip, 'Getting the weights') and put it in one of "
                "those folders.")


class CheckpointError(HaloLipsyError):
    """The chosen checkpoint cannot be used; the message says why and what to do."""


# ---------------------------------------------------------------------------- discovery


def is_generator_candidate(name: str) -> bool:
    """A file name (or relative path) that may hold generator weights."""
    base = Path(name).name.lower()
    # the S3FD detector weights share the folders but are never a generator
    return base.endswith(CHECKPOINT_EXTENSIONS) and not base.startswith("s3fd")


def find_checkpoints(search_dirs) -> dict[str, Path]:
    """{file name: path} over the folders in order (not their subfolders); an earlier folder
    wins a name clash. ComfyUI's own listing (subfolders, extra_model_paths.yaml) replaces this
    inside ComfyUI."""
    found: dict[str, Path] = {}
    for folder in search_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and is_generator_candidate(path.name) and path.name not in found:
                found[path.name] = path
    return found


def resolve_checkpoint(name: str, search_dirs, found: dict | None = None) -> Path:
    """The file for the node's `checkpoint` choice; "auto" prefers wav2lip_gan.pth, then
    wav2lip.pth (in any subfolder), then the first other checkpoint. `found` ({choice: path})
    replaces the listing of `search_dirs`, which then only name the folders in messages."""
    search_dirs = [Path(d) for d in search_dirs]
    found = find_checkpoints(search_dirs) if found is None else dict(found)
    if name and name != "auto":
        if name in found:
            return Path(found[name])
        candidate = Path(name)
        if candidate.is_absolute() and candidate.is_file():
            return candidate
        raise CheckpointError(
            f"Checkpoint '{name}' was not found in: {_folders_text(search_dirs)}. Pick one from "
            "the list (refresh ComfyUI after adding files) or choose 'auto'.")
    for preferred in PREFERRED:
        for choice in sorted(found, key=lambda c: (c.count("/") + c.count("\\"), c)):
            if Path(choice).name == preferred:
                return Path(found[choice])
    if found:
        return Path(found[sorted(found)[0]])
    raise CheckpointError(
        f"No Wav2Lip checkpoint found. Searched: {_folders_text(search_dirs)}. {WEIGHTS_HELP}")


def _folders_text(dirs) -> str:
    return ", ".join(str(d) for d in dirs) or "(no folders)"


# ---------------------------------------------------------------------------- loading


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The tensors in a checkpoint file, unwrapped from {"state_dict": ...} and "module." prefixes.

    Raises CheckpointError for files that would need code to load, or are truncated or corrupt.
    """
    return _unwrap(read_checkpoint(path, RELEASED_SIZE_TEXT, WEIGHTS_HELP), Path(path))


def read_checkpoint(path, expected_size: str, weights_help: str):
    """What a checkpoint file (torch.save or .safetensors) holds, read without running pickled
    code: tensors, in dicts as saved. Raises CheckpointError for files that would need code to
    load (`weights_help` says where the real weights are), or are truncated or corrupt
    (`expected_size`: the size the real file has)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            try:
                raw = load_file(str(path), device="cpu")
            except Exception as err:  # noqa: BLE001 - SafetensorError has no importable base
                raise ValueError(str(err) or type(err).__name__) from None
        else:
            with warnings.catch_warnings():  # a plain pickle's protocol is reported below instead
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        culprit = next((line.strip() for line in str(err).splitlines() if "global" in line.lower()), "")
        if not culprit:  # torch's reader gave up before naming a global: look at the pickle itself
            culprit = _plain_pickle_globals(path)
        if not culprit:
            if _is_plain_pickle(path):
                raise CheckpointError(
                    f"{path.name} is a plain Python pickle, not a PyTorch checkpoint (torch.save) "
                    f"or .safetensors file, and it holds no weights this node can read. "
                    f"{weights_help}") from None
            raise CheckpointError(_corrupt_text(path, size, expected_size, "not a readable checkpoint")) from None
        raise CheckpointError(
            f"Refused to load {path.name}: it contains Python objects beyond tensors, which could "
            f"run code when unpickled ({_shorten(culprit)}). Use the original weights or a "
            ".safetensors copy.") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(_corrupt_text(path, size, expected_size, str(err) or type(err).__name__)) from None
    return raw


_PICKLE_PROTOCOL_MARK = b"\x80"
_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")


def _is_plain_pickle(path: Path) -> bool:
    """A pickle stream (not torch's zip container)."""
    with open(path, "rb") as f:
        return f.read(1) == _PICKLE_PROTOCOL_MARK


def _plain_pickle_globals(path: Path) -> str:
    """The first global a plain pickle would import that a weights file never needs, read with
    pickletools (which only parses: nothing is imported or run). "" when there is none, the
    file is not a pickle, or it is too damaged to parse."""
    import pickletools

    if not _is_plain_pickle(path):
        return ""
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                    strings.append(str(arg))
                elif opcode.name == "GLOBAL":
                    name = str(arg).replace(" ", ".")
                    if not name.startswith(_SAFE_GLOBAL_PREFIXES):
                        return f"GLOBAL {name}"
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = f"{strings[-2]}.{strings[-1]}"
                    if not name.startswith(_SAFE_GLOBAL_PREFIXES):
                        return f"GLOBAL {name}"
                elif opcode.name == "STOP":
                    break
    except Exception:  # noqa: BLE001 - a damaged stream: the caller reports it as corrupt
        return ""
    return ""


def _shorten(text: str, limit: int = 200) -> str:
    """The first line of `text`, cut at a word boundary with an ellipsis when it is too long."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(" .,;:") + " ..."


def _corrupt_text(path: Path, size: int, expected_size: str, detail: str) -> str:
    return (f"{path.name} is truncated or corrupt ({size:,} bytes; expected {expected_size}). "
            f"Download it again. (Reading it failed with: {_shorten(detail)})")


def _unwrap(raw, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{path.name} holds no state dict of tensors; it is not a Wav2Lip "
                              f"checkpoint. {WEIGHTS_HELP}")
    tensors = {}
    for key, value in raw.items():
        if isinstance(key, str) and isinstance(value, torch.Tensor):
            tensors[key[len("module."):] if key.startswith("module.") else key] = value
    return tensors


def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str):
    """Raise CheckpointError naming the first mismatches when `state` is not a Wav2Lip generator."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong):
        return
    problems = []
    if wrong:
        problems.append("wrong shapes: " + ", ".join(wrong[:3]))
    if missing:
        problems.append(f"{len(missing)} missing keys, first: " + ", ".join(missing[:3]))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, first: " + ", ".join(unexpected[:3]))
    raise CheckpointError(
        f"{name} is not a Wav2Lip generator checkpoint{_what_it_looks_like(state)}: "
        + "; ".join(problems) + f". {WEIGHTS_HELP}")


def _what_it_looks_like(state) -> str:
    keys = list(state)
    if any(k.startswith("conv1_1") or k.startswith("conv3_3_norm") for k in keys):
        return " (it looks like the S3FD face detector, s3fd.pth)"
    if any(k.startswith("face_encoder.") for k in keys) and not any(
            k.startswith("face_encoder_blocks") for k in keys):
        return " (it looks like the SyncNet lip-sync expert, lipsync_expert.pth)"
    return ""


def build_generator(state: dict[str, torch.Tensor], name: str = "checkpoint") -> Wav2Lip:
    with torch.device("meta"):  # shapes only: copies of the checkpoint's tensors take their place
        model = Wav2Lip()
    check_state_dict(state, model.state_dict(), name)
    model.load_state_dict({k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=True)
                           for k, v in state.items()}, assign=True)
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- cache

_cache_lock = threading.Lock()
_cache: OrderedDict[tuple, Wav2Lip] = OrderedDict()
# Two nodes in one graph (say, two checkpoints, or one forced onto the CPU) each keep theirs;
# a fourth distinct one evicts the least recently used. One generator is ~145 MB in fp32.
MAX_CACHED_GENERATORS = 3


def _cache_key(path: Path, device, dtype, memory_format) -> tuple:
    stat = path.stat()
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, str(device), str(dtype),
            str(memory_format))


def load_generator(path, device="cpu", dtype=torch.float32,
                   memory_format=torch.contiguous_format) -> Wav2Lip:
    """The generator for `path` on `device`, ready for inference (BatchNorm folded into the
    convolutions), loaded once and reused until the file changes, it is evicted by newer ones,
    or `release_generators()` / `release_generator(model)` is called."""
    path = Path(path)
    key = _cache_key(path, device, dtype, memory_format)
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
        for old in [k for k in _cache if k[0] == key[0] and k[3:] == key[3:]]:
            del _cache[old]  # the same file changed on disk: its old weights are stale
        model = build_generator(read_state_dict(path), path.name).fuse_for_inference()
        model = model.to(device=device, dtype=dtype, memory_format=memory_format)
        _cache[key] = model
        while len(_cache) > MAX_CACHED_GENERATORS:
            _cache.popitem(last=False)
        logger.info("Halo-Lipsy: loaded %s on %s (%s)", path.name, device, dtype)
        return model


def release_generator(model) -> bool:
    """Forget one cached generator (ComfyUI unloaded it); True if it was cached."""
    with _cache_lock:
        keys = [k for k, m in _cache.items() if m is model]
        for k in keys:
            del _cache[k]
        return bool(keys)


def release_generators():
    """Forget every cached generator."""
    with _cache_lock:
        _cache.clear()
