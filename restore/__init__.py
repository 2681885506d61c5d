"""The generated mouth made sharper by an image model the user brings (a spandrel model, as
ComfyUI's Load Upscale Model gives it): what kind of model it is (`kind`); super-resolution of
the generator's 96x96 mouths (`sharpen`); face restoration of the face around the new mouth in
FFHQ's layout (`face`, `align`, `face_models`); the model on the run's device (`placement`).
Plain torch, NumPy and OpenCV; spandrel itself is imported only to read a model file."""

from .face import CONTEXT, FaceRestorer
from .kind import FACE_RESTORATION, SUPER_RESOLUTION, RestoreModelError, kind_of, load_restore_model
from .sharpen import MouthSharpener, SharpenedGenerator

__all__ = ["CONTEXT", "FACE_RESTORATION", "SUPER_RESOLUTION", "FaceRestorer", "MouthSharpener",
           "RestoreModelError", "SharpenedGenerator", "kind_of", "load_restore_model"]
