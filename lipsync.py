"""Halo-Lipsy from a shell: the same streamed pipeline as the Halo-Lipsy (Video) node.

    python lipsync.py INPUT_VIDEO [--audio SPEECH] -o OUTPUT.mp4 [settings]

Weights are looked for in the folders given with --models (default: this pack's checkpoints/
and, when present, ComfyUI's models/wav2lip next to it); the S3FD face detector's weights
there too, or in the torch hub cache (downloaded once). `python lipsync.py --help` lists the
settings, which are the node's.

The output is written under a temporary name in its own folder and renamed when complete, so
an earlier file of that name survives any failure, and an interrupted run leaves nothing.
Exit codes: 0 done; 2 bad input or setup, out of memory included (the message says why and
what to do); 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (nothing written either way);
1 unexpected error (one line, after the log with its details).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def load_pack(*modules):
    """The pack's modules, loaded as ComfyUI loads them (the folder's name does not matter)."""
    name = "halo_lipsy_cli_pack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return {m: importlib.import_module(f"{name}.{m}")
            for m in modules or ("routes", "video", "audio", "settings", "restore")}


def default_model_dirs() -> list[Path]:
    dirs = [ROOT / "checkpoints"]
    comfy_models = ROOT.parent.parent / "models" / "wav2lip"  # ComfyUI/custom_nodes/<pack>
    if comfy_models.is_dir():
        dirs.append(comfy_models)
    return dirs


def load_settings():
    """The pack's settings module, loaded alone (cheap: --help needs no torch)."""
    return load_pack("settings")["settings"]


def output_types() -> tuple:
    """The extensions the output may have: the containers the video package writes."""
    return tuple(load_pack("video")["video"].CONTAINERS)


def parse_args(argv=None):
    settings = load_settings()
    parser = argparse.ArgumentParser(
        prog="lipsync.py", description="Lip-sync a video to speech with Wav2Lip (Halo-Lipsy).",
        epilog="Exit codes: 0 done, 2 bad input or setup (out of memory too), 130 interrupted "
               "(Ctrl-C), 143 stopped (SIGTERM), 1 unexpected error.")
    parser.add_argument("input", help="the video to lip-sync")
    parser.add_argument("--audio", help="speech to sync to (any audio or video file); default: "
                                        "the video's own sound")
    parser.add_argument("-o", "--output", required=True,
                        help=f"the file to write ({', '.join(output_types())}: H.264 + AAC)")
    parser.add_argument("--face-mask", type=Path,
                        help="an image the size of the (upright) video, the face painted white on "
                             "black: its box replaces face detection for the whole clip")
    parser.add_argument("--face-marker", type=Path,
                        help="a rough white stroke on black over the person who speaks, or a "
                             "frame with the stroke painted transparent (an RGBA PNG, as "
                             "ComfyUI's mask editor saves it): that person is followed, and found "
                             "again after every cut by their face (implies --face marked)")
    parser.add_argument("--face-marker-image", type=Path,
                        help="the picture a white-on-black --face-marker was painted on (a frame "
                             "of the video, or any picture of the person)")
    parser.add_argument("--restore-model", type=Path,
                        help="a restore model file (.pth or .safetensors, read with spandrel): a "
                             "super-resolution model (RealESRGAN x2/x4, 4x-UltraSharp, a Compact model, "
                             "SwinIR, HAT) draws the 96x96 mouth larger and sharper before it is pasted; "
                             "a face restoration model (GFPGAN 1.2-1.4, RestoreFormer, CodeFormer with "
                             "spandrel_extra_arches) restores the face around the pasted mouth. Only "
                             "the pixels the mouth is pasted into change")
    parser.add_argument("--start", type=float, default=0.0,
                        help="lip-sync only the part of the video from this time on (seconds on "
                             "its clock, as a player shows it; default 0)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="and only this many seconds of it (default 0: to the end)")
    parser.add_argument("--models", action="append", type=Path,
                        help="folder with wav2lip_gan.pth / wav2lip.pth (and s3fd-619a316812.pth); "
                             "repeatable")
    for setting in settings.settings_for(settings.CLI):  # the nodes' settings, declared once
        add_setting_flag(parser, setting)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def add_setting_flag(parser, setting):
    """A flag for a declared setting: its type, choices and default come from the declaration;
    a BOOLEAN's flag sets the value the declaration names (--cpu sets force_cpu, --no-blend
    clears blend_edges). Values are checked by Settings, with the nodes' messages."""
    tooltip = setting.tooltip_for(load_settings().CLI)
    common = {"dest": setting.name, "default": setting.default,
              "help": f"{tooltip} (default: %(default)s)"}
    if setting.kind == "BOOLEAN":
        action = "store_true" if setting.flag_sets else "store_false"
        common["help"] = tooltip
        parser.add_argument(setting.flag, action=action, **common)
    elif setting.kind == "CHOICE":
        parser.add_argument(setting.flag, choices=setting.choices, **common)
    else:
        kind = {"INT": int, "FLOAT": float}.get(setting.kind, str)
        parser.add_argument(setting.flag, type=kind, **common)


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


HaloLipsyError = load_pack("common.errors")["common.errors"].HaloLipsyError  # plain Python: cheap to load


class BadInput(HaloLipsyError):
    """A command-line problem found before any work; the message says what to do (the error
    family adds its prefix)."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: Path, inputs) -> Path:
    """The output path, checked before any work: a known container, a writable folder that
    exists, not a folder itself, and not one of the inputs (through links too)."""
    if output.is_dir():
        raise BadInput(f"the output '{output}' is a folder; give a file name.")
    if output.suffix.lower() not in output_types():
        raise BadInput(f"the output '{output}' must end in {', '.join(output_types())} "
                       "(the container is chosen by the extension).")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"the output folder '{folder}' does not exist; create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"the output folder '{folder}' is not writable.")
    for name in inputs:
        if name is not None and _same_file(Path(name), output):
            raise BadInput(f"the output '{output}' is the input '{name}'; writing it "
                           "would destroy the source. Choose another output name.")
    return output


STALE_PARTIAL_S = 600  # a leftover untouched this long, whose run is gone, is removed


def temporary_output(output: Path) -> Path:
    """A new, unique file beside `output` with the same extension (so the container matches);
    two runs to one output never share it. Its name carries this process's id, so a later run
    can tell a leftover of a run that was killed (SIGKILL, a power cut) from one still writing."""
    fd, name = tempfile.mkstemp(prefix=f".{output.stem}.{os.getpid()}.", suffix=f".partial{output.suffix}",
                                dir=output.parent if str(output.parent) else ".")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # the finished file gets the usual permissions, not mkstemp's
    return Path(name)


def remove_stale_partials(output: Path) -> list:
    """Remove the hidden partial files that earlier runs into `output`'s folder left when they
    were killed: only names this command makes (.<name>.<process id>.<random>.partial.<ext>),
    whose process no longer runs and which nobody has written for STALE_PARTIAL_S. Returns them."""
    import re
    import time

    import psutil

    folder = output.parent if str(output.parent) else Path(".")
    pattern = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{8}\.partial\.[A-Za-z0-9]+$")
    removed = []
    for path in folder.glob(".*.partial.*"):
        found = pattern.match(path.name)
        if not found or not path.is_file() or psutil.pid_exists(int(found.group(1))):
            continue
        try:
            if time.time() - path.stat().st_mtime >= STALE_PARTIAL_S:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def read_image(path: Path, what: str, flags: int):
    """An image file as cv2.imread reads it with `flags`, or BadInput saying what is wrong."""
    import cv2

    if not path.is_file():
        raise BadInput(f"the {what} '{path}' does not exist.")
    image = cv2.imread(str(path), flags)
    if image is None:
        raise BadInput(f"the {what} '{path}' is not an image that can be read "
                       "(use PNG or JPEG).")
    return image


def read_mask_image(path: Path, what: str = "face mask"):
    """A MASK [1, H, W] from an image file: white pixels mark the face."""
    import cv2
    import numpy as np

    return (read_image(path, what, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0)[None]


def read_marker(path: Path, picture_path: Path | None):
    """(face_marker MASK, face_marker_image IMAGE or None) from the --face-marker file: an RGBA
    PNG carries both (painted where transparent, as ComfyUI's Load Image reads it), else a
    white-on-black stroke and its picture from --face-marker-image."""
    import cv2
    import numpy as np

    image = read_image(path, "face marker", cv2.IMREAD_UNCHANGED)
    unit = np.float32(1 / 255)
    if image.ndim == 3 and image.shape[2] == 4:
        if picture_path is not None:
            raise BadInput(f"the face marker '{path}' carries its picture already "
                           "(RGBA); leave out --face-marker-image.")
        picture = image[:, :, 2::-1].astype(np.float32) * unit
        return (1.0 - image[:, :, 3].astype(np.float32) * unit)[None], picture[None]
    marker = read_mask_image(path, "face marker")  # white on black, as a grey image
    if picture_path is None:
        return marker, None
    picture = read_image(picture_path, "face marker's picture", cv2.IMREAD_COLOR)
    return marker, (picture[:, :, ::-1].astype(np.float32) * unit)[None]


class Terminated(KeyboardInterrupt):
    """SIGTERM: cleaned up like Ctrl-C, but told apart by its exit status (143, 128 + 15)."""


@contextlib.contextmanager
def interrupt_on_sigterm():
    """SIGTERM (a service manager, `kill`) ends the run as Ctrl-C does: raised in the main thread,
    where the route's cancel signal (common.stop) takes it and stops every stage, nothing left
    behind. Yields the check the run asks at every batch and before the output takes its name:
    Python drops an exception raised where the signal lands inside a weakref callback or __del__
    (an import's lock cleanup), so the signal is also remembered. The previous handler is put
    back afterwards."""
    received = []

    def handler(_signum, _frame):
        received.append(True)
        raise Terminated

    def check():
        if received:
            raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        yield check
        return
    try:
        yield check
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args, pack, check_interrupt) -> int:
    routes, video = pack["routes"], pack["video"]
    output = check_output(Path(args.output), [args.input, args.audio, args.face_mask, args.face_marker,
                                               args.face_marker_image, args.restore_model])
    if args.start < 0 or args.duration < 0:
        raise BadInput(f"--start {args.start:g} --duration {args.duration:g}: both must "
                       "be 0 or more (seconds).")
    edits = video.Edits(args.start, args.duration)
    face_mask = read_mask_image(args.face_mask) if args.face_mask else None
    if args.face_marker_image and not args.face_marker:
        raise BadInput("--face-marker-image is the picture a --face-marker was "
                       "painted on; give the --face-marker too.")
    face_marker, marker_image = read_marker(args.face_marker, args.face_marker_image) \
        if args.face_marker else (None, None)
    restore_model = pack["restore"].load_restore_model(args.restore_model) if args.restore_model else None
    audio = None
    if args.audio:
        track = video.read_audio(args.audio, what="the speech file")
        if track is None:
            raise BadInput(f"the speech file '{args.audio}' has no audio stream.")
        audio = {"waveform": track.samples[None], "sample_rate": track.rate}
    declared = pack["settings"]
    settings = declared.Settings(**{s.name: getattr(args, s.name)
                                    for s in declared.settings_for(declared.CLI)})
    for leftover in remove_stale_partials(output):
        logging.getLogger("HaloLipsy").info("Halo-Lipsy: removed %s, left by a run that was killed.", leftover)
    partial = temporary_output(output)
    bar = ProgressBar(args.quiet)
    try:
        hooks = routes.plain_hooks(args.models or default_model_dirs(), progress=bar,
                                   check_interrupt=check_interrupt)
        report = routes.lipsync_video(args.input, str(partial), settings, hooks, audio=audio,
                                      face_mask=face_mask, face_marker=face_marker,
                                      edits=edits, face_marker_image=marker_image,
                                      restore_model=restore_model)
        check_interrupt()
        os.replace(partial, output)
    finally:
        bar.close()
        partial.unlink(missing_ok=True)
    if not args.quiet:
        print(report.summary())
    print(f"wrote {output}")
    return EXIT_OK


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    log = logging.getLogger("HaloLipsy")
    try:
        with interrupt_on_sigterm() as check_interrupt:
            return run(args, load_pack(), check_interrupt)
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"Halo-Lipsy: {'stopped (SIGTERM)' if terminated else 'interrupted'}; nothing written.",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - every failure ends in an exit code and one line
        if isinstance(err, HaloLipsyError):  # the pack's whole error family, BadInput too
            print(str(err), file=sys.stderr)
            return EXIT_BAD_INPUT
        log.error("Halo-Lipsy: unexpected error; details:", exc_info=True)
        print(f"Halo-Lipsy: unexpected error ({type(err).__name__}: {err}); nothing written. "
              "The details are above.", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
