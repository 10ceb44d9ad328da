"""How the docks name models and key their results (no Qt).

:func:`model_name` is the plain name every dock shows ("default model", "v002",
"20261201-0930/best"); :func:`model_key` / :func:`results_key` identify the weights a
session's results were made with (``widgets._session``); :func:`diameter_text` says
the nucleus diameter option in words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_nuclei_unet.core.paths import same_path


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


def model_name(model: Any) -> str:
    """Plain name of a model: ``"default model"``, ``"v002"``, ``"20261201-0930/best"``.

    Generic file names (``model``, ``best``, ``last``) get their folder's name in
    front, so two models never show the same name. A bioimage.io package is named as
    its ``rdf.yaml`` / ``bioimageio.yaml`` names it ("UNet 2D Nuclei Broad"): the name
    a colleague exported it under, which its file's name may not say (h_gui12 L-E).
    """
    if model is None:
        return "no model"
    package = (getattr(model, "metadata", None) or {}).get("bioimageio")
    if isinstance(package, dict) and str(package.get("name") or "").strip():
        return str(package["name"]).strip()
    path = getattr(model, "path", None)
    if path is None:
        return "model in memory"
    path = Path(path)
    if path.name == "default.safetensors":
        return "default model"
    from napari_nuclei_unet.core.finetune.versions import version_of_file

    if version_of_file(path) is not None:
        return path.parent.name  # a fine-tuning project's version, as the Retrain dock names it
    if path.stem in {"model", "best", "last", "weights", "checkpoint", "bioimageio", "rdf"}:
        return f"{path.parent.name}/{path.stem}"
    return path.stem


def version_project(model: Any) -> Path | None:
    """The fine-tuning project a model is a version of, or None.

    Only a project's version file (``<project>/versions/vNNN/model.safetensors``) has one.
    """
    from napari_nuclei_unet.core.finetune.versions import version_of_file

    path = getattr(model, "path", None)
    owner = None if path is None else version_of_file(path)
    return None if owner is None else owner[0]


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
