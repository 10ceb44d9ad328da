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

#: On a result layer: painted on since it was segmented or last saved.
UNSAVED_KEY = "nuclei_unet_unsaved"
#: On a result layer kept by :func:`keep_unsaved_results`: the file it was written to.
KEPT_KEY = "nuclei_unet_kept_at"


def unsaved_dir() -> Path:
    """``<user data dir>/unsaved-labels`` (``NUCLEI_UNET_DATA_DIR`` overrides the data dir)."""
    from napari_nuclei_unet.widgets._retrain_project import data_dir

    return data_dir() / "unsaved-labels"


def _mark_unsaved(event: Any) -> None:
    event.source.metadata[UNSAVED_KEY] = True


def _keep_removed(event: Any) -> None:
    keep_unsaved_results([event.value])


def watch_unsaved(viewer: Any, layer: Any) -> None:
    """Mark a result layer saved, and unsaved once the user paints, fills or erases on it.

    Such a result is kept when it leaves ``viewer`` (napari closing removes every
    layer), with or without a dock open.
    """
    layer.metadata[UNSAVED_KEY] = False
    layer.events.paint.connect(_mark_unsaved)  # no-op when already connected
    viewer.layers.events.removed.connect(_keep_removed)  # the same: once per viewer


def keep_unsaved_results(layers: Any) -> list[Path]:
    """Write every result painted on and not saved into :func:`unsaved_dir`; their paths.

    A result that cannot be written is skipped: the others are still kept.
    """
    from napari_nuclei_unet.widgets._own_layers import result_labels, safe_name
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY, write_labels

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
            write_labels(path, data, axes, layer.name)
        except (OSError, ValueError):
            continue
        layer.metadata[UNSAVED_KEY] = False  # written once
        layer.metadata[KEPT_KEY] = str(path)
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
    return (f"Your corrected labels of {image_name}{which} were not saved; they are kept "
            f"in {folder}: {', '.join(p.name for p in paths[-4:])}. Open one (File > Open, "
            "then right-click > Convert to Labels), select it and press Add plane to "
            "fine-tune on it.")


def set_aside(layer_name: str) -> None:
    """A kept file whose labels were added to a project: moved to ``added/``, not said again."""
    path = kept_file(layer_name)
    if kept_from(layer_name) and path.is_file():
        path.parent.joinpath("added").mkdir(exist_ok=True)
        path.replace(path.parent / "added" / path.name)


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


def saving(layer: Any) -> str:
    """Note that a result is being saved; give the token to :func:`saved`.

    A stroke painted during the save marks it unsaved again, and stays so.
    """
    token = f"saving {time.monotonic()}"
    layer.metadata[UNSAVED_KEY] = token
    return token


def saved(layer: Any, token: str) -> None:
    """The save of :func:`saving` is written: the result is saved, unless painted since."""
    if layer.metadata.get(UNSAVED_KEY) == token:
        layer.metadata[UNSAVED_KEY] = False
