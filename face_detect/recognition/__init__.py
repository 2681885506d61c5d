"""Who a face is: dlib's CC0 face recognition network and 5-point landmarks, in torch and NumPy."""

from .embedder import OTHER_PERSON, SAME_PERSON, FaceRecognizer, distance
from .weights import (
           LANDMARKS,
           NETWORK,
           RecognitionWeightsError,
           load_recognizer,
           release_recognizer,
)

__all__ = ["LANDMARKS", "NETWORK", "OTHER_PERSON", "SAME_PERSON", "FaceRecognizer",
           "RecognitionWeightsError", "distance", "load_recognizer", "release_recognizer"]
