"""Shared helpers of the tests (datasets, notifications, workers, fresh processes)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER_TIMEOUT_MS = 60_000


def record_reads(monkeypatch, model_class, role=None) -> list[int]:
    """Rows of every ``model_class.data`` call from now on (only ``role`` when given)."""
    reads: list[int] = []
    data = model_class.data

    def recording(self, index, role_=0):
        if role is None or role_ == role:
            reads.append(index.row())
        return data(self, index, role_)

    monkeypatch.setattr(model_class, "data", recording)
    return reads


def fresh_python(code: str, *, timeout: float = 300) -> str:
    """Run ``code`` in a new Python process (this environment); its last stdout line.

    For what only a fresh process shows: which modules an import pulls in, what a
    window does on its first use. A failing run raises ``CalledProcessError``.
    """
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=timeout, env=dict(os.environ)).stdout
    lines = out.strip().splitlines()
    return lines[-1] if lines else ""


def write_dataset(root: Path, n_per_style: int = 2, shape=(48, 64)) -> list[str]:
    """Write a small synthetic DSB2018 dataset (3 modalities) and return its ids."""
    from napari_nuclei_unet.core.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(root, n_per_style=n_per_style, seed=1, shape=shape)


def tiny_samples(n: int = 6, size: int = 48, seed: int = 0):
    """In-memory samples (fluorescence-like discs) for fast training tests."""
    from napari_nuclei_unet.core.dataset import Sample

    rng = np.random.default_rng(seed)
    samples = []
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        labels = np.zeros((size, size), np.int32)
        for label in range(1, 5):
            cy, cx = rng.integers(8, size - 8, 2)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 30] = label
        image = np.where(labels[..., None] > 0, 200, 20).astype(np.uint8).repeat(3, axis=2)
        image = np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)
        modality = "fluorescence" if k % 2 == 0 else "brightfield"
        samples.append(Sample(f"tiny-{k}", image, labels, modality))
    return samples


def labelled_synthetic_samples(n: int, shape: tuple[int, int], first_seed: int):
    """``n`` synthetic samples with label masks, cycling through the three modalities.

    Sample ``k`` is ``make_synthetic_sample(STYLES[k % 3], seed=first_seed + k)``, id
    ``"{style}-{k}"``.
    """
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.synthetic import STYLES, make_synthetic_sample

    samples = []
    for k in range(n):
        style = STYLES[k % len(STYLES)]
        image, masks = make_synthetic_sample(style, shape=shape, seed=first_seed + k)
        labels = np.zeros(shape, np.int32)
        for i, mask in enumerate(masks, start=1):
            labels[mask] = i
        samples.append(Sample(f"{style}-{k}", image, labels, style))
    return samples


class Notifications:
    """Collect napari notifications shown during a test."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, notification) -> None:
        self.messages.append((str(notification.severity), str(notification.message)))

    def texts(self, severity: str | None = None) -> list[str]:
        return [m for s, m in self.messages if severity is None or severity in s.lower()]

    def any(self, fragment: str) -> bool:
        return any(fragment.lower() in m.lower() for _, m in self.messages)


@contextlib.contextmanager
def capture_notifications():
    """Context manager yielding a :class:`Notifications` collector."""
    from napari.utils.notifications import notification_manager

    collector = Notifications()
    notification_manager.notification_ready.connect(collector)
    try:
        yield collector
    finally:
        notification_manager.notification_ready.disconnect(collector)


def wait_worker(qtbot, worker, timeout: int = WORKER_TIMEOUT_MS) -> None:
    """Wait until the handlers of ``worker`` (from ``WorkerGuard.start``, may be None) ran."""
    if worker is None:
        return
    qtbot.waitUntil(lambda: worker.handled, timeout=timeout)


def rendered(widget, size=(320, 280)) -> np.ndarray:
    """The widget painted off screen at ``size`` (w, h), as an (H, W, 3) RGB array."""
    from qtpy.QtGui import QImage

    widget.resize(*size)
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def pixels_of(image: np.ndarray, color: tuple[int, int, int], tolerance: int = 30) -> int:
    """How many pixels of an RGB array are within ``tolerance`` (sum of |diff|) of ``color``."""
    return int((np.abs(image.astype(int) - np.array(color)).sum(axis=2) < tolerance).sum())


def segment_dock(viewer):
    """The Segment dock docked in ``viewer``, given a proxy of it as napari gives plugins."""
    from napari.utils._proxies import PublicOnlyProxy

    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    widget = SegmentWidget(PublicOnlyProxy(viewer))
    viewer.window.add_dock_widget(widget, name="Segment image layer")
    return viewer, widget


def disc_labels(shape: tuple, centres) -> np.ndarray:
    """Labels 1..n of discs 12 px across at ``centres`` (row, column)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 < 36] = k
    return labels
