"""Shared fixtures: tiny synthetic DSB2018 datasets written into tmp_path.

Layout written (as Kaggle's stage1_train)::

    <root>/<id>/images/<id>.png
    <root>/<id>/masks/<id>_m<k>.png     # one binary 0/255 PNG per nucleus
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# napari's own settings (window geometry, written as each viewer closes) go to a file of
# this test process, not the user's, which two test processes (-n 2) wrote at once. The
# workers inherit the environment of the process that starts them: a file set there is
# not theirs (review h_rev14, L6); one the user set before pytest is kept.
if "NAPARI_CONFIG" not in os.environ or os.environ.get(
        "NUCLEI_UNET_TESTS_SETTINGS_OF", str(os.getpid())) != str(os.getpid()):
    import atexit
    import shutil

    _NAPARI_SETTINGS = tempfile.mkdtemp(prefix="nuclei-unet-tests-napari-")
    os.environ["NAPARI_CONFIG"] = str(Path(_NAPARI_SETTINGS) / "settings.yaml")
    os.environ["NUCLEI_UNET_TESTS_SETTINGS_OF"] = str(os.getpid())
    atexit.register(shutil.rmtree, _NAPARI_SETTINGS, ignore_errors=True)  # left before

# Ctrl-C as in a terminal: a test run started in the background (`cmd &` in a script,
# nohup) inherits SIGINT ignored, and Python then keeps it ignored; the tests that press
# Ctrl-C (raise SIGINT in the process) expect Python's own handler.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# id -> (height, width, number of nuclei); "c..." has an empty masks/ folder
SYNTHETIC_SAMPLES = {
    "a0sample": (24, 32, 3),
    "b1sample": (20, 20, 2),
    "c2empty": (16, 18, 0),
}


def nucleus_boxes(shape: tuple[int, int], n: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping boxes (r0, c0, r1, c1) laid out on a diagonal."""
    h, w = shape
    size = max(2, min(h, w) // (n + 1))
    return [(k * size, k * size, k * size + size - 1, k * size + size) for k in range(n)]


def write_sample(
    root: Path,
    sample_id: str,
    shape: tuple[int, int] = (24, 32),
    n_nuclei: int = 3,
    *,
    image: np.ndarray | None = None,
    masks: list[np.ndarray] | None = None,
    with_masks_dir: bool = True,
    background: int = 10,
) -> Path:
    """Write one sample folder; return it. Masks default to ``nucleus_boxes``."""
    h, w = shape
    folder = Path(root) / sample_id
    (folder / "images").mkdir(parents=True, exist_ok=True)
    if masks is None:
        masks = []
        for r0, c0, r1, c1 in nucleus_boxes(shape, n_nuclei):
            m = np.zeros(shape, np.uint8)
            m[r0:r1, c0:c1] = 255
            masks.append(m)
    if image is None:
        grey = np.full(shape, background, np.uint8)
        for m in masks:
            grey[m > 0] = 200
        rgba = np.dstack([grey, grey, grey, np.full(shape, 255, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(folder / "images" / f"{sample_id}.png")
    else:
        Image.fromarray(image).save(folder / "images" / f"{sample_id}.png")
    if with_masks_dir:
        (folder / "masks").mkdir(exist_ok=True)
        for k, m in enumerate(masks):
            Image.fromarray(m).save(folder / "masks" / f"{sample_id}_m{k:02d}.png")
    return folder


def write_dataset(root: Path, samples: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """Write a stage1_train-like folder of samples {id: (h, w, n_nuclei)}; return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for sample_id, (h, w, n) in (samples or SYNTHETIC_SAMPLES).items():
        write_sample(root, sample_id, (h, w), n)
    return root


def zip_folder(folder: Path, zip_path: Path, *, top_level: bool = True) -> Path:
    """Zip a dataset folder, with ``<folder name>/`` on top or the ids at the root."""
    folder = Path(folder)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            arcname = f"{folder.name}/{rel}" if top_level else rel
            if path.is_dir():
                zf.writestr(arcname + "/", "")
            else:
                zf.write(path, arcname)
    return zip_path


@pytest.fixture(autouse=True)
def isolated_cache_dir(tmp_path_factory, monkeypatch):
    """Point the package's cache at a fresh folder so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("nuclei-unet-cache")
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """The plugin's config and data folders (the project remembered, projects) per test."""
    path = tmp_path_factory.mktemp("nuclei-unet-user")
    monkeypatch.setenv("NUCLEI_UNET_CONFIG_DIR", str(path / "config"))
    monkeypatch.setenv("NUCLEI_UNET_DATA_DIR", str(path / "data"))
    return path


@pytest.fixture(autouse=True)
def timing_tests_run_alone(request, tmp_path_factory):
    """With pytest-xdist (``-n 2``), a test marked ``timing`` runs while no other test runs.

    Its bounds (a main-thread stall, a wall-clock time) hold on an idle machine; beside
    the other process's tests they measured that load. Every test takes a shared lock
    on one file of the run, a ``timing`` test an exclusive one.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    import fcntl

    # the folder the workers' own temporary folders are in: one per run
    path = tmp_path_factory.getbasetemp().parent / f"timing-{run}.lock"
    alone = request.node.get_closest_marker("timing") is not None
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def no_collection_pause_left():
    """End a garbage-collection pause a test's workflow panel left (``widgets._gc_pause``).

    A panel whose viewer is never shown keeps its pause until the safety timer, and
    a panel whose warm-up ended froze the heap; the next test starts with the
    collector as it was, and the viewers of earlier tests can be freed.
    """
    yield
    from napari_nuclei_unet.widgets._gc_pause import PAUSE

    PAUSE.end_all()
    PAUSE.thaw()


@pytest.fixture
def dsb_folder(tmp_path) -> Path:
    """A stage1_train folder with the samples of SYNTHETIC_SAMPLES."""
    return write_dataset(tmp_path / "stage1_train")


@pytest.fixture(params=["top-level-dir", "ids-at-root"])
def dsb_zip(request, tmp_path, dsb_folder) -> Path:
    """stage1_train.zip in both layouts found in the wild."""
    return zip_folder(
        dsb_folder, tmp_path / "stage1_train.zip", top_level=request.param == "top-level-dir"
    )


@pytest.fixture
def dsb_sample(tmp_path) -> Path:
    """One sample folder (3 nuclei) on its own."""
    return write_sample(tmp_path, "solo", (24, 32), 3)
