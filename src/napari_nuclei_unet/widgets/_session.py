"""Per-viewer state shared by the plugin's dock widgets.

The widgets are separate npe2 contributions, opened independently, yet they work
on the same things: the open dataset, the loaded samples, the current model, the
cached probability maps and the per-image scores. :func:`session_for` hands every
widget of one viewer the same :class:`Session`; sessions die with their viewer
(a ``WeakKeyDictionary``), so nothing is held in a module-level global model.

Signals are psygnal signals (no Qt). The session owns its rules: every change
goes through one of its methods (``set_model``, ``set_dataset``, ``add_samples``,
``set_current``, ``set_scoring``, ``put_rows``, ``add_predictions``,
``mark_edited``), which emit the signals themselves; the docks call them on the
main thread (worker handlers) and never emit the session's signals.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from napari_nuclei_unet.widgets._dataset_place import (
    _fingerprints,
    _place,
    _place_name,
    same_place,
)
from napari_nuclei_unet.widgets._model_names import (
    diameter_text,
    model_key,
    model_name,
    results_key,
)

if TYPE_CHECKING:
    import numpy as np

    from napari_nuclei_unet.core.dataset import DSBDataset, Sample


@dataclass
class Session:
    """What the plugin's widgets share for one napari viewer.

    Attributes
    ----------
    dataset : DSBDataset or None
        The open dataset (folder, zip or bundled samples).
    samples : dict
        Loaded samples by id (decoded image + labels).
    current_id : str or None
        The sample shown in the viewer.
    model : LoadedModel or None
        The model used for prediction (``core.checkpoint.LoadedModel``).
    probabilities : dict
        Cached predictions by sample id, from the current model at the current
        :attr:`diameter` (``core.segment.NetworkMaps``, or plain probability maps),
        re-thresholded with ``core.predict_score.predicted_labels``.
    diameter : float
        Nucleus diameter (pixels) the predictions are made with; 0 = automatic.
        Results are kept per model *and* diameter (:meth:`set_diameter`).
    threshold : float
        Threshold applied to the probability maps.
    instance_method : str
        How thresholded maps are split into nuclei: ``"watershed"`` (touching
        nuclei split) or ``"components"``. ``rows`` are scored with ``threshold``
        and ``instance_method``.
    rows : dict
        Per-image scores by sample id (``core.evaluation.ImageRow``).
    rows_settings : dict
        ``(threshold, instance_method)`` each row was scored at (a row without an
        entry counts as current); see :meth:`current_rows`.
    kept_results : dict
        Predictions and scores of the models (or diameters) used before, by
        :func:`results_key`; :meth:`set_model` and :meth:`set_diameter` put them
        aside and bring them back.
    kept_datasets : dict
        The :attr:`kept_results` (scores only) and :attr:`sample_stamps` of the
        datasets open before, by where they were opened from; :meth:`set_dataset` puts
        them aside and brings them back.
    sample_stamps : dict
        Fingerprints of the files of the open dataset's scored samples, taken when
        their scores were first kept (``DSBDataset.fingerprints``): a score is shown
        again (reopened, or after a restart) only while its sample's files match.
    edited_labels : dict
        Label masks edited by hand in the viewer, by ``(dataset path, sample id)``;
        kept when the user moves to another sample (``Sample.labels`` stays the
        original). See ``widgets._layers``.
    jobs : WorkerGuard
        The background jobs running for this viewer, by kind ("training",
        "load all", ...), so that a second job of the same kind is refused.
    project_dir : pathlib.Path or None
        The fine-tuning project the docks work in (the Retrain dock's; the Segment
        dock adds planes to it): one per viewer, see :meth:`set_project_dir` and
        :meth:`fine_tuning_project`.
    """

    dataset: DSBDataset | None = None
    samples: dict[str, Sample] = field(default_factory=dict)
    current_id: str | None = None
    model: Any = None
    probabilities: dict[str, Any] = field(default_factory=dict)
    diameter: float = 0.0
    threshold: float = 0.5
    instance_method: str = "watershed"
    rows: dict[str, Any] = field(default_factory=dict)
    rows_settings: dict[str, tuple[float, str]] = field(default_factory=dict)
    kept_results: dict[str, ModelResults] = field(default_factory=dict)
    kept_datasets: dict[str, tuple[dict[str, ModelResults], dict[str, str]]] = field(
        default_factory=dict)
    sample_stamps: dict[str, str] = field(default_factory=dict)
    edited_labels: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    jobs: Any = field(default_factory=lambda: _new_worker_guard())
    # the running fine-tuning round's stop request, shared by every Retrain view: a
    # dock opened again during a round can stop it (GUI check h_gui33, H1)
    finetune_stop: threading.Event = field(default_factory=threading.Event)
    project_dir: Path | None = None
    layer_warm_up: Any = None  # the viewer's layer warm-up (widgets._layer_warm_up), started once
    # once per viewer: large plane results follow the sliders (_own_layers), and their
    # working copies go with their layers (_working_copies)
    results_follow_sliders: bool = False
    working_copies_released: bool = False
    # side by side's panes guarded once (_compare_layers); Compare views open now
    panes_guarded: bool = False
    compare_views: int = 0
    # "why can't I paint the prediction?": "" until a comparison is shown, then "waiting"
    # for the user to select a compare layer, "said" once told (_compare_layers)
    read_only_hint: str = ""

    # emitted with no arguments, or the id concerned
    dataset_changed = Signal()
    samples_changed = Signal()
    current_changed = Signal(str)
    model_changed = Signal()
    # the ids whose prediction maps changed (a frozenset), or None: any may have (another
    # model, diameter or dataset)
    predictions_changed = Signal(object)
    scores_changed = Signal()
    labels_edited = Signal(str)  # sample id whose hand-edited mask was kept
    project_changed = Signal(str)  # folder of a fine-tuning project whose files changed
    project_chosen = Signal(str)  # the fine-tuning project the docks work in

    # ------------------------------------------------------------ the rules
    # Every change of shared state goes through one of these methods, which emit
    # their own signals: the docks never call ``emit()`` on the session's signals.
    def set_model(self, model: Any) -> str:
        """Use ``model`` from now on; the old model's results are kept, not dropped.

        The probability maps and scores of the model in use are put aside under its
        name (:attr:`kept_results`); when ``model`` is one that was used before
        (same file), its kept results come back.

        Parameters
        ----------
        model : LoadedModel
            The new model (``core.checkpoint.LoadedModel``).

        Returns
        -------
        str
            A sentence saying what was kept ("" when there was nothing to keep).
        """
        old = self.model
        kept, recalled = self._switch(model, self.diameter)
        note = ""
        if kept is not None and results_key(old, 0) != results_key(model, 0):
            # (the same weights, e.g. version v000 of the model in use: they stay shown)
            note = (f"The predictions and scores of {model_name(old)} ({kept} scored "
                    "image(s)) are kept: load that model again to see them.")
        self.model_changed.emit()
        return self._done(note, recalled)

    def set_diameter(self, diameter: float) -> str:
        """Predict with nucleus diameter ``diameter`` (pixels, 0 = automatic) from now on.

        Predictions made at another diameter are not those the network would give
        now: like a new model, the current results are put aside (not dropped) and
        those made before at ``diameter`` with this model come back.

        Parameters
        ----------
        diameter : float
            The diameter; 0 = automatic.

        Returns
        -------
        str
            A sentence saying what was kept ("" when there was nothing to keep).
        """
        diameter = float(diameter)
        if diameter == self.diameter:
            return ""
        old = self.diameter
        kept, recalled = self._switch(self.model, diameter)
        note = ""
        if kept is not None:
            note = (f"The predictions and scores at {diameter_text(old)} ({kept} scored "
                    f"image(s)) are kept: set the diameter back to {old:g} to see them.")
        return self._done(note, recalled)

    def _switch(self, model: Any, diameter: float) -> tuple[int | None, tuple[int, int]]:
        """Put the results in use aside, then bring those of (model, diameter) back.

        Returns how many scored images were put aside (None: nothing was kept), and
        how many scores came back from disk (:meth:`_bring_back`).
        """
        kept_rows = self._put_aside()
        self.model, self.diameter = model, float(diameter)
        return kept_rows, self._bring_back()

    def _put_aside(self) -> int | None:
        """Move the results in use to :attr:`kept_results`; how many scored images (or None)."""
        kept_rows = None
        if self.model is not None and (self.probabilities or self.rows):
            self.kept_results[results_key(self.model, self.diameter)] = ModelResults(
                model_name(self.model), dict(self.probabilities), dict(self.rows),
                dict(self.rows_settings), self.dataset,
            )
            kept_rows = len(self.rows)
        self.probabilities.clear()
        self.rows.clear()
        self.rows_settings.clear()
        return kept_rows

    def _bring_back(self) -> tuple[int, int]:
        """Use the kept results of the model and diameter in use, if any.

        Without any in memory, the scores written to disk in an earlier session come
        back (without their prediction maps) for the samples whose files are unchanged;
        returns how many did at the current threshold and split, and at others.
        """
        key = results_key(self.model, self.diameter) if self.model is not None else None
        kept = self.kept_results.pop(key, None) if key is not None else None
        if kept is not None and kept.dataset is self.dataset:
            self.probabilities.update(kept.probabilities)
            self.rows.update(kept.rows)
            self.rows_settings.update(kept.rows_settings)
            return 0, 0
        path = self._scores_file(self.model, self.diameter)
        if path is None or not path.is_file():
            return 0, 0
        from napari_nuclei_unet.widgets._score_memory import load_scores

        rows, settings = load_scores(path, self._stamps_of)
        self.rows.update(rows)
        self.rows_settings.update(settings)
        now = self.settings()
        current = sum(settings.get(i) == now for i in rows)
        return current, len(rows) - current

    def _done(self, note: str, recalled: tuple[int, int] = (0, 0)) -> str:
        note = _sentences(note, _recalled_words(*recalled))
        self.predictions_changed.emit(None)
        self.scores_changed.emit()
        if note:
            from napari_nuclei_unet.widgets._workers import notify

            notify(note)
        return note

    def set_dataset(self, dataset: DSBDataset | None,
                    stamps: dict[str, str] | None = None) -> str:
        """Open ``dataset``; return a sentence saying what became of the results.

        ``stamps``: ``DSBDataset.fingerprints`` of its samples, taken by the opening
        worker (670 samples take 0.25-0.6 s: not on the main thread); None: taken here
        where needed.

        The dataset open already, opened again (same folder or zip), keeps what was
        loaded, predicted and scored (for every model) for its samples whose files are
        unchanged (:attr:`sample_stamps`); the others are read again. Another dataset
        puts the old one's scores aside (every model's; the prediction maps go, they
        would hold hundreds of MB) and brings back those it had when it was open
        before, as :meth:`set_model` does for models; its samples are loaded again
        from the files.
        """
        old, self.dataset = self.dataset, dataset
        reopened = same_place(old, dataset)
        notes = []
        if reopened:
            self._rekey_edits(old, dataset)
            if hasattr(old, "failures") and hasattr(dataset, "keep_failures"):
                # its samples that failed to decode stay marked (a click or Load all tries
                # them again), and Train does not wait for them (GUI check h_gui12, M-C)
                dataset.keep_failures(old.failures())
            for kept in self.kept_results.values():
                kept.dataset = dataset
            changed = self._drop_changed(self.sample_stamps, self._all_tables(), stamps)
            if self.current_id not in self.samples:
                self.current_id = None
            scored = set(self.rows).union(_scored(self.kept_results))
            if self.samples or scored or changed:
                kept = [f"its {len(self.samples)} loaded image(s)"] if self.samples else []
                if scored:  # no "the scores of 0 image(s)" (GUI check h_gui10, N6)
                    kept.append(f"the predictions and scores of {len(scored)} image(s)")
                text = f"{_place_name(dataset)} was opened again"
                if kept:
                    text += ": " + " and ".join(kept) + " are kept"
                notes.append(text + (f"; {changed} image(s) whose files changed since are "
                                     "read again." if changed else "."))
        else:
            self._put_aside()
            scored = _scored(self.kept_results)
            if old is not None and scored:
                for kept in self.kept_results.values():
                    kept.probabilities.clear()
                self.kept_datasets[_place(old)] = (dict(self.kept_results),
                                                   dict(self.sample_stamps))
                notes.append(f"The scores of {_place_name(old)} ({len(scored)} scored "
                             "image(s)) are kept: open it again to see them.")
            self.kept_results.clear()
            self.samples.clear()
            self.sample_stamps = {}
            self.current_id = None
            if dataset is not None and _place(dataset) in self.kept_datasets:
                back, self.sample_stamps = self.kept_datasets.pop(_place(dataset))
                for kept in back.values():
                    kept.dataset = dataset
                self.kept_results.update(back)
                self._drop_changed(self.sample_stamps, self._all_tables(), stamps)
                back_scored = _scored(back)
                if back_scored:
                    notes.append(f"The scores of {_place_name(dataset)} ({len(back_scored)} "
                                 "scored image(s)) are shown again. Its images are read "
                                 "again from the files (Load all for all of them); predict "
                                 "again to see the predictions.")
        if stamps:  # the files as they are now, for the samples not stamped when loaded
            self.sample_stamps = {**stamps, **self.sample_stamps}
        if not reopened:
            notes.append(_recalled_words(*self._bring_back()))
        self.dataset_changed.emit()
        self.samples_changed.emit()
        self.predictions_changed.emit(None)
        self.scores_changed.emit()
        return _sentences(*notes)

    def _all_tables(self) -> list[dict]:
        """Every table by sample id: loaded samples, and each model's maps and scores."""
        tables = [self.samples, self.probabilities, self.rows, self.rows_settings]
        for kept in self.kept_results.values():
            tables += [kept.probabilities, kept.rows, kept.rows_settings]
        return tables

    def _drop_changed(self, stamps: dict[str, str], tables: list[dict],
                      current: dict[str, str] | None = None) -> int:
        """Keep in ``tables`` only the samples whose files are as ``stamps`` recorded.

        A sample without a stamp (loaded or predicted, never scored) goes too: it is
        read again from its files. ``current``: the fingerprints now (None: taken
        here). Returns how many stamped samples, still in the dataset, changed.
        """
        if current is None:
            current = _fingerprints(self.dataset, list(stamps))
        unchanged = {i for i, stamp in stamps.items() if current.get(i) == stamp}
        changed = sum(1 for i in stamps if i in current and i not in unchanged)
        for sample_id in [i for i in stamps if i not in unchanged]:
            del stamps[sample_id]
        for table in tables:
            for sample_id in [i for i in table if i not in unchanged]:
                del table[sample_id]
        return changed

    def _rekey_edits(self, old: Any, new: Any) -> None:
        """Hand edits follow a dataset opened again under another spelling of its path."""
        before, after = str(old.path), str(new.path)
        if before != after:
            for key in [k for k in self.edited_labels if k[0] == before]:
                self.edited_labels[(after, key[1])] = self.edited_labels.pop(key)

    def add_samples(self, samples: Iterable[Sample], stamps: dict[str, str] | None = None
                    ) -> None:
        """Keep decoded samples (``samples_changed``) and their files' fingerprints.

        ``stamps``: ``DSBDataset.fingerprints`` of the samples, taken when they were
        read (in the loading worker); those not given are taken now (not the ones taken
        when the dataset was opened: its files may have changed since).
        """
        samples = list(samples)
        self.samples.update({sample.id: sample for sample in samples})
        if self.dataset is not None:
            stamps = stamps or {}
            unstamped = [sample.id for sample in samples if sample.id not in stamps]
            self.sample_stamps.update(stamps)
            if unstamped:
                self.sample_stamps.update(_fingerprints(self.dataset, unstamped))
        self.samples_changed.emit()

    def set_current(self, sample_id: str) -> None:
        """The viewer now shows ``sample_id`` (``current_changed``)."""
        self.current_id = sample_id
        self.current_changed.emit(sample_id)

    def settings(self) -> tuple[float, str]:
        """``(threshold, instance_method)`` the scores are computed at."""
        return (self.threshold, self.instance_method)

    def set_scoring(self, threshold: float | None = None, instance_method: str | None = None
                    ) -> None:
        """Change the threshold or the split; scores at other settings become stale.

        Stale rows stay in :attr:`rows` until they are scored again, but
        :meth:`current_rows` leaves them out, so no table shows old scores under
        a new threshold.
        """
        if threshold is not None:
            self.threshold = float(threshold)
        if instance_method is not None:
            self.instance_method = instance_method
        self.scores_changed.emit()

    def put_rows(self, rows: Iterable[Any], settings: tuple[float, str] | None = None,
                 dropped: Iterable[str] = ()) -> None:
        """Keep scores computed at ``settings`` (default: the current ones).

        ``dropped``: ids whose earlier scores no longer hold (a plane whose truth was
        erased since: "not annotated", not scored; review h_rev20, L3).
        """
        settings = self.settings() if settings is None else settings
        changed = False
        for gone in dropped:
            changed = self.rows.pop(gone, None) is not None or changed
            self.rows_settings.pop(gone, None)
        for row in rows:
            if self.rows.get(row.id) != row or self.rows_settings.get(row.id) != settings:
                self.rows[row.id] = row
                self.rows_settings[row.id] = settings
                changed = True
        if changed:
            self._remember_scores(self.model, self.diameter, self.rows, self.rows_settings)
            self.scores_changed.emit()

    def add_predictions(self, model: Any, probabilities: dict[str, Any],
                        rows: Iterable[Any] = (), settings: tuple[float, str] | None = None,
                        diameter: float | None = None) -> bool:
        """Keep the maps (and scores) a job computed with ``model`` (at ``diameter``).

        Returns False (nothing kept) when the session's model or diameter changed
        meanwhile (``diameter`` None: the current one).
        """
        if model is not self.model or (diameter is not None and diameter != self.diameter):
            return False
        self.probabilities.update(probabilities)
        self.predictions_changed.emit(frozenset(probabilities))
        rows = list(rows)
        if rows:
            self.put_rows(rows, settings)
        return True

    def keep_for(self, model: Any, probabilities: dict[str, Any],
                 rows: Iterable[Any] = (), settings: tuple[float, str] | None = None,
                 diameter: float | None = None) -> None:
        """Keep results of ``model`` at ``diameter`` that came back after a switch.

        ``diameter`` None: the current one.
        """
        diameter = self.diameter if diameter is None else float(diameter)
        if model is self.model and diameter == self.diameter:
            self.add_predictions(model, probabilities, rows, settings)
            return
        settings = self.settings() if settings is None else settings
        kept = self.kept_results.setdefault(
            results_key(model, diameter),
            ModelResults(model_name(model), {}, {}, {}, self.dataset))
        kept.probabilities.update(probabilities)
        rows = list(rows)
        for row in rows:
            kept.rows[row.id] = row
            kept.rows_settings[row.id] = settings
        if rows:
            self._remember_scores(model, diameter, kept.rows, kept.rows_settings)

    def _remember_scores(self, model: Any, diameter: float, rows: dict[str, Any],
                         settings: dict[str, tuple[float, str]]) -> None:
        """Write the scores of ``model`` on the open dataset to disk (``_score_memory``)."""
        path = self._scores_file(model, diameter)
        if path is not None:
            from napari_nuclei_unet.widgets._score_memory import save_scores

            now = self.settings()  # a row without settings was scored at the current ones
            settings = {sid: settings.get(sid, now) for sid in rows}
            save_scores(path, rows, settings, {"dataset": _place(self.dataset),
                                               "model": str(model.path),
                                               "model_name": model_name(model),  # (h_gui42)
                                               "diameter": float(diameter)},
                        self._stamps_of(rows))

    def _stamps_of(self, ids: Iterable[str]) -> dict[str, str]:
        """:attr:`sample_stamps` of ``ids`` in the open dataset, taken now where missing.

        Ids not in the dataset (the Segment dock's layers) are left out.
        """
        ids = list(ids)
        missing = [i for i in ids if i not in self.sample_stamps]
        if missing:
            self.sample_stamps.update(_fingerprints(self.dataset, missing))
        return {i: self.sample_stamps[i] for i in ids if i in self.sample_stamps}

    def _scores_file(self, model: Any, diameter: float) -> Path | None:
        """Where the scores of ``model`` at ``diameter`` on the open dataset are kept."""
        if self.dataset is None or getattr(model, "path", None) is None:
            return None
        from napari_nuclei_unet.widgets._score_memory import scores_path

        return scores_path(_place(self.dataset), model_key(model), diameter)

    def current_rows(self) -> list[Any]:
        """Scores computed at the current threshold and split (stale ones left out)."""
        now = self.settings()
        return [row for sid, row in self.rows.items() if self.rows_settings.get(sid, now) == now]

    def stale_count(self) -> int:
        """How many scored images wait to be scored again at the current settings.

        Only images with a prediction map can be: scores read back from an earlier
        session at another threshold wait for a prediction, not a re-scoring.
        """
        current = {row.id for row in self.current_rows()}
        return sum(1 for sid in self.rows if sid not in current and sid in self.probabilities)

    def note_project_changed(self, folder: str | Path) -> None:
        """Tell the docks that a fine-tuning project's corrections changed on disk.

        A dock that added to a project (the Segment dock's "Add plane to fine-tuning
        project") calls this; the Retrain dock lists that project again when it is
        the one it shows.
        """
        self.project_changed.emit(str(folder))

    def set_project_dir(self, folder: str | Path, *, remember: bool = True) -> None:
        """Work in the fine-tuning project ``folder`` (``project_chosen`` when it changes).

        ``remember``: reopen it when napari starts next time, whichever dock chose it (a
        project typed in the Segment dock was forgotten: only the Retrain dock saved it).
        """
        folder = Path(folder).expanduser().absolute()
        if folder == self.project_dir:
            return
        self.project_dir = folder
        if remember:
            from napari_nuclei_unet.widgets._retrain_project import remember_project_dir

            try:
                remember_project_dir(folder)
            except OSError as exc:
                from napari_nuclei_unet.widgets._workers import notify_error

                notify_error(exc, "Remembering the project folder")
        self.project_chosen.emit(str(folder))

    def fine_tuning_project(self) -> Path:
        """The project the docks work in: the chosen one, else the one used last time."""
        if self.project_dir is None:
            from napari_nuclei_unet.widgets._retrain_project import last_project_dir

            self.project_dir = Path(last_project_dir()).absolute()
        return self.project_dir

    def mark_edited(self, sample_id: str) -> None:
        """A hand-edited label mask of ``sample_id`` was kept (``labels_edited``)."""
        self.labels_edited.emit(sample_id)


def _sentences(*parts: str) -> str:
    """The non-empty ``parts``, one after the other."""
    return " ".join(part for part in parts if part)


def _scored(results: dict[str, ModelResults]) -> set[str]:
    """The ids scored by any of the models whose results these are."""
    return set().union(*(kept.rows for kept in results.values()))


def _recalled_words(current: int = 0, other: int = 0) -> str:
    """What a session says of scores read back from disk."""
    return _sentences(
        # where to find the panel: said where none was open (README check h_readme2, L2)
        f"The scores of {current} image(s) from an earlier session are shown in the IoU "
        "panel (Plugins > Nuclei U-Net > IoU panel); predict an image again to see its "
        "prediction." if current else "",
        f"{other} more image(s) were scored then at another threshold or split: set it "
        "back to see them." if other else "")


@dataclass
class ModelResults:
    """Predictions and scores of a model that is no longer the one in use."""

    name: str
    probabilities: dict[str, Any]
    rows: dict[str, Any]
    rows_settings: dict[str, tuple[float, str]]
    dataset: Any = None


def _new_worker_guard() -> Any:
    from napari_nuclei_unet.widgets._workers import WorkerGuard

    return WorkerGuard()


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """Return the :class:`Session` of ``viewer``, creating it on first use."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = Session()
        _SESSIONS[viewer] = session
    return session
