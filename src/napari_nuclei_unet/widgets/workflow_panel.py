"""One panel for the whole workflow: Data, Model, Predict & compare, Scores, Train, Retrain.

*Plugins > Nuclei U-Net > Nuclei U-Net (all steps)* opens this single dock
instead of six: each step is a tab, and each tab scrolls inside itself, so the
window's minimum height stays that of napari alone and the panel fits a
1280x800 laptop screen with every control reachable. The tabs are the same
widgets as the separate docks (which stay available) and share the viewer's
session, so a step done in one place shows everywhere. The own-images
segmentation dock (``widgets.segment_widget``) is a tab too when installed.

Opening the panel builds no tab: docking it (napari's layout and settings
save, 65-85 ms) is the click's work. The tabs are built in event-loop turns
right after, the Data tab first, each tab's widget in one turn and its placing
in the tab (napari's style sheet) in the next, once no warm-up worker runs
(``_warm_up.warming_up``), so the window never freezes for the whole panel at
once (issue 11). A tab that is shown or used before its turn (its attribute,
:meth:`WorkflowPanel.show_step`, a click on it) is built and placed at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from napari_nuclei_unet.widgets._scroll import scroll_area

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
#: Width the panel asks for when docked: what the Data tab asks for (its row of four
#: buttons, 432 px) with the tab and scroll-area frames, before that tab is built.
PREFERRED_WIDTH = 488


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
    tabs_built : TurnRunner
        Builds the tabs after the first, one per turn (``tabs_built.done``).
    data, model, compare, scores, train, retrain, segment : QWidget or None
        The step widgets (``segment`` is None when that module is not installed).
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from napari_nuclei_unet.widgets._dock_life import on_destroyed
        from napari_nuclei_unet.widgets._gc_pause import PAUSE

        # no full garbage collection while the tabs' warm-ups import (two or three
        # of 250-580 ms): the heap is frozen in idle time once they are over, and
        # thawed when the panel goes (its objects, frozen, would never be freed)
        pause = PAUSE.hold()
        self._gone = False  # closed: the tabs not built yet never are (review h_rev20, M2)
        on_destroyed(self, lambda: (PAUSE.release(pause), PAUSE.thaw(), self._closed()))
        self.viewer = napari_viewer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs)
        self._index: dict[str, int] = {}
        self._pending: dict[str, tuple[str, str, str]] = {}  # tabs not built yet
        self._unplaced: dict[str, tuple[str, QWidget | None]] = {}  # built, not in a tab yet
        for title, module, cls, attr in TABS:
            if attr in OPTIONAL and not _installed(module):
                setattr(self, attr, None)
                continue
            area = scroll_area(QWidget())
            self._index[attr] = self.tabs.addTab(area, title)  # "&&" shows "&"
            self._pending[attr] = (title, module, cls)
        self.setMinimumWidth(MIN_WIDTH)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        from napari_nuclei_unet.widgets._layer_warm_up import TurnRunner, ensure_layer_warm_up
        from napari_nuclei_unet.widgets._warm_up import warming_up

        # the Data tab first (it starts the imports), in the turn after the panel is docked
        self.tabs_built = TurnRunner([partial(self._build_step, attr) for attr in self._pending],
                                     interval_ms=20,
                                     ready=lambda: not warming_up(napari_viewer)).start()
        # the plugin's layers, made ahead and drawn once while the window is idle, so
        # that the first image, prediction and overlay only replace data (issue 11)
        self.warm_up = ensure_layer_warm_up(napari_viewer, after=lambda: self.tabs_built.done,
                                            pause=pause)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """At least :data:`PREFERRED_WIDTH` wide: the dock takes it before any tab is built."""
        hint = super().sizeHint()
        return QSize(max(hint.width(), PREFERRED_WIDTH), hint.height())

    def __getattr__(self, name: str) -> Any:
        pending = self.__dict__.get("_pending")
        if pending and name in pending:  # used before its turn: build it now
            self._build(name)
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build(self, attr: str) -> None:
        """Build the widget of tab ``attr`` and place it in its scroll area (once)."""
        self._make_widget(attr)
        self._place(attr)

    def _build_step(self, attr: str) -> list:
        """A :class:`TurnRunner` step: make the widget now, place it in the next turn.

        Placing a widget in its scroll area polishes it with napari's style sheet
        (50-130 ms for the Train tab); making it takes as long again.
        """
        self._make_widget(attr)
        return [partial(self._place, attr)]

    def _closed(self) -> None:
        """The panel was closed: build no more tabs (they lived on hidden, connected)."""
        self._gone = True
        self._pending.clear()
        self.tabs_built.stop()
        for _title, widget in self._unplaced.values():  # made, not in its tab yet
            if widget is not None:
                widget.deleteLater()
        self._unplaced.clear()

    def _make_widget(self, attr: str) -> None:
        if attr not in self._pending or self._gone:
            return
        title, module, cls = self._pending.pop(attr)
        widget = self._make(module, cls, attr)
        self.__dict__[attr] = widget
        self._unplaced[attr] = (title, widget)

    def _place(self, attr: str) -> None:
        if attr not in self._unplaced:
            return
        title, widget = self._unplaced.pop(attr)
        index = self._index[attr]
        if widget is None:  # an optional tab whose module failed to import
            self.tabs.removeTab(index)
            del self._index[attr]
            self._index = {a: i - (i > index) for a, i in self._index.items()}
            return
        area = self.tabs.widget(index)
        area.setWidget(widget)
        self.tabs.setTabToolTip(index, widget.__doc__.splitlines()[0]
                                if widget.__doc__ else title)

    def _make(self, module: str, cls: str, attr: str) -> QWidget | None:
        try:
            mod = importlib.import_module(f"napari_nuclei_unet.widgets.{module}")
        except ImportError:
            if attr in OPTIONAL:
                return None
            raise
        return getattr(mod, cls)(self.viewer)

    def build_all(self) -> None:
        """Build every tab not built yet (they are otherwise built in idle turns)."""
        for attr in [*self._pending, *self._unplaced]:
            self._build(attr)

    def _on_tab_changed(self, index: int) -> None:
        for attr, i in self._index.items():
            if i == index:
                self._build(attr)

    def show_step(self, name: str) -> None:
        """Bring tab ``name`` (``"data"``, ``"model"``, ``"compare"``, ...) to the front."""
        if name in self._index:
            self._build(name)
            self.tabs.setCurrentIndex(self._index[name])

    def step_names(self) -> list[str]:
        """Names of the steps present, in tab order."""
        return sorted(self._index, key=self._index.get)

    def widget_of(self, name: str) -> Any:
        """The step widget called ``name``, or None."""
        return getattr(self, name, None)


def _installed(module: str) -> bool:
    """True when ``widgets.<module>`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(f"napari_nuclei_unet.widgets.{module}") is not None
    except (ImportError, ValueError):
        return False
