"""The Data dock's samples: loaded in the background on a click, then shown.

A mixin of :class:`~napari_nuclei_unet.widgets.data_browser.DataBrowserWidget` (as the
Segment dock's outputs are of its dock): it uses the dock's ``session``, ``viewer``,
``dataset``, ``progress``, ``table``, ``table_model``, ``_pending_id``,
``_sample_worker``, ``_dead``, ``_syncing``, ``_selected_id``, ``_show_loaded_count``
and ``_describe_dataset``; the table's clicks come to :meth:`_on_row_clicked`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from napari_nuclei_unet.widgets._layer_warm_up import after_sample_layers
from napari_nuclei_unet.widgets._layers import sample_stepped_aside, short_id, show_sample

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import DSBDataset, Sample


class SampleShowing:
    """Show the sample chosen in the table: at once when loaded, else after its load."""

    def _request_sample(self, sample_id: str) -> None:
        """Show ``sample_id``: at once when loaded, else after a background load.

        While one sample loads, further requests only replace the pending id, so
        holding the arrow key down never queues dozens of loads.
        """
        self._pending_id = sample_id
        cached = self.session.samples.get(sample_id)
        if cached is not None:
            self._show(cached)
            return
        if self._sample_worker is not None or self.dataset is None:
            return
        dataset = self.dataset
        self._sample_worker = self.session.jobs.start(
            "load sample",
            dataset.load,
            sample_id,
            on_returned=partial(self._on_sample_loaded, dataset),
            on_errored=partial(self._on_sample_failed, dataset, sample_id),
            on_finished=self._on_sample_worker_finished,
            action=f"Loading sample {short_id(sample_id)}",
            refuse=False,
        )

    def _on_row_clicked(self, index: Any) -> None:
        """A click on (or Enter at) the row selected shows its sample again if it was hidden.

        Segmenting the user's own image hides the dataset's sample shown side by side,
        and the notice says to click its row in this table; that row stayed selected,
        so a click on it changed no selection and showed nothing (GUI check h_gui26,
        M1).
        A click on another row is the selection's (:meth:`_on_selection_changed`).
        """
        from napari_nuclei_unet.widgets._data_table import ID_ROLE

        sample_id = index.siblingAtColumn(0).data(ID_ROLE)
        if sample_id is not None and sample_id == self._selected_id() \
                and sample_stepped_aside(self.viewer):
            self._request_sample(sample_id)

    def _on_sample_failed(self, dataset: DSBDataset, sample_id: str, _exc: BaseException
                          ) -> None:
        # said once (the notification); not loaded again until it is chosen again: a
        # sample whose mask is unreadable was decoded again and again, 40 errors a second
        if dataset is self.dataset:  # its row marked, its reason in the status line
            self._describe_dataset(dataset)
        if dataset is self.dataset and self._pending_id == sample_id:
            self._pending_id = None
            if self._selected_id() == sample_id:  # a click on its row tries it again
                self._syncing = True
                try:
                    self.table.clearSelection()
                finally:
                    self._syncing = False

    def _on_sample_loaded(self, dataset: DSBDataset, sample: Sample) -> None:
        if dataset is not self.dataset:
            return  # another dataset was opened meanwhile
        self.session.add_samples([sample])
        self._show_loaded_count()
        if self.table_model.is_marked(sample.id):  # its files were fixed since
            self._describe_dataset(dataset)
        if sample.id == self._pending_id:
            self._show(sample)

    def _on_sample_worker_finished(self) -> None:
        self._sample_worker = None
        pending = self._pending_id
        if pending is not None and pending not in self.session.samples:
            if self.dataset is not None and self.table_model.row_of(pending) is not None:
                self._request_sample(pending)

    def _show(self, sample: Sample, *, wait: bool = True) -> None:
        # the sample layers are still being made (a dataset was just opened): the first
        # image waits for them (8 s at most) rather than freeze the window making them
        if wait and after_sample_layers(self.viewer, partial(self._show_when_made,
                                                             sample.id)):
            self.progress.setFormat("preparing the image display …")
            return
        show_sample(self.viewer, sample)
        self.session.set_current(sample.id)

    def _show_when_made(self, sample_id: str) -> None:
        if self._dead:
            return
        self._show_loaded_count()  # not "preparing the image display" any more
        sample = self.session.samples.get(sample_id)
        if sample is None or sample_id != self._pending_id:
            return  # another dataset, or another image chosen meanwhile
        self._show(sample, wait=False)
