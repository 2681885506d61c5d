"""Stand-ins for the parts of ComfyUI the node touches, so the glue is tested without a checkout:
folder_paths (model folders), model_management, model_patcher and utils.ProgressBar. Where
COMFYUI_DIR names a ComfyUI checkout, `real_folder_paths()` loads its own folder_paths instead."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from pathlib import Path

import torch

SUPPORTED_PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


class FakeFolderPaths(types.SimpleNamespace):
    """ComfyUI's folder_paths API as the node uses it: registered folders with extensions,
    recursive listing with '/'-separated relative names, first-folder-wins lookup."""

    def __init__(self, models_dir):
        super().__init__(models_dir=str(models_dir), folder_names_and_paths={},
                         supported_pt_extensions=set(SUPPORTED_PT_EXTENSIONS))

    def add_model_folder_path(self, folder_name, full_folder_path, is_default=False):
        if folder_name not in self.folder_names_and_paths:
            self.folder_names_and_paths[folder_name] = ([full_folder_path], set())
            return
        paths = self.folder_names_and_paths[folder_name][0]
        if full_folder_path in paths:
            if is_default:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)

    def get_folder_paths(self, folder_name):
        return list(self.folder_names_and_paths[folder_name][0])

    def get_filename_list(self, folder_name):
        folders, extensions = self.folder_names_and_paths[folder_name]
        names = set()
        for folder in folders:
            for root, _, files in os.walk(folder):
                for name in files:
                    rel = os.path.relpath(os.path.join(root, name), folder)
                    if not extensions or os.path.splitext(name)[1].lower() in extensions:
                        names.add(rel)
        return sorted(names)

    def get_full_path(self, folder_name, filename):
        for folder in self.folder_names_and_paths[folder_name][0]:
            path = os.path.join(folder, filename)
            if os.path.isfile(path):
                return path
        return None


@contextlib.contextmanager
def real_folder_paths(models_dir: Path):
    """ComfyUI's own folder_paths from the COMFYUI_DIR checkout, with fresh model folders under
    `models_dir`; sys.modules and sys.path are restored afterwards so no other test sees it."""
    saved_modules, saved_path = dict(sys.modules), list(sys.path)
    sys.path.insert(0, os.environ["COMFYUI_DIR"])
    try:
        module = importlib.import_module("folder_paths")
        module.models_dir = str(models_dir)
        module.folder_names_and_paths = {}
        module.filename_list_cache = {}
        yield module
    finally:
        for name in set(sys.modules) - set(saved_modules):
            del sys.modules[name]
        sys.path[:] = saved_path


class FakeComfy:
    """model_management, model_patcher and utils as (folder_paths, mm, mp, utils), recording
    progress, model loads and interrupt checks; `interrupt_after` raises on a later check."""

    def __init__(self, interrupt_after=None, models_dir=None, folder_paths=None, force_fp32=False):
        self.progress, self.loaded, self.checks, self.detached = [], [], 0, []
        self.interrupt_after = interrupt_after
        fake = self

        class ProgressBar:
            def __init__(self, total):
                self.total = total

            def update_absolute(self, value, total=None, preview=None):
                fake.progress.append(value / self.total)

        class ModelPatcher:
            def __init__(self, model, load_device, offload_device):
                self.model, self.load_device = model, load_device

            def detach(self, unpatch_all=True):  # what ComfyUI calls when it unloads a model
                fake.detached.append(self)
                return self.model

        def load_models_gpu(patchers, force_full_load=False):
            fake.loaded.append((patchers, force_full_load))

        def interrupted():
            fake.checks += 1
            if fake.interrupt_after is not None and fake.checks > fake.interrupt_after:
                raise KeyboardInterrupt("interrupted")

        self.folder_paths = folder_paths or FakeFolderPaths(models_dir)
        self.modules = (
            self.folder_paths,
            types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"),
                                  unet_offload_device=lambda: torch.device("cpu"),
                                  load_models_gpu=load_models_gpu,
                                  throw_exception_if_processing_interrupted=interrupted,
                                  args=types.SimpleNamespace(force_fp32=force_fp32)),
            types.SimpleNamespace(ModelPatcher=ModelPatcher),
            types.SimpleNamespace(ProgressBar=ProgressBar),
        )

    def install(self, monkeypatch, nodes):
        monkeypatch.setattr(nodes, "_comfy", lambda: self.modules)
        monkeypatch.setattr(nodes, "_folder_paths", lambda: self.folder_paths)
        return self
