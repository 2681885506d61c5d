"""The generated mouth made sharper by an image model the user brings (a spandrel model, as
ComfyUI's Load Upscale Model gives it): what kind of model it is (`kind`), and super-resolution
of the generator's 96x96 mouths, batched on the generator's device (`sharpen`). Plain torch and
NumPy; spandrel itself is imported only to read a model file (the command line)."""

from .kind import RestoreModelError, SUPER_RESOLUTION, kind_of, load_restore_model
from .sharpen import MouthSharpener, SharpenedGenerator

__all__ = ["SUPER_RESOLUTION", "MouthSharpener", "RestoreModelError", "SharpenedGenerator", "kind_of",
           "load_restore_model"]
