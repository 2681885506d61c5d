"""Halo-Lipsy from a shell: the same streamed pipeline as the Halo-Lipsy (Video) node.

    python lipsync.py INPUT_VIDEO [--audio SPEECH] -o OUTPUT.mp4 [settings]

Weights are looked for in the folders given with --models (default: this pack's checkpoints/
and, when present, ComfyUI's models/wav2lip next to it); the S3FD face detector's weights
there too, or in the torch hub cache (downloaded once). `python lipsync.py --help` lists the
settings, which are the node's.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def load_pipeline():
    """The pack's modules, loaded as ComfyUI loads them (the folder's name does not matter)."""
    name = "halo_lipsy_cli_pack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return (importlib.import_module(f"{name}.pipeline"), importlib.import_module(f"{name}.video"))


def default_model_dirs() -> list[Path]:
    dirs = [ROOT / "checkpoints"]
    comfy_models = ROOT.parent.parent / "models" / "wav2lip"  # ComfyUI/custom_nodes/<pack>
    if comfy_models.is_dir():
        dirs.append(comfy_models)
    return dirs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="lipsync.py", description="Lip-sync a video to speech with Wav2Lip (Halo-Lipsy).")
    parser.add_argument("input", help="the video to lip-sync")
    parser.add_argument("--audio", help="speech to sync to (any audio or video file); default: "
                                        "the video's own sound")
    parser.add_argument("-o", "--output", required=True, help="the MP4 file to write")
    parser.add_argument("--models", action="append", type=Path,
                        help="folder with wav2lip_gan.pth / wav2lip.pth (and s3fd-619a316812.pth); "
                             "repeatable")
    parser.add_argument("--checkpoint", default="auto", help="a file name in those folders, a path, or auto")
    parser.add_argument("--mode", default="sequential", choices=["sequential", "repetitive", "pingpong"])
    parser.add_argument("--face-detect-batch", type=int, default=4)
    parser.add_argument("--inference-batch", type=int, default=64)
    parser.add_argument("--cpu", action="store_true", help="run the generator on the CPU")
    parser.add_argument("--sync-offset", type=int, default=0,
                        help="whole frames; positive makes the lips later")
    parser.add_argument("--mel-step-multiplier", type=float, default=1.0)
    parser.add_argument("--face-padding", type=int, default=10)
    parser.add_argument("--smooth-box-frames", type=int, default=5)
    parser.add_argument("--no-blend", action="store_true", help="Wav2Lip's plain rectangular paste")
    parser.add_argument("--blend-radius", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--quality", type=int, default=19, help="x264 CRF: 0 best, 51 smallest")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


class ProgressBar:
    """A text bar on stderr (tqdm's when installed; face-alignment brings it)."""

    def __init__(self, quiet: bool):
        self.bar = None
        if quiet:
            return
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, unit="", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        except ImportError:
            self.bar = None
        self.shown = 0

    def __call__(self, fraction: float):
        if self.bar is not None:
            value = int(round(1000 * min(1.0, max(0.0, fraction))))
            if value > self.shown:
                self.bar.update(value - self.shown)
                self.shown = value

    def close(self):
        if self.bar is not None:
            self.bar.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    pipeline, video = load_pipeline()
    output = Path(args.output)
    partial = output.with_name(output.name + ".partial")  # an earlier file at OUTPUT survives a failure
    audio = None
    try:
        if args.audio:
            track = video.read_audio(args.audio)
            if track is None:
                raise pipeline.HaloLipsyError(f"Halo-Lipsy: {args.audio} has no audio stream.")
            audio = {"waveform": track[0][None], "sample_rate": track[1]}
        settings = pipeline.Settings(
            args.checkpoint, args.mode, args.face_detect_batch, args.inference_batch, args.cpu,
            args.sync_offset, args.mel_step_multiplier, args.face_padding, args.smooth_box_frames,
            not args.no_blend, args.blend_radius, args.precision)
        bar = ProgressBar(args.quiet)
        hooks = pipeline.plain_hooks(args.models or default_model_dirs(), progress=bar)
        try:
            pipeline.lipsync_video(args.input, str(partial), settings, hooks, audio=audio,
                                   quality=args.quality)
        finally:
            bar.close()
        os.replace(partial, output)
    except (pipeline.HaloLipsyError, video.VideoInputError, ValueError) as err:
        partial.unlink(missing_ok=True)
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        partial.unlink(missing_ok=True)
        print("Halo-Lipsy: interrupted; nothing written.", file=sys.stderr)
        return 130
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
