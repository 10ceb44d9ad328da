"""A round that would only make its project's newest version again.

A round is seeded: the same starting model, corrections, settings and images train the
same weights. Pressing Fine-tune again after a round that was not made current made
identical versions, 40 s and 7.5 MB each (GUI check h_gui11, L2), and so did the
README's "a next round, from it" on the command line (README check h_readme1, M5).
Each round records :func:`round_key` of its inputs in its version
(``finetune(inputs_key=...)``); :func:`repeated_round` finds the version a round with
the same key would only make again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def model_stamp(base: Any) -> Any:
    """What names the starting model's weights: its save token, else its file, size, time.

    The token is new at each save (a training run's next ``best`` renews it) and the
    project's ``v000`` copy of a model keeps it.
    """
    from ..checkpoint import CheckpointError, default_model_path, read_metadata
    from ..checkpoint_commit import weights_path

    model = getattr(base, "model", base)
    path = default_model_path() if str(model) == "default" else weights_path(model)
    try:
        started: Any = read_metadata(path).get("token")
    except (CheckpointError, OSError, ValueError):
        started = None
    if not started:
        try:
            stat = Path(path).stat()
            started = [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            started = [str(path)]
    return started


def round_key(base: Any, corrections: Sequence[Any], overrides: dict[str, Any],
              ratio: float | None, original_ids: Sequence[str], diameter: Any,
              more: dict[str, Any] | None = None) -> str:
    """A key of everything a round trains from.

    Parameters
    ----------
    base : Any
        The starting model (:func:`model_stamp`).
    corrections : sequence
        What tells each correction as it is now: the Retrain dock gives ``[id, saved
        time, kept aside]`` of its project's entries, the command line
        :func:`samples_fingerprint` of the images it read.
    overrides : dict
        The round's settings; the threads and the device are left out (they do not
        change the weights).
    ratio, original_ids, diameter
        The share of corrections, the original images' ids, the nucleus diameter.
    more : dict, optional
        Anything else the round depends on (the command line's images kept aside,
        ``--eval-data``, ``--no-replay``).

    Returns
    -------
    str
        A SHA-256 hex digest, also of the plugin's version (its round defaults).
    """
    from ... import __version__

    inputs = {
        "plugin": __version__,
        "model": model_stamp(base),
        "corrections": sorted(list(c) for c in corrections),
        "settings": {k: v for k, v in overrides.items() if k not in ("num_threads", "device")},
        "ratio": ratio,
        "original": sorted(original_ids),
        "diameter": diameter if isinstance(diameter, str) else float(diameter or 0.0),
    }
    if more:
        inputs["more"] = more
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def samples_fingerprint(samples: Sequence[Any] | None) -> list[list[str]]:
    """``[id, digest of its image and labels]`` of each sample (the images' own pixels)."""
    rows = []
    for sample in samples or ():
        digest = hashlib.sha256()
        for array in (sample.image, getattr(sample, "labels", None)):
            if array is not None:
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(array.tobytes())
        rows.append([str(sample.id), digest.hexdigest()])
    return rows


def repeated_round(versions: Sequence[Any], key: str) -> Any:
    """The project's newest version when a round with inputs ``key`` would only make it again.

    None when the newest version was made current (the next round starts from it), or
    was made from other inputs.
    """
    newest = next((v for v in reversed(versions) if not v.is_base and not v.unreadable), None)
    if newest is None or newest.adopted or newest.info.get("inputs_key") != key:
        return None
    return newest
