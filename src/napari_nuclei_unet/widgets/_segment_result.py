"""The Segment dock's result put in the viewer: a Labels layer over its image (no dock).

:func:`place_result` adds (or refills) the result layer and records what it was
segmented from; :func:`show_placed` brings it into view. They touch the viewer only, so
a result that arrives after the dock was closed is kept too: closing the dock mid-stack
threw away the planes already done, which Cancel keeps (README check h_readme2, M1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_nuclei_unet.widgets._layers import EDITED_KEY, watch_edits
from napari_nuclei_unet.widgets._own_layers import (
    COVERED_KEY,
    PLANE_AT,
    bring_into_view,
    follow_the_sliders_always,
    go_to_plane,
    labels_to_show,
    placement,
    plane_at,
    results_follow_the_sliders,
    show_channel,
    shown_stem,
)
from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY, layer_features
from napari_nuclei_unet.widgets._unsaved_labels import forget_history, watch_unsaved


@dataclass
class Placed:
    """Where :func:`place_result` put a result, for :func:`show_placed`."""

    layer: Any
    where: Any  # the plane to show (a stack's 2-D result of one plane), else None
    reuse: bool  # the image's earlier result layer was refilled
    kept: bool  # ...or kept, edited, beside the new one
    replaced: Any  # the working copy the refilled layer held
    under: str = ""  # words for the status: the kept layer shown on planes it left empty


def place_result(viewer: Any, source: dict, result: Any, previous: Any) -> Placed:
    """Add ``result`` (a ``LayerResult``) over ``source["layer"]``; refill ``previous``.

    ``previous``: the image's result layer, refilled unless it was edited (then kept
    beside the new one, and said).
    """
    from napari_nuclei_unet.widgets._compare_guards import step_aside_for
    from napari_nuclei_unet.widgets._working_copies import zarr_of

    layer, stack = source["layer"], source["stack"]
    step_aside_for(viewer, layer)  # a dataset's side by side: the user's image
    one_of_many = result.axes == "YX" and stack.n_planes > 1  # a large plane's 2-D layer
    where = plane_at(stack, source["axes"], result.planes[0]) if one_of_many else None
    plane = stack.plane_name(result.planes[0]) if one_of_many else None
    name = f"{shown_stem(layer.name)} labels" + (  # as ids and sliders count (h_gui19, M3)
        f" ({plane})" if plane else "")
    features = layer_features(result.table)
    shown, gaps = labels_to_show(layer, source["axes"], stack, result.labels)
    kwargs = placement(layer, shown.shape, gaps)
    old = previous
    # unedited, it is replaced also when the new result has another shape (other Axes:
    # the wrong first result stayed beside it, GUI check h_gui40, L7)
    reuse = old is not None and old in viewer.layers
    kept = reuse and bool(old.metadata.get(EDITED_KEY))
    replaced = None
    # each change of a shown layer draws it again (0.5 s at 6000²): changed hidden,
    # bring_into_view shows it, drawn once
    if reuse and not kept:
        new, replaced = old, zarr_of(old)
        old.visible = False
        old.data, old.features = shown, features
        forget_history(old)  # Ctrl+Z does not bring the earlier result back
        if old.selected_label > np.iinfo(shown.dtype).max:  # uint32 to uint16: napari
            old.selected_label = 1  # refused every stroke (review h_rev12, L5)
        old.scale, old.translate = kwargs["scale"], kwargs["translate"]  # image's now
        if (old.metadata.get(RESULT_KEY) or {}).get("plane_name") != plane:
            old.name = name  # "(plane2)" said of a whole image's (h_rev25, B8)
    else:
        new = viewer.add_labels(shown, name=name, features=features, visible=False,
                                **kwargs)
    watch_edits(new)
    watch_unsaved(viewer, new)  # kept when removed unsaved
    if not isinstance(shown, np.ndarray):  # napari's new label (M) works on numpy only
        found = np.asarray(result.table.get("label", ()))
        offer_new_labels(new, int(found.max()) if found.size else 0)
    else:  # a refilled layer: napari's own rule, from the data
        new.metadata.pop(LARGEST_KEY, None)
    new.metadata.pop(COVERED_KEY, None)
    hidden = hide_covered(viewer, layer.name, new, result.planes,
                          ([old] if kept else []) + ([] if one_of_many else list(viewer.layers)))
    under = ""
    if kept or hidden:
        from napari_nuclei_unet.widgets._workers import notify

        edited = [lay.name for lay in hidden if lay.metadata.get(EDITED_KEY)]
        if kept and old not in hidden:  # its other planes' corrections show beside it
            left = sorted(set((old.metadata.get(RESULT_KEY) or {}).get("planes") or [0])
                          - set(result.planes))
            names = ", ".join(stack.plane_name(flat) for flat in left[:4]) + \
                (" …" if len(left) > 4 else "")  # seen there, in what the new one left empty
            under = f" “{old.name}” stays shown under it: on {names}, which the new " \
                "result does not hold, its labels are what you see." \
                if left and stack.n_planes > 1 else ""  # said in the status too (the
            notify(f"Your corrections in “{old.name}” are kept: the new result is the "
                   f"layer “{new.name}”.{under}")  # toast is cut short: h_gui50, L)
        elif edited:
            eye = "its eye to see it" if len(edited) == 1 else "their eyes to see them"
            notify(f"Your corrections in {', '.join(f'“{n}”' for n in edited)} are kept "
                   f"(hidden: tick {eye}): the new result is the layer “{new.name}”.")
    new.metadata[RESULT_KEY] = {
        "source": layer.name, "axes": result.axes, "planes": list(result.planes),
        "zarr": str(result.zarr_path) if result.zarr_path else None, "gaps": list(gaps),
        "image_axes": source["axes"], "channel": source["channel"],
        PLANE_AT: where, "pixels_per_um": stack.pixels_per_um,  # saved with it (h_gui40)
        "z_spacing_um": stack.z_spacing_um,  # and this (GUI check h_gui41, L4)
        "plane_name": plane}
    return Placed(new, where, reuse, kept, replaced, under)


def hide_covered(viewer: Any, image: str, new: Any, planes: list[int],
                 candidates: list) -> list:
    """Hide the ``candidates`` that are results of ``image`` on ``planes`` only; return them.

    A plane's 2-D result (or a result kept because it was painted) under a result that
    covers its planes: hidden and marked :data:`COVERED_KEY`, so that the sliders leave
    it hidden; ticking its eye shows it.
    """
    from napari_nuclei_unet.widgets._layers import unwrapped

    hidden = []
    for layer in candidates:
        info = layer.metadata.get(RESULT_KEY) or {}
        # napari gives a plugin proxies of its layers: the refilled layer marked itself
        # covered, and was never hidden again (GUI check h_gui50, H)
        if unwrapped(layer) is unwrapped(new) or layer not in viewer.layers \
                or info.get("source") != image \
                or not set(info.get("planes") or [0]) <= set(planes) \
                or layer.metadata.get(COVERED_KEY):  # already: an eye ticked since stays
            continue
        layer.metadata[COVERED_KEY] = True
        if layer.visible:
            layer.visible = False
        hidden.append(layer)
    return hidden


def show_placed(viewer: Any, source: dict, placed: Placed) -> None:
    """Show a placed result over its image, on its plane; release what it replaced."""
    from napari_nuclei_unet.widgets._working_copies import release, release_when_removed

    layer = source["layer"]
    bring_into_view(viewer, layer, placed.layer)  # says what it hid
    show_channel(viewer, layer, source["axes"], source["channel"])
    if placed.where is not None:  # its plane shown (the user may have moved on: h_rev11 M2)
        go_to_plane(viewer, layer, placed.where)
        follow_the_sliders_always(viewer)
    results_follow_the_sliders(viewer)  # other planes' results: hidden
    release_when_removed(viewer)  # a large result's working copy, once gone
    if placed.reuse and not placed.kept:  # the labels it held (kept while a layer shows
        release(viewer, placed.replaced)  # them)


def keep_aside(viewer: Any, source: dict, result: Any, previous: Any) -> Any:
    """Place ``result`` hidden, as its image's result, without bringing it into view.

    Another image was chosen in the dock while it was segmented: the dock and the canvas
    stay with that one; choosing the image again shows it. Returns the layer.
    """
    from napari_nuclei_unet.widgets._working_copies import release, release_when_removed

    active = viewer.layers.selection.active  # napari selects a layer it adds: the brush
    placed = place_result(viewer, source, result, previous)  # would paint on a hidden one
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    results_follow_the_sliders(viewer)
    release_when_removed(viewer)
    if placed.reuse and not placed.kept:
        release(viewer, placed.replaced)
    return placed.layer


#: A zarr-backed result's largest label: the segmentation's, then any painted since.
LARGEST_KEY = "nuclei_unet_largest_label"


def offer_new_labels(layer: Any, largest: int) -> None:
    """A zarr-backed result: the brush starts on a new label, and napari's M gives one.

    napari's *new label* (M) works on numpy data only ("Calculating empty label on
    non-numpy array is not supported"), and the brush stayed on label 1: a nucleus
    painted in a large result took the number of one already there, and was measured and
    scored as one with it (GUI check h_gui48, M4). The largest label is known from the
    segmentation's table and followed as the user paints.
    """
    layer.metadata[LARGEST_KEY] = int(largest)
    if int(largest) + 1 <= np.iinfo(layer.data.dtype).max:
        layer.selected_label = int(largest) + 1
    layer.events.paint.connect(_painted_label)  # no-op when already connected
    layer.bind_key("m", _new_label, overwrite=True)


def _painted_label(event: Any) -> None:
    layer = event.source
    largest = layer.metadata.get(LARGEST_KEY)
    if largest is not None and layer.selected_label > largest:
        layer.metadata[LARGEST_KEY] = int(layer.selected_label)


def _new_label(layer: Any) -> None:
    """The *new label* of napari (M), from the largest label known, not the whole data."""
    from napari.utils.notifications import show_info

    largest = layer.metadata.get(LARGEST_KEY)
    if largest is None:  # data set since by hand: napari's own rule
        largest = int(np.max(layer.data)) if isinstance(layer.data, np.ndarray) else 0
    if layer.selected_label == largest + 1:
        show_info("The label selected is not used yet: paint with it first, then press M "
                  "for the next one.")
    elif largest + 1 <= np.iinfo(layer.data.dtype).max:
        layer.selected_label = largest + 1
    else:
        show_info(f"Label {largest + 1} does not fit this result's labels (at most "
                  f"{largest}): paint with a label that is free, or erase one to reuse it.")
