"""The viewer layers that show one sample, reused from sample to sample.

Layer names (stable; other widgets import these constants rather than spelling
the names):

``IMAGE_LAYER = "nuclei image"``
    RGB :class:`napari.layers.Image` with the sample's image.
``LABELS_LAYER = "label mask"``
    :class:`napari.layers.Labels` with the sample's label mask (one label per
    nucleus), drawn above the image.

Both layers carry the shown sample in their metadata (:data:`SAMPLE_ID_KEY`,
:data:`MODALITY_KEY`), and the viewer's text overlay names the sample. Moving to
another sample replaces ``layer.data`` of the same two layers (no new layers);
the view is reset only when the image size changes.

Hand edits are never thrown away: the labels layer holds a *copy* of the
sample's label mask; when the user paints on it and then moves to another
sample, the edited mask is kept in ``Session.edited_labels`` and shown again
when the sample comes back. ``Sample.labels`` (the ground truth read from disk)
is never modified.

Everything here must run on the main thread (worker handlers, slots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_nuclei_unet.widgets._scene import frame_shown
from napari_nuclei_unet.widgets._session import session_for

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Layer

    from napari_nuclei_unet.core.dataset import Sample

#: Name of the image layer of the shown sample.
IMAGE_LAYER = "nuclei image"
#: Name of the label-mask layer of the shown sample.
LABELS_LAYER = "label mask"
#: Layer metadata key: id of the sample shown in the layer.
SAMPLE_ID_KEY = "nuclei_unet_sample_id"
#: Layer metadata key: modality of the sample shown in the layer.
MODALITY_KEY = "nuclei_unet_modality"
#: Layer metadata key set by the plugin's reader: path of the dataset a layer came from.
DATASET_KEY = "nuclei_unet_dataset"
#: Layer metadata key: a layer made ahead of use, hidden and empty
#: (``_compare_layers.placeholder_makers``).
PLACEHOLDER_KEY = "nuclei_unet_placeholder"
#: Labels-layer metadata key: True once the user painted on the shown mask.
EDITED_KEY = "nuclei_unet_edited"
#: Labels-layer metadata key: True while a dock keeps the layer's edits as a draft; it
#: says itself what happens to them when another image is shown (the Retrain dock).
DRAFTED_KEY = "nuclei_unet_drafted"


def is_placeholder(layer: Any) -> bool:
    """Whether ``layer`` is one the workflow panel made ahead of use, hidden and empty."""
    return bool(layer.metadata.get(PLACEHOLDER_KEY))


def is_users_layer(layer: Any) -> bool:
    """Whether ``layer`` is the user's, not one the plugin placed itself.

    The plugin's are its dataset views, compare panes, corrections and placeholders;
    the Segment dock's results are the user's.
    """
    from napari_nuclei_unet.widgets._compare_layers import COMPARE_LAYERS, PLUGIN_LAYERS

    return layer.name not in {IMAGE_LAYER, LABELS_LAYER, *COMPARE_LAYERS, *PLUGIN_LAYERS} \
        and not is_placeholder(layer)


def unwrapped(obj: Any) -> Any:
    """The napari object behind a plugin's proxy.

    napari hands plugins a proxy of the viewer, and each access gives a new proxy: compare
    layers with ``unwrapped(a) is unwrapped(b)``, never the proxies themselves.
    """
    return getattr(obj, "__wrapped__", obj)


def nuclei(n: int) -> str:
    """``"1 nucleus"``, ``"2 nuclei"``: a count in words (GUI check h_gui28, L2)."""
    return f"{n} nucleus" if n == 1 else f"{n} nuclei"


def quoted_names(names: list[str], longest: int | None = None) -> str:
    """Up to three names in quotes, and how many more: "“a”, “b”, “c” and 2 more".

    ``longest``: each name cut to that many characters.
    """
    shown = ", ".join(f"“{name[:longest]}”" for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def short_id(sample_id: str, keep: int = 8, longest: int = 16) -> str:
    """Shorten a long sample id (DSB2018 ids are 64 hex digits) for display.

    The first 8 characters name a DSB2018 sample uniquely (as a short git hash
    does); widgets show the full id in a tooltip and copy it with Ctrl+C
    (:func:`napari_nuclei_unet.widgets._ids.enable_id_copy`).

    Parameters
    ----------
    sample_id : str
        The full id.
    keep : int, optional
        Characters kept from the start of a long id.
    longest : int, optional
        Ids up to this length are shown whole (readable names up to 6 more: cutting
        them would save too little to be worth the "…").

    Returns
    -------
    str
        ``sample_id`` itself when short; a hash-like id's first ``keep`` characters;
        a readable name's start and end around "…" (``longest`` characters).
    """
    if len(sample_id) <= longest:
        return sample_id
    if all(c in "0123456789abcdefABCDEF" for c in sample_id):
        return sample_id[:keep]  # a hash-like id: its start names it
    if len(sample_id) <= longest + 6:
        return sample_id
    # a readable name: files of one experiment share their start and differ at the end
    # ("plate3_well_A01", "plate3_well_A02"; the demo's "synthetic-fluorescence-0", -1)
    head = (longest - 1) // 2
    return sample_id[:head] + "…" + sample_id[-(longest - 1 - head):]


def find_layer(viewer: napari.Viewer, name: str, kind: type | None = None) -> Layer | None:
    """Return the layer called ``name`` (of type ``kind`` if given), or None."""
    if name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    if kind is not None and not isinstance(layer, kind):
        return None
    return layer


def get_or_create_image(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs: Any) -> Image:
    """Put ``data`` into the image layer called ``name``, creating it if needed.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    name : str
        Layer name.
    data : numpy.ndarray
        Image data; ``(H, W, 3)`` uint8 is shown as RGB.
    **kwargs
        Passed to :meth:`napari.Viewer.add_image` when the layer is created.

    Returns
    -------
    napari.layers.Image
        The (re)used layer.
    """
    from napari.layers import Image

    rgb = data.ndim == 3 and data.shape[-1] in (3, 4)
    layer = find_layer(viewer, name, Image)
    if layer is not None and layer.rgb == rgb:
        layer.data = data
        return layer
    if layer is not None:  # same name, other kind of image: replace it
        viewer.layers.remove(layer)
    return viewer.add_image(data, name=name, rgb=rgb, **kwargs)


def get_or_create_labels(
    viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs: Any
) -> Labels:
    """Put ``data`` into the labels layer called ``name``, creating it if needed.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    name : str
        Layer name.
    data : numpy.ndarray
        Integer label image.
    **kwargs
        Passed to :meth:`napari.Viewer.add_labels` when the layer is created.

    Returns
    -------
    napari.layers.Labels
        The (re)used layer.
    """
    from napari.layers import Labels

    layer = find_layer(viewer, name, Labels)
    if layer is not None:
        from napari_nuclei_unet.widgets._unsaved_labels import forget_history

        layer.data = data
        forget_history(layer)  # Ctrl+Z never reaches into the labels shown before
        return layer
    from napari_nuclei_unet.widgets._scene import keep_shader_on_data_change

    layer = viewer.add_labels(data, name=name, **kwargs)
    keep_shader_on_data_change(viewer, layer)  # data changes need no shader build
    return layer


#: Layer metadata: the planes painted on (``{plane: True}``, keys as ``PAINTED_KEY``'s;
#: ``None``: somewhere unknown). A stack's unpainted planes, added after one was painted,
#: went into a project as "edited mask" (GUI check h_gui40, M1).
EDITED_PLANES_KEY = "nuclei_unet_edited_planes"


def _mark_edited(event: Any) -> None:
    """Remember that the user painted on the label mask, and on which planes."""
    from napari_nuclei_unet.widgets._unsaved_labels import event_boxes

    layer = event.source
    layer.metadata[EDITED_KEY] = True
    planes = layer.metadata.setdefault(EDITED_PLANES_KEY, {})
    for plane, _ in event_boxes(event) or [(None, None)]:  # None: somewhere unknown
        planes[plane] = True


#: Layer metadata of a user's labels given a size-1 channel axis to lie over their
#: image's planes (:func:`line_up`): the axes added, left out when read.
LINED_UP_KEY = "nuclei_unet_lined_up"
#: ... and the image they were lined up over: its layer's ``id`` and name (the image
#: renamed, or closed and opened again, is still theirs: reviews h_rev27, 4; h_rev28, 3).
LINED_OVER_KEY = "nuclei_unet_lined_over"


def line_up(labels: Any, image: Any, axes: str = "", again: bool = False) -> None:
    """Give labels of a stack with channels (saved, opened again) a size-1 channel axis.

    napari lines layers up by their last axes: a ``ZYX`` labels file over its ``ZCYX``
    ``image`` followed the channel slider, not the Z one, and Add plane spoke of a plane
    other than the one seen (GUI check h_gui40, M3). The Segment dock's results keep such
    an axis for the same reason; the docks read the labels without it (:func:`user_labels`).
    ``axes``: the dock's Axes field. ``again``: the user set the Axes of ``image`` (not
    as they type: each time undoes the labels' undo history): labels lined up over it
    move their axis or lose it (review h_rev25, M16); others, lined up over another
    image of the same shape, stay as they lie (review h_rev26, 3 and 4).
    """
    from napari_nuclei_unet.widgets._own_layers import channel_gaps, layer_stack, placement
    from napari_nuclei_unet.widgets._workers import notify

    if image is None or getattr(labels, "multiscale", False):
        return
    try:
        stack = layer_stack(image, axes)
    except ValueError:
        return
    order = stack.stored_axes or stack.axes  # as the layer holds them, as the results'
    want = channel_gaps(order, bool(getattr(image, "rgb", False)))
    added = tuple(labels.metadata.get(LINED_UP_KEY) or ())
    if added:
        if not again or added == want or not _over(labels, image) \
                or not _lined_over(labels, image, added):
            return  # lined up already (or over another image)
        _undo_line_up(labels, image)  # the Axes were set again since
    if not want:
        return  # no channel axis between others: napari lines them up
    at, shape = want[0], tuple(stack.labels_shape)
    found = tuple(labels.data.shape)
    if found != shape and found != shape[:at] + (1,) + shape[at:]:
        return  # not this image's labels
    if found == shape:
        from napari_nuclei_unet.widgets._unsaved_labels import forget_history

        labels.data = labels.data[(slice(None),) * at + (None,)]
        forget_history(labels)  # its strokes' undo has the old axes: Ctrl+Z raised (h_rev25)
    # (saved so, by napari's Save, they came back with their size-1 axis: h_rev24, M6)
    # placed as the dock's results are: the size-1 axis spans every channel, so the
    # labels show (and take strokes) at the nuclear channel too (GUI check h_gui41, H1)
    kwargs = placement(image, labels.data.shape, (at,))
    labels.scale, labels.translate = kwargs["scale"], kwargs["translate"]
    reslice(labels)
    labels.metadata[LINED_UP_KEY] = (at,)
    labels.metadata[LINED_OVER_KEY] = (id(image), image.name)
    if found == shape:
        notify(f"“{labels.name}” was given a channel axis of size 1 ({order}, as "
               f"{image.name}) so that each of its planes lies over {image.name}'s: napari "
               "lines layers up by their last axes.")


def reslice(layer: Any) -> None:
    """Have the viewer draw ``layer`` at the sliders again, its axes or place changed.

    napari slices a layer as the sliders move; one whose axes changed while the sliders
    stayed kept its earlier slice: labels lined up over Z plane 1 showed plane 0, and
    strokes went to plane 1 unseen (GUI check h_gui45, M2). Its ``reload`` event makes
    the viewer take the sliders' place for it again; ``refresh`` then draws that plane.
    """
    reload = getattr(layer.events, "reload", None)
    if reload is not None:
        reload(layer=layer)
    layer.refresh()


def _over(labels: Any, image: Any) -> bool:
    """Whether ``labels`` were lined up over ``image`` (:data:`LINED_OVER_KEY`)."""
    over = labels.metadata.get(LINED_OVER_KEY) or (None, None)
    return over[0] == id(image) or over[1] == image.name


def _lined_over(labels: Any, image: Any, added: tuple[int, ...]) -> bool:
    """Whether ``labels`` were lined up over ``image``: its shape and place, less ``added``."""
    from napari_nuclei_unet.widgets._own_layers import layer_shape, placement

    found, shape = tuple(labels.data.shape), layer_shape(image)
    if len(found) != len(shape) or not all(n == m or (axis in added and n == 1) for axis, (
            n, m) in enumerate(zip(found, shape, strict=True))):
        return False
    kwargs = placement(image, found, added)  # over as many channels as it has
    return bool(np.allclose(labels.scale, kwargs["scale"])
                and np.allclose(labels.translate, kwargs["translate"]))


def _undo_line_up(labels: Any, image: Any) -> None:
    """Take back the axes :func:`line_up` gave ``labels``: placed by their last axes."""
    from napari_nuclei_unet.widgets._own_layers import placement
    from napari_nuclei_unet.widgets._unsaved_labels import forget_history

    labels.data = user_labels(labels)
    forget_history(labels)
    kwargs = placement(image, labels.data.shape)
    labels.scale, labels.translate = kwargs["scale"], kwargs["translate"]
    reslice(labels)
    for key in (LINED_UP_KEY, LINED_OVER_KEY):
        labels.metadata.pop(key, None)


def user_labels(layer: Any) -> Any:
    """A user's Labels layer's data (full resolution), without the axes lined up for show."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    added = tuple(layer.metadata.get(LINED_UP_KEY) or ())
    if added and len(data.shape) > max(added) and all(data.shape[a] == 1 for a in added):
        data = data[tuple(0 if axis in added else slice(None) for axis in range(data.ndim))]
    return data


def plane_edited(layer: Any, plane: tuple) -> bool:
    """Whether the user painted on ``plane`` of ``layer`` (a key as ``painted_plane`` gives)."""
    if not layer.metadata.get(EDITED_KEY):
        return False
    planes = layer.metadata.get(EDITED_PLANES_KEY)
    return planes is None or None in planes or tuple(plane) in planes


def watch_edits(layer: Any) -> None:
    """Mark a Labels layer unedited, and edited once the user paints, fills or erases on it.

    ``layer.metadata[EDITED_KEY]`` then says whether replacing the layer's data would
    throw away the user's corrections.
    """
    from napari_nuclei_unet.widgets._unsaved_labels import undo_counts_as_paint

    layer.metadata[EDITED_KEY] = False
    layer.metadata[EDITED_PLANES_KEY] = {}
    layer.events.paint.connect(_mark_edited)  # no-op when already connected
    undo_counts_as_paint(layer)  # an undo is an edit too


def _edit_key(viewer: napari.Viewer, sample_id: str) -> tuple[str, str]:
    dataset = session_for(viewer).dataset
    return (str(dataset.path) if dataset is not None else "", sample_id)


def keep_label_edits(viewer: napari.Viewer) -> str | None:
    """Move hand edits of the shown label mask into ``Session.edited_labels``.

    Called before another sample replaces the layer's data (and usable by any
    widget that is about to replace it).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.

    Returns
    -------
    str or None
        The id of the sample whose edits were kept, or None when nothing was edited.
    """
    from napari.layers import Labels

    layer = find_layer(viewer, LABELS_LAYER, Labels)
    if layer is None or not layer.metadata.get(EDITED_KEY):
        return None
    sample_id = layer.metadata.get(SAMPLE_ID_KEY)
    if sample_id is None:
        return None
    session = session_for(viewer)
    session.edited_labels[_edit_key(viewer, sample_id)] = layer.data
    layer.metadata[EDITED_KEY] = False
    session.mark_edited(sample_id)
    return sample_id


def edited_labels(viewer: napari.Viewer, sample_id: str) -> np.ndarray | None:
    """Return the hand-edited label mask of ``sample_id`` kept this session, or None."""
    session = session_for(viewer)
    key = _edit_key(viewer, sample_id)
    layer = find_layer(viewer, LABELS_LAYER)
    if layer is not None and layer.metadata.get(SAMPLE_ID_KEY) == sample_id and layer.metadata.get(
        EDITED_KEY
    ):
        return layer.data
    return session.edited_labels.get(key)


def text_overlay(viewer: napari.Viewer) -> Any:
    """Return the viewer's text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    overlay = getattr(overlays, "text", None)
    return overlay if overlay is not None else viewer.text_overlay


def shown_sample_id(viewer: napari.Viewer) -> str | None:
    """Return the id of the sample in the :data:`IMAGE_LAYER`, or None."""
    layer = find_layer(viewer, IMAGE_LAYER)
    return None if layer is None else layer.metadata.get(SAMPLE_ID_KEY)


#: Metadata key of a sample layer hidden while the user's own image is shown
#: (``_compare_guards.step_aside_for``): the next sample shown shows it again.
STEPPED_ASIDE_KEY = "nuclei_unet_stepped_aside"


def sample_stepped_aside(viewer: napari.Viewer) -> bool:
    """Whether the dataset's sample was hidden for the user's own image, not shown since.

    Its eye ticked by the user shows the image, not its side by side: still True.
    """
    layer = find_layer(viewer, IMAGE_LAYER)
    return layer is not None and bool(layer.metadata.get(STEPPED_ASIDE_KEY))


#: Metadata flag of a layer the Segment dock hid for a result (``_own_layers.bring_into_view``):
#: seen visible again, the user turned it back on, and it is left alone from then on.
HIDDEN_FOR_KEY = "nuclei_unet_hidden_for_result"


def caption_follows_own_images(viewer: napari.Viewer) -> None:
    """Let the caption over the canvas name an image the user opens (once per viewer).

    It named the dataset's sample, hidden under the user's own images opened with
    File > Open, until one was segmented (GUI check h_gui15, L4). A dataset's sample
    shown again names itself again (:func:`show_sample`).
    """
    from napari.layers import Image

    session = session_for(viewer)
    if getattr(session, "caption_follows", False):
        return
    session.caption_follows = True

    def inserted(event: Any) -> None:
        layer = event.value
        overlay = text_overlay(viewer)
        if isinstance(layer, Image) and layer.visible and is_users_layer(layer) \
                and overlay.visible:
            overlay.text = layer.name

    def removed(event: Any) -> None:  # it named a deleted layer (GUI check h_gui16, N4)
        overlay = text_overlay(viewer)
        if overlay.text == getattr(event.value, "name", None):
            overlay.text = ""

    viewer.layers.events.inserted.connect(inserted)
    viewer.layers.events.removed.connect(removed)


def hide_own_layers(viewer: napari.Viewer) -> list[str]:
    """Hide the visible layers that are not the plugin's, before a dataset's sample shows.

    Layers the user opened before (their own image, its segmentation) lay above the
    plugin's: in side by side the pane titled "label mask" showed the user's own image,
    and in overlay their image hid the error colours (GUI check h_gui10). They are
    hidden, not removed, with one notification; their eye shows them again. Returns
    their names.
    """
    hidden = []
    for layer in list(viewer.layers):
        if layer.visible and is_users_layer(layer):
            layer.visible = False
            hidden.append(layer.name)
    active = viewer.layers.selection.active
    if active is not None and active.name in hidden:  # the brush painted unseen into it
        viewer.layers.selection.clear()  # (GUI check h_gui25, L2)
    if hidden:
        from napari_nuclei_unet.widgets._workers import notify

        notify(f"Your layer(s) {quoted_names(hidden, 24)} are hidden so that they do not "
               "cover the dataset's images; tick a layer's eye to see it again.")
    return hidden


def show_sample(viewer: napari.Viewer, sample: Sample) -> tuple[Image, Labels]:
    """Show ``sample`` in the :data:`IMAGE_LAYER` and :data:`LABELS_LAYER` layers.

    The two layers are created on first use and reused afterwards (their data is
    replaced), so moving between samples never piles up layers. The view is
    reset when the image size changes. Hand edits of the previously shown mask
    are kept (see :func:`keep_label_edits`), and an edited mask kept for
    ``sample`` is shown instead of the original.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    sample : Sample
        The sample to show (``image`` (H, W, 3) uint8, ``labels`` (H, W) int).

    Returns
    -------
    image_layer : napari.layers.Image
    labels_layer : napari.layers.Labels
    """
    shown = find_layer(viewer, LABELS_LAYER)
    drafted = shown is not None and bool(shown.metadata.get(DRAFTED_KEY))
    kept = keep_label_edits(viewer)
    if kept is not None and kept != sample.id and not drafted:  # one notice, not two
        from napari.utils.notifications import show_info

        show_info(
            f"Your edits to the label mask of {short_id(kept)} are kept for this session; "
            "select that sample again to see them."
        )

    old = find_layer(viewer, IMAGE_LAYER)
    old_shape = None if old is None else old.data.shape[:2]
    labels = edited_labels(viewer, sample.id)
    if labels is None:
        labels = np.array(sample.labels, copy=True)  # the ground truth itself stays untouched

    hide_own_layers(viewer)
    image_layer = get_or_create_image(viewer, IMAGE_LAYER, sample.image)
    labels_layer = get_or_create_labels(viewer, LABELS_LAYER, labels, opacity=0.5)
    for layer in (image_layer, labels_layer):
        layer.metadata[SAMPLE_ID_KEY] = sample.id
        layer.metadata[MODALITY_KEY] = sample.modality
        stepped_aside = layer.metadata.pop(STEPPED_ASIDE_KEY, False)
        layer.metadata.pop(HIDDEN_FOR_KEY, None)  # shown again by the plugin
        if layer.metadata.pop(PLACEHOLDER_KEY, False) or stepped_aside:
            layer.visible = True  # made ahead hidden, or hidden for the user's own image
    watch_edits(labels_layer)

    # keep the mask above the image
    layers = viewer.layers
    i_image, i_labels = layers.index(image_layer), layers.index(labels_layer)
    if i_image > i_labels:
        layers.move(i_image, i_labels)

    height, width = sample.image.shape[:2]
    n_nuclei = int(sample.labels.max()) if sample.labels.size else 0  # labels are 1..n
    overlay = text_overlay(viewer)
    overlay.text = (
        f"{short_id(sample.id)} · {sample.modality} · {height}×{width} px · {nuclei(n_nuclei)}"
    )
    # at the top: napari's notification toasts pop up at the bottom right of the canvas;
    # small enough to fit the canvas of a 1280 px wide window
    overlay.position = "top_center"
    overlay.font_size = 9
    overlay.visible = True
    caption_follows_own_images(viewer)
    if old_shape != (height, width):
        frame_shown(viewer)
    return image_layer, labels_layer
