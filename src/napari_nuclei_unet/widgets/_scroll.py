"""Docks whose content scrolls inside them, so that docks stacked in a column fit a laptop.

napari stacks the separate docks in one column; each asks for its content's minimum
height, and the window grows to the sum. A dock built on :func:`scrolled_layout` asks
for :data:`DOCK_MIN_HEIGHT` only and scrolls the rest: the seven separate docks stacked
(or four, and the workflow panel under them) fit a 1280 x 800 screen.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

#: The least height a separate dock asks for; what does not fit scrolls inside the dock.
#: Four docks and the workflow panel, with their title bars and napari's own, fit 800
#: px (at 150, the panel opened under four docks grew the window to 877 px: GUI check
#: h_gui9). A dock opened under others shares the column with them when it shows
#: (``_dock_life.share_the_column_when_shown``), so none is left at this least height.
#: At 110 the seven separate docks grew the window to 1009 px (GUI check h_gui38, L5);
#: at 70 they fit 800, each still showing a line or two of its content.
DOCK_MIN_HEIGHT = 70


class _WideEnoughScrollArea(QScrollArea):
    """A scroll area that scrolls up and down only: it asks for its content's least width.

    Scrolling sideways cut a dock's labels and buttons at both edges: napari gave the
    Model and Segment docks, opened alone, a 280-px column, and their content needed
    303 and 346 px (GUI check h_gui12, L-A). Asking for that width widens the column
    instead; the height still scrolls (:data:`DOCK_MIN_HEIGHT`).
    """

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().minimumSizeHint()
        body = self.widget()
        if body is None:
            return hint
        # the scroll bar, and the few pixels the style keeps between it and the content
        width = (body.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
                 + 2 * self.frameWidth() + 4)
        return QSize(max(hint.width(), width), hint.height())


def scroll_area(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: its least height no longer grows the window."""
    area = _WideEnoughScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    # Tab goes from control to control, the area scrolling to each; the area itself
    # took a Tab press that showed nothing (GUI check h_gui37, L6)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return area


def scrolled_layout(dock: QWidget, min_height: int = DOCK_MIN_HEIGHT) -> QVBoxLayout:
    """The layout to build ``dock``'s content in: inside a scroll area filling ``dock``.

    Parameters
    ----------
    dock : QWidget
        The dock widget (it gets a margin-less layout holding the scroll area).
    min_height : int
        The least height of the scroll area.

    Returns
    -------
    QVBoxLayout
        The layout of the scrolled body; add the dock's widgets to it.
    """
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    body = QWidget()
    layout = QVBoxLayout(body)
    area = scroll_area(body)
    area.setMinimumHeight(min_height)
    outer.addWidget(area)
    return layout


def keep_narrow(combo: QWidget, characters: int = 16) -> None:
    """Keep a combo box about ``characters`` wide whatever its items (the list shows them whole).

    A QComboBox asks for the width of its longest item: a layer named by a 64-character
    DSB2018 id made the Segment dock wider than its dock, its buttons off the edge.
    """
    from qtpy.QtWidgets import QComboBox

    if not isinstance(combo, QComboBox):
        return
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)


def bring_into_view(widget: QWidget, margin: int = 40) -> None:
    """Scroll ``widget``'s dock so that ``widget`` shows (the innermost scroll area only).

    A round's outcome lay below the visible part of the Retrain dock at 1280 x 800, seen
    only by scrolling, while the toast saying it was cut (GUI check h_gui33, L2).
    """
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None and widget.isVisibleTo(parent.widget()):
        parent.ensureWidgetVisible(widget, 0, margin)
