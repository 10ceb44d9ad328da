"""The Segment dock's results painted on and not saved: kept when they leave the viewer.

A biologist who corrected a result with napari's brush and closed napari without
*Save labels* lost the corrections: napari does not ask. napari removes every layer as
it closes (before the docks go), so a result painted on and not saved is written into
the plugin's data folder as it is removed, by napari closing or by the user
(``<data dir>/unsaved-labels/<image>_labels-<time>.tif``, with its axes, as *Save labels*
writes it). When that image is chosen again, the dock says where the labels are: opened
with File > Open and converted to Labels, *Add plane* and *Compare* use them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from qtpy.QtCore import QEvent, QObject

#: On a result layer: painted on since it was segmented or last saved.
UNSAVED_KEY = "nuclei_unet_unsaved"
#: On a result layer kept by :func:`keep_unsaved_results`: the file it was written to.
KEPT_KEY = "nuclei_unet_kept_at"
#: On a result kept while a save or an Add plane of it was under way: that job's token
#: (:func:`saving`). Once it has written every stroke, the kept file is set aside: the
#: dock said "not saved" of labels the add had written (GUI check h_gui38, L1).
KEPT_WHILE_KEY = "nuclei_unet_kept_while"
#: On a result layer: where it was painted since it was segmented, saved or added,
#: ``{plane: [(y0, y1, x0, x1), ...]}`` (``plane``: its indices on the labels' leading
#: axes; None: somewhere unknown)
PAINTED_KEY = "nuclei_unet_painted"
#: A box no region holds
_EVERYWHERE = (0, 2**62, 0, 2**62)
#: Boxes kept per plane; beyond, one box holds them all
_MOST_BOXES = 32


def unsaved_dir() -> Path:
    """``<user data dir>/unsaved-labels`` (``NUCLEI_UNET_DATA_DIR`` overrides the data dir)."""
    from napari_nuclei_unet.widgets._retrain_project import data_dir

    return data_dir() / "unsaved-labels"


def _mark_unsaved(event: Any) -> None:
    layer = event.source
    layer.metadata[UNSAVED_KEY] = True
    boxes = layer.metadata.setdefault(PAINTED_KEY, {})
    for plane, box in event_boxes(event):
        boxes[plane] = _with_box(boxes.get(plane, []), box)


def event_boxes(event: Any) -> list[tuple[tuple | None, tuple]]:
    """:func:`painted_boxes` of a paint event of a layer (a result's ``gaps`` left out)."""
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    gaps = set((event.source.metadata.get(RESULT_KEY) or {}).get("gaps") or ())
    return painted_boxes(event.value, gaps)


def _with_box(boxes: list, box: tuple) -> list:
    """``boxes`` and ``box``, joined with those it overlaps; past ``_MOST_BOXES``, one box.

    Strokes far apart, each added with its own region of a large plane, stay apart
    (one box around both was in neither region: review h_rev12, L3).
    """
    def join(a: tuple, b: tuple) -> tuple:
        return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])

    apart = []
    for other in boxes:
        if other[0] <= box[1] and box[0] <= other[1] and other[2] <= box[3] \
                and box[2] <= other[3]:
            box = join(box, other)
        else:
            apart.append(other)
    apart.append(box)
    if len(apart) > _MOST_BOXES:
        whole = apart[0]
        for other in apart[1:]:
            whole = join(whole, other)
        apart = [whole]
    return apart


def painted_boxes(atoms: Any, gaps: set) -> list[tuple[tuple | None, tuple]]:
    """``(plane, (y0, y1, x0, x1))`` of each plane a napari paint event's edits touch.

    ``atoms``: the event's value (napari's undo atoms: a bounding box of slices, or, in
    napari before 0.9, index arrays); ``gaps``: axes of the layer that are not the
    labels' (a channel, after X too: ``ZYXC``, h_rev12 L2). An edit of another form is
    ``(None, everywhere)``.
    """
    import itertools

    import numpy as np

    found: list[tuple[tuple | None, tuple]] = []
    for atom in atoms or ():
        key = getattr(atom, "slice_key", None)
        index = atom[0] if isinstance(atom, tuple) and atom and not hasattr(
            atom, "slice_key") and isinstance(atom[0], tuple) else None
        ndim = len(key) if key is not None else len(index) if index is not None else 0
        axes = [axis for axis in range(ndim) if axis not in gaps]
        if len(axes) < 2:
            found.append((None, _EVERYWHERE))
            continue
        *lead, y_axis, x_axis = axes
        if key is not None and all(isinstance(k, slice) for k in key):
            big = 2**62
            spans = [range(key[a].start or 0, key[a].stop or (key[a].start or 0) + 1)
                     for a in lead]
            y, x = key[y_axis], key[x_axis]
            box = (y.start or 0, y.stop or big, x.start or 0, x.stop or big)
            found += [(tuple(plane), box) for plane in itertools.product(*spans)]
        elif index is not None:
            arrays = [np.atleast_1d(np.asarray(i)) for i in index]
            ys, xs = arrays[y_axis], arrays[x_axis]
            if not lead:
                groups = [((), slice(None))]
            else:  # one integer per pixel's plane: sorted fast (napari < 0.9, a fill)
                dims = [int(arrays[a].max()) + 1 for a in lead]
                planes = np.ravel_multi_index([arrays[a] for a in lead], dims)
                groups = [(np.unravel_index(p, dims), planes == p) for p in np.unique(planes)]
            for plane, at in groups:
                found.append((tuple(int(v) for v in plane),
                              (int(ys[at].min()), int(ys[at].max()) + 1,
                               int(xs[at].min()), int(xs[at].max()) + 1)))
        else:
            found.append((None, _EVERYWHERE))
    return found


def painted_plane(layer: Any, plane_index: tuple) -> tuple:
    """The key of :data:`PAINTED_KEY` of a plane (``stack.plane_index``) of a result."""
    from napari_nuclei_unet.widgets._own_layers import result_labels

    return tuple(int(i) for i in plane_index) if len(result_labels(layer).shape) > 2 else ()


def added(layer: Any, token: str | None, plane: tuple, region: Any) -> None:
    """Add plane wrote ``plane`` of a result (``region``: its rows and columns; None: all).

    The result is saved once every stroke painted on it has gone to a project (or a
    file): results added to a project were kept on closing as not saved, and the dock
    offered to add them again (GUI check h_gui23, M3). A stroke during the add keeps it
    unsaved. ``token``: from :func:`saving`, as the add started.
    """
    kept_while = token is not None and layer.metadata.get(KEPT_WHILE_KEY) == token
    if token is None or (layer.metadata.get(UNSAVED_KEY) != token and not kept_while):
        return
    boxes = layer.metadata.setdefault(PAINTED_KEY, {})
    left = [box for box in boxes.get(plane, []) if region is not None and not (
        region[0].start <= box[0] and box[1] <= region[0].stop
        and region[1].start <= box[2] and box[3] <= region[1].stop)]
    if left:
        boxes[plane] = left
    else:
        boxes.pop(plane, None)
    if kept_while:  # removed while it was added: its kept file holds nothing unsaved
        if not boxes:
            _move_to_added(Path(layer.metadata[KEPT_KEY]))
        return
    layer.metadata[UNSAVED_KEY] = bool(boxes)


def _keep_removed(event: Any) -> None:
    keep_unsaved_results([event.value])


def _undo_as_paint(layer: Any) -> None:
    """Ctrl+Z on a watched layer: napari's undo, then a paint event where it changed."""
    _step_history(layer, redo=False)


def _redo_as_paint(layer: Any) -> None:
    """Ctrl+Shift+Z on a watched layer: napari's redo, then a paint event there."""
    _step_history(layer, redo=True)


def _step_history(layer: Any, redo: bool) -> None:
    """Undo or redo the last edit of ``layer``, then emit its paint event, as a stroke does.

    napari's undo and redo change the labels without a paint event: a stroke taken
    back after *Save labels* (or *Add plane*) left the result "saved", and closing
    napari kept nothing of the undo. The event carries the atoms of napari's history
    item (its last one, what a paint event carries); a napari without that history
    says "somewhere" (``[None]``).
    """
    history = getattr(layer, "_redo_history" if redo else "_undo_history", None)
    try:
        atoms = list(history[-1]) if history else ([] if history is not None else [None])
    except (TypeError, IndexError):
        atoms = [None]  # a history of another form: somewhere unknown
    try:
        (layer.redo if redo else layer.undo)()
    finally:  # an edit that failed half-way changed the labels too
        if atoms:  # nothing to undo changes nothing
            layer.events.paint(value=atoms)


def forget_history(layer: Any) -> None:
    """Forget the undo and redo history of the Labels ``layer``, whose data was replaced.

    napari keeps it when a layer's data is replaced: Ctrl+Z on the next sample's label
    mask (the plugin reuses that layer) put a stroke of the sample shown before into
    it, and with undo counting as an edit, offered it as a correction (review h_rev14,
    H2). A napari without that history is left as it is. The layer behind napari's
    plugin proxy is asked: through the proxy, napari warns the user of a private
    attribute (GUI check h_gui32, N7).
    """
    from napari_nuclei_unet.widgets._layers import unwrapped

    reset = getattr(unwrapped(layer), "_reset_history", None)
    if callable(reset):
        reset()


def undo_counts_as_paint(layer: Any) -> None:
    """Make Ctrl+Z and Ctrl+Shift+Z on the Labels ``layer`` tell its paint listeners.

    The layer's own key bindings (they override napari's class bindings for this layer
    only) run napari's undo or redo, then emit ``layer.events.paint`` with the history
    item's atoms: whatever marks the layer edited or unsaved on a stroke (a result's
    unsaved flag and the dock's words, a label mask's edits, a correction's draft)
    hears an undo too. The atoms say where the labels changed; their values are those
    of the edit undone, not of the undo (the plugin's listeners read only where). A
    layer whose data the plugin replaces forgets its history (:func:`forget_history`).
    """
    from app_model.types import KeyCode, KeyMod

    layer.bind_key(KeyMod.CtrlCmd | KeyCode.KeyZ, _undo_as_paint, overwrite=True)
    layer.bind_key(KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ, _redo_as_paint,
                   overwrite=True)


def watch_unsaved(viewer: Any, layer: Any) -> None:
    """Mark a result layer saved, and unsaved once the user paints, fills or erases on it.

    Such a result is kept when it leaves ``viewer`` (napari closing removes every
    layer), with or without a dock open. Undo and redo (Ctrl+Z, Ctrl+Shift+Z) count
    as edits too: the layer's own key bindings run napari's, then mark it.
    """
    layer.metadata[UNSAVED_KEY] = False
    layer.metadata[PAINTED_KEY] = {}
    layer.events.paint.connect(_mark_unsaved)  # no-op when already connected
    undo_counts_as_paint(layer)
    viewer.layers.events.removed.connect(_keep_removed)  # the same: once per viewer
    keep_when_the_window_closes(viewer)


def keep_when_the_window_closes(viewer: Any) -> None:
    """Keep the unsaved results of ``viewer`` when its window closes (once per window).

    File > Exit removes every layer (:func:`_keep_removed` keeps them), but closing the
    window (Ctrl+W, its close button) leaves the layers in place as napari ends: painted
    labels were lost (GUI check h_gui45, H1). A window that napari has closed is hidden
    first, before napari quits: that hide keeps them.
    """
    from napari_nuclei_unet.widgets._layers import unwrapped

    window = getattr(getattr(unwrapped(viewer), "window", None), "_qt_window", None)
    if window is None or window.property(_KEEPS_PROPERTY):
        return
    window.setProperty(_KEEPS_PROPERTY, True)
    _KeepWhenHidden(window, unwrapped(viewer).layers)


_KEEPS_PROPERTY = "nuclei_unet_keeps_unsaved"


class _KeepWhenHidden(QObject):
    """An event filter of a window (its child) that keeps ``layers``' unsaved results.

    When the program hides the window (it closes), not the window system (minimised).
    """

    def __init__(self, window: Any, layers: Any) -> None:
        import weakref

        super().__init__(window)
        self._layers = weakref.ref(layers)
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Hide and not event.spontaneous() \
                and (layers := self._layers()) is not None:
            keep_unsaved_results(list(layers))
        return False


def painted_not_added(layers: Any) -> list[str]:
    """The names of the results painted on and neither added to a project nor saved.

    Said as a round starts: their strokes are not among its corrections (GUI check
    h_gui33, L4: 20 nuclei redrawn in the Segment dock, then Fine-tune, with no word).
    """
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    return [layer.name for layer in layers
            if layer.metadata.get(RESULT_KEY) and layer.metadata.get(UNSAVED_KEY)]


def keep_unsaved_results(layers: Any) -> list[Path]:
    """Write every result painted on and not saved into :func:`unsaved_dir`; their paths.

    A result that cannot be written is skipped: the others are still kept.
    """
    from napari_nuclei_unet.widgets._own_layers import result_labels, safe_name
    from napari_nuclei_unet.widgets._save_labels import write_labels
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    kept = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for layer in list(layers):
        info = layer.metadata.get(RESULT_KEY)
        if not info or not layer.metadata.get(UNSAVED_KEY):
            continue
        data = result_labels(layer)
        axes = info.get("axes") or "Q" * (len(data.shape) - 2) + "YX"
        plane = f"-{info['plane_name']}" if info.get("plane_name") else ""  # one plane's
        stem = f"{safe_name(info.get('source') or layer.name)}_labels{plane}-{stamp}"
        path, n = unsaved_dir() / f"{stem}.tif", 1
        while path.exists():  # two results of one image in the same second (h_gui21 H1)
            n += 1
            path = unsaved_dir() / f"{stem}-{n}.tif"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_labels(path, data, axes, layer.name, info)
        except (OSError, ValueError):
            continue
        flag = layer.metadata.get(UNSAVED_KEY)
        layer.metadata[UNSAVED_KEY] = False  # written once
        layer.metadata[KEPT_KEY] = str(path)
        if isinstance(flag, str):  # a save or an add under way: see KEPT_WHILE_KEY
            layer.metadata[KEPT_WHILE_KEY] = flag
        kept.append(path)
    return kept


#: A kept file's name: ``<image>_labels[-<plane>]-<time>[-n]``, as a layer napari may
#: add `` [1]`` to (opened twice: h_gui22 N3); a plane is ``plane7``, ``t1-z2``. The plane
#: follows ``_labels``: an image named ``well-b2`` is not plane b2 of ``well`` (N2).
KEPT_NAME = re.compile(r"^(?P<image>.+)_labels(?:-(?P<plane>plane\d+|[a-z]\d+(?:-[a-z]\d+)*))?"
                       r"-\d{8}-\d{6}(?:-\d+)?(?: \[\d+\])?$")


def kept_from(name: str) -> tuple[str, str | None] | None:
    """The ``(image, plane)`` a kept file (or a layer opened from it) is of; None if none."""
    match = KEPT_NAME.match(Path(name).stem if name.endswith(".tif") else name)
    return (match["image"], match["plane"]) if match else None


def kept_file(name: str) -> Path:
    """The kept file a layer named ``name`` was opened from (napari's `` [1]`` left out)."""
    stem = re.sub(r" \[\d+\]$", "", name)
    return unsaved_dir() / f"{stem}.tif"


def kept_words(image_name: str) -> str:
    """What the dock says of an image whose corrected labels were kept unsaved ("" if none)."""
    from napari_nuclei_unet.widgets._own_layers import safe_name

    folder, name = unsaved_dir(), safe_name(image_name)
    found = {p: kept_from(p.name) for p in folder.glob("*.tif")} if folder.is_dir() else {}
    paths = sorted(p for p, of in found.items() if of and of[0] == name)
    if not paths:
        return ""
    planes = sorted({found[p][1] for p in paths if found[p][1]})
    which = f" (of {', '.join(planes)})" if planes else ""
    done = sorted({plane for p in paths for plane in added_planes(p)})
    added = f" ({', '.join(done)} added already; add the other planes you corrected)" \
        if done else ""
    return (f"Your corrected labels of {image_name}{which} were not saved; they are kept "
            f"in {folder}: {', '.join(p.name for p in paths[-4:])}{added}. Open one (File > "
            "Open, then right-click > Convert to Labels), select it and press Add plane to "
            "fine-tune on it.")


def set_aside(layer_name: str, plane: str = "", planes: int = 1) -> None:
    """A kept file whose labels were added to a project: moved to ``added/``, not said again.

    A file of a stack's ``planes`` planes goes once each of them was added (``plane``
    the one added now, noted in ``<file>.added``): adding one plane set the whole file
    aside, its other corrected planes never offered again (GUI check h_gui24, N2).
    """
    path = kept_file(layer_name)
    if not (kept_from(layer_name) and path.is_file()):
        return
    if planes > 1:
        done = set(added_planes(path)) | {plane}
        if len(done) < planes:
            path.with_suffix(".added").write_text("\n".join(sorted(done)) + "\n")
            return
        path.with_suffix(".added").unlink(missing_ok=True)
    _move_to_added(path)


def _move_to_added(path: Path) -> None:
    try:
        path.parent.joinpath("added").mkdir(exist_ok=True)
        path.replace(path.parent / "added" / path.name)
    except OSError:
        pass  # still offered as unsaved: nothing is lost


def added_planes(path: Path) -> list[str]:
    """The planes of a kept stack file already added to a project (:func:`set_aside`)."""
    try:
        return path.with_suffix(".added").read_text().split()
    except OSError:
        return []


def say_kept_once(image: Any, said: set) -> str:
    """:func:`kept_words`, notified once per image and session (``said``); the words.

    Said in the dock each time the image is chosen (the notice fades: h_gui22 N4).
    """
    words = "" if image is None else kept_words(image.name)
    if words and image.name not in said:
        from napari_nuclei_unet.widgets._workers import notify

        said.add(image.name)
        notify(words)
    return words


def saving(layer: Any) -> str | None:
    """Note that a result painted on is being saved (or added); its token, or None.

    The token goes to :func:`saved` (or :func:`added`), or to :func:`not_saved` if the
    job fails. Take it once the job has started: a second Add plane, refused while the
    first ran, left a result never painted marked unsaved (review h_rev12, M1). A
    stroke painted during the save marks it unsaved again, and it stays so. None: never
    painted, nothing to note.
    """
    if not layer.metadata.get(UNSAVED_KEY):
        return None
    token = f"saving {time.monotonic()}"
    layer.metadata[UNSAVED_KEY] = token
    return token


def saved(layer: Any, token: str | None) -> None:
    """The save of :func:`saving` is written: the result is saved, unless painted since."""
    if token is not None and layer.metadata.get(KEPT_WHILE_KEY) == token:
        _move_to_added(Path(layer.metadata[KEPT_KEY]))  # removed while it was written
    elif token is not None and layer.metadata.get(UNSAVED_KEY) == token:
        layer.metadata[UNSAVED_KEY] = False
        layer.metadata[PAINTED_KEY] = {}


def not_saved(layer: Any, token: str | None) -> None:
    """The save (or add) of :func:`saving` failed: the result is unsaved as before."""
    if token is not None and layer.metadata.get(UNSAVED_KEY) == token:
        layer.metadata[UNSAVED_KEY] = True
