"""The Segment dock's work outside its layout: the model it uses, its jobs and notes.

Worker functions (segmenting a layer, adding a plane to a fine-tuning project, saving
labels) and the plain words the dock says about its model and settings. No Qt here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from napari_nuclei_unet.widgets._model_names import model_name

#: Metadata of a result layer: what it was segmented from (source, axes, planes, zarr).
RESULT_KEY = "nuclei_unet_segmentation"
#: Where this dock asks for the settings that core messages name (see
#: ``ImageFileError.worded``): its fields, not the command line's options.
DOCK_WORDS = {"channel": "in the Nuclear channel field", "axes": "in the Axes field"}


def in_dock_words(exc: BaseException, other: Any = None) -> str:
    """An error in plain words, naming the settings by this dock's fields.

    ``other`` words errors that are not about an image file (default: ``explain``).
    """
    from napari_nuclei_unet.core.stacks import ImageFileError
    from napari_nuclei_unet.widgets._workers import explain

    if isinstance(exc, ImageFileError):
        return exc.worded(DOCK_WORDS)
    return (other or explain)(exc)


def is_default_word(path: str) -> bool:
    """Whether the Model file field names the shipped model as the README does.

    The field makes a typed word a path in the current folder (``/home/me/default``).
    """
    typed = Path(path.strip())
    return bool(path.strip()) and typed.name.lower() == "default" and not typed.exists()


def model_words(path: str, session_model: Any, project: Path | None = None) -> str:
    """Which model the dock segments with, in words (shown, and said with each result).

    ``path``: the Model file field ("" when empty); ``project``: the viewer's
    fine-tuning project, whose current model Segment uses when none is loaded (napari
    restarted since its last round, say), as the Retrain dock's Fine-tune does.
    """
    if is_default_word(path):
        return "the default model"
    if path:
        return f"the model file {model_name(SimpleNamespace(path=Path(path)))}"
    if session_model is not None:
        name = model_name(session_model)
        words = "the default model" if name == "default model" else f"model {name}"
        # "model Nuclei U-Net (default model) (the model in use)" (GUI check h_gui31, L3)
        return words + (", the model in use" if words.endswith(")") else " (the model in use)")
    version = project_model(project)
    if version is not None:
        return (f"model {version.name} of the fine-tuning project (its current version; "
                "no model is loaded)")
    return "the default model (no model is loaded)"


def model_key(path: str, session_model: Any, project: Path | None = None) -> str:
    """Which weights :func:`model_words` speaks of, to compare two of them.

    Their words differ for the same model ("model v001 of the fine-tuning project (its
    current version; ...)" and "model v001 (the model in use)"): a result made with v001
    was said to be made with another model once v001 was put in use (GUI check h_gui34,
    N2; review h_rev18, M2).
    """
    def resolved(where: Any) -> str:
        return "default" if is_default_word(str(where)) else str(Path(where).resolve())

    if is_default_word(path) or path:
        return resolved(path)
    if session_model is not None:
        where = getattr(session_model, "path", None)
        return resolved(where) if where else f"in memory {id(session_model)}"
    version = project_model(project)
    return resolved(version.model) if version is not None else "default"


def project_model(project: Path | None) -> Any:
    """A project's model (``ModelVersions.current``) when it is not the shipped one, else None."""
    if project is None:
        return None
    from napari_nuclei_unet.core.finetune.versions import ModelVersions

    try:
        version = ModelVersions(project).current()
    except (OSError, ValueError):
        return None
    return None if version is None or version.is_base else version


def _resolve_model(path: str, session_model: Any) -> Any:
    """The model to use (worker thread): a file, the session's, or the shipped default."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    if is_default_word(path):
        return load_checkpoint("default").model
    if path:  # a checkpoint or a bioimage.io package, as the Model dock opens them
        from napari_nuclei_unet.bioimageio.load import load_any_model

        return load_any_model(path).model
    if session_model is not None:
        return getattr(session_model, "model", session_model)
    return load_checkpoint("default").model


def _job(model_path: str, session_model: Any, stack: Any, settings: dict, *, channel: Any,
         planes: Any, big: bool, should_stop: Any, earlier: Any = None) -> Any:
    from napari_nuclei_unet.widgets._own_layers import segment_layer_job
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()
    # core.segment imports torch (over a second, holding the interpreter lock): here,
    # not on the main thread when the dock's first Segment is pressed
    from napari_nuclei_unet.core.segment import SegmentOptions

    options = SegmentOptions(**settings)
    model = _resolve_model(model_path, session_model)
    return (yield from segment_layer_job(model, stack, options, channel=channel, planes=planes,
                                         big=big, should_stop=should_stop, earlier=earlier))


def previous_result(layers: Any, last: Any, image: Any, planes: Any = None,
                    whole: bool = False) -> Any:
    """The Labels layer holding the dock's result of ``image`` (None: none).

    ``last``, the dock's last result, when it is of ``image``; else the newest layer of
    ``layers`` the dock filled from an image of that name (segmenting dim16, then
    mag3x, then dim16 again added a second "dim16 labels [1]"). ``planes``: only a
    result of those planes (a large plane of a stack has a layer of its own);
    ``whole``: only a result of the whole stack (not such a plane's).
    """
    from napari_nuclei_unet.widgets._own_layers import PLANE_AT

    for layer in ([last] if last is not None else []) + list(layers)[::-1]:
        source = (layer.metadata.get(RESULT_KEY) or {}) if layer in layers else {}
        if source.get("source") == image.name \
                and (planes is None or list(source.get("planes") or []) == list(planes)) \
                and not (whole and source.get(PLANE_AT)):
            return layer
    return None


def own_labels_target(layers: Any, form: tuple) -> dict | str | None:
    """The user's own Labels layer selected in the layer list, as labels of ``form``'s image.

    A Labels layer the dock did not make (labels saved earlier and opened again, or
    drawn from scratch): Add plane adds it as the user's correction of the image chosen
    in the dock, ``form`` = ``(image layer, axes, channel, slider point)``. Its shape is
    the image's labels' (one per plane), one plane's (the current plane), or, drawn with
    napari's *New labels* on an image with a channel axis, the image's own (the channel
    shown). A reopened labels file could not be added (left alone at stop 34). None when
    the selection is no such layer; else the target (``labels`` as :func:`chosen_result`'s
    result would give them), or why it cannot be added, in plain words: the dock's own
    result was added in its place, unsaid (h_rev11 M3).
    """
    from napari.layers import Image, Labels

    from napari_nuclei_unet.widgets._layers import is_users_layer, user_labels
    from napari_nuclei_unet.widgets._own_layers import (
        current_plane,
        layer_axes,
        layer_shape,
        layer_stack,
        safe_name,
    )
    from napari_nuclei_unet.widgets._unsaved_labels import kept_from

    active, (image, axes, channel, point) = layers.selection.active, form
    if not isinstance(active, Labels) or active.metadata.get(RESULT_KEY) \
            or not is_users_layer(active):
        return None
    kept, switched = kept_from(active.name), False  # labels kept unsaved, opened again:
    if kept is not None:  # of their own image and plane (opening them made the file the
        named = [layer for layer in layers  # dock's Image: h_gui21 H2)
                 if isinstance(layer, Image) and safe_name(layer.name) == safe_name(kept[0])]
        if not named:
            return f"“{active.name}” holds corrected labels of {kept[0]}: open {kept[0]} too."
        switched = named[0] is not image
        if switched:
            image, axes, channel = named[0], "", None
    if image is None or image not in layers:
        return f"Choose in Image the image that “{active.name}” labels, then add the plane."
    try:
        stack = layer_stack(image, axes)
        labels = user_labels(active)  # without an axis lined up for show (segment_widget)
        shape = tuple(labels.shape)
        planes = list(range(stack.n_planes))
        if kept is not None and kept[1] and shape == tuple(stack.yx_shape):  # its plane's
            planes = [flat for flat in planes if stack.plane_name(flat) == kept[1]][:1]
            if not planes:
                return f"{image.name} has no {kept[1]}: “{active.name}” is not its labels."
        elif shape == tuple(stack.yx_shape) and stack.n_planes > 1:  # one plane's labels
            planes = [current_plane(image, stack, point, axes)]
        elif shape == tuple(layer_shape(image)) and "C" in stack.axes and not image.rgb:
            at = layer_axes(image, axes).index("C")  # New labels: the channel painted on
            here = round(float(image.world_to_data(point)[at]))
            labels = labels[(slice(None),) * at + (here,)]
        elif shape != tuple(stack.labels_shape) and not switched:
            sizes = " x ".join(str(n) for n in stack.labels_shape)
            return (f"“{active.name}” ({' x '.join(str(n) for n in shape)} pixels) does not "
                    f"fit {image.name}, whose labels are {sizes}: select labels drawn on "
                    f"{image.name}, or choose their image in Image.")
        if switched and (
                "C" in stack.axes or shape not in (tuple(stack.labels_shape),
                                                   tuple(stack.yx_shape))):
            return (f"“{active.name}” holds corrected labels of {image.name}: choose "
                    f"{image.name} in Image (with its Axes and Nuclear channel), then press "
                    "Add plane.")  # the form's settings are another image's (h_gui22 N6)
    except ValueError as exc:
        return str(exc)
    return {"layer": image, "stack": stack, "channel": channel, "axes": axes,
            "result": active, "planes": planes, "own": True, "labels": labels}


def chosen_result(layers: Any, chosen_image: Any, last: Any, shown: dict,
               selection: bool = True) -> dict | str:
    """The result the user chose, with what it was segmented from; else why not.

    The result layer selected in the layer list (the one painted on), else the result
    of the image chosen in the dock, else the dock's last result: the dock's outputs
    (Add plane, Save labels, Export CSV, Compare) spoke of the last image segmented,
    whatever the user had corrected (GUI checks h_gui15 M1, h_gui16 N1).
    ``shown``: the dock's last result's source (``layer``, ``stack``, ``channel``,
    ``axes``). Returns ``shown``'s keys plus ``result`` (the Labels layer) and
    ``planes`` (the planes it holds); or, when the result chosen cannot be added (its
    image renamed or deleted) or there is none, what to do, in plain words.
    ``selection`` False: the layer list's selection is not asked (an image was just
    chosen in the dock).
    """
    from napari_nuclei_unet.widgets._layers import unwrapped
    from napari_nuclei_unet.widgets._own_layers import layer_stack

    active = layers.selection.active if selection else None
    chosen = previous_result(layers, None, chosen_image) if chosen_image is not None else None
    present = {id(unwrapped(layer)) for layer in layers}  # napari's proxies: the layers
    for result in (active, chosen, last):
        info = (result.metadata.get(RESULT_KEY) or {}) \
            if result is not None and id(unwrapped(result)) in present else {}
        if not info:
            continue
        if unwrapped(result) is unwrapped(last) and shown:
            return {**shown, "result": result, "planes": list(info.get("planes") or [0])}
        image = next((layer for layer in layers if layer.name == info.get("source")), None)
        try:
            stack = None if image is None else layer_stack(image, info.get("image_axes") or "")
        except ValueError:
            stack = None
        if stack is None:  # never another result than the one chosen
            return (f"“{result.name}” cannot be added: its image “{info.get('source')}” is no "
                    "longer open under that name. Open it again (or give it back its name) "
                    "and segment it, then add the plane.")
        return {"layer": image, "stack": stack, "channel": info.get("channel"),
                "axes": info.get("image_axes") or "", "result": result,
                "planes": list(info.get("planes") or [0])}
    return "Segment an image first: Add plane adds a plane of a segmentation result."


def layer_features(table: dict) -> Any:
    """A features table as a Labels layer's ``features`` (napari's ``index`` = the label)."""
    import pandas as pd

    features = pd.DataFrame(table) if table else pd.DataFrame()
    if len(features):
        features.insert(0, "index", features["label"])
    return features


def layer_table(layer: Any) -> dict:
    """A result layer's features as ``{column: array}`` (without napari's index)."""
    if layer is None:
        return {}
    frame = layer.features
    return {c: frame[c].to_numpy() for c in frame.columns if c != "index"}


def earlier_result(layer: Any, stack: Any, settings: tuple = (None, None)) -> Any:
    """The result in ``layer`` (:func:`previous_result`), for ``segment_stack``'s ``earlier``.

    Segmenting some planes again (the current plane, or a run stopped early) keeps the
    other planes' labels and rows: segmenting plane 3 of a segmented 5-plane stack
    wiped planes 0, 1, 2 and 4. None when there is nothing to keep (no such layer,
    another shape, one plane), or when the user painted on it: that layer stays as it
    is, and the new result, in a new layer, holds only what is segmented now (its other
    planes would pass for unedited results), or when it was segmented with another
    nuclear channel or other axes than ``settings`` ``(channel, axes)`` now (review
    h_rev10 M4). Labels up to :data:`COPY_HERE_BYTES` are
    copied here, on the main thread: a brush stroke during the job is then wholly in
    the copy or wholly out (the worker copied them, and a stroke could be half in).
    Larger ones (a long time-lapse) are copied by the worker, as before: a copy of
    gigabytes here would freeze the window.
    """
    import numpy as np

    from napari_nuclei_unet.core.own_images import StackResult
    from napari_nuclei_unet.widgets._layers import EDITED_KEY
    from napari_nuclei_unet.widgets._own_layers import result_labels

    source = {} if layer is None else layer.metadata.get(RESULT_KEY) or {}
    data = None if layer is None else result_labels(layer)
    if not source.get("planes") or stack.n_planes < 2 or layer.metadata.get(EDITED_KEY) \
            or tuple(data.shape) != tuple(stack.labels_shape):
        return None
    if "channel" in source and (source["channel"], source.get("image_axes")) != settings:
        return None  # another channel, other axes: its planes would pass for this one's
    labels = np.array(data) if isinstance(data, np.ndarray) and \
        data.nbytes <= COPY_HERE_BYTES else data  # a zarr one (large planes): read there
    return StackResult(labels, layer_table(layer), list(source["planes"]))


#: Earlier labels up to this size are copied on the main thread (about 0.1 s).
COPY_HERE_BYTES = 256 * 2**20


#: A plane of more pixels than this is added as a region of :data:`ADD_REGION` pixels.
ADD_WHOLE_PIXELS = 2048 * 2048
#: The side of the region of a large plane that Add plane adds, around the view's centre.
ADD_REGION = 1024


def region_to_add(viewer: Any, image: Any, stack: Any) -> tuple[slice, slice] | None:
    """The rows and columns of a large plane that Add plane adds; None: the whole plane.

    A correction is stored as one mask per nucleus: a 6000 x 6000 plane (1,087 nuclei)
    took 143 s and 184 MB with no way to stop it (GUI check h_gui19, H1), and a round
    learns from the nuclei the user looked at. Those are where the view is: the region
    of :data:`ADD_REGION` pixels around the centre of the canvas, kept inside the plane.
    It starts on a grid of half its side, so that a view moved a little gives the same
    region, which replaces the one added before (h_rev11 L6).
    """
    import numpy as np

    from napari_nuclei_unet.widgets._scene import camera_of

    height, width = stack.yx_shape
    if height * width <= ADD_WHOLE_PIXELS:
        return None
    point = list(viewer.dims.point)
    point[-2:] = list(camera_of(viewer).center)[-2:]  # viewer.camera: deprecated in 0.9
    centre = image.world_to_data(point)[-2:]  # the layer's own pixels (its full resolution)
    region = []
    for middle, size in zip(centre, (height, width), strict=True):
        side, grid = min(ADD_REGION, size), max(1, ADD_REGION // 2)
        start = int(np.clip(round((float(middle) - side / 2) / grid) * grid, 0, size - side))
        region.append(slice(start, start + side))
    return tuple(region)


def labels_to_add(viewer: Any, target: dict) -> tuple[Any, int, Any] | str:
    """What Add plane adds of ``target`` (:func:`chosen_result`, :func:`own_labels_target`).

    The current plane's labels, copied as they are now (the region of a large plane:
    :func:`region_to_add`), the plane's number and the region (None: all of it); or why
    not, in plain words: the user's own labels without a nucleus there were added as an
    "edited mask" of none (h_rev11 M4).
    """
    import numpy as np

    from napari_nuclei_unet.widgets._own_layers import current_plane, result_labels

    layer, stack = target["layer"], target["stack"]
    labels = target["labels"] if "labels" in target else result_labels(target["result"])
    region = region_to_add(viewer, layer, stack)
    at: tuple = ()
    if len(labels.shape) > 2:
        flat = current_plane(layer, stack, viewer.dims.point, target["axes"])
        at = tuple(stack.plane_index(flat))
    else:
        flat = target["planes"][0] if target["planes"] else 0
    if region is not None or isinstance(labels, np.ndarray) or target.get("own"):
        # as the user sees it now, unpainted; only the region read of a large stack's
        labels = np.array(labels[at + (region or (...,))])
    elif at:
        labels = labels[at]
    if target.get("own") and not labels.any():
        return (f"“{target['result'].name}” has no nuclei on this plane"
                + (" (in the region around the centre of the view)" if region else "")
                + ": draw them, or select the result you corrected.")
    return labels, flat, region


def region_words(name: str, stack: Any, region: tuple[slice, slice]) -> str:
    """What a region added of a large plane is, and how to add more of it."""
    rows, cols = region
    height, width = stack.yx_shape
    return (f"{name} is {height} x {width} pixels: the {rows.stop - rows.start} x "
            f"{cols.stop - cols.start} region around the centre of the view was added (rows "
            f"{rows.start}-{rows.stop - 1}, columns {cols.start}-{cols.stop - 1}). To add "
            "other corrected nuclei, move the view to them and press Add plane again.")


def _add_plane(folder: str, stack: Any, flat: int, channel: Any, labels: Any, sample_id: str,
               note: str, region: tuple[slice, slice] | None = None,
               earlier_id: str | None = None) -> Any:
    """Worker: write one plane (or ``region`` of it) and its labels into a project.

    ``labels`` are those of the plane, or of ``region`` already. Returns the new entry
    and what it replaced: None (nothing), or the earlier correction's note and whether
    its files were kept in the project's ``removed/`` first: always, unless its note
    says it came from the same layer (h_gui33, M1; a correction with no note, made
    through the API or by an older version, was replaced with no copy: review
    h_rev19, M4). ``earlier_id``: the id an earlier version gave the plane (with the
    ``.ome`` of its file's name, review h_rev20, L4): replaced under that id, when the
    project has it and not ``sample_id`` (else both were trained on).
    """
    import numpy as np

    from napari_nuclei_unet.core.finetune import CorrectionStore

    image = np.asarray(stack.plane(flat, channel, region))
    store = CorrectionStore(folder)
    if earlier_id and sample_id not in store and earlier_id in store:
        sample_id = earlier_id
    replaced = None
    if sample_id in store:
        earlier = store.get(sample_id).note
        kept = not earlier or _layer_of(earlier) != _layer_of(note)
        if kept:
            store.keep_copy(sample_id)
        replaced = earlier, kept
    return store.add(sample_id, image, np.asarray(labels), source="label", note=note), replaced


#: On a result layer: a token of its own, named in the notes of the planes added from
#: it. Two layers of one image can have the same name (one deleted, the image segmented
#: again), and a careful correction was replaced with no copy (review h_rev18, M1).
LABELS_TOKEN_KEY = "nuclei_unet_labels_token"


def labels_token(layer: Any) -> str:
    """``layer``'s own token (made the first time it is asked for)."""
    import uuid

    return layer.metadata.setdefault(LABELS_TOKEN_KEY, uuid.uuid4().hex[:8])


def replaced_words(replaced: tuple[str, bool] | None) -> str:
    """How an added plane's message ends, from what :func:`_add_plane` replaced."""
    import re

    if replaced is None:
        return "."
    earlier, kept = replaced
    if not kept:
        return " (it had been added before)."
    where = re.sub(r" \[[0-9a-f]{8}\]", "", earlier)  # the token is no words
    if where.startswith("from layer"):
        return (f" (it had been added before {where}; that correction is kept in the "
                "project's 'removed' folder).")
    return (" (the correction it replaces" + (f", “{where}”," if where else "")  # h_rev19 L3
            + " is kept in the project's 'removed' folder).")


def _layer_of(note: str) -> str:
    """Where an added plane came from: its note ("from layer IMAGE, labels “LABELS” [token]")."""
    from napari_nuclei_unet.widgets._retrain_project import UNEDITED_NOTE

    return note.removesuffix(UNEDITED_NOTE)


def read_from(layer: Any) -> str | None:
    """The local file or folder a lazy layer reads its pixels from (None: none, or in memory).

    For :func:`source_gone_note`: a file moved after napari read it whole changes nothing.
    """
    from napari_nuclei_unet.widgets._own_layers import is_lazy, layer_data

    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not is_lazy(layer_data(layer)) or "://" in str(path) \
            or not Path(path).exists():
        return None
    return str(path)


def with_suffix(path: str, suffix: str, others: tuple[str, ...] = ()) -> str:
    """A file name from a save dialog, with ``suffix`` added when it lacks one.

    Names ending in ``suffix`` or one of ``others`` stay: "cells" -> "cells.csv".
    """
    if path.lower().endswith((suffix, *others)):
        return path
    return path + suffix
