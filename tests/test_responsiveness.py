"""The window stays responsive while the Train dock trains.

A 10 ms QTimer heartbeat runs on the main thread during a short training in the
GUI worker; the longest gap between two beats, minus the 10 ms period, is the
longest main-thread stall. The same heartbeat is first run without training for
as long, to measure what the machine itself does to the main thread (other
programs competing for the CPU). The bound asserted is generous: 250 ms on top of
that baseline; the measured values are printed for the report (target: <= 50 ms).

Run: ``xvfb-run -a python -m pytest -s tests/test_responsiveness.py``
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from _widget_helpers import wait_worker

pytestmark = pytest.mark.gui

STALL_LIMIT_MS = 250.0
HEARTBEAT_MS = 10


def synthetic_samples(n_per_style: int = 2, shape=(96, 96)):
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.synthetic import STYLES, make_synthetic_sample

    samples = []
    for style in STYLES:
        for k in range(n_per_style):
            image, masks = make_synthetic_sample(style, shape=shape, seed=k)
            labels = np.zeros(shape, np.int32)
            for i, mask in enumerate(masks, start=1):
                labels[mask] = i
            samples.append(Sample(f"{style}-{k}", image, labels, style))
    return samples


class Heartbeat:
    """Record the longest gap between ticks of a QTimer on the main thread."""

    def __init__(self, period_ms: int = HEARTBEAT_MS) -> None:
        from qtpy.QtCore import QTimer

        self.period_ms = period_ms
        self.gaps: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append((now - self._last) * 1000.0)
        self._last = now

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    @property
    def max_stall_ms(self) -> float:
        return max(self.gaps, default=0.0) - self.period_ms


@pytest.mark.timing
def test_main_thread_never_stalls_during_training(make_napari_viewer, qtbot, tmp_path):
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.train_widget import TrainWidget

    viewer = make_napari_viewer(show=True)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    session = session_for(viewer)
    wait_worker(qtbot, session.jobs.running("list devices"))
    session.samples.update({s.id: s for s in synthetic_samples()})
    widget.set_output_root(tmp_path / "runs")

    widget.set_config(TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=8, epochs=4,
                                  steps_per_epoch=60, val_fraction=0.34, amp=False))
    baseline = Heartbeat()
    baseline.start()
    qtbot.wait(3000)
    baseline.stop()

    beat = Heartbeat()
    beat.start()
    qtbot.wait(200)
    started = time.perf_counter()
    worker = widget.start()
    assert worker is not None
    wait_worker(qtbot, worker, timeout=180_000)
    wait_worker(qtbot, session.jobs.running("load model"))  # the best model is loaded too
    duration = time.perf_counter() - started
    qtbot.wait(100)
    beat.stop()

    gaps = np.array(beat.gaps)
    print(
        f"\nmain-thread stall during GUI training ({duration:.1f} s, "
        f"{len(widget.curves.points('train_loss'))} epochs): max {beat.max_stall_ms:.1f} ms, "
        f"p99 gap {np.percentile(gaps, 99):.1f} ms, median gap {np.median(gaps):.1f} ms; "
        f"idle baseline on this machine: max {baseline.max_stall_ms:.1f} ms, "
        f"p99 gap {np.percentile(baseline.gaps, 99):.1f} ms"
    )
    assert len(widget.curves.points("train_loss")) == 4
    assert beat.max_stall_ms < STALL_LIMIT_MS + max(0.0, baseline.max_stall_ms)
