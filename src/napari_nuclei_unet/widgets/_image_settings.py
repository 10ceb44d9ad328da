"""The Axes and Nuclear channel the user set for each image: kept for it and for its file.

The Segment dock keeps what was set for an image while the image is open (GUI check
h_gui32, N1). A ZCYX file closed and opened again is a new layer: it came back with the
field at -1 ("none chosen"), was asked for its channel again, and showed channel 0 under
the labels lined up over its nuclear channel (GUI check h_gui44, L4). So the settings are
kept for the file too (its path, the layer's name and shape), for as long as the dock is.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from napari_nuclei_unet.widgets._layers import unwrapped

DEFAULTS = ("", -1)


class ImageSettings:
    """``(axes, channel)`` set for each image layer, and for the file it was read from."""

    def __init__(self) -> None:
        self._of: Any = weakref.WeakKeyDictionary()  # layer -> (axes, channel)
        self._of_file: dict[tuple, tuple[str, int]] = {}

    def remember(self, image: Any, axes: str, channel: int) -> None:
        """Keep ``axes`` and ``channel`` for ``image`` (and its file, when it has one)."""
        self._of[unwrapped(image)] = (axes, int(channel))
        if (key := _file_key(image)) is not None:
            self._of_file[key] = (axes, int(channel))

    def recall(self, image: Any) -> tuple[tuple[str, int], bool]:
        """What was set for ``image``, and whether it came from its file (a reopened one).

        The defaults (no axes, no channel) for an image nothing was set for.
        """
        if image is None:
            return DEFAULTS, False
        found = self._of.get(unwrapped(image))
        if found is not None:
            return found, False
        key = _file_key(image)
        if key is None or key not in self._of_file:
            return DEFAULTS, False
        self._of[unwrapped(image)] = self._of_file[key]
        return self._of_file[key], True


class ImageSettingsFields:
    """The Segment dock's Axes and Nuclear channel fields, kept for each image chosen.

    A mixin of :class:`~napari_nuclei_unet.widgets.segment_widget.SegmentWidget`: it
    uses the dock's ``image``, ``axes``, ``channel``, ``status``, ``viewer``,
    ``ask_channel``, ``_settings`` (an :class:`ImageSettings`) and ``_restoring``.
    """

    def _on_setting_changed(self, *_args: Any) -> None:
        """Axes or Nuclear channel set: kept for this image, and the dock's words follow.

        The channel set for a Fiji CYX file stayed for the next image, a grey one then
        refused, an RGB one segmented on one colour (GUI check h_gui32, N1); the words
        still asked for a channel once it was set (N2).
        """
        image = self.image.value
        if self._restoring or image is None:
            return
        self._settings.remember(image, self.axes.value, self.channel.value)
        if self.status.text().startswith((f"{image.name} has no result yet", "Not segmented:")) \
                and not self.ask_channel():  # a refusal of the field just set: not kept
            self.status.setText(f"{image.name} has no result yet: press Segment.")  # (h_gui40)

    def _restore_settings(self) -> None:
        """The Axes and Nuclear channel set for the image chosen (else the defaults).

        A file opened again shows its nuclear channel, as its labels do (h_gui44, L4).
        """
        from napari_nuclei_unet.widgets._own_layers import layer_stack, show_channel

        image = self.image.value
        (axes, channel), reopened = self._settings.recall(image)
        self._restoring = True
        try:
            self.axes.value, self.channel.value = axes, channel
        finally:
            self._restoring = False
        if reopened and channel >= 0:
            try:
                stack = layer_stack(image, axes)
            except ValueError:
                return
            show_channel(self.viewer, image, stack.stored_axes or stack.axes, channel)


def _file_key(image: Any) -> tuple | None:
    """The file a layer was read from, with its name and shape (None: made in napari)."""
    path = getattr(getattr(image, "source", None), "path", None)
    if not path:
        return None
    try:
        where = str(Path(str(path)).resolve())
    except (OSError, RuntimeError, ValueError):
        where = str(path)
    return where, str(image.name), tuple(getattr(image.data, "shape", ()))
