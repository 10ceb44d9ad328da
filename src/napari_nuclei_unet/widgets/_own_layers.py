"""Napari layers <-> the core's stacks for the "Segment image layer" dock (no Qt here).

An ``Image`` layer becomes a :class:`~napari_nuclei_unet.core.stacks.ImageStack` (axes
guessed from the layer or typed by the user), the plane under the sliders a plane
number; the dock's jobs are generators (:func:`segment_layer_job`) for ``thread_worker``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_nuclei_unet.widgets._layer_files import file_axes, file_sizes

#: Labels a user may paint on a result beyond those found before its type must grow
#: (uint16 to uint32: :func:`~napari_nuclei_unet.core.own_images.label_dtype`)
PAINT_ROOM = 5000


def layer_data(layer: Any) -> Any:
    """Full-resolution data of a layer (the first level of a multiscale layer)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    return data


def layer_shape(layer: Any) -> tuple[int, ...]:
    """The shape napari lays a layer out by (an RGB image's last axis is colour)."""
    shape = tuple(layer_data(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def layer_yx_shape(layer: Any) -> tuple[int, ...]:
    """The rows and columns napari shows of a layer (an RGB image's last axis is colour)."""
    return layer_shape(layer)[-2:]


def is_lazy(data: Any) -> bool:
    """Whether an array is dask- or zarr-backed (read on demand, maybe larger than memory)."""
    return not isinstance(data, np.ndarray)


def default_axes(layer: Any) -> str:
    """Axes of a layer's data when the user gave none: ``...YX`` or ``...YXC`` for RGB.

    A layer napari read whole from a TIFF whose metadata records its axes (an ImageJ
    or OME ``CYX`` or ``TZYX`` as Fiji writes it) takes the file's axes: its channels
    were segmented as planes, cytoplasm included (GUI check h_gui31, M1).
    """
    ndim = len(layer_data(layer).shape)
    if getattr(layer, "rgb", False):
        return "Q" * (ndim - 3) + "YXC"
    recorded = file_axes(layer)
    if recorded is not None:
        return recorded
    letters = "TZ" if ndim - 2 <= 2 else ""
    stack = letters[-(ndim - 2):] if 0 < ndim - 2 <= len(letters) else "Q" * (ndim - 2)
    return stack + "YX"


def channel_words(layer: Any, axes: str = "", channel: int | None = None) -> str:
    """What is said when an image with channels is chosen, and no channel is yet.

    Said as the image is chosen: it was asked only once Segment was pressed, after the
    image's channels had been segmented as planes (GUI check h_gui31, M1). ``""`` when
    nothing is to be asked.
    """
    if channel is not None or getattr(layer, "rgb", False):
        return ""
    given = (axes or "").strip().upper()
    chosen = layer_axes(layer, axes)
    shape = layer_data(layer).shape
    if "C" not in chosen or len(chosen) != len(shape):
        return ""
    n = int(shape[chosen.index("C")])
    source = "as you gave them" if given else "as its file records them"
    return (f" It has {n} channels (axes {chosen}, {source}): choose the nuclei's channel in "
            f"the Nuclear channel field (0 to {n - 1}) first.")


def layer_axes(layer: Any, axes: str = "") -> str:
    """The axes ``axes`` names (upper case), or :func:`default_axes` when it names none."""
    return (axes or "").strip().upper() or default_axes(layer)


def layer_stack(layer: Any, axes: str = "") -> Any:
    """The layer as an :class:`~napari_nuclei_unet.core.stacks.ImageStack`.

    Parameters
    ----------
    layer : napari.layers.Image
        Any image layer (grey, RGB, stacks, dask/zarr/multiscale).
    axes : str, optional
        Axes of the layer's data (e.g. ``"ZCYX"`` when one axis holds channels);
        default :func:`default_axes`.

    Raises
    ------
    ImageFileError
        When the axes do not fit, or do not end in ``YX`` (napari shows a layer's last
        two axes as the image's rows and columns; a channel axis may follow).
    """
    from napari_nuclei_unet.core.stacks import stack_from_array

    stack = stack_from_array(layer_data(layer), layer_axes(layer, axes),
                             safe_name(layer.name), rgb=bool(getattr(layer, "rgb", False)),
                             read_by=None if (axes or "").strip() else "")
    stack.pixels_per_um, spacing = file_sizes(layer)
    stack.z_spacing_um = spacing if "Z" in stack.axes else None
    return stack


def shown_stem(name: str) -> str:
    """A layer name without the ``.ome`` napari leaves of ``NAME.ome.zarr`` / ``.ome.tif``.

    The result layer of ``small.ome.zarr`` was named "small.ome labels" (GUI check
    h_gui37, L7 left-over).
    """
    return re.sub(r"\.ome$", "", str(name), flags=re.IGNORECASE) or str(name)


def safe_name(name: str, *, ome: bool = False) -> str:
    """A file- and id-safe version of a layer name.

    Without the ``.ome`` napari leaves of ``NAME.ome.zarr`` / ``.ome.tif``: the labels
    were saved as ``NAME.ome_labels.tif`` (GUI check h_gui36, L7). ``ome=True`` keeps
    it, as versions before 2026-12-06 did (the ids of their projects' planes).
    """
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("._") or "image"
    if not ome:
        cleaned = re.sub(r"\.ome$", "", cleaned, flags=re.IGNORECASE) or "image"
    return cleaned[:80]


def show_channel(viewer: Any, layer: Any, axes: str, channel: int | None) -> None:
    """Move the viewer's slider of ``layer``'s channel axis to ``channel``.

    After the nuclei of channel 1 were segmented the canvas stayed on channel 0, the
    result drawn over the other stain (GUI check h_gui15, L3). Nothing for RGB or
    when there is no channel axis.
    """
    axes = axes.strip().upper().replace("S", "C")
    if channel is None or getattr(layer, "rgb", False) or "C" not in axes \
            or len(axes) != layer.ndim:
        return
    axis = viewer.dims.ndim - layer.ndim + axes.index("C")
    index = axes.index("C")
    try:
        viewer.dims.set_point(axis, float(layer.translate[index])
                              + channel * float(layer.scale[index]))
    except (IndexError, ValueError):  # a layer laid out otherwise: leave the sliders
        pass


# -- the Segment dock's result layers, lined up with their image --------------------
def channel_gaps(image_axes: str, rgb: bool = False) -> tuple[int, ...]:
    """Where the labels of a stack get an axis of size 1 to line up with their image.

    napari lines layers up by their last axes. The labels have the image's axes less
    its channel axis, so a channel axis after a plane axis (``ZCYX``) put the labels'
    Z on the image's C: the labels of one plane followed the channel slider over every
    Z (GUI check h_gui15, H2). Returns the positions, in the labels as shown, of the
    channel axes after the labels' first axis; () when none is needed (``CZYX``, RGB).
    """
    axes = image_axes.strip().upper().replace("S", "C")
    if rgb:
        axes = axes[:-1]  # napari shows the colour axis as colour, not as an axis
    kept = [i for i, letter in enumerate(axes) if letter != "C"]
    if not kept:
        return ()
    return tuple(i - kept[0] for i, letter in enumerate(axes) if letter == "C" and i > kept[0])


def shown_labels(labels: Any, gaps: tuple[int, ...]) -> Any:
    """``labels`` with the axes of size 1 at ``gaps`` (a view: painting it paints them)."""
    if not gaps or not isinstance(labels, np.ndarray):
        return labels
    return np.expand_dims(labels, gaps)


def labels_to_show(image: Any, axes: str, stack: Any, labels: Any) -> tuple[Any, tuple]:
    """The labels of ``image`` as its result layer shows them, and their gaps."""
    gaps = channel_gaps(axes, bool(getattr(image, "rgb", False))) \
        if len(labels.shape) == len(stack.labels_shape) > 2 else ()
    shown = shown_labels(labels, gaps)
    return shown, (gaps if shown is not labels else ())


def result_labels(layer: Any) -> Any:
    """A result layer's labels with the image's axes less its channel (its ``gaps`` out)."""
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    gaps = tuple((layer.metadata.get(RESULT_KEY) or {}).get("gaps") or ())
    data = layer_data(layer)  # a user's multiscale labels: its full resolution (h_rev11 M7)
    if gaps and isinstance(data, np.ndarray) and data.ndim > max(gaps) \
            and all(data.shape[g] == 1 for g in gaps):  # data set since: as it is
        return np.squeeze(data, axis=gaps)
    return data


def placement(layer: Any, labels_shape: tuple, gaps: tuple[int, ...] = ()) -> dict:
    """Scale and translate of the image ``layer``, for the axes its labels keep.

    ``labels_shape``: the labels as shown (with their ``gaps``); an axis of size 1 at a
    gap spans the whole channel axis of the image, so it shows at every channel.
    """
    ndim = len(labels_shape)
    scale, translate = list(layer.scale), list(layer.translate)
    if len(scale) != ndim:
        scale, translate = scale[-ndim:], translate[-ndim:]
    image_shape = layer_shape(layer)[-ndim:] if len(scale) == ndim else ()
    for gap in gaps:
        if gap < len(image_shape):
            n = int(image_shape[gap])
            translate[gap] += (n - 1) / 2 * scale[gap]
            scale[gap] *= n
    return {"scale": scale, "translate": translate}


def current_plane(layer: Any, stack: Any, point: Any, axes: str = "") -> int:
    """Plane number of ``stack`` shown at the viewer's ``point`` (world coordinates).

    Parameters
    ----------
    layer : napari.layers.Image
        The layer the stack was made from.
    stack : ImageStack
        :func:`layer_stack` of it.
    point : sequence of float
        ``viewer.dims.point``.
    axes : str
        The axes used for :func:`layer_stack`.
    """
    if stack.n_planes == 1:
        return 0
    axes = layer_axes(layer, axes)
    try:
        coords = np.asarray(layer.world_to_data(point), float)
    except (AttributeError, ValueError, IndexError):
        coords = np.asarray(point, float)[-layer.ndim:]
    coords = coords[-layer.ndim:] if len(coords) >= layer.ndim else coords
    index = []
    for letter in stack.plane_axes:
        k = axes.replace("S", "C").index(letter)
        size = stack.data.shape[stack.axes.index(letter)]
        value = int(round(coords[k])) if k < len(coords) else 0
        index.append(min(max(value, 0), size - 1))
    return int(np.ravel_multi_index(index, stack.plane_shape))


@dataclass
class LayerResult:
    """What a segmentation job hands back to the dock (on the main thread).

    ``labels`` is None when the job was cancelled before any plane was finished;
    ``message`` then says so in plain words, for the dock's status line.
    """

    name: str
    labels: Any
    table: dict
    planes: list[int]
    axes: str
    zarr_path: Path | None = None
    cancelled: bool = False
    seconds: float = 0.0
    scale: tuple = field(default_factory=tuple)
    message: str = ""
    #: the planes this job segmented (None: ``planes``; with an earlier result of the
    #: stack, ``planes`` also has the planes it kept)
    segmented: list[int] | None = None
    #: the nucleus diameter used for each plane segmented (pixels), and whether the
    #: user set it (False: measured)
    diameters: list[float] = field(default_factory=list)
    diameter_set: bool = False
    #: for each plane segmented, the network's threshold its outlines were drawn at
    #: (above 0.5: the plane looked out of focus)
    focus: list[float] = field(default_factory=list)


def segment_layer_job(
    model: Any,
    stack: Any,
    options: Any,
    *,
    channel: int | None,
    planes: list[int] | None,
    big: bool,
    should_stop: Callable[[], bool] | None = None,
    earlier: Any = None,
) -> Generator[Any, None, LayerResult]:
    """Segment the chosen planes of a layer (worker thread); returns a :class:`LayerResult`.

    ``big`` sends one 2-D plane (``planes`` of one), or every plane of a stack
    (``planes`` None), through the block path into a temporary OME-Zarr
    (:mod:`._segment_big`).
    ``earlier``: a result of the same stack whose other planes are kept
    (``core.own_images.segment_stack``; for ``big``, the planes a Cancel left undone).
    A stop keeps the planes finished; a plane stopped half way, or a large image
    stopped before its last block, is not kept (the result's ``message`` says so).
    """
    import time

    from napari_nuclei_unet.core.own_images import segment_stack
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()
    start = time.perf_counter()
    if big:  # block by block: one plane, or every plane of a stack (planes None)
        from napari_nuclei_unet.widgets._segment_big import big_job

        return (yield from big_job(model, stack, options, channel, planes, should_stop,
                                   earlier))
    res = yield from segment_stack(model, stack, options, channel=channel, planes=planes,
                                   should_stop=should_stop, earlier=earlier, room=PAINT_ROOM)
    if res.cancelled and not res.segmented:
        return LayerResult(stack.name, None, {}, [], stack.plane_axes + "YX", None, True,
                           message=cancelled_before_words(stack, planes, earlier) + ".")
    return LayerResult(stack.name, res.labels, res.table, res.planes,
                       stack.plane_axes + "YX", None, res.cancelled,
                       time.perf_counter() - start, segmented=res.segmented,
                       diameters=list(res.diameters), diameter_set=options.diameter > 0,
                       focus=list(res.focus))


def cancelled_before_words(stack: Any, planes: list[int] | None, earlier: Any) -> str:
    """A stack's job stopped before its first plane was done: what was kept (no full stop)."""
    first = "the plane" if len(planes or range(stack.n_planes)) == 1 else "the first plane"
    kept = "no new labels were kept; those segmented before stay" \
        if earlier is not None else "no labels were kept"
    return f"Cancelled before {first} was finished: {kept}"


def same_shape_or_why(truth: Any, labels: Any) -> str:
    """Why a ground truth cannot score a segmentation ("" when it can).

    It can when it has the same shape, or is one plane of a stack's (that plane scored).
    """
    if tuple(truth.shape) in (tuple(labels.shape), tuple(labels.shape[-2:])):
        return ""
    return (f"The ground-truth labels have shape {tuple(truth.shape)} but the segmentation "
            f"has {tuple(labels.shape)}; choose the Labels layer drawn on this image.")


def plane_scores(truth: np.ndarray, labels: Any, planes: list[int], shape: tuple) -> list:
    """Per-plane :class:`~napari_nuclei_unet.core.metrics.ImageScores` of ``labels``.

    Parameters
    ----------
    truth : numpy.ndarray
        The user's labels, same shape as ``labels``, or of one plane (each of
        ``planes`` is scored against it).
    labels : array-like
        The prediction.
    planes : list of int
        Planes to score.
    shape : tuple
        Plane-axes shape of the stack (``()`` for a 2-D image).
    """
    from napari_nuclei_unet.core.metrics import image_scores

    why = same_shape_or_why(truth, labels)
    if why:
        raise ValueError(why)
    rows = []
    for flat in planes:
        index = tuple(np.unravel_index(flat, shape)) if shape else ()
        plane = truth if truth.ndim == 2 else truth[index]
        rows.append((flat, image_scores(np.asarray(plane), np.asarray(labels[index]))))
    return rows


#: ``RESULT_KEY``'s entry of a large plane's 2-D result: ``{axis position: index}`` of
#: its plane in its image's data.
PLANE_AT = "plane_at"
#: On a result hidden under a newer result of its image that covers its planes: the
#: sliders leave it hidden (its labels showed through the new one's background; a plane
#: a Cancel left empty read as kept: GUI check h_gui48, M3; review h_rev49, 2).
COVERED_KEY = "nuclei_unet_covered"


def plane_at(stack: Any, axes: str, flat: int) -> dict:
    """Where plane ``flat`` lies in its image's data (``axes``): ``{position: index}``."""
    positions = [i for i, letter in enumerate(axes) if letter not in "CSYX"]  # stack order
    return {str(pos): int(index)
            for pos, index in zip(positions, stack.plane_index(flat), strict=True)}


def results_follow_the_sliders(viewer: Any, *_args: Any) -> None:
    """A large plane's 2-D result shows on its own plane only, as the sliders move.

    napari shows a 2-D layer over every plane of a stack: plane 7's nuclei lay over
    plane 12 (GUI check h_gui19, M3). A layer is shown or hidden only when the sliders
    reach or leave its plane; the eye the user clicks in between stays as set. A result
    the dock hid for another image stays hidden (h_rev11 M1).
    """
    from napari_nuclei_unet.widgets._layers import HIDDEN_FOR_KEY
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    images = {layer.name: layer for layer in viewer.layers}
    for layer in viewer.layers:
        info = layer.metadata.get(RESULT_KEY) or {}
        image = images.get(info.get("source"))
        if not info.get(PLANE_AT) or image is None or layer.metadata.get(HIDDEN_FOR_KEY) \
                or layer.metadata.get(COVERED_KEY):  # under a newer result
            continue
        here = image.world_to_data(viewer.dims.point)
        on = all(round(float(here[int(pos)])) == index
                 for pos, index in info[PLANE_AT].items())
        if layer.metadata.get(PLANE_AT) != on:  # reached or left its plane
            layer.metadata[PLANE_AT] = on
            if layer.visible != on:  # showing a shown layer draws it again
                layer.visible = on


def follow_the_sliders_always(viewer: Any) -> None:
    """Connect :func:`results_follow_the_sliders` to the viewer's sliders, once per viewer.

    Not to a dock: closing the Segment dock left each plane's result over every plane
    (h_rev11 L2).
    """
    import weakref

    from napari_nuclei_unet.widgets._layers import unwrapped
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if session.results_follow_sliders:
        return
    ref = weakref.ref(unwrapped(viewer))

    def follow(_event: Any = None) -> None:
        if ref() is not None:
            results_follow_the_sliders(ref())

    viewer.dims.events.current_step.connect(follow)
    session.results_follow_sliders = True


def under_its_result(viewer: Any, image: Any) -> None:
    """An image opened again goes under the result the dock made of it before.

    napari adds it on top, opaque: its result and the labels lined up over it could not
    be seen, while the dock showed that result's table (GUI check h_gui46, L3).
    """
    from napari_nuclei_unet.widgets._segment_jobs import previous_result

    layers = viewer.layers
    result = previous_result(layers, None, image)
    if result is not None and image in layers and layers.index(image) > layers.index(result):
        layers.move(layers.index(image), layers.index(result))


def go_to_plane(viewer: Any, image: Any, where: dict) -> None:
    """Move the sliders to the plane ``where`` (:func:`plane_at`) of ``image``.

    A plane's result arriving while the user looked at another plane came hidden, and
    "done" said nothing of where (h_rev11 M2).
    """
    here = list(image.world_to_data(viewer.dims.point))
    for pos, index in where.items():
        here[int(pos)] = index
    world = image.data_to_world(here)
    offset = viewer.dims.ndim - len(world)
    for axis, value in enumerate(world):
        if float(value) != float(viewer.dims.point[offset + axis]):
            viewer.dims.set_point(offset + axis, float(value))


def is_other_images_result(layer: Any, image: Any) -> bool:
    """Whether a layer is the dock's segmentation of another image than ``image``."""
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    source = (getattr(layer, "metadata", {}).get(RESULT_KEY) or {}).get("source")
    return source is not None and source != image.name


def _overlaps(a: Any, b: Any) -> bool:
    """Whether two layers' (last two axes') extents in the world overlap."""
    try:
        ea, eb = np.asarray(a.extent.world)[:, -2:], np.asarray(b.extent.world)[:, -2:]
    except (AttributeError, ValueError):
        return True
    return bool(np.all(ea[0] < eb[1]) and np.all(eb[0] < ea[1]))


def bring_into_view(viewer: Any, image: Any, result: Any) -> list[str]:
    """Show ``image`` and its segmentation ``result``; say and return the layers hidden.

    ``result`` None: an image not segmented yet, shown alone (the Segment dock's image
    chosen: GUI check h_gui26, L2).

    Segmenting one image after another piled their results up, all visible, and the
    images opened later covered the one segmented: the labels painted on lay over
    another image, under other images' labels (GUI check h_gui11, M2). So the results of
    other images, and the images drawn above ``image`` that cover it (overlapping it,
    mostly opaque, not added onto it as channels are), are hidden; ``result`` becomes
    the active layer (the one napari's brush paints on). A layer hidden so that the
    user turned back on is left alone.
    """
    from napari.layers import Image, Labels

    from napari_nuclei_unet.widgets._layers import (
        HIDDEN_FOR_KEY,
        IMAGE_LAYER,
        LABELS_LAYER,
        STEPPED_ASIDE_KEY,
        quoted_names,
        text_overlay,
    )
    from napari_nuclei_unet.widgets._scene import frame_if_lost
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    layers = list(viewer.layers)
    if image not in layers or result is not None and result not in layers:
        return []
    bottom = layers.index(image)
    hidden = []
    for i, layer in enumerate(layers):
        if layer is image or layer is result or layer.metadata.get(HIDDEN_FOR_KEY) \
                or not _overlaps(layer, image):
            continue
        if not layer.visible:  # another image's plane result off its plane: kept off
            if (layer.metadata.get(RESULT_KEY) or {}).get(PLANE_AT) \
                    and is_other_images_result(layer, image):
                layer.metadata[HIDDEN_FOR_KEY] = True  # (review h_rev11, M1)
            continue
        other_result = isinstance(layer, Labels) and is_other_images_result(layer, image)
        covers = isinstance(layer, Image) and i > bottom and layer.blending != "additive" \
            and layer.opacity >= 0.5
        if other_result or covers:
            layer.visible = False
            layer.metadata[HIDDEN_FOR_KEY] = True
            hidden.append(layer.name)
            if layer.name in (IMAGE_LAYER, LABELS_LAYER):
                layer.metadata[STEPPED_ASIDE_KEY] = True  # the next sample shows it again
    for layer in (image, result) if result is not None else (image,):
        if not layer.visible:  # showing a shown layer draws it again: 0.5 s at 6000²
            layer.visible = True
        layer.metadata.pop(HIDDEN_FOR_KEY, None)  # shown by the plugin, not by the user
    for layer in layers:  # this image's other planes' results follow the sliders again
        info = layer.metadata.get(RESULT_KEY) or {}
        if info.get(PLANE_AT) and info.get("source") == image.name \
                and layer.metadata.pop(HIDDEN_FOR_KEY, None):
            layer.metadata.pop(PLANE_AT, None)
    if result is not None:  # else the selection stays (the user's own labels, say)
        viewer.layers.selection.active = result
    frame_if_lost(viewer, image)  # in a corner at a larger sample's zoom (h_gui16, N2)
    overlay = text_overlay(viewer)
    if overlay.visible:  # it named the dataset's sample under it (GUI check h_gui14, N13)
        overlay.text = image.name
    if hidden:
        from napari_nuclei_unet.widgets._workers import notify

        also = "" if result is None else " and its result"
        notify(f"{quoted_names(hidden)} {'are' if len(hidden) > 1 else 'is'} hidden so that "
               f"you see “{image.name}”{also}; tick a layer's eye to see it again.")
    return hidden
