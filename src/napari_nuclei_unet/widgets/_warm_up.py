"""Warm-ups run in workers when docks open, so that the user's first action does not stall.

* :func:`tiny_training_run` -- one tiny training step on a blank image, shared by the
  Train and Retrain docks: the first training step of a process imports about a
  thousand modules.
* :func:`import_layer_modules` -- the modules napari imports when the first image and
  label-mask layers are added, and pint's unit registry it builds then
  (:func:`prepare_layer_display`, started by the Data dock).
* :func:`warming_up` -- whether one of these jobs runs (main-thread work waits for them).

The main-thread warm-up of the plugin's layers, in small turns, and the freezing of
the warmed-up heap are in :mod:`._layer_warm_up`.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import Sample

#: What napari 0.9 imports, on the main thread, when the first Image and Labels layers
#: are added: xarray and pandas (``napari.utils._xarray_utils``), the histogram of the
#: contrast-limit controls, scipy.ndimage (thumbnails), scikit-image's colour modules
#: (the label colormap) and scipy.linalg. About 600 modules: the first image shown
#: stalled the window for 0.6-1.3 s (``benchmarks/bench_journey.py``).
#: The session job that runs :func:`import_layer_modules` (the Data dock starts it).
IMPORT_JOB = "warm up image display"

LAYER_MODULES = (
    "xarray",
    "napari.components.histogram",
    "scipy.ndimage",
    "scipy.linalg",
    "skimage.color",
    "skimage.exposure",
    "skimage.util",
)


def import_layer_modules(names: tuple[str, ...] = LAYER_MODULES) -> list[str]:
    """Import ``names`` (in a worker: Python gives the main thread its turn meanwhile).

    Parameters
    ----------
    names : tuple of str
        Module names; those not installed are skipped.

    Returns
    -------
    list of str
        The names imported (or already imported).
    """
    import importlib

    done = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        done.append(name)
    return done


def build_unit_registry() -> object | None:
    """Build pint's default unit registry here (in a worker), not at the first layer.

    napari 0.9 gives every layer's transforms units from pint's application
    registry, which pint builds lazily, on the main thread, when the first
    layer is made: parsing pint's unit definitions took 400-500 ms (1.6 s under
    the profiler) of the panel's first layer warm-up step. This builds the same
    registry (pint's defaults, ``on_redefinition="raise"`` as pint's lazy one)
    for :func:`install_unit_registry`.

    Returns
    -------
    pint.UnitRegistry or None
        None when pint is missing or fails (napari then builds its own as before).
    """
    try:
        import pint

        registry = pint.UnitRegistry(on_redefinition="raise")
        registry.pixel  # noqa: B018 - what napari asks for first
    except Exception:  # noqa: BLE001 - a warm-up never bothers the user
        return None
    return registry


def install_unit_registry(registry: object | None) -> bool:
    """Make ``registry`` pint's application registry if pint's own was never used (main thread).

    pint's default application registry is a ``LazyRegistry`` until first used;
    once used (a layer was made meanwhile, another plugin), its units exist and
    it is left alone, so units of two registries never mix.

    Returns
    -------
    bool
        True when ``registry`` was installed.
    """
    if registry is None:
        return False
    try:
        import pint
        from pint.registry import LazyRegistry, UnitRegistry
    except ImportError:
        return False
    app = pint.get_application_registry()
    if type(app.get()) is not LazyRegistry or not isinstance(registry, UnitRegistry):
        return False
    pint.set_application_registry(registry)
    return True


def build_dash_patterns() -> bool:
    """Compute vispy's dash patterns here (in a worker), not at the first Labels layer.

    Every napari Labels layer gets a polygon-tool overlay whose lines build a
    vispy ``DashAtlas`` of 13 dash patterns; vispy computes each pattern once
    per process (a Python loop over 1,024 samples, cached) on the main thread,
    when the first Labels layer is added: about 50 ms of the workflow panel's
    first Labels layer (124 ms in all, later ones 69-92 ms, ``bench_journey``).
    Building one atlas here fills that cache (plain numpy, no OpenGL).

    Returns
    -------
    bool
        False when vispy's module is not there (napari then pays it as before).
    """
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    except Exception:  # noqa: BLE001 - a warm-up never bothers the user
        return False
    return True


def prepare_layer_display() -> object | None:
    """The Data dock's warm-up job: imports, dash patterns, pint's unit registry.

    :func:`import_layer_modules`, :func:`build_dash_patterns`, then
    :func:`build_unit_registry`.

    Returns
    -------
    pint.UnitRegistry or None
        For :func:`install_unit_registry` (the job's ``on_returned``).
    """
    import_layer_modules()
    build_dash_patterns()
    return build_unit_registry()


def tiny_training_run(*, validate: bool) -> tuple[Sample, np.ndarray]:
    """Train one step of a tiny model on a blank 32x32 image with one square nucleus.

    Parameters
    ----------
    validate : bool
        Validate on the same image too (exercises the validation code path).

    Returns
    -------
    tuple of Sample and numpy.ndarray
        The blank sample and its label mask.
    """
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()  # first: the Train and Retrain docks' warm-ups may start together
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 8:20] = 1
    image = np.repeat((labels[..., None] * 200).astype(np.uint8), 3, axis=2)
    blank = Sample("warm-up", image, labels, "fluorescence")
    config = TrainConfig(base_width=2, depth=1, crop_size=16, batch_size=1, epochs=1,
                         steps_per_epoch=1, num_threads=1, amp=False, device="cpu")
    with tempfile.TemporaryDirectory(prefix="nuclei-unet-warm-up-") as folder:
        drive(train(config, [blank], out_dir=folder, val_samples=[blank] if validate else []))
    return blank, labels


#: The warm-up jobs the docks start when they open (the Data dock's imports, the
#: Model and Train docks' device listing and tiny training run, the Retrain dock's).
WARM_UP_JOBS = (IMPORT_JOB, "list devices", "warm up fine-tuning")


def warming_up(viewer) -> bool:
    """True while one of :data:`WARM_UP_JOBS` runs (the panel's tabs and layers wait).

    Adding a layer while the Data dock's worker imports xarray makes napari import
    it on the main thread, which then waits for the worker's module lock (a stall
    of 0.3-1.3 s in ``bench_journey``). And a worker running Python holds the GIL
    for up to Python's switch interval (5 ms) each time the main thread gives it
    up, which PyQt does at nearly every Qt call: building the Train tab took
    480-500 ms beside a warm-up worker, about 250 ms without one.
    """
    from napari_nuclei_unet.widgets._session import session_for

    jobs = getattr(session_for(viewer), "jobs", None)
    return bool(jobs is not None and any(jobs.is_running(kind) for kind in WARM_UP_JOBS))
