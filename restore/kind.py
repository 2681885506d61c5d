"""What a restore model is, told by spandrel's own description of it (purpose, scale, channels,
architecture), and which of those the pack applies to the generated mouth; reading a model file
the way ComfyUI's Load Upscale Model reads one (the command line, the facerestore_models list)."""

from __future__ import annotations

from pathlib import Path

from ..common.errors import HaloLipsyError
from .face_models import FACE_ARCHITECTURES, FACE_EXAMPLES

SUPER_RESOLUTION = "super-resolution"  # applied to the generator's 96x96 mouth before it is sized
FACE_RESTORATION = "face restoration"  # applied to the whole face in FFHQ's layout, kept at the mouth
SR_EXAMPLES = "RealESRGAN x2/x4, 4x-UltraSharp, a Compact x2/x4, SwinIR, HAT"
WHAT_TO_LOAD = f"a super-resolution model ({SR_EXAMPLES}) or a face restoration model ({FACE_EXAMPLES})"


class RestoreModelError(HaloLipsyError):
    """A restore model the pack cannot apply, or cannot read."""


def _name(descriptor) -> str:
    architecture = getattr(descriptor, "architecture", None)
    return str(getattr(architecture, "name", None) or getattr(architecture, "id", None) or
               type(getattr(descriptor, "model", descriptor)).__name__)


def kind_of(descriptor) -> str:
    """SUPER_RESOLUTION for a model that draws a 3-channel picture larger (spandrel purpose
    "SR"), FACE_RESTORATION for one of the face restoration architectures the pack knows how to
    run (purpose "FaceSR"); anything else is refused with a message naming the model and what
    to load."""
    purpose = getattr(descriptor, "purpose", None)
    if purpose is None or not callable(descriptor) or getattr(descriptor, "model", None) is None:
        raise RestoreModelError(
            f"restore_model is a {type(descriptor).__name__}, not an image model: connect Load "
            f"Upscale Model with {WHAT_TO_LOAD}.")
    name = _name(descriptor)
    if (getattr(descriptor, "input_channels", 3), getattr(descriptor, "output_channels", 3)) != (3, 3):
        raise RestoreModelError(f"restore_model {name} takes {descriptor.input_channels} and gives "
                                f"{descriptor.output_channels} channels; the mouth is colour (3). "
                                f"Load a colour model: {WHAT_TO_LOAD}.")
    if purpose == "SR" and int(getattr(descriptor, "scale", 1)) >= 2:
        return SUPER_RESOLUTION
    if purpose == "FaceSR" and _architecture_id(descriptor) in FACE_ARCHITECTURES:
        return FACE_RESTORATION
    if purpose == "FaceSR":
        raise RestoreModelError(
            f"restore_model {name} is a face restoration model Halo-Lipsy does not know how to run "
            f"(each needs its own input range and alignment). Load {WHAT_TO_LOAD}.")
    raise RestoreModelError(
        f"restore_model {name} is a {purpose} model at scale {getattr(descriptor, 'scale', '?')}: it "
        f"does not draw the 96x96 mouth larger and sharper. Load {WHAT_TO_LOAD}.")


def _architecture_id(descriptor) -> str | None:
    return getattr(getattr(descriptor, "architecture", None), "id", None)


def load_restore_model(path: Path):
    """A model file read as core's Load Upscale Model reads it: a safe tensor load (no pickled
    code), then spandrel; checked with `kind_of`."""
    from ..wav2lip import read_checkpoint

    try:
        from spandrel import ModelLoader, canonicalize_state_dict
        _with_extra_architectures()
    except Exception as err:  # noqa: BLE001 - not installed, or its torchvision does not load
        raise RestoreModelError(
            f"reading a restore model needs spandrel ({type(err).__name__}: {err}); install it into "
            "this Python (python -m pip install spandrel: ComfyUI's own Python has it).") from None
    path = Path(path)
    if not path.is_file():
        raise RestoreModelError(f"the restore model '{path}' does not exist.")
    # a file that would run code is refused here, with the reason
    saved = read_checkpoint(path, "the size of the file as its authors released it", f"Give {WHAT_TO_LOAD}.")
    try:  # spandrel takes the weights out of what the file wraps them in ("params_ema", ...)
        descriptor = ModelLoader().load_from_state_dict(canonicalize_state_dict(saved))
    except Exception as err:  # noqa: BLE001 - an unknown architecture
        raise RestoreModelError(f"the restore model '{path}' could not be read ({type(err).__name__}: "
                                f"{err}). Give {WHAT_TO_LOAD}; CodeFormer needs spandrel_extra_arches installed "
                                f"(python -m pip install spandrel_extra_arches).") from None
    kind_of(descriptor)
    return descriptor.eval()


def _with_extra_architectures():
    """spandrel_extra_arches' architectures (CodeFormer among them) added to spandrel's registry
    where that package is installed, as ComfyUI's own loader adds them."""
    try:
        import spandrel_extra_arches
    except ImportError:
        return
    spandrel_extra_arches.install(ignore_duplicates=True)
