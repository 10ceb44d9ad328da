"""Live training curves for the Train dock (matplotlib, styled like napari's theme).

:class:`TrainingCurves` draws the training and validation loss (top) and the
validation IoU (bottom) per epoch. It only uses matplotlib's object API
(``Figure`` + the Qt canvas), never ``pyplot``, so nothing global is created.
Points are kept in plain lists that tests and other code read with
:meth:`TrainingCurves.points`.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

#: Curve name -> (legend label, axis index 0 = loss / 1 = IoU, colour).
#: The colours read well on napari's dark and light themes.
SERIES: dict[str, tuple[str, int, str]] = {
    "train_loss": ("training loss", 0, "#3d9df2"),
    "val_loss": ("validation loss", 0, "#f5a142"),
    "val_iou": ("validation IoU", 1, "#5cc96b"),
}


def theme_colors(theme_name: str | None) -> dict[str, str]:
    """Background, text and grid colours of a napari theme (hex strings).

    Parameters
    ----------
    theme_name : str or None
        A napari theme id such as ``"dark"`` or ``"light"`` (``"system"`` is
        resolved by napari). Unknown names fall back to dark colours.

    Returns
    -------
    dict
        Keys ``"background"``, ``"text"``, ``"grid"``, ``"highlight"``.
    """
    fallback = {"background": "#262930", "text": "#f0f1f2", "grid": "#414851",
                "highlight": "#6a7380"}
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name or "dark")
        return {
            "background": theme.background.as_hex(),
            "text": theme.text.as_hex(),
            "grid": theme.primary.as_hex(),
            "highlight": theme.highlight.as_hex(),
        }
    except Exception:  # an unknown or broken theme must not break the dock
        return fallback


class TrainingCurves(QWidget):
    """Loss and validation-IoU curves, one point per epoch.

    Parameters
    ----------
    theme_name : str, optional
        napari theme id used for the colours (see :meth:`set_theme`).
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, theme_name: str | None = "dark", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self._points: dict[str, list[tuple[int, float]]] = {name: [] for name in SERIES}
        self.figure = Figure(figsize=(3.2, 3.0), dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(240)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.loss_axis, self.iou_axis = self.figure.subplots(2, 1, sharex=True)
        self._lines = {}
        for name, (label, axis_index, color) in SERIES.items():
            axis = (self.loss_axis, self.iou_axis)[axis_index]
            (line,) = axis.plot([], [], marker="o", markersize=3, linewidth=1.5, color=color,
                                label=label)
            self._lines[name] = line
        (self._best_marker,) = self.iou_axis.plot([], [], linestyle="none", marker="*",
                                                  markersize=11, color=SERIES["val_iou"][2],
                                                  label="best")
        self.loss_axis.set_ylabel("loss")
        self.iou_axis.set_ylabel("IoU")
        self.iou_axis.set_xlabel("epoch")
        self.iou_axis.set_ylim(0.0, 1.0)
        self._colors = theme_colors(theme_name)
        self._style()
        self._rescale()

    # ------------------------------------------------------------ public API
    def points(self, name: str) -> list[tuple[int, float]]:
        """Return the ``(epoch, value)`` points of a curve.

        Parameters
        ----------
        name : {"train_loss", "val_loss", "val_iou"}
            The curve.

        Returns
        -------
        list of (int, float)
        """
        return list(self._points[name])

    def add_point(self, name: str, epoch: int, value: float | None, *, draw: bool = True) -> None:
        """Add one point (None values, e.g. an epoch without validation, are skipped)."""
        if value is None:
            return
        self._points[name].append((int(epoch), float(value)))
        if draw:
            self.redraw()

    def add_epoch(self, end: Any) -> None:
        """Add the values of an ``EpochEnd`` update and redraw once."""
        self.add_point("train_loss", end.epoch, end.train_loss, draw=False)
        self.add_point("val_loss", end.epoch, end.val_loss, draw=False)
        self.add_point("val_iou", end.epoch, end.val_iou, draw=False)
        self.redraw()

    def set_history(self, history: list[Any]) -> None:
        """Replace all points by a run's history (``EpochEnd`` objects or their dicts)."""
        self.clear(draw=False)
        for item in history:
            get = item.get if isinstance(item, dict) else lambda k, i=item: getattr(i, k, None)
            for name in SERIES:
                self.add_point(name, get("epoch"), get(name), draw=False)
        self.redraw()

    def clear(self, *, draw: bool = True) -> None:
        """Remove all points."""
        for values in self._points.values():
            values.clear()
        if draw:
            self.redraw()

    def set_theme(self, theme_name: str | None) -> None:
        """Restyle for a napari theme (connect to ``viewer.events.theme``)."""
        self._colors = theme_colors(theme_name)
        self._style()
        self.canvas.draw_idle()

    def redraw(self) -> None:
        """Update the lines from the points and schedule a repaint."""
        for name, line in self._lines.items():
            xs = [e for e, _ in self._points[name]]
            ys = [v for _, v in self._points[name]]
            line.set_data(xs, ys)
        iou = self._points["val_iou"]
        if iou:
            best_epoch, best = max(iou, key=lambda p: p[1])
            self._best_marker.set_data([best_epoch], [best])
        else:
            self._best_marker.set_data([], [])
        self._rescale()
        self.canvas.draw_idle()

    # --------------------------------------------------------------- private
    def _rescale(self) -> None:
        epochs = [e for values in self._points.values() for e, _ in values]
        last = max(epochs, default=1)
        self.loss_axis.set_xlim(0.5, max(last, 2) + 0.5)
        losses = [v for n in ("train_loss", "val_loss") for _, v in self._points[n]]
        if losses:
            low, high = min(losses), max(losses)
            pad = 0.08 * (high - low) or 0.05 * max(abs(high), 1e-3)
            self.loss_axis.set_ylim(max(0.0, low - pad), high + pad)
        else:
            self.loss_axis.set_ylim(0.0, 1.0)
        self.loss_axis.xaxis.get_major_locator().set_params(integer=True)

    def _style(self) -> None:
        colors = self._colors
        self.figure.set_facecolor(colors["background"])
        for axis in (self.loss_axis, self.iou_axis):
            axis.set_facecolor(colors["background"])
            axis.tick_params(colors=colors["text"], labelsize=8)
            axis.xaxis.label.set_color(colors["text"])
            axis.yaxis.label.set_color(colors["text"])
            axis.yaxis.label.set_fontsize(9)
            axis.xaxis.label.set_fontsize(9)
            for spine in axis.spines.values():
                spine.set_color(colors["highlight"])
            axis.grid(True, color=colors["grid"], linewidth=0.6)
            legend = axis.legend(loc="best", fontsize=7, frameon=True)
            legend.get_frame().set_facecolor(colors["background"])
            legend.get_frame().set_edgecolor(colors["grid"])
            for text in legend.get_texts():
                text.set_color(colors["text"])
