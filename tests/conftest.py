"""Loads the pack the way ComfyUI does: from its __init__.py by file path, under a package
name with a hyphen, so relative imports are exercised and the folder name never matters."""

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACK = "Halo-Lipsy-under-test"
# Reference data kept in the repository: the mel of a speech clip, the generator's state-dict
# layout, and its output on fixed inputs for the seeded architecture fixture.
FIXTURES = ROOT / "tests" / "fixtures"
STAGES = ("audio", "face_detect", "restore", "video", "wav2lip")  # the stage packages, below the routes
PACKAGES = ("common", *STAGES, "routes")
PACK_SOURCES = sorted([*ROOT.glob("*.py"), *(p for package in PACKAGES for p in ROOT.glob(f"{package}/**/*.py"))])


def load_pack():
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK]


def pack_module(name):
    load_pack()
    return importlib.import_module(f"{PACK}.{name}")


@pytest.fixture(autouse=True, scope="session")
def rendered_requests():
    """The whole session watches what the tracker renders, so detector stand-ins that answer
    from known boxes can learn which region an image shows (detectors only get images)."""
    from synthetic_clip import RENDERED
    restore = RENDERED.install(pack_module("face_detect.base").TensorFrames)
    yield RENDERED
    restore()


@pytest.fixture(autouse=True)
def _fresh_render_log(rendered_requests):
    """Renders a test made without a detector looking (a failing detector, a direct render)
    must not reach the next test, nor a module fixture set up before it."""
    rendered_requests.pending.clear()
    yield
    rendered_requests.pending.clear()


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES


def face_recognizer():
    """The face recognizer from the installed face_recognition_models (requirements-test.txt)."""
    found = pack_module("face_detect.recognition").load_recognizer([])
    assert found is not None, "face_recognition_models is not installed"
    return found


def default_tracking(**kw):
    """The tracker's settings for the `face` setting's default choice (the settings say which)."""
    return pack_module("face_detect").TrackerConfig(choice=pack_module("settings").Settings().face, **kw)


def hooks_with(search_dirs, detector=None, **kw):
    """The plain hooks the command line uses, with a detector stand-in where a test needs known
    faces: the same Hooks seam the nodes fill."""
    import dataclasses

    hooks = pack_module("routes").plain_hooks(search_dirs, **kw)
    return hooks if detector is None else dataclasses.replace(hooks, detector=lambda batch: detector)


def read_wav_int16(path):
    import wave
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.reshape(-1, w.getnchannels()).T.copy(), w.getframerate()


@pytest.fixture(scope="session")
def fixture_state(fixtures_dir):
    from fixture_weights import fixture_state_dict
    return fixture_state_dict(fixtures_dir / "wav2lip_state_dict.tsv")


@pytest.fixture(scope="session")
def fixture_checkpoint(tmp_path_factory, fixture_state):
    """A released-layout checkpoint built from the architecture fixture, in its own folder."""
    from fixture_weights import save_released_layout
    folder = tmp_path_factory.mktemp("checkpoints")
    return save_released_layout(fixture_state, folder / "wav2lip_gan.pth")
