"""A bioimage.io package must reproduce its own test output before it is used (h_rev17, F4)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("bioimageio.core")
pytest.importorskip("yaml")

from napari_nuclei_unet.bioimageio.load import load_any_model  # noqa: E402
from napari_nuclei_unet.bioimageio.selftest import DEFAULT_TOLERANCE, compare  # noqa: E402
from napari_nuclei_unet.core.checkpoint import CheckpointError  # noqa: E402
from test_bioimageio import _copy_package, _one_thread, _real_package  # noqa: E402, F401


def _save(data: dict, folder, name: str, array: np.ndarray, **kwargs) -> None:
    """Write a package's test tensor and its checksum (as a package's author would)."""
    import hashlib

    np.save(folder / name, array, **kwargs)
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    for tensor in (*data["inputs"], *data["outputs"]):
        if tensor["test_tensor"]["source"] == name:
            tensor["test_tensor"]["sha256"] = digest


def test_a_sound_package_says_it_reproduces_its_test_output():
    loaded = load_any_model(_real_package())
    assert loaded.metadata["bioimageio"]["test"].startswith("reproduces its test output")


@pytest.mark.parametrize("weight_format", ["torchscript", "onnx"])
def test_weights_that_are_not_the_packages_are_refused(tmp_path, weight_format):
    # random weights with the test tensors kept gave random blobs and rc 0; here the
    # test output is another network's (the real one inverted): the same disagreement
    if weight_format == "onnx":
        pytest.importorskip("onnxruntime")

    def other_output(data, folder):
        expected = np.load(folder / "test_output.npy")
        _save(data, folder, "test_output.npy", (1.0 - expected).astype(np.float32))
        if weight_format == "onnx":
            del data["weights"]["torchscript"]

    package = _copy_package(tmp_path, other_output)
    with pytest.raises(CheckpointError) as info:
        load_any_model(package)
    text = str(info.value)
    assert f"does not reproduce its own test output with its {weight_format} weights" in text
    assert "% of the values differ" in text and "Download it again" in text


def test_a_test_tensor_of_python_objects_is_never_unpickled(tmp_path, monkeypatch):
    def object_output(data, folder):
        _save(data, folder, "test_output.npy", np.array([{"a": 1}], dtype=object),
              allow_pickle=True)

    package = _copy_package(tmp_path, object_output)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must not be loaded")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with pytest.raises(CheckpointError, match="holds object values, not numbers"):
        load_any_model(package)


def test_a_huge_test_input_is_not_run_and_says_so(tmp_path):
    def huge_input(data, folder):
        # a header promising 10000 x 10000 pixels, and no data: never read whole
        header = {"descr": "<f4", "fortran_order": False, "shape": (1, 1, 10000, 10000)}
        with open(folder / "test_input.npy", "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
        del data["inputs"][0]["test_tensor"]["sha256"]

    package = _copy_package(tmp_path, huge_input)
    loaded = load_any_model(package)
    assert loaded.metadata["bioimageio"]["test"] == (
        "not checked: its test input (1 x 1 x 10000 x 10000) is larger than "
        "napari-nuclei-unet runs at loading")


def test_missing_or_damaged_test_tensors_are_said_in_words(tmp_path):
    def cut_short(data, folder):
        (folder / "test_output.npy").write_bytes(
            (folder / "test_output.npy").read_bytes()[:1000])
        del data["outputs"][0]["test_tensor"]["sha256"]

    package = _copy_package(tmp_path, cut_short)
    with pytest.raises(CheckpointError, match="is cut short or damaged"):
        load_any_model(package)
    (package / "test_output.npy").unlink()
    with pytest.raises(CheckpointError, match="cannot be read .* incomplete or damaged"):
        load_any_model(package)


def test_a_test_tensor_that_is_not_the_one_described_is_said_so(tmp_path):
    def changed(data, folder):
        np.save(folder / "test_output.npy", np.zeros((1, 1, 512, 512), np.float32))

    with pytest.raises(CheckpointError, match="SHA-256 checksum differs"):
        load_any_model(_copy_package(tmp_path, changed))


def test_compare_uses_the_packages_tolerance_and_counts_nan_as_different():
    expected = np.linspace(0, 1, 1_000_000, dtype=np.float32)
    assert compare(expected + 5e-4, expected, DEFAULT_TOLERANCE)[0]
    off = expected.copy()
    off[:101] += 0.01  # 101 elements per million: one more than bioimage.io allows
    passed, share, largest = compare(off, expected, DEFAULT_TOLERANCE)
    assert not passed and share == pytest.approx(101e-6) and largest == pytest.approx(0.01)
    assert compare(off, expected, DEFAULT_TOLERANCE, slack=10.0)[0]  # off the CPU
    nan = expected.copy()
    nan[0] = np.nan
    assert compare(nan, expected, DEFAULT_TOLERANCE)[0]  # one element is within 100/M
    nan[:200] = np.nan
    assert not compare(nan, expected, DEFAULT_TOLERANCE)[0]


def test_the_legacy_test_kwargs_tolerance_is_read_as_bioimageio_core_reads_it():
    # a package passing `bioimageio test` with its test_kwargs was refused (h_rev25, B3)
    from types import SimpleNamespace

    from napari_nuclei_unet.bioimageio.selftest import tolerance

    def descr(entries=(), extra=None):
        return SimpleNamespace(config=SimpleNamespace(bioimageio=SimpleNamespace(
            reproducibility_tolerance=entries, model_extra=extra)))

    legacy = {"test_kwargs": {"onnx": {"absolute_tolerance": 0.05}}}
    assert tolerance(descr(extra=legacy), "out", "onnx")["absolute_tolerance"] == 0.05
    assert tolerance(descr(extra=legacy), "out", "torchscript") == DEFAULT_TOLERANCE
    entry = SimpleNamespace(relative_tolerance=0.2, absolute_tolerance=0.3,
                            mismatched_elements_per_million=10, output_ids=(),
                            weights_formats=())
    assert tolerance(descr((entry,), legacy), "out", "onnx")["absolute_tolerance"] == 0.3

