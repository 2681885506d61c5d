"""Streamed video in and out with PyAV (ComfyUI's own video library): frames are decoded and
encoded one at a time, so no step holds a whole clip. No ComfyUI import.

What a player shows is what the pipeline sees and what it writes back:
- frames are turned upright by the display matrix (portrait phone video) and written upright;
- YUV is converted with the source's own matrix and range (untagged: the players' convention,
  BT.709 from HD up, BT.601 below) and written back with the same matrix, range and colour
  description, so a pixel no face touched decodes as it did, in any player;
- times are the file's own presentation times (seconds on its clock), so a sound track that
  starts before or after the picture stays where it was.

The package has one module per role (as ComfyUI's comfy_api separates its video types): source
(opening a file, the edits a VIDEO carries), probe (what the stream is: size, rate, colour,
orientation), decode (frames as RGB or the source's YUV, by index in bounded memory), picture (a frame kept
in its own YUV, decoded ahead in a thread), sound (the
sound track on the file's clock, AAC's layouts and rates) and writer (H.264 + AAC out).
"""

from .decode import FrameReader, decode, frame_duration, rgb_region, to_rgb, to_yuv
from .picture import Picture, decode_pictures
from .probe import Colour, VideoInfo, probe
from .sound import AAC_LAYOUTS, AAC_RATES, AudioTrack, aac_layout, aac_rate, output_samples, read_audio, resample
from .source import Edits, VideoInputError
from .yuv import even_box, pack_yuv
from .writer import CONTAINERS, Sound, VideoWriter, container_format

__all__ = [
    "AAC_LAYOUTS", "AAC_RATES", "CONTAINERS", "AudioTrack", "Colour", "Edits", "FrameReader", "Picture", "Sound",
    "VideoInfo", "VideoInputError", "VideoWriter", "aac_layout", "aac_rate", "container_format",
    "decode", "decode_pictures", "even_box", "frame_duration", "output_samples", "pack_yuv", "probe", "read_audio", "resample",
    "rgb_region", "to_rgb", "to_yuv",
]
