"""What a restore model is, told by spandrel's own description of it (purpose, scale, channels),
and which of those the pack applies to the generated mouth; reading a model file the way
ComfyUI's Load Upscale Model reads one (the command line)."""

from __future__ import annotations

from pathlib import Path

from ..common.errors import HaloLipsyError

SUPER_RESOLUTION = "super-resolution"  # applied to the generator's 96x96 mouth before it is sized
SR_EXAMPLES = "RealESRGAN x2/x4, 4x-UltraSharp, a Compact x2/x4, SwinIR, HAT"


class RestoreModelError(HaloLipsyError):
    """A restore model the pack cannot apply, or cannot read."""


def _name(descriptor) -> str:
    architecture = getattr(descriptor, "architecture", None)
    return str(getattr(architecture, "name", None) or getattr(architecture, "id", None) or
               type(getattr(descriptor, "model", descriptor)).__name__)


def kind_of(descriptor) -> str:
    """SUPER_RESOLUTION for a model that draws a 3-channel picture larger (spandrel purpose
    "SR"); anything else is refused with a message naming the model and what to load."""
    purpose = getattr(descriptor, "purpose", None)
    if purpose is None or not callable(descriptor) or getattr(descriptor, "model", None) is None:
        raise RestoreModelError(
            f"restore_model is a {type(descriptor).__name__}, not an image model: connect Load "
            f"Upscale Model with a super-resolution model ({SR_EXAMPLES}).")
    name = _name(descriptor)
    if (getattr(descriptor, "input_channels", 3), getattr(descriptor, "output_channels", 3)) != (3, 3):
        raise RestoreModelError(f"restore_model {name} takes {descriptor.input_channels} and gives "
                                f"{descriptor.output_channels} channels; the mouth is colour (3). "
                                f"Load a colour super-resolution model ({SR_EXAMPLES}).")
    if purpose == "SR" and int(getattr(descriptor, "scale", 1)) >= 2:
        return SUPER_RESOLUTION
    if purpose == "FaceSR":
        raise RestoreModelError(
            f"restore_model {name} is a face restoration model; Halo-Lipsy does not apply those yet "
            f"(they need the face aligned to their 512x512 layout). Load a super-resolution model "
            f"({SR_EXAMPLES}).")
    raise RestoreModelError(
        f"restore_model {name} is a {purpose} model at scale {getattr(descriptor, 'scale', '?')}: it "
        f"does not draw the 96x96 mouth larger and sharper. Load a super-resolution model "
        f"({SR_EXAMPLES}).")


def load_restore_model(path: Path):
    """A model file read as core's Load Upscale Model reads it: a safe tensor load (no pickled
    code), then spandrel; checked with `kind_of`."""
    from ..wav2lip import read_state_dict

    try:
        from spandrel import ModelLoader, canonicalize_state_dict
    except Exception as err:  # noqa: BLE001 - not installed, or its torchvision does not load
        raise RestoreModelError(
            f"reading a restore model needs spandrel ({type(err).__name__}: {err}); install it into "
            "this Python (python -m pip install spandrel: ComfyUI's own Python has it).") from None
    path = Path(path)
    if not path.is_file():
        raise RestoreModelError(f"the restore model '{path}' does not exist.")
    state_dict = read_state_dict(path)  # a file that would run code is refused here, with the reason
    try:
        descriptor = ModelLoader().load_from_state_dict(canonicalize_state_dict(state_dict))
    except Exception as err:  # noqa: BLE001 - an unknown architecture
        raise RestoreModelError(f"the restore model '{path}' could not be read ({type(err).__name__}: "
                                f"{err}). Give a super-resolution model ({SR_EXAMPLES}).") from None
    kind_of(descriptor)
    return descriptor.eval()
