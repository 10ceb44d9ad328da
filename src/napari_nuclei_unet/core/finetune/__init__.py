"""Interactive retraining: a store of corrected masks, fine-tuning rounds, model versions.

A *fine-tuning project* is one folder::

    <project>/
      project.json                  index of the corrections (written atomically)
      corrections/<id>/images/<id>.png
      corrections/<id>/masks/0001.png, 0002.png, ...   one 0/255 PNG per nucleus
      corrections/<id>/correction.json   the correction's own index entry (written before
                                    the folder is moved into place)
      versions/v000/reference.json  the base model the project started from
      versions/v001/model.safetensors + model.json     one folder per fine-tuning round
      removed/<id>-<time>/          corrections taken out of the project (kept, not deleted)
      drafts/<id>.npz               the Retrain dock's auto-saved edits not yet added as
                                    corrections (``widgets/_retrain_project.py``); not
                                    training data: this module never reads them
      .lock                         held while a correction is added or removed

``corrections/`` is a DSB2018-style dataset (``DSBDataset.open(<project>/corrections)``
reads it), so corrected images can be used anywhere a dataset is expected.

Safety rules, because the masks were edited by hand and models take time to train:

- a correction is written into a staging folder inside the project, then renamed into
  place; a correction it replaces is first moved aside as a backup and deleted only once
  the new one and the index are in place;
- adding or removing a correction holds an exclusive lock on ``<project>/.lock``
  (:func:`~napari_nuclei_unet.core.locking.exclusive_lock`; an OS lock, so a crash never
  leaves it held) from the staging folder's creation to the index update. Staging
  folders and backups found while holding the lock are therefore leftovers of a crashed
  save, and only then are they repaired: the backup is restored if the new correction
  never arrived, half-written staging folders are dropped. Each save repairs first;
  opening a store repairs only when the lock is free, so a store opened while another
  one (of this or another process) is saving never touches that save;
- the index is a summary of the ``correction.json`` files: when it disagrees with them
  (a crash between moving a folder and writing the index), opening the store or the
  next save rewrites it from the folders;
- the index is re-read under the lock before it is changed (two stores of one project
  never undo each other's entries), written to a temporary file and renamed over the
  old one;
- a model version folder is never reused: round N+1 is always a new ``vNNN`` folder.

The fine-tuning itself (:func:`finetune`) is a generator like
:func:`~napari_nuclei_unet.core.training.train`: it yields the same
:class:`TrainStep`/:class:`EpochEnd` updates (and :class:`Progress` while scoring) and
returns a :class:`FinetuneResult`. No Qt, no napari: the retraining dock, the CLI
(``nuclei-unet finetune``) and tests all drive it the same way.

Modules, one job each (every public name is importable from this package):

- ``store``: :class:`CorrectionStore` and :class:`Correction`;
- ``versions``: :class:`ModelVersions` and :class:`ModelVersion`;
- ``replay``: the replay/regression set of DSB2018 crops shipped with the package;
- ``trainer``: the round's training loop (BatchNorm statistics frozen; the decoder and
  the encoder's deepest block learn);
- ``results``: :class:`FinetuneResult`, :class:`ScoreChange`, the adoption decision;
- ``view``: :func:`inference_views`, the corrections as inference shows them (resized
  to the training nucleus size, smoothed when dim);
- ``rounds``: :func:`finetune` and the round defaults;
- ``mixing``: :func:`mix_samples`, :func:`weighted_samples`, :func:`auto_ratio`;
- ``own``: :func:`add_labelled_image`, corrections from an image beside its label image;
- ``gate``: :func:`fit_kind_gate`, a :class:`KindGate` that tells images of the
  corrections' kind from those the model knew (measured by the benchmark's
  ``--routed``; rounds do not use it yet).
"""

from __future__ import annotations

from ._common import (  # noqa: F401 - names of the project layout, for other modules
    BACKUP_DIR,
    CORRECTIONS_DIR,
    LOCK_FILE,
    LOCK_TIMEOUT_S,
    PROJECT_FILE,
    PROJECT_FORMAT,
    PROJECT_FORMAT_VERSION,
    REMOVED_DIR,
    ROUND_PREFIX,
    SOURCES,
    STAGING_PREFIX,
    VERSIONS_DIR,
    FinetuneError,
    RoundRunning,
    safe_sample_id,
)
from .gate import KindGate, fit_kind_gate
from .own import LABELS_SUFFIX, add_labelled_image, labelled_pairs, unlabelled_images
from .replay import REPLAY_DIR, replay_samples
from .results import ADOPT_TOLERANCE, NOT_ADOPTED, FinetuneResult, ScoreChange, adoption
from .rounds import (
    FINETUNE_DEFAULTS,
    ROUND_OPTIONS,
    auto_ratio,
    finetune,
    mix_samples,
    weighted_samples,
)
from .store import Correction, CorrectionStore
from .versions import ModelVersion, ModelVersions
from .view import InferenceView, inference_views, transform_sample

__all__ = [
    "ADOPT_TOLERANCE",
    "FINETUNE_DEFAULTS",
    "LABELS_SUFFIX",
    "NOT_ADOPTED",
    "REPLAY_DIR",
    "ROUND_OPTIONS",
    "Correction",
    "CorrectionStore",
    "FinetuneError",
    "RoundRunning",
    "FinetuneResult",
    "InferenceView",
    "KindGate",
    "ModelVersion",
    "ModelVersions",
    "ScoreChange",
    "add_labelled_image",
    "adoption",
    "auto_ratio",
    "finetune",
    "fit_kind_gate",
    "inference_views",
    "labelled_pairs",
    "mix_samples",
    "replay_samples",
    "safe_sample_id",
    "transform_sample",
    "unlabelled_images",
    "weighted_samples",
]
