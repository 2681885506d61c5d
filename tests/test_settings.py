"""Each setting is declared once (settings.py); the nodes' inputs, the command line's flags, the
checks on a run and the README's table must all agree with that declaration."""

import dataclasses
import importlib.util
import re

import pytest

from conftest import ROOT, pack_module

settings = pack_module("settings")
nodes = pack_module("nodes")


def load_cli():
    spec = importlib.util.spec_from_file_location("lipsync_cli_settings", ROOT / "lipsync.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_both_nodes_show_the_declared_settings_in_order():
    image = nodes.HaloLipsy.INPUT_TYPES()["required"]
    video = nodes.HaloLipsyVideo.INPUT_TYPES()["required"]
    assert list(image) == ["images", "audio"] + [s.name for s in settings.settings_for("image")]
    assert list(video) == ["video"] + [s.name for s in settings.settings_for("video")]
    for name, (kind, options) in {**image, **video}.items():
        if name in settings.BY_NAME:
            declared = settings.BY_NAME[name]
            assert options["default"] == declared.default and options["tooltip"] == declared.tooltip
            if declared.kind in ("INT", "FLOAT"):
                assert (kind, options["min"], options["max"]) == (declared.kind, declared.minimum,
                                                                  declared.maximum)
            if declared.kind == "CHOICE":
                assert kind == list(declared.choices)


def test_the_command_line_has_a_flag_for_each_declared_setting():
    cli = load_cli()
    defaults = cli.parse_args(["in.mp4", "-o", "out.mp4"])
    for setting in settings.settings_for("cli"):
        assert getattr(defaults, setting.name) == setting.default
    flipped = cli.parse_args(["in.mp4", "-o", "out.mp4", "--cpu", "--no-blend", "--mode", "pingpong",
                              "--sync-offset", "-2", "--quality", "30"])
    assert (flipped.force_cpu, flipped.blend_edges, flipped.mode, flipped.sync_offset,
            flipped.quality) == (True, False, "pingpong", -2, 30)
    with pytest.raises(SystemExit):  # a choice outside the declared ones
        cli.parse_args(["in.mp4", "-o", "out.mp4", "--precision", "int8"])


def test_adding_a_setting_is_one_declaration(monkeypatch):
    """A new entry in SETTINGS appears on both nodes and the command line, and is checked."""
    extra = settings.Setting("mouth_gain", "FLOAT", 1.0, "How wide the mouth opens.", minimum=0.5,
                             maximum=2.0, flag="--mouth-gain")
    cli = load_cli()
    for module in (settings, cli.load_settings()):  # the command line loads its own copy
        monkeypatch.setattr(module, "SETTINGS", module.SETTINGS + (extra,))
        monkeypatch.setitem(module.BY_NAME, "mouth_gain", extra)
    assert nodes.HaloLipsy.INPUT_TYPES()["required"]["mouth_gain"] == (
        "FLOAT", {"default": 1.0, "tooltip": "How wide the mouth opens.", "min": 0.5, "max": 2.0})
    assert "mouth_gain" in nodes.HaloLipsyVideo.INPUT_TYPES()["required"]
    assert cli.parse_args(["a.mp4", "-o", "b.mp4", "--mouth-gain", "1.5"]).mouth_gain == 1.5
    assert settings.Settings(mouth_gain=1.5).mouth_gain == 1.5
    with pytest.raises(settings.HaloLipsyError, match="mouth_gain is 3; it must be a number from 0.5 to 2"):
        settings.Settings(mouth_gain=3)


@pytest.mark.parametrize("name, value, words", [
    ("mode", "reverse", "mode 'reverse' is unknown; use one of sequential, repetitive, pingpong"),
    ("inference_batch", 0, "inference_batch is 0; it must be a whole number from 1 to 1024"),
    ("face_padding", 2.5, "face_padding is 2.5; it must be a whole number"),
    ("sync_offset", float("nan"), "sync_offset is nan"),
    ("blend_edges", "yes", "blend_edges is 'yes'; it must be true or false"),
    ("precision", "int8", "precision 'int8' is unknown"),
    ("fps", "fast", "fps is 'fast'; it must be a number from 0.01 to 240"),
])
def test_settings_are_checked_with_a_message_that_says_what_is_allowed(name, value, words):
    with pytest.raises(settings.HaloLipsyError, match=re.escape(words)):
        settings.Settings(**{name: value})


def test_settings_are_by_name_and_fixed():
    made = settings.Settings(mode="pingpong", fps="29.97")  # a number as text, as a widget may send
    assert made.mode == "pingpong" and made.fps == pytest.approx(29.97) and made.face_padding == 10
    with pytest.raises(TypeError, match="unknown setting"):
        settings.Settings(moed="pingpong")
    with pytest.raises(AttributeError):
        made.mode = "sequential"
    assert made.replace(mode="repetitive").mode == "repetitive" and made.mode == "pingpong"


def test_every_declared_precision_is_the_dtype_its_name_says(monkeypatch):
    """By name, whatever order the choices are listed in (a GPU that computes both reduced
    precisions natively, so nothing falls back)."""
    import torch
    device = pack_module("wav2lip.device")
    monkeypatch.setattr(device, "native_dtypes", lambda d: {torch.float16, torch.bfloat16})
    named = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    assert set(settings.PRECISIONS) == set(named) | {"auto"}
    for precision, dtype in named.items():
        assert device.pick_dtype(torch.device("cuda"), precision) == (dtype, None), precision


def readme_settings_table():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| input | CLI flag | default | meaning |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`" if isinstance(value, str) else str(value)


def test_the_readme_settings_table_agrees_with_the_declaration():
    rows = readme_settings_table()
    for setting in settings.SETTINGS:
        assert setting.name in rows, f"README's settings table lacks {setting.name}"
        _, flag, default, meaning = rows[setting.name]
        assert default == shown(setting.default), setting.name
        assert (flag.split("`")[1] if setting.flag else "") == (setting.flag or ""), setting.name
        assert meaning


def test_a_readme_row_that_disagrees_is_caught(monkeypatch):
    changed = dataclasses.replace(settings.BY_NAME["face_padding"], default=12)
    monkeypatch.setattr(settings, "SETTINGS", tuple(changed if s.name == "face_padding" else s
                                                    for s in settings.SETTINGS))
    with pytest.raises(AssertionError, match="face_padding"):
        test_the_readme_settings_table_agrees_with_the_declaration()
