"""The Segment dock's status words: a result's line and the notes said with it (no dock).

What a segmentation did (planes, nuclei, the nucleus size, the model), which planes a
Cancel left empty, and the notes on an image whose axes, colours or labels-like content
were guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_nuclei_unet.widgets._segment_jobs import DOCK_WORDS


def done_words(result: Any, model: str, pixels_per_um: Any = None,
               threshold: float = 0.5) -> str:
    """The status line after a segmentation: planes, nuclei, the nucleus size, time, model.

    ``pixels_per_um``: the image's pixel size, when its file records one: the nucleus
    size is said in micrometres too. ``threshold``: the Threshold it was segmented at.
    """
    import numpy as np

    from napari_nuclei_unet.core.physical import um_words
    from napari_nuclei_unet.widgets._layers import nuclei

    table = result.table
    n = len(table.get("label", ()))
    segmented = result.planes if result.segmented is None else result.segmented
    kept = len(result.planes) - len(segmented)
    if kept and "plane" in table:
        n = int(np.isin(np.asarray(table["plane"]), segmented).sum())
    what = "cancelled after" if result.cancelled else "done:"
    words = f"Segmentation {what} {len(segmented)} plane(s), {nuclei(n)}"
    if kept:
        words += (f"; the {kept} plane(s) segmented before keep their labels "
                  f"({nuclei(len(table.get('label', ())))} in all)")
    if result.diameters and (n or result.diameter_set):  # none found: nothing measured
        low, high = min(result.diameters), max(result.diameters)
        size = f"{low:.0f} px" if round(low) == round(high) else f"{low:.0f}-{high:.0f} px"
        size += um_words((low, high), pixels_per_um)
        words += f", nuclei {size} across ({'set' if result.diameter_set else 'measured'})"
    words += focus_words(result.focus, len(segmented), threshold)
    # which model is in use is the Model line's to say: it changes (GUI check h_gui33, M3)
    return words + f", {result.seconds:.1f} s, with {without_in_use(model)}."


#: The Segment dock's "tighter if out of focus" box, beside its Threshold.
FOCUS_TOOLTIP = ("The network draws blurred nuclei too large. When an image looks out of "
                 "focus (dark background, blurred edges), its nuclei are outlined tighter: "
                 "the network's cut is raised from 0.5 up to 0.9, and the result says so. "
                 "Untick to outline every image at the Threshold as set. Only for "
                 "single-output models, like the shipped one.")


def focus_words(focus: Any, n_planes: int, threshold: float = 0.5) -> str:
    """", out of focus: outlines drawn tighter" when some planes looked blurred ("" if none).

    The network draws a blurred nucleus too large at 0.5; such a plane's map is
    recentred so that 0.5 on it is a higher threshold ``t`` on the network's own
    (``core.plane_passes.FOCUS_SOFT``), and the Threshold ``threshold`` set is the
    network's ``sigmoid(logit threshold + logit t)``: that is the cut said (0.68 for 0.5
    was said at 0.8 too, which read as outlines drawn wider: GUI check h_gui56, 1).
    """
    import math

    blurred = [value for value in focus if value > 0.5]
    if not blurred:
        return ""
    which = "" if n_planes <= 1 else (
        "every plane " if len(blurred) == n_planes else f"{len(blurred)} plane(s) ")

    def logit(p: float) -> float:
        return math.log(p / (1.0 - p))

    cuts = [1.0 / (1.0 + math.exp(-(logit(threshold) + logit(t)))) for t in blurred]
    low, high = min(cuts), max(cuts)
    at = f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"
    return (f", {which}out of focus: outlines drawn tighter (at the network's {at}, "
            f"not {threshold:g})")


def left_out_words(result: Any, stack: Any) -> str:
    """The planes of a stack a cancelled job left out, by name ("" when none).

    "cancelled after 2 plane(s)" did not say which, where plane2 is the third: a plane
    left empty read as kept (GUI check h_gui48, M3).
    """
    if not result.cancelled or stack is None or stack.n_planes < 2 or result.axes == "YX":
        return ""
    left = [flat for flat in range(stack.n_planes) if flat not in set(result.planes)]
    if not left:
        return ""
    names = ", ".join(stack.plane_name(flat) for flat in left[:4]) + \
        (f" and {len(left) - 4} more" if len(left) > 4 else "")
    return f" Not segmented, so empty in this result: {names}."


def channel_hint(result: Any, stack: Any, channel: int | None) -> str:
    """When no nucleus was found in the chosen channel of an image with channels: ask.

    Channel 0 of a two-channel stack (the other stain) gave "0 nuclei" and nothing more
    (GUI check h_gui45, L6).
    """
    if result is None or stack is None or channel is None or result.cancelled \
            or "C" not in stack.axes or len(result.table.get("label", ())):
        return ""
    n = int(stack.data.shape[stack.axes.index("C")])
    if n < 2:
        return ""
    return (f" No nucleus was found in channel {channel}: is it the nuclei's channel? This "
            f"image has {n} channels (0 to {n - 1}): set the Nuclear channel field and "
            "press Segment again.")


def without_in_use(words: str) -> str:
    """:func:`model_words` without "(the model in use)": the model, for a result."""
    return words.removesuffix(" (the model in use)").removesuffix(", the model in use")


def rgb_note(name: str, stack: Any) -> str:
    """A note for a layer shown as RGB although it is not 8-bit (likely channels instead).

    ``""`` for other layers (:meth:`~napari_nuclei_unet.core.stacks.ImageStack.doubtful_rgb_note`,
    naming this dock's fields).
    """
    note = stack.doubtful_rgb_note(name, DOCK_WORDS)
    return f"\nNote: {note}" if note else ""


def labels_note(name: str, stack: Any, flat: int, channel: Any) -> str:
    """A note for an image that looks like a label image (``core.planes.looks_like_labels``).

    A label image opened with File > Open becomes an Image layer, and the dock segmented
    it without a word. ``""`` for other images.
    """
    import numpy as np

    from napari_nuclei_unet.core.planes import looks_like_labels

    if not looks_like_labels(np.asarray(stack.plane(flat, channel))):
        return ""
    return (f"\nNote: {name} looks like a label image (whole numbers, the same within each "
            "object), not a microscope image. If it holds nuclei you drew, right-click it in "
            "the layer list, Convert to Labels, and choose the image to segment.")


def source_gone_note(path: str | None) -> str:
    """A warning when ``path`` (:func:`._segment_jobs.read_from`, when the job started) is gone.

    A zarr folder deleted during the segmentation read as empty from then on, and the
    result said "done" (GUI check h_gui19, M4). (A zarr's chunks missing from the start
    cannot be told from empty ones, which zarr does not store.)
    """
    if not path or Path(path).exists():
        return ""
    return (f" Warning: {path} is gone (deleted or moved while it was being segmented?): "
            "the parts read after that came back empty. Segment it again from its files.")


def axes_note(name: str, stack: Any) -> str:
    """A note for guessed axes whose short plane axis is more likely channels.

    A plain TIFF of 2-4 channels (no axes in its metadata) opens as a stack: each
    channel would be segmented as a plane, cytoplasm included. ``""`` otherwise.
    """
    if "C" in stack.axes:
        return ""  # the channels are known already
    axes = stack.stored_axes or stack.axes
    if stack.few_planes is None:
        return ""
    letter, n = stack.few_planes
    channels = axes.replace(letter, "C", 1)
    return (f"\nNote: the axes of {name} were guessed ({axes}): its {n} {letter} entries are "
            f"segmented as {n} planes. If they are channels, set Axes to {channels} and "
            f"Nuclear channel to the nuclei's channel (0-{n - 1}).")
