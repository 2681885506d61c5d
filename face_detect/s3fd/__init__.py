"""The S3FD backend: face-alignment's network on the CPU, and its weights file."""

from .detector import S3FDDetector
from .weights import DetectorWeightsError, find_s3fd_weights

__all__ = ["DetectorWeightsError", "S3FDDetector", "find_s3fd_weights"]
