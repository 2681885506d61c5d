"""The route for a VIDEO held as frames in memory (Create Video's output): the IMAGE route, then
encoded as the streamed route encodes, with the same quality, face_mask rule and output_sound
choice."""

from __future__ import annotations

from fractions import Fraction

from ..common.errors import HaloLipsyError
from ..common.stop import StopSignal
from ..settings import Settings
from .image import lipsync_images, validate_images
from .masks import one_mask_frame
from .media import aac_sound, encoder
from .steps import Hooks, Report


def lipsync_components(images, audio, destination, settings: Settings, hooks: Hooks,
                       face_mask=None, face_marker=None, own_sound=None,
                       face_marker_image=None, restore_model=None) -> Report:
    """A VIDEO held as frames in memory (Create Video's output, at `settings.fps`, with its sound
    `own_sound`): the IMAGE route, then encoded like the streaming route's output, with the same
    quality, the same face_mask rule (one frame for the whole clip) and the same output_sound
    choice. `audio` is the speech (None: the video's own sound). Its frames are RGB with no YUV
    history: the output is tagged BT.709, limited range, as ComfyUI tags the videos it makes."""
    from .. import audio as audio_mod
    from .. import video as video_mod

    video_mod.container_format(destination)
    if face_mask is not None:
        frames = validate_images(images)
        one_mask_frame(face_mask, int(frames.shape[2]), int(frames.shape[1]))
    keep_own = audio is not None and settings.output_sound == "video"
    if keep_own and own_sound is None:
        raise HaloLipsyError("output_sound is 'video' but this video has no sound of "
                             "its own; choose output_sound 'speech'.")
    result = lipsync_images(images, audio if audio is not None else own_sound, settings, hooks,
                            face_mask, face_marker, face_marker_image, restore_model)
    track = result.audio
    if keep_own:
        track = audio_mod.fit_audio(*audio_mod.read_audio(own_sound), len(result.images), settings.fps)
    sound = aac_sound(track["waveform"][0].numpy(), track["sample_rate"])
    _encode_frames(result.images, destination, settings, sound, hooks)
    return result.report


def _encode_frames(frames, destination, settings, sound, hooks):
    """IMAGE frames (float32 [N, H, W, C]) and their video.Sound as H.264 + AAC at
    settings.quality."""
    import torch

    from .. import video as video_mod

    n, height, width = (int(v) for v in frames.shape[:3])
    bt709 = video_mod.Colour(matrix=1, range=1, primaries=1, trc=1)
    stop = StopSignal(hooks.check_interrupt)
    with stop.scope(), encoder(destination, width, height, Fraction(settings.fps).limit_denominator(100000),
                               settings.quality, bt709, sound) as writer:
        for i in range(n):
            stop.check()
            rgb = (frames[i, :, :, :3].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            writer.write(i / settings.fps, 1 / settings.fps, rgb.numpy())
        writer.finish()
