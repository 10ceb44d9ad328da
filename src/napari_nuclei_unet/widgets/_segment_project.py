"""The Segment dock's *Fine-tuning project* field, kept one with the viewer's project.

A mixin of :class:`~napari_nuclei_unet.widgets.segment_widget.SegmentWidget`: it uses
the dock's ``project`` field, ``status``, ``session`` and ``_show_model``. The project
chosen here becomes the viewer's (the Retrain dock's), and a project chosen there is
followed here: the two docks never work in different projects.
"""

from __future__ import annotations

from pathlib import Path

from napari_nuclei_unet.widgets._retrain_project import unwritable_reason


class ProjectField:
    """Mixin: the Segment dock's fine-tuning project, shared with the Retrain dock."""

    _following = False

    def _on_project_chosen(self, folder: str) -> None:
        """The viewer's fine-tuning project changed (in the Retrain dock): follow it."""
        if Path(str(self.project.value)).absolute() != Path(folder):
            self._following = True
            try:
                self.project.value = folder
            finally:
                self._following = False
        if self.status.text().startswith("Not added"):  # it was about the other project
            self.status.setText(f"Fine-tuning project: {folder}.")
        self._show_model()

    def _on_project_field(self, typing: bool = False) -> None:
        """The user chose a project here: it becomes the viewer's (the Retrain dock's).

        When the Retrain dock refuses it (a round is running), it puts its own back as
        the viewer's project, which this field then follows (:meth:`_on_project_chosen`):
        the two docks never work in different projects.
        """
        if self._following:
            return
        if typing and self.project.line_edit.native.hasFocus():
            return  # applied when editing ends
        folder = str(self.project.value or "")
        if folder in ("", ".") or (Path(folder).exists() and not Path(folder).is_dir()):
            return  # said when a plane is added
        unwritable = unwritable_reason(folder, "in 'Fine-tuning project'")
        if unwritable:  # planes added there could not be saved: the project stays
            from napari_nuclei_unet.widgets._workers import notify

            kept = self.session.fine_tuning_project()
            notify(f"{unwritable} The fine-tuning project stays {kept}.", warning=True)
            self._on_project_chosen(str(kept))
            return
        self.session.set_project_dir(folder)
