"""The napari manifest is valid and is found through the installed package."""

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import napari_nuclei_unet

PKG = Path(napari_nuclei_unet.__file__).parent


def _npe2_command():
    exe = shutil.which("npe2") or str(Path(sys.executable).parent / "npe2")
    if not Path(exe).exists():
        pytest.skip("npe2 command line not installed")
    return exe


def test_npe2_validate_passes():
    result = subprocess.run(
        [_npe2_command(), "validate", "napari-nuclei-unet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_manifest_found_through_entry_point():
    from npe2 import PluginManifest

    (entry_point,) = [
        ep
        for ep in metadata.entry_points(group="napari.manifest")
        if ep.name == "napari-nuclei-unet"
    ]
    assert entry_point.value == "napari_nuclei_unet:napari.yaml"
    manifest = PluginManifest.from_distribution("napari-nuclei-unet")
    assert manifest.name == "napari-nuclei-unet"
    # the package's napari.yaml is a symlink to the repository's; it must resolve
    yaml_in_package = PKG / "napari.yaml"
    assert yaml_in_package.is_file()
    assert "napari-nuclei-unet.get_reader" in yaml_in_package.read_text()


def test_manifest_declares_reader_and_samples():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-nuclei-unet")
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-nuclei-unet.get_reader"] == "napari_nuclei_unet._reader:get_reader"
    (reader,) = manifest.contributions.readers
    assert reader.command == "napari-nuclei-unet.get_reader"
    assert reader.accepts_directories
    keys = {s.key for s in manifest.contributions.sample_data}
    assert {"synthetic-fluorescence", "synthetic-brightfield", "synthetic-histology"} <= keys
    assert "dsb2018-stage1-train" in keys


def test_manifest_python_names_import():
    """Every reader and sample-data command points at a function that exists."""
    import importlib

    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-nuclei-unet")
    ours = {"napari_nuclei_unet._reader", "napari_nuclei_unet._sample_data"}
    for command in manifest.contributions.commands:
        module_name, _, attr = command.python_name.partition(":")
        if module_name in ours:
            assert callable(getattr(importlib.import_module(module_name), attr)), command.id


def test_sample_data_reachable_from_package():
    from napari_nuclei_unet._sample_data import sample_data_dir

    folder = sample_data_dir()
    assert folder.is_dir()
    assert (PKG / "sample_data").is_dir(), "src/napari_nuclei_unet/sample_data symlink is broken"
    if (PKG / "sample_data").is_symlink():
        assert os.readlink(PKG / "sample_data") == os.path.join("..", "..", "sample_data")
    images = sorted(folder.glob("*/images/*.png"))
    assert len(images) >= 3


def test_reader_is_offered_for_folders_and_zips_only(tmp_path):
    """A plain image must not offer this reader (napari would ask users to pick one)."""
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()

    def offered(path):
        return "napari-nuclei-unet" in {r.plugin_name for r in pm.iter_compatible_readers([path])}

    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.tif").write_bytes(b"")
    (tmp_path / "stage1_train.zip").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    assert not offered(str(tmp_path / "a.png"))
    assert not offered(str(tmp_path / "b.tif"))
    assert offered(str(tmp_path / "stage1_train.zip"))
    assert offered(str(tmp_path / "folder"))
