"""Plain names of models, as every front end shows them (no Qt).

:func:`model_name` is the name the docks show ("default model", "v002",
"20261201-0930/best"); :func:`version_project` the fine-tuning project a model is a
version of. The bioimage.io export names its packages from them, from the command line
as from the Model dock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
    from .finetune.versions import version_of_file

    if version_of_file(path) is not None:
        return path.parent.name  # a fine-tuning project's version, as the Retrain dock names it
    if path.stem in {"model", "best", "last", "weights", "checkpoint", "bioimageio", "rdf"}:
        return f"{path.parent.name}/{path.stem}"
    return path.stem


def version_project(model: Any) -> Path | None:
    """The fine-tuning project a model is a version of, or None.

    Only a project's version file (``<project>/versions/vNNN/model.safetensors``) has one.
    """
    from .finetune.versions import version_of_file

    path = getattr(model, "path", None)
    owner = None if path is None else version_of_file(path)
    return None if owner is None else owner[0]
