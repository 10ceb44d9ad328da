"""How the docks name models and key their results (no Qt).

:func:`model_name` is the plain name every dock shows ("default model", "v002",
"20261201-0930/best"); :func:`model_key` / :func:`results_key` identify the weights a
session's results were made with (``widgets._session``); :func:`diameter_text` says
the nucleus diameter option in words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_nuclei_unet.core.model_names import model_name, version_project
from napari_nuclei_unet.core.paths import same_path

__all__ = ["base_model_words", "diameter_text", "model_key", "model_name", "model_name_in",
           "results_key", "version_project"]


def model_key(model: Any) -> str:
    """Identity of a model for keeping its results: its file and the weights loaded.

    A checkpoint's save token (read from its sidecar when it was loaded, new at every
    save) names the weights themselves, so results made with weights that a running
    training run has since overwritten are never filed under the new ones. Other
    models (a bioimage.io package) use the file's modification time.
    """
    path = getattr(model, "path", None)
    if path is None:
        return f"object-{id(model)}"
    token = (getattr(model, "metadata", None) or {}).get("token")
    if isinstance(token, str) and token:
        return f"{Path(path).resolve()}#{token}"
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return f"{Path(path).resolve()}@{stamp}"


def results_key(model: Any, diameter: float) -> str:
    """Key of a model's results at one nucleus diameter (see :func:`model_key`)."""
    return f"{model_key(model)}|diameter={float(diameter):g}"


def diameter_text(diameter: float) -> str:
    """``"automatic diameter"`` or ``"diameter 30 px"``."""
    return "automatic diameter" if not diameter else f"diameter {float(diameter):g} px"


def model_name_in(model: Any, project: str | Path | None) -> str:
    """:func:`model_name`, naming the project when the model is a version of another one.

    In a project, "v003" reads as this project's v003: the version of another project
    the model in use comes from is ``"v003 of project lab-a"`` there.
    """
    name = model_name(model)
    owner = version_project(model)
    # a bare "v001" (a round's record of its base) is this project's
    if owner is None or project is None or same_path(owner, project):
        return name
    return f"{name} of project {owner.name}"


def base_model_words(base: Any, project: str | Path | None = None) -> str:
    """The model a round started from, as its version records it, named as the docks do.

    ``"the default model"``, ``"v001"``, ``"v003 of project lab-a"``, ``"run-…/best"``;
    "" when the version does not say.
    """
    from types import SimpleNamespace

    if not isinstance(base, str) or not base.strip():
        return ""
    if base == "default":
        return "the default model"
    name = model_name_in(SimpleNamespace(path=Path(base), metadata=None), project)
    return "the default model" if name == "default model" else name
