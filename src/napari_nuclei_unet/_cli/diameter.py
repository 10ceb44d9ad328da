"""``--diameter`` of ``predict``, ``evaluate`` and ``finetune``: ``auto``, ``native`` or pixels.

``auto`` (or ``0``, the default) estimates the nucleus diameter of every image;
a number of pixels resizes each image so that its nuclei have the size the model was
trained at; ``native`` takes the images as they are (no resizing): for
``segment_image`` that is the model's own training diameter
(``core.segment.model_diameter``). Imports nothing heavy: ``cli`` uses
:func:`parse_diameter` to build its parser.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

#: ``--diameter native``: the images' own pixels, no resizing.
NATIVE = "native"
#: The words ``--diameter`` accepts besides a number, as ``--help`` shows them.
METAVAR = "auto|native|PX"
#: The resize factors (the model's nucleus diameter over ``--diameter``) a given diameter
#: may ask for: beyond them the images are blown up or shrunk so much that no nucleus is
#: found (review h_rev15, M12: 0.5 px ran 86 s for 0 nuclei). For the shipped model's
#: 18 px: 3 to 300 px.
RESIZE_FACTORS = (0.06, 6.0)


def parse_diameter(text: str) -> float | str:
    """``--diameter`` (an argparse type): ``auto``/``0`` -> 0.0, ``native``, or pixels."""
    word = text.strip().lower()
    if word in ("auto", "automatic"):
        return 0.0
    if word == NATIVE:
        return NATIVE
    try:
        return float(word)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' (estimated per image; 0 means the same), 'native' (no "
            f"resizing) or a nucleus diameter in pixels, got {text!r}") from None


def diameter_help(what: str, native: str) -> str:
    """The ``--help`` text of ``--diameter``: ``what`` it is, what ``native`` does."""
    return (f"{what}: 'auto' (the default; 0 means the same) estimates it per image; a "
            "number of pixels resizes the images so their nuclei have the size the model "
            f"was trained at (18 px for the shipped model); 'native' {native} (no resizing)")


def check_diameter(value: float | str | None) -> None:
    """Refuse a negative or non-finite ``--diameter`` with a plain message."""
    if value is None or value == NATIVE:
        return
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"--diameter must be 'auto' or 0 (estimated per image), 'native' (no resizing) "
            f"or a nucleus diameter in pixels, got {value:g}."
        )


def check_resize(value: float, trained: float) -> None:
    """Refuse a ``--diameter`` whose resize factor ``trained / value`` is absurd.

    ``trained`` is the nucleus diameter (pixels) the model was trained at; the factor
    must lie within :data:`RESIZE_FACTORS`.
    """
    if not value:  # automatic
        return
    low, high = RESIZE_FACTORS
    factor = trained / value
    if low <= factor <= high:
        return
    change = (f"enlarge the images {_times(factor)} times" if factor > 1
              else f"shrink the images {_times(1 / factor)} times")
    raise ValueError(
        f"--diameter {value:g} px would {change} (this model was trained on nuclei of "
        f"{trained:g} px), so no nucleus would be found. Give the nuclei's diameter in "
        f"pixels (not micrometres), between {trained / high:g} and {trained / low:g} px "
        "for this model, or 'auto' to estimate it.")


def _times(factor: float) -> str:
    """A resize factor in plain numbers: "36", "1,234,568", "6.5"."""
    return f"{factor:,.0f}" if factor >= 10 else f"{factor:.2g}"


def diameter_in_pixels(value: float | str, model: Any) -> float:
    """The ``SegmentOptions.diameter`` of a ``--diameter`` value for ``model``.

    ``native`` is the model's training diameter, which ``segment_image`` does not
    resize; a number (0 = automatic) is returned as it is, once checked against the
    model's training diameter (:func:`check_resize`; not checked without a model).
    """
    check_diameter(value)
    if value == NATIVE:
        from ..core.segment import model_diameter

        return model_diameter(model)
    if model is not None:
        from ..core.segment import model_diameter

        check_resize(float(value), model_diameter(model))
    return float(value)


def finetune_options(value: float | str, base: Any) -> Any:
    """The ``SegmentOptions`` of ``finetune --diameter`` for its base model.

    ``base`` is a checkpoint path, ``"default"`` or a ``ModelVersion``; it is loaded
    only for ``native`` (its training diameter).
    """
    from ..core.segment import SegmentOptions

    model = None
    if value == NATIVE:
        from ..core.checkpoint import load_checkpoint

        model = load_checkpoint(getattr(base, "model", base)).model
    return SegmentOptions(diameter=diameter_in_pixels(value, model))
