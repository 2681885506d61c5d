"""The Wav2Lip generator and everything around it: safe checkpoint loading and discovery,
device choice, batched inference, and compositing the generated mouth back into the frame.
Plain torch/NumPy/OpenCV; no ComfyUI import."""

from .checkpoint import (CheckpointError, find_checkpoints, load_generator, read_checkpoint, read_state_dict,
                         release_generator, release_generators, resolve_checkpoint)
from .composite import blend_into, blend_weight, clip_box, face_input, paste
from .device import MEMORY_FORMAT, pick_device, pick_dtype
from .inference import BatchedGenerator, GeneratorOutOfMemory, in_batches
from .model import Wav2Lip

__all__ = [
    "MEMORY_FORMAT", "BatchedGenerator", "CheckpointError", "GeneratorOutOfMemory", "Wav2Lip", "blend_into", "blend_weight", "clip_box",
    "face_input", "find_checkpoints", "in_batches", "load_generator", "paste",
    "pick_device", "pick_dtype",
    "read_checkpoint", "read_state_dict", "release_generator", "release_generators", "resolve_checkpoint",
]
