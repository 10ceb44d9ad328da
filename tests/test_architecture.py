"""The core never imports Qt or napari, and importing the plugin stays light."""

import ast
import json
import pathlib
import subprocess
import sys

import napari_nuclei_unet

PKG = pathlib.Path(napari_nuclei_unet.__file__).parent
FORBIDDEN = (
    "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy",
)


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_core_sources_never_import_gui_packages():
    core_files = sorted((PKG / "core").rglob("*.py"))
    assert core_files, "core package is empty?"
    offenders = [
        f"{f.relative_to(PKG)} imports {mod}"
        for f in core_files
        for mod in _imported_modules(f)
        if mod.split(".")[0] in FORBIDDEN
    ]
    assert not offenders, offenders


def _modules_after(code):
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_all_core_modules_loads_no_gui():
    names = [
        "napari_nuclei_unet.core." + p.stem
        for p in sorted((PKG / "core").glob("*.py"))
        if p.stem != "__init__"
    ]
    code = "\n".join(f"import {n}" for n in names)
    mods = _modules_after(code)
    bad = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
    assert not bad, bad


def test_reader_and_sample_data_do_not_import_torch():
    mods = _modules_after(
        "import napari_nuclei_unet._reader, napari_nuclei_unet._sample_data, "
        "napari_nuclei_unet.core.dataset"
    )
    assert "torch" not in mods
