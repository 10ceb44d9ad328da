"""Per-viewer state shared by the plugin's dock widgets.

The widgets are separate npe2 contributions, opened independently, yet they work
on the same things: the open dataset, the loaded samples, the current model, the
cached probability maps and the per-image scores. :func:`session_for` hands every
widget of one viewer the same :class:`Session`; sessions die with their viewer
(a ``WeakKeyDictionary``), so nothing is held in a module-level global model.

Signals are psygnal signals (no Qt), emitted on the main thread by the widgets'
worker handlers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psygnal import Signal

if TYPE_CHECKING:
    import numpy as np

    from napari_nuclei_unet.core.dataset import DSBDataset, Sample


@dataclass
class Session:
    """What the plugin's widgets share for one napari viewer.

    Attributes
    ----------
    dataset : DSBDataset or None
        The open dataset (folder, zip or bundled samples).
    samples : dict
        Loaded samples by id (decoded image + labels).
    current_id : str or None
        The sample shown in the viewer.
    model : LoadedModel or None
        The model used for prediction (``core.checkpoint.LoadedModel``).
    probabilities : dict
        Cached probability maps by sample id, from the current model.
    threshold : float
        Threshold applied to the probability maps.
    instance_method : str
        How thresholded maps are split into nuclei: ``"watershed"`` (touching
        nuclei split) or ``"components"``. ``rows`` are scored with ``threshold``
        and ``instance_method``.
    rows : dict
        Per-image scores by sample id (``core.evaluation.ImageRow``).
    edited_labels : dict
        Label masks edited by hand in the viewer, by ``(dataset path, sample id)``;
        kept when the user moves to another sample (``Sample.labels`` stays the
        original). See ``widgets._layers``.
    jobs : WorkerGuard
        The background jobs running for this viewer, by kind ("training",
        "load all", ...), so that a second job of the same kind is refused.
    """

    dataset: DSBDataset | None = None
    samples: dict[str, Sample] = field(default_factory=dict)
    current_id: str | None = None
    model: Any = None
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = 0.5
    instance_method: str = "watershed"
    rows: dict[str, Any] = field(default_factory=dict)
    edited_labels: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    jobs: Any = field(default_factory=lambda: _new_worker_guard())

    # emitted with no arguments, or the id concerned
    dataset_changed = Signal()
    samples_changed = Signal()
    current_changed = Signal(str)
    model_changed = Signal()
    predictions_changed = Signal()
    scores_changed = Signal()
    labels_edited = Signal(str)  # sample id whose hand-edited mask was kept

    def set_model(self, model: Any) -> None:
        """Use ``model`` from now on; cached predictions of the old model are dropped."""
        self.model = model
        self.probabilities.clear()
        self.rows.clear()
        self.model_changed.emit()
        self.predictions_changed.emit()
        self.scores_changed.emit()


def _new_worker_guard() -> Any:
    from napari_nuclei_unet.widgets._workers import WorkerGuard

    return WorkerGuard()


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """Return the :class:`Session` of ``viewer``, creating it on first use."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = Session()
        _SESSIONS[viewer] = session
    return session


def on_destroyed(widget: Any, callback: Callable[[], None]) -> None:
    """Call ``callback()`` when the Qt ``widget`` is destroyed (its dock closed).

    Connected through a lambda: PyQt never calls a bound method of the object being
    destroyed, so ``widget.destroyed.connect(widget.method)`` would silently not run.
    The widget's Qt children are going away then: ``callback`` should touch plain
    Python state only.
    """
    widget.destroyed.connect(lambda *_args: callback())


def disconnect_all(pairs: Iterable[tuple[Any, Callable[..., Any]]]) -> None:
    """Disconnect each ``(signal, slot)`` pair (psygnal signals or napari events).

    Pairs that are no longer connected are skipped.
    """
    for signal, slot in pairs:
        try:
            signal.disconnect(slot)
        except (TypeError, ValueError, RuntimeError):
            pass
