"""The Train dock's offer of the last run's model (a mixin of ``TrainWidget``).

A line under the progress bar names the last run ("Last run: run-… (validation IoU
0.690, 2026-12-05 06:31)") with a *Use this model* button, shown while that run's
model is not the one in use: after a run of this session, after another model was
loaded, and after a restart (the newest run under the runs folder,
:func:`._train_runs.newest_run`). During a run the line is hidden (the Curves tab
says how the run goes); when it ends, the line names it.
"""

from __future__ import annotations

import weakref
from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_nuclei_unet.core.paths import same_path
from napari_nuclei_unet.widgets._model_names import model_name
from napari_nuclei_unet.widgets._train_jobs import _load_best
from napari_nuclei_unet.widgets._train_runs import (
    RunModel,
    newest_run,
    run_model,
    run_words,
    validation_ids,
)
from napari_nuclei_unet.widgets._workers import notify


class RunOffer:
    """Mixin: the last run's model and its *Use this model* button.

    The dock provides ``session``, ``best_checkpoint`` (the model of the last run
    that ended in this session), ``output_root()`` and ``device_combo``.
    """

    session: Any
    best_checkpoint: Path | None
    last_run: RunModel | None = None
    _offer_paused = False  # a run is going on: its model is not ready to offer
    _auto_used: RunModel | None = None  # a run's model put in use without the user asking
    _auto_model: Any = None  # ... and the loaded model it became (a weak reference)

    def _build_run_offer(self, layout: QVBoxLayout) -> None:
        self.last_run_row = QWidget()
        row = QHBoxLayout(self.last_run_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.last_run_label = QLabel("")
        self.last_run_label.setWordWrap(True)
        self.last_run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_model_button = QPushButton("Use this model")
        self.use_model_button.setToolTip(
            "Make the last run's model the one used for predictions (the scores of the model "
            "in use now are kept and come back when you load it again)"
        )
        self.use_model_button.clicked.connect(lambda: self.use_trained_model())
        row.addWidget(self.last_run_label, 1)
        row.addWidget(self.use_model_button)
        layout.addWidget(self.last_run_row)
        self.last_run_row.setVisible(False)
        self.session.model_changed.connect(self._show_last_run)

    def find_last_run(self, run_dir: Path | None = None) -> RunModel | None:
        """Find the run whose model to offer, show it, and return it.

        ``run_dir`` (a run that just failed) when it left a model; else the last run
        that ended in this session; else the newest run under the runs folder (after
        a restart), found by a job ("find last run"): None is returned then.
        """
        self._offer_paused = False
        found = run_model(run_dir) if run_dir is not None else None
        if found is None and self.best_checkpoint is not None:
            found = run_model(Path(self.best_checkpoint).parent)
        elif found is None:  # the runs folder is listed in a worker: a network drive is slow
            root = self.output_root()  # type: ignore[attr-defined]
            self.session.jobs.start(
                "find last run", newest_run, root,
                on_returned=partial(self._found_last_run, root),
                action="Looking for the last training run", refuse=False,
            )
            return None
        self._found_last_run(None, found)
        return found

    def _found_last_run(self, root: Path | None, found: RunModel | None) -> None:
        if root is not None and (self.best_checkpoint is not None or self.output_root() != root):
            return  # a run ended, or another runs folder was chosen, meanwhile
        self.last_run = found
        if root is not None and self.best_checkpoint is None and not self._offer_paused:
            self.best_label.setText(  # no run of this panel's yet: not "Best model: —"
                "Best model: —" if found is None  # beside it (h_gui42 L8); another runs
                else f"Best model ({found.run_dir.name}): "  # folder: its own; named by
                f"{'' if found.val_iou is not None else 'the last weights (not validated), '}"
                f"{found.checkpoint}")  # its run, not "the last run's" (a failed run left
        # none: h_rev28); a run stopped before validating, as it was said then (h_gui47, M1)
        self._show_last_run()

    def _pause_offer(self) -> None:
        self._offer_paused = True
        self.last_run_row.setVisible(False)

    def _show_last_run(self) -> None:
        run = self.last_run
        if run is None or self._offer_paused:
            self.last_run_row.setVisible(False)
            return
        in_use = self._run_in_use(run)
        self.last_run_label.setText(f"Last run: {run_words(run)} · " + (  # its toast is cut
            "in use" if in_use else f"not in use ({self._why_not_in_use(run)})"))  # and fades
        # (GUI checks h_gui37; h_gui42, L7; h_gui43, L3: said again as the panel opens)
        self.last_run_label.setToolTip(str(run.checkpoint))
        self.use_model_button.setVisible(not in_use)
        self.last_run_row.setVisible(True)

    def _why_not_in_use(self, run: Any) -> str:
        """Why the last run's model is not the one in use, in words (the model in use now).

        The run's own reason (stopped, not validated) and what is in use (GUI check
        h_gui44, L2: "default model is in use" lost "the" and the run's reason).
        """
        model = self.session.model
        stopped = run.stopped or getattr(getattr(self, "result", None), "cancelled", False)
        own = "a stopped run" if stopped else "not validated" if run.val_iou is None else ""
        shipped = shipped_validation() if model is None else None
        if model is not None and same_path(getattr(model, "path", None), run.checkpoint):
            in_use = "the weights loaded from its file before are in use"  # a resume since
        elif model is not None:
            name = model_name(model)
            in_use = f"{'the ' if name == 'default model' else ''}{name} is in use"
        elif not own and below_shipped(run, shipped):  # (it read as if the run scored it)
            return (f"on the same validation images the default model scores IoU "
                    f"{shipped[0]:.3f}, this run {run.val_iou:.3f}")  # type: ignore[index]
        elif not own and shipped is not None and not same_images(run, shipped):
            in_use = ("the default model is in use; the run was validated on other images: "
                      "compare both in Compare")
        else:
            in_use = f"{self._used_when_none_loaded()} is in use"
        return "; ".join(part for part in (own, in_use) if part)

    def _used_when_none_loaded(self) -> str:
        """What Segment uses with no model loaded: the project's version, else the default.

        It said "the default model" after a restart with v005 chosen for the project (GUI
        check h_gui46, L2).
        """
        from napari_nuclei_unet.widgets._segment_jobs import project_model

        version = project_model(getattr(self.session, "project_dir", None))
        return ("the default model" if version is None
                else f"model {version.name} of the fine-tuning project")

    def _run_in_use(self, run: Any) -> bool:
        """Whether the model in use holds the run's weights as its file holds them now.

        A resume that wrote a better best over the file in use was called "in use", its
        Use button hidden, while the old weights predicted (GUI check h_gui41, M1).
        """
        model = self.session.model
        if not same_path(getattr(model, "path", None), run.checkpoint):
            return False
        loaded = (getattr(model, "metadata", None) or {}).get("token")
        return run.token is None or loaded is None or loaded == run.token

    def use_or_offer_run(self) -> None:
        """After a run of this session: use its model at once, or offer it.

        At once when no model is in use and the run was not stopped and validated at
        least as well as the default model on the same images (or there is no default
        model; on other images nothing says which is better: offered), or when the model
        in use is an earlier run's that was put in use without the user asking and this
        run validated at least as well. Otherwise the model in use (and its scores) is
        never swapped without asking: the *Use this model* line offers the run's model.
        A stopped run (a few minutes of trying) replaced the default model the Segment
        dock named (GUI check h_gui31, M3).
        """
        run, auto, model = self.last_run, self._auto_used, self.session.model
        stopped = bool(getattr(getattr(self, "result", None), "cancelled", False))
        shipped = shipped_validation() if model is None else None
        validated = run is not None and run.val_iou is not None
        if model is None and not stopped and validated and shipped is None:
            self.use_trained_model(announce="no other model was in use")
            return
        if model is None and not stopped and validated and same_images(run, shipped) \
                and not below_shipped(run, shipped):
            self.use_trained_model(announce="in place of the default model")
            return
        if model is None:  # the default model is the one in use (GUI check h_gui36, M2)
            why = "The stopped run's model" if stopped else "The trained model"
            if stopped:
                worse = ""
            elif run is None:  # its description could not be read (review h_rev20, L5)
                worse = " (the run's scores could not be read)"
            elif not validated:  # a throw-away run was used (h_gui37)
                worse = " (the run was not validated)"  # fraction 0, or too few images
            elif below_shipped(run, shipped):
                worse = (f" (on the same validation images it scores IoU {shipped[0]:.3f}, "
                         f"the new model {run.val_iou:.3f})")
            else:  # its IoU on other images says nothing of yours (review h_rev20, M3)
                worse = (" (the run was validated on other images than the default model, so "
                         "which does better on yours is not known: compare both in Compare)")
            notify(f"{why} was not put in use: {self._used_when_none_loaded()} stays in use"
                   f"{worse}. Click 'Use this model' in the Train panel to predict with it.")
            return
        # the very model put in use then (the same file loaded by the user is their
        # choice), validated on the same images (other images, other IoUs: h_rev10 M5)
        auto_model = self._auto_model() if self._auto_model is not None else None
        if (run is not None and auto is not None and run.val_iou is not None
                and model is auto_model and run.val_ids is not None
                and run.val_ids == auto.val_ids
                and (auto.val_iou is None or run.val_iou >= auto.val_iou)):
            self.use_trained_model(announce=f"in place of {auto.run_dir.name}, which an "
                                            "earlier run put in use without asking")
            return
        metadata = getattr(model, "metadata", None) or {}
        in_use = (metadata.get("metrics") or {}).get("val_iou")
        comparable = run is not None and run.val_iou is not None \
            and isinstance(in_use, (int, float)) \
            and run.val_ids is not None and run.val_ids == validation_ids(metadata)
        worse = (f"; on the same validation images the new model scores IoU "
                 f"{run.val_iou:.3f}, the model in use {in_use:.3f}"
                 if comparable and run.val_iou < in_use else "")
        older = ("the weights loaded earlier from the same file stay" if same_path(
            getattr(model, "path", None), getattr(run, "checkpoint", None))
            else f"{model_name(model)} stays")  # not one name twice (GUI check h_gui41, M1)
        notify(f"The trained model was not put in use: click 'Use this model' in the Train "
               f"panel to predict with it ({older} in use{worse}).")

    def use_trained_model(self, *, announce: str = "") -> Any:
        """Load the last run's model and make it the session's model (in a worker).

        ``announce``: why it is used without the user asking (then said in a
        notification, and the model may be replaced by a better run's the same way).

        Returns
        -------
        WorkerBase or None
            The loading worker, or None when there is no trained model.
        """
        run = self.last_run
        if run is None or not run.checkpoint.exists():
            notify("No trained model yet: train first.")
            return None
        self.use_model_button.setEnabled(False)
        config = getattr(self, "_config", None)
        device = config.device if config is not None else "auto"

        def use(loaded: Any) -> None:
            self.session.set_model(loaded)
            self._auto_used = run if announce else None
            # weakly: a model the user replaced is not kept in memory for this rule
            self._auto_model = weakref.ref(loaded) if announce else None
            if announce:
                notify(f"{model_name(loaded)} is now the model used for predictions "
                       f"({announce}); load another in the Model panel to change it.")

        return self.session.jobs.start(
            "load model", _load_best, run.checkpoint, device,
            on_returned=use, on_finished=lambda: self.use_model_button.setEnabled(True),
            action="Loading the trained model", refuse=False,
        )


def same_images(run: RunModel | None, shipped: tuple[float, frozenset | None] | None) -> bool:
    """Whether ``run`` was validated on the images the shipped model was validated on."""
    return run is not None and shipped is not None and run.val_ids is not None \
        and run.val_ids == shipped[1]


def below_shipped(run: RunModel | None, shipped: tuple[float, frozenset | None] | None
                  ) -> bool:
    """Whether ``run`` validated below the shipped model on the same validation images.

    Only the same images compare: a run on the user's own images measured against the
    shipped model's IoU on DSB2018's was held back (review h_rev20, M3).
    """
    return same_images(run, shipped) and run.val_iou is not None \
        and run.val_iou < shipped[0]  # type: ignore[index,union-attr]


def shipped_validation() -> tuple[float, frozenset | None] | None:
    """The shipped model's validation IoU and the ids it was validated on, from its file.

    A finished run replaced it, with no model loaded, whatever the run scored: a
    throw-away run at IoU 0.118 took over from its 0.862 (GUI check h_gui36, M2).
    """
    from napari_nuclei_unet.core.checkpoint import CheckpointError, read_metadata

    try:
        metadata = read_metadata("default")
    except (CheckpointError, OSError):
        return None
    value = (metadata.get("metrics") or {}).get("val_iou")
    return (float(value), validation_ids(metadata)) if isinstance(value, (int, float)) \
        else None
