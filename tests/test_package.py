import ast
import importlib
import json
import re
import subprocess
import sys

try:
    import tomllib  # novermin: tomli stands in below 3.11
except ImportError:  # Python < 3.11
    import tomli as tomllib

import pytest

from comfy_workflow import workflow_to_prompt
from conftest import PACK, PACK_SOURCES, PACKAGES, ROOT, STAGES, pack_module

nodes = pack_module("nodes")


def requirement_lines(path):
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r"))]


def test_requirements_never_install_torch_and_match_pyproject():
    runtime = requirement_lines(ROOT / "requirements.txt")
    for line in runtime:
        name = re.split(r"[<>=!~\[; ]", line)[0].lower()
        assert name not in {"torch", "torchvision", "torchaudio"}, line
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == runtime
    assert project["project"]["name"] == "halo-lipsy" and project["project"]["urls"]
    comfy = project["tool"]["comfy"]
    assert comfy["DisplayName"] == "Halo-Lipsy" and comfy["PublisherId"] and comfy["Icon"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_registry_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    classifiers = project["project"]["classifiers"]
    for accelerator in ("NVIDIA CUDA", "AMD ROCm", "Apple Metal", "Intel Arc"):
        assert f"Environment :: GPU :: {accelerator}" in classifiers
    assert "Operating System :: OS Independent" in classifiers
    urls = project["project"]["urls"]
    assert urls["Issues"].endswith("/issues") and "Bug Tracker" not in urls  # the registry reads "Issues"
    assert re.fullmatch(r">=\d+\.\d+\.\d+", project["tool"]["comfy"]["requires-comfyui"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["project"]["version"])


def test_requires_python_is_what_the_code_needs():
    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = (int(v) for v in re.fullmatch(r">=(\d+)\.(\d+)", floor).groups())
    files = [str(p) for p in PACK_SOURCES + sorted(ROOT.glob("tests/*.py"))]
    result = subprocess.run([sys.executable, "-c", "import sys, vermin; sys.argv[0] = 'vermin'; sys.exit(vermin.main())",
                             "--no-tips", "--eval-annotations",
                             f"-t={major}.{minor}-", "--violations", *files],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    found = re.search(r"Minimum required versions: 3\.(\d+)", result.stdout)
    assert found is None or int(found.group(1)) <= minor


def test_the_registry_static_checks_pass():
    # comfy node validate runs ruff with these rules: no exec (S102), no eval (S307), no two
    # statements on one line (E702)
    files = [str(p) for p in PACK_SOURCES]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                             "--select", "S102,S307,E702", *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_files_do_not_ship():
    patterns = [line.strip() for line in (ROOT / ".comfyignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert {"tests/", "bench/", ".ci/"} <= set(patterns)
    shipped = ["__init__.py", "nodes.py", "audio/mel.py", "face_detect/tracker.py", "wav2lip/model.py",
               "LICENSE", "README.md", "requirements.txt", "pyproject.toml", "icon.png",
               "example_workflows/halo_lipsy_core_video.json", "checkpoints/README.txt"]
    for path in shipped:
        assert (ROOT / path).exists(), path
        assert not any(path.startswith(p.rstrip("/") + "/") or path == p for p in patterns), path


def test_the_pack_source_has_no_eval_exec_subprocess_or_runtime_pip():
    assert len(PACK_SOURCES) >= 10
    for path in PACK_SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, path
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in {"subprocess", "pip"} for n in names), path
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"system", "popen", "spawnv"}, path


def test_loading_the_pack_imports_nothing_heavy():
    code = (
        "import importlib.util, sys\n"
        f"root = {str(ROOT)!r}\n"
        "spec = importlib.util.spec_from_file_location('Halo-Lipsy', root + '/__init__.py',"
        " submodule_search_locations=[root])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['Halo-Lipsy'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert 'HaloLipsy' in m.NODE_CLASS_MAPPINGS\n"
        "heavy = [n for n in ('torch', 'cv2', 'face_alignment', 'scipy') if n in sys.modules]\n"
        "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def workflows():
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "example_workflows").glob("*.json")}


def check_links(workflow):
    by_id = {n["id"]: n for n in workflow["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert link_id in by_id[origin]["outputs"][origin_slot]["links"]
        target_input = by_id[target]["inputs"][target_slot]
        assert target_input["link"] == link_id and target_input["type"] == kind
        assert by_id[origin]["outputs"][origin_slot]["type"] == kind
    assert workflow["last_link_id"] >= max(link[0] for link in workflow["links"])
    assert workflow["last_node_id"] >= max(by_id)


def test_example_workflows_are_consistent(workflows):
    assert set(workflows) == {"halo_lipsy_core_video.json", "halo_lipsy_videohelpersuite.json",
                              "halo_lipsy_video_node.json", "halo_lipsy_dialogue.json", "halo_lipsy_restore.json"}
    def widgets(node):  # the inputs ComfyUI draws as widgets, optional ones after the required
        spec = node.INPUT_TYPES()
        return [k for part in ("required", "optional") for k, v in spec[part].items()
                if isinstance(v[0], list) or v[0] in {"INT", "FLOAT", "BOOLEAN"}]

    widget_count = len(widgets(nodes.HaloLipsy))
    for workflow in workflows.values():
        check_links(workflow)
    video_node = next(n for n in workflows["halo_lipsy_video_node.json"]["nodes"] if n["type"] == "HaloLipsyVideo")
    assert len(video_node["widgets_values"]) == len(widgets(nodes.HaloLipsyVideo))
    for name, workflow in workflows.items():
        if name == "halo_lipsy_video_node.json":
            continue
        node = next(n for n in workflow["nodes"] if n["type"] == "HaloLipsy")
        assert len(node["widgets_values"]) == widget_count, name
        fed = {slot["name"] for slot in node["inputs"] if slot["link"] is not None}
        assert fed == {"images", "audio", "fps"} | ({"restore_model"} if name == "halo_lipsy_restore.json" else set()), name


def test_the_restore_workflow_is_the_core_one_with_load_upscale_model_wired_in(workflows):
    workflow = workflows["halo_lipsy_restore.json"]
    types = {n["id"]: n["type"] for n in workflow["nodes"]}
    assert set(types.values()) == {"LoadVideo", "GetVideoComponents", "HaloLipsy", "CreateVideo", "SaveVideo",
                                   "UpscaleModelLoader"}
    lipsy = next(n for n in workflow["nodes"] if n["type"] == "HaloLipsy")
    slot = [s["name"] for s in lipsy["inputs"]].index("restore_model")
    assert any(types[o] == "UpscaleModelLoader" and t == lipsy["id"] and ts == slot and kind == "UPSCALE_MODEL"
               for _, o, _, t, ts, kind in workflow["links"])


def test_core_workflow_uses_core_nodes_and_wires_fps_and_audio(workflows):
    workflow = workflows["halo_lipsy_core_video.json"]
    types = {n["id"]: n["type"] for n in workflow["nodes"]}
    assert set(types.values()) == {"LoadVideo", "GetVideoComponents", "HaloLipsy", "CreateVideo", "SaveVideo"}
    wires = {(types[o], os_, types[t], ts) for _, o, os_, t, ts, _ in workflow["links"]}
    assert ("GetVideoComponents", 2, "HaloLipsy", 3) in wires  # fps -> Halo-Lipsy
    assert ("GetVideoComponents", 2, "CreateVideo", 2) in wires  # fps -> CreateVideo
    assert ("HaloLipsy", 1, "CreateVideo", 1) in wires  # synced audio -> CreateVideo


def test_the_dialogue_workflow_chains_two_speakers(workflows):
    """Speaker A's voice drives the left-most face, then B's the right-most on A's output;
    each keeps the real mouth while the other speaks; the video's own sound (the whole
    dialogue) goes into the result."""
    workflow = workflows["halo_lipsy_dialogue.json"]
    types = {n["id"]: n["type"] for n in workflow["nodes"]}
    lipsy = [n for n in workflow["nodes"] if n["type"] == "HaloLipsy"]
    names = [k for k in nodes.HaloLipsy.INPUT_TYPES()["required"] if k not in ("images", "audio")]
    chosen = [dict(zip(names, n["widgets_values"])) for n in lipsy]
    assert [(c["face"], c["silence"]) for c in chosen] == [("left-most", "keep_original"),
                                                           ("right-most", "keep_original")]
    wires = {(o, os_, t, ts) for _, o, os_, t, ts, _ in workflow["links"]}
    first, second = (n["id"] for n in lipsy)
    assert (first, 0, second, 0) in wires  # B's node lip-syncs A's output frames
    create = next(i for i, kind in types.items() if kind == "CreateVideo")
    components = next(i for i, kind in types.items() if kind == "GetVideoComponents")
    assert (components, 1, create, 1) in wires  # the video's own sound: the whole dialogue


def test_workflow_converts_to_an_api_prompt(workflows):
    info = {
        "LoadVideo": {"input": {"required": {"file": [["talking_head.mp4"], {"video_upload": True}]}}},
        "GetVideoComponents": {"input": {"required": {"video": ["VIDEO"]}}},
        "HaloLipsy": {"input": nodes.HaloLipsy.INPUT_TYPES()},
        "CreateVideo": {"input": {"required": {"images": ["IMAGE"], "fps": ["FLOAT", {}]},
                                  "optional": {"audio": ["AUDIO"]}}},
        "SaveVideo": {"input": {"required": {"video": ["VIDEO"], "filename_prefix": ["STRING", {}],
                                             "format": [["auto", "mp4"]], "codec": [["auto", "h264"]]}}},
    }
    prompt = workflow_to_prompt(workflows["halo_lipsy_core_video.json"], info)
    lipsy = prompt["3"]["inputs"]
    assert lipsy["images"] == ["2", 0] and lipsy["audio"] == ["2", 1] and lipsy["fps"] == ["2", 2]
    assert lipsy["checkpoint"] == "auto" and lipsy["blend_radius"] == 5 and lipsy["force_cpu"] is False
    assert prompt["1"]["inputs"] == {"file": "talking_head.mp4"}
    assert prompt["4"]["inputs"]["audio"] == ["3", 1]


ORCHESTRATION = ("nodes.py", *(f"routes/{m}.py" for m in ("steps", "image", "stream", "output", "held_video")),
                 "lipsync.py", *(f"video/{m}.py" for m in
                                                          ("source", "probe", "decode", "picture", "sound", "writer")))


@pytest.mark.parametrize("name", ORCHESTRATION)
def test_the_orchestration_reads_in_short_steps(name):
    tree = ast.parse((ROOT / name).read_text())
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 60]
    assert not long, f"{name}: functions over 60 lines: {long}"


MUTATING = {"append", "extend", "insert", "update", "clear", "pop", "popitem", "setdefault",
            "add", "discard", "remove"}


@pytest.mark.parametrize("name", ORCHESTRATION)
def test_results_are_returned_not_kept_in_module_state(name):
    """A run's numbers travel in its returned Report: no module-level container is written
    while the pack runs, except the nodes' model caches (what ComfyUI unloads)."""
    allowed = {"nodes.py": {"_patchers", "_releasing_classes", "_detectors", "_restore_models"}}.get(name, set())
    tree = ast.parse((ROOT / name).read_text())
    containers = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        value = getattr(node, "value", None)
        if isinstance(value, (ast.Dict, ast.List, ast.Set)) or (
                isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("dict", "list", "set")):
            containers |= {t.id for t in targets if isinstance(t, ast.Name)}
    written = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.attr in MUTATING:
            written.add(node.func.value.id)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for target in getattr(node, "targets", None) or [node.target]:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    written.add(target.value.id)
        if isinstance(node, ast.Global):
            written |= set(node.names)
    changed = (containers & written) - allowed
    assert not changed, f"{name}: module-level state written at run time: {sorted(changed)}"


def test_the_state_check_catches_a_results_global(tmp_path, monkeypatch):
    """The check above would have caught the old LAST_RUN."""
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "steps.py").write_text("LAST_RUN: dict = {}\n\ndef run():\n    LAST_RUN.clear()\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="LAST_RUN"):
        test_results_are_returned_not_kept_in_module_state("routes/steps.py")


def test_the_error_family_adds_its_prefix_and_no_message_writes_it_by_hand():
    """errors.HaloLipsyError puts "Halo-Lipsy: " before every message once; a message that
    starts with it by hand would say the fact twice (and drift from it)."""
    import ast

    errors = pack_module("common.errors")
    assert str(errors.HaloLipsyError("the audio is empty.")) == errors.PREFIX + "the audio is empty."
    assert str(errors.HaloLipsyError(errors.PREFIX + "x")) == errors.PREFIX + "x"
    family = {"HaloLipsyError"} | {name for path in PACK_SOURCES
                                    for name in re.findall(r"^class (\w+)\(HaloLipsyError\)",
                                                           path.read_text(), re.M)}
    by_hand = []
    for path in PACK_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in family and node.args):
                first = node.args[0]
                text = first.values[0] if isinstance(first, ast.JoinedStr) and first.values else first
                if isinstance(text, ast.Constant) and str(text.value).startswith(errors.PREFIX):
                    by_hand.append(f"{path.name}:{node.lineno}")
    assert len(family) > 5 and by_hand == []


def relative_imports(path):
    """(the package the import reaches, the module path below it, the names) of each relative
    import in `path`, the package given by its first folder under the pack (None: the top)."""
    inside = path.relative_to(ROOT).parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = inside[:len(inside) - (node.level - 1)]
            target = (*base, *(node.module.split(".") if node.module else ()))
            yield (target[0] if target else None), target[1:], [a.name for a in node.names], base


@pytest.mark.parametrize("path", [p for p in PACK_SOURCES if p.relative_to(ROOT).parts[0] in ("common", *STAGES)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_stage_packages_import_nothing_above_them(path):
    """common/ imports nothing of the pack; a stage package imports common/ and, of a sibling
    stage, only what its package offers (`from ..video import X`, X in its __all__) - never the
    settings, the routes, the nodes or the command line."""
    own = path.relative_to(ROOT).parts[0]
    for package, below, names, base in relative_imports(path):
        if package == own:
            continue
        assert own != "common", f"{path.name} imports {package}"
        assert package in ("common", *STAGES), f"{path.relative_to(ROOT)} imports {package or names} from above"
        if package != "common":
            offered = importlib.import_module(f"{PACK}.{package}").__all__
            assert not below and set(names) <= set(offered), \
                f"{path.relative_to(ROOT)} takes {below or names} from inside {package}"


@pytest.mark.parametrize("path", PACK_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_takes_another_modules_private_names(path):
    taken = [name for _, _, names, _ in relative_imports(path) for name in names if name.startswith("_")]
    assert not taken, f"{path.relative_to(ROOT)} imports private names {taken}"


@pytest.mark.parametrize("path", PACK_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_says_what_it_holds_in_its_first_line(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc.split("\n")[0]) > 20, f"{path.relative_to(ROOT)} has no first line saying what it holds"


def test_the_readme_layout_table_is_the_map():
    """Every top-level module and package has its row; the packages built one module per role
    name each of their modules in it (`module`)."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("Layout (data flows one way"):text.index("Seams for tools and tests")]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", table, re.M)}
    for name in rows:
        assert (ROOT / name).exists(), f"the layout names {name}, which is gone"
    for path in [*ROOT.glob("*.py"), *(ROOT / p for p in PACKAGES)]:
        key = path.name + ("/" if path.is_dir() else "")
        assert key in rows or path.name == "__init__.py", f"{key} has no row in the README's layout"
    for package in ("audio", "common", "restore", "routes", "video"):
        for module in (ROOT / package).glob("*.py"):
            if module.stem != "__init__":
                assert f"`{module.stem}`" in rows[f"{package}/"], f"{package}/{module.name} is not on the map"
