"""One panel for the whole workflow: Data, Model, Predict & compare, Scores, Train, Retrain.

*Plugins > Nuclei U-Net > Nuclei U-Net (all steps)* opens this single dock
instead of six: each step is a tab, and each tab scrolls inside itself, so the
window's minimum height stays that of napari alone and the panel fits a
1280x800 laptop screen with every control reachable. The tabs are the same
widgets as the separate docks (which stay available) and share the viewer's
session, so a step done in one place shows everywhere. The own-images
segmentation dock (``widgets.segment_widget``) is a tab too when installed.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QTabWidget, QVBoxLayout, QWidget

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

#: (tab title, module, class, attribute name on the panel), in workflow order.
TABS: tuple[tuple[str, str, str, str], ...] = (
    ("Data", "data_browser", "DataBrowserWidget", "data"),
    ("Model", "model_widget", "ModelWidget", "model"),
    ("Predict && compare", "compare_widget", "CompareWidget", "compare"),
    ("Scores", "iou_panel", "IoUPanel", "scores"),
    ("Train", "train_widget", "TrainWidget", "train"),
    ("Retrain", "retrain_widget", "RetrainWidget", "retrain"),
    ("Segment image", "segment_widget", "SegmentWidget", "segment"),
)
#: Tabs that may be missing (a module another part of the plugin adds).
OPTIONAL = {"segment"}
#: Narrowest the panel gets: the canvas keeps the rest of a 1280 px screen.
MIN_WIDTH = 360


def _scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area: its own minimum size no longer grows the window."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    return area


class WorkflowPanel(QWidget):
    """The plugin's steps as tabs of one dock (see the module docstring).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (shared session with the separate docks).

    Attributes
    ----------
    tabs : QTabWidget
        The tabs, in workflow order.
    warm_up : TurnRunner
        Makes the plugin's layers ahead of use (``warm_up.done`` once finished).
    data, model, compare, scores, train, retrain, segment : QWidget or None
        The step widgets (``segment`` is None when that module is not installed).
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs)
        self._index: dict[str, int] = {}
        for title, module, cls, attr in TABS:
            widget = self._make(module, cls, attr)
            setattr(self, attr, widget)
            if widget is None:
                continue
            self._index[attr] = self.tabs.addTab(_scrolled(widget), title)  # "&&" shows "&"
            self.tabs.setTabToolTip(self._index[attr], widget.__doc__.splitlines()[0]
                                    if widget.__doc__ else title)
        self.setMinimumWidth(MIN_WIDTH)
        # the plugin's layers, made ahead and drawn once while the window is idle, so
        # that the first image, prediction and overlay only replace data (issue 11)
        from napari_nuclei_unet.widgets._warm_up import start_layer_warm_up

        self.warm_up = start_layer_warm_up(napari_viewer)

    def _make(self, module: str, cls: str, attr: str) -> QWidget | None:
        try:
            mod = importlib.import_module(f"napari_nuclei_unet.widgets.{module}")
        except ImportError:
            if attr in OPTIONAL:
                return None
            raise
        return getattr(mod, cls)(self.viewer)

    def show_step(self, name: str) -> None:
        """Bring tab ``name`` (``"data"``, ``"model"``, ``"compare"``, ...) to the front."""
        if name in self._index:
            self.tabs.setCurrentIndex(self._index[name])

    def step_names(self) -> list[str]:
        """Names of the steps present, in tab order."""
        return sorted(self._index, key=self._index.get)

    def widget_of(self, name: str) -> Any:
        """The step widget called ``name``, or None."""
        return getattr(self, name, None)
