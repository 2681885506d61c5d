"""Every setting of Halo-Lipsy, declared once: name, kind, default, range or choices, tooltip,
command-line flag and which front ends show it. The nodes' inputs, the command line's flags and
the checks on a run's `Settings` are all derived from `SETTINGS`; adding a setting is one entry
here plus its use. Plain Python: no ComfyUI, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .common.errors import HaloLipsyError  # noqa: F401 - the nodes and the command line take it from here

from .common.choices import FACE_CHOICES, MODES, PRECISIONS, SILENCE_CHOICES, SOUND_CHOICES  # noqa: F401

IMAGE, VIDEO, CLI = "image", "video", "cli"  # the front ends: the two nodes and lipsync.py
EVERYWHERE = (IMAGE, VIDEO, CLI)


@dataclass(frozen=True)
class Setting:
    name: str  # the node input's name and the Settings attribute
    kind: str  # "INT", "FLOAT", "BOOLEAN", "CHOICE" or "CHECKPOINT" (files found at run time)
    default: object
    tooltip: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple = ()
    flag: str | None = None  # the command line's flag (None: not on the command line)
    flag_sets: bool = True  # for a BOOLEAN flag: the value the flag sets
    shown_in: tuple = EVERYWHERE
    why_limits: str = ""  # said when a value is out of range, where the range needs a reason
    cli_tooltip: str = ""  # the command line's help, where the node's words name node things

    def tooltip_for(self, front_end: str) -> str:
        return self.cli_tooltip if front_end == CLI and self.cli_tooltip else self.tooltip

    def check(self, value):
        """`value` as this setting's type, or HaloLipsyError saying what is allowed."""
        if self.kind in ("CHOICE", "CHECKPOINT"):
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                allowed = f"use one of {', '.join(self.choices)}" if self.choices else "give a file name"
                raise HaloLipsyError(f"{self.name} '{value}' is unknown; {allowed}.")
            return value
        if self.kind == "BOOLEAN":
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise HaloLipsyError(f"{self.name} is {value!r}; it must be true or false.")
            return bool(value)
        number = _number(value, whole=self.kind == "INT")
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if number is None or not low <= number <= high:
            what = "a whole number" if self.kind == "INT" else "a number"
            raise HaloLipsyError(f"{self.name} is {value!r}; it must be {what} "
                                 f"{_range_text(self.minimum, self.maximum)}.{self.why_limits}")
        return number


def _number(value, whole: bool):
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or (whole and number != int(number)):
        return None
    return int(number) if whole else number


def _range_text(low, high) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


SETTINGS = (
    Setting("checkpoint", "CHECKPOINT", "auto",
            "Wav2Lip weights from models/wav2lip (and its subfolders, and any wav2lip folder in "
            "extra_model_paths.yaml) or this pack's checkpoints/. auto prefers wav2lip_gan.pth, "
            "then wav2lip.pth.", flag="--checkpoint",
            cli_tooltip="Wav2Lip weights: a file name found in the --models folders (and their "
                        "subfolders). auto prefers wav2lip_gan.pth, then wav2lip.pth."),
    Setting("mode", "CHOICE", "sequential",
            "sequential: frames in order, the last held while audio remains. repetitive: the clip "
            "loops to the audio's length. pingpong: the clip plays forward then backward (no jump "
            "cut).", choices=MODES, flag="--mode"),
    Setting("fps", "FLOAT", 25.0,
            "Frame rate of the images. Wire it from GetVideoComponents or VHS Video Info; a wrong "
            "fps drifts out of sync.", minimum=0.01, maximum=240.0, step=0.001, shown_in=(IMAGE,)),
    Setting("face_detect_batch", "INT", 4, "Images per face-detector call (CPU).",
            minimum=1, maximum=64, flag="--face-detect-batch"),
    Setting("inference_batch", "INT", 64,
            "Frames per generator batch; halved automatically on out-of-memory.",
            minimum=1, maximum=1024, flag="--inference-batch"),
    Setting("force_cpu", "BOOLEAN", False, "Run the generator on the CPU even if a GPU is present.",
            flag="--cpu"),
    Setting("sync_offset", "INT", 0,
            "Shift the mouth by whole frames: positive makes the lips later, negative earlier "
            "(lips behind the audio: try -2).", minimum=-10, maximum=10, flag="--sync-offset"),
    Setting("mel_step_multiplier", "FLOAT", 1.0,
            "Audio advanced per frame relative to the frame rate; 1.0 is exact sync.",
            minimum=0.1, maximum=4.0, step=0.01, flag="--mel-step-multiplier"),
    Setting("face_padding", "INT", 10,
            "Pixels added below the face box (the chin side), as Wav2Lip's default pads 0 10 0 0.",
            minimum=0, maximum=200, flag="--face-padding"),
    Setting("smooth_box_frames", "INT", 5,
            "Average face boxes over this many frames (centred) against jitter; 0 or 1 is off.",
            minimum=0, maximum=61, flag="--smooth-box-frames"),
    Setting("blend_edges", "BOOLEAN", True,
            "Blend only the mouth and jaw through a feathered mask, keeping the eyes sharp. Off: "
            "Wav2Lip's plain rectangular paste.", flag="--no-blend", flag_sets=False,
            cli_tooltip="Paste the whole generated box as Wav2Lip does (a plain rectangle), "
                        "instead of blending only the mouth and jaw through a feathered mask."),
    Setting("blend_radius", "INT", 5, "Feather width of the blend mask in pixels.",
            minimum=0, maximum=64, flag="--blend-radius"),
    Setting("precision", "CHOICE", "auto",
            "Generator precision. auto: fp16 on NVIDIA (Volta+) and AMD GPUs, fp32 elsewhere (and "
            "with --force-fp32). bf16: ~2x faster on CPUs with AVX-512 BF16 or AMX, slightly "
            "different mouth texture. A precision the device does not run natively falls back to "
            "fp32.", choices=PRECISIONS, flag="--precision",
            cli_tooltip="Generator precision. auto: fp16 on NVIDIA (Volta+) and AMD GPUs, fp32 "
                        "elsewhere. bf16: ~2x faster on CPUs with AVX-512 BF16 or AMX, slightly "
                        "different mouth texture. A precision the device does not run natively "
                        "falls back to fp32."),
    # x264's CRF 0 is lossless, which needs the High 4:4:4 Predictive profile: refused by
    # browsers and most hardware players, so the best quality offered is 1
    Setting("quality", "INT", 19,
            "H.264 quality of the output (x264 CRF): 1 best and largest, 18-23 look like the "
            "source, 51 smallest. (0, lossless, is left out: it needs a profile browsers and most "
            "players refuse.)", minimum=1, maximum=51, flag="--quality", shown_in=(VIDEO, CLI),
            why_limits=" 0 would be lossless H.264 (High 4:4:4 Predictive), which browsers and "
                       "most players refuse."),
    # new settings go last: saved workflows keep their widget values in this order
    Setting("face", "CHOICE", "largest",
            "Which face to lip-sync when several are in view. largest, left-most, right-most: "
            "chosen where each shot starts (again after every cut), then followed; marked: the "
            "person under the face_marker strokes, found again after every cut by their face, "
            "or nobody. A followed face is never handed to anyone else: lost (turns away, "
            "covered, leaves), it is taken back only by the same person's face; until then the "
            "frame keeps its real mouth.",
            choices=FACE_CHOICES, flag="--face",
            cli_tooltip="Which face to lip-sync when several are in view. largest, left-most, "
                        "right-most: chosen where each shot starts (again after every cut), then "
                        "followed; marked: the person under the --face-marker stroke, found again "
                        "after every cut by their face, or nobody. A followed face that is lost is "
                        "taken back only by the same person's face; until then the frame keeps its "
                        "real mouth."),
    Setting("silence", "CHOICE", "generate",
            "generate: a generated mouth on every frame (Wav2Lip). keep_original: where nobody "
            "speaks, the frame keeps its real mouth. A voice activity detector decides (room "
            "tone, hiss, breaths and music without a voice are silence, at any loudness); every "
            "pause of 0.3 s or more shows the real mouth in its middle, and the generated one "
            "fades out and in over 0.08 s inside the pause.",
            choices=SILENCE_CHOICES, flag="--silence"),
    Setting("output_sound", "CHOICE", "speech",
            "The output's sound track. speech: the speech the mouth follows (the audio input, or "
            "the video's own sound without one). video: the video's own sound, whatever drives "
            "the mouth: for dubbing one speaker at a time over a video that carries the whole "
            "dialogue.", choices=SOUND_CHOICES, flag="--output-sound", shown_in=(VIDEO, CLI),
            cli_tooltip="The output's sound track. speech: the speech the mouth follows (--audio, "
                        "or the video's own sound without it). video: the video's own sound, "
                        "whatever drives the mouth: for dubbing one speaker at a time over a video "
                        "that carries the whole dialogue."),
    Setting("restore_strength", "FLOAT", 1.0,
            "With a restore_model connected: how much of its sharper mouth to use. 1: all of it; "
            "0: none (exactly the output without a model); between: the two blended. Only the "
            "pixels the mouth is pasted into change.",
            minimum=0.0, maximum=1.0, step=0.05, flag="--restore-strength",
            cli_tooltip="With --restore-model: how much of its sharper mouth to use. 1: all of it; "
                        "0: none (exactly the output without a model); between: the two blended."),
    # CodeFormer's own inference takes 0.5 unless told otherwise
    Setting("codeformer_fidelity", "FLOAT", 0.5,
            "With a CodeFormer restore_model: 0 gives the model's own idea of a sharp face, 1 stays "
            "closest to the face it is given (the generated mouth's shape); other models ignore it.",
            minimum=0.0, maximum=1.0, step=0.05, flag="--codeformer-fidelity"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def settings_for(front_end: str) -> tuple:
    """The settings `front_end` shows, in declaration order (saved workflows depend on it)."""
    return tuple(s for s in SETTINGS if front_end in s.shown_in)


class Settings:
    """The settings of one run, by name, each checked against its declaration when made;
    unset ones take their defaults. `Settings(mode="pingpong").mode == "pingpong"`."""

    def __init__(self, **values):
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise TypeError(f"unknown setting(s) {', '.join(unknown)}; the settings are "
                            f"{', '.join(BY_NAME)}")
        checked = {s.name: s.check(values.get(s.name, s.default)) for s in BY_NAME.values()}
        object.__setattr__(self, "_values", checked)

    def __getattr__(self, name):
        if name != "_values" and name in self._values:
            return self._values[name]
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("Settings are fixed once made; make new ones with replace()")

    def replace(self, **changes) -> "Settings":
        return Settings(**{**self._values, **changes})

    def as_dict(self) -> dict:
        return dict(self._values)

    def __eq__(self, other):
        return isinstance(other, Settings) and self._values == other._values

    def __repr__(self):
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"
