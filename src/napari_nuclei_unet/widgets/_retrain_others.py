"""The Retrain dock's views of a round another view runs (the panel's tab, the dock).

A view open when a round starts elsewhere, or opened during it, says so by its Stop
button, which stops it; when it ends, the view names the version it saved.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer

from napari_nuclei_unet.widgets._retrain_jobs import FINETUNE_JOB, SAVE_JOB


class OtherRounds:
    """Mixin of the Retrain dock: rounds run by another view of the same viewer."""

    #: The versions listed when the last round started (:meth:`_other_round_ended`).
    _before_round: set[str] | None = None
    _dead: bool
    _owns_round: bool
    _stop_event: Any
    progress: Any
    status_label: Any
    versions_table: Any

    def _say_other_round(self, when: str = "before this panel opened") -> None:
        """A round another view runs: say so by Stop (h_gui34 N3).

        For a view opened during it, and for one open when it started (that view kept
        Fine-tune and "not fine-tuning", Stop greyed: GUI check h_gui43, M1).
        """
        if not self._dead and self.is_finetuning() and not self._owns_round:
            self._before_round = self._before_round or {v.name for v in self.versions()}
            self.progress.setFormat(f"a round is running (started {when})")
            self.status_label.setText("Its progress and scores show where it was started; "
                                      "Stop here stops it.")
            self._update_buttons()

    def _on_job_started(self, kind: str) -> None:
        if kind == FINETUNE_JOB and not self._dead:  # whichever view runs it
            self._before_round = {v.name for v in self.versions()}
            # once the view that started it has taken it as its own
            QTimer.singleShot(0, lambda: self._say_other_round("in another panel"))

    def _on_job_ended(self, kind: str) -> None:  # another view's round too (h_gui12, M-A)
        if not self._dead and kind in (FINETUNE_JOB, SAVE_JOB, "training"):
            self._update_buttons()
        if not self._dead and kind == FINETUNE_JOB and not self._owns_round:
            self._other_round_ended()  # another view's round: this one said "Stopping …"
        self._owns_round = self._owns_round and kind != FINETUNE_JOB

    def _other_round_ended(self) -> None:
        """The round another view ran ended: this view said "Stopping …" for good.

        Its new version is found against the versions listed when the round started (or
        when this view opened during it): the round's end refreshed every view's table
        first, and this one said "it saved no version" of a round that saved v001 (GUI
        check h_gui42, M1).
        """
        before = self._before_round
        before = set(self.versions_table.keys()) if before is None else before
        self.progress.setFormat("not fine-tuning")
        self.refresh()
        new = [v.name for v in self.versions() if not v.is_base and v.name not in before]
        if new:  # its table and reason, not the last version's (h_gui35, L3)
            self.versions_table.select_key(new[-1])
            self._on_version_selected()
        stopped = self._stop_event.is_set()  # stopped here or there (GUI check h_gui44, L3)
        self.status_label.setText(
            f"The round has ended: {new[-1]} is listed under '4. Model versions'." if new
            else "Stopped: nothing was saved, the model is unchanged." if stopped
            else "The round has ended: it saved no version.")
