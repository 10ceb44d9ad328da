"""The Segment dock's outputs: measurements as CSV, labels as TIFF or OME-Zarr, corrections.

*Add plane* adds the current plane and its (corrected) labels to a fine-tuning project.

A mixin of :class:`~napari_nuclei_unet.widgets.segment_widget.SegmentWidget` (as the
Retrain dock's steps are of its dock): it uses the dock's ``result``, ``result_layer``,
``status``, ``session`` and ``viewer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_nuclei_unet.widgets._layers import (
    EDITED_KEY,
    SAMPLE_ID_KEY,
    nuclei,
    plane_edited,
    unwrapped,
    user_labels,
)
from napari_nuclei_unet.widgets._own_layers import PLANE_AT, result_labels
from napari_nuclei_unet.widgets._retrain_project import UNEDITED_NOTE, unwritable_reason
from napari_nuclei_unet.widgets._save_labels import write_labels
from napari_nuclei_unet.widgets._segment_jobs import (
    RESULT_KEY,
    _add_plane,
    chosen_result,
    in_dock_words,
    labels_to_add,
    labels_token,
    layer_features,
    layer_table,
    model_key,
    own_labels_target,
    previous_result,
    region_words,
    replaced_words,
    with_suffix,
)
from napari_nuclei_unet.widgets._unsaved_labels import (
    KEPT_KEY,
    UNSAVED_KEY,
    added,
    added_planes,
    keep_unsaved_results,
    kept_file,
    kept_from,
    not_saved,
    painted_plane,
    saved,
    saving,
    set_aside,
)

ADD_KIND = "add to project"
#: Labels up to this size are copied as Compare is pressed; larger ones are read in its job.
COMPARE_COPY_BYTES = 64 * 2**20
#: Said when a plane is added whose labels were never painted on (a round learns from
#: the differences to what the model does), and noted with the correction.
NOT_EDITED = ("Its labels are the model's result, not corrected: a round learns little "
              "from a plane the model already segments as you want.")
#: How :meth:`SegmentOutputs.say_what_add_adds` begins, and ends a refusal.
OWN_WORDS, OWN_REFUSED = "Add plane adds the labels of ", "(Add plane would refuse it.)"
#: Added to the dock's words of a save or an add once the result is edited (or an edit
#: undone) after it: "saved" no longer held (GUI check h_gui26, L1).
EDITED_SINCE = " You have edited these labels since: that is not saved yet."
#: The same after *Add plane* (review h_rev14, L2).
EDITED_SINCE_ADDED = " You have edited these labels since: press Add plane again to add that."


class SegmentOutputs:
    """Export CSV and Save labels, in a worker; the result the outputs speak of.

    That result follows the one the user chose (:meth:`follow_chosen_result`).
    """

    def follow_chosen_result(self, *_args: Any, selection: bool = True, show: bool = True
                             ) -> None:
        """Make the result chosen the dock's: its table, Save, Export, Compare and Add.

        A result layer selected in the layer list; ``selection`` False: the result of the
        image chosen in the dock (:func:`chosen_result`), shown on the canvas unless
        ``show`` is False. Not while a segmentation runs: its result comes.
        """
        active = self.viewer.layers.selection.active
        if self._worker is not None or selection and (
                active is None or not active.metadata.get(RESULT_KEY)):
            if self._worker is None:  # a job's result comes
                self._enable()  # the user's own labels selected can be added: said
                self.say_what_add_adds()
            return
        if not selection and self._not_the_chosen_images():
            return
        target = chosen_result(self.viewer.layers, self.image.value, self.result_layer,
                               self._shown, selection)
        if isinstance(target, str) or unwrapped(target["result"]) is unwrapped(
                self.result_layer):
            return
        self.result_layer = target["result"]
        self._shown = {key: target[key] for key in ("layer", "stack", "channel", "axes")}
        table = layer_table(self.result_layer)
        self.table.set_table(table)
        # the form and the status line speak of it too (they kept the last image's words,
        # and Compare read as slide2 against slide2's truth: GUI check h_gui17, M1 M2)
        if selection and unwrapped(self.image.value) is not unwrapped(target["layer"]):
            self.image.value = next((c for c in self.image.choices
                                     if unwrapped(c) is unwrapped(target["layer"])),
                                    self.image.value)
        self.truth.value = None  # another image's ground truth scored it (h_gui18, M-A)
        if not selection and show:  # the image chosen: shown, its result selected, as
            # after Segment (Add plane and the brush went by another image's result: h_gui24 N1)
            # unless the user's own labels are selected: Add plane adds those, not the
            # model's result put in their place (GUI check h_gui30, M1)
            own = self.viewer.layers.selection.active if self._own_labels() else None
            self._bring_into_view(target["layer"], self.result_layer)
            if own is not None:
                self.viewer.layers.selection.active = own
        painted = "; painted on since: Export CSV measures it again" \
            if self.result_layer.metadata.get(EDITED_KEY) else ""
        count = f"{nuclei(len(table.get('label', ())))} as segmented{painted}"
        if selection or show:
            self.status.setText(f"The result of {self.shown_words()} is shown ({count}).")
        else:  # the list's own choice (a layer deleted): the canvas is as it was (h_rev13 M1)
            self.status.setText(f"{self.shown_words()} is the image chosen now: Export CSV, "
                                f"Save labels and Add plane use its result ({count}).")
        self._enable()

    def show_chosen_image(self) -> None:
        """The user chose an image without a result: it is shown, and the dock says so.

        The canvas showed another image and its result while the dock spoke of this one
        (GUI check h_gui26, L2; after the first such choice too: review h_rev14, M3).
        """
        image = self.image.value
        if image is None or self._worker is not None or previous_result(
                self.viewer.layers, None, image) is not None:
            return  # a job's result comes, or the image's result was shown
        self._bring_into_view(unwrapped(image), None)
        if not self.status.text().startswith(f"{image.name} has no result yet") or \
                not self.ask_channel():
            self.status.setText(f"{image.name} has no result yet: press Segment.")

    def ask_channel(self) -> bool:
        """Ask for the nuclear channel of the chosen image when it has channels and none is.

        Asked as it is chosen (an image just opened too), not only once Segment is
        pressed (GUI check h_gui31, M1). Returns whether it asked.
        """
        from napari_nuclei_unet.widgets._layer_files import file_axes
        from napari_nuclei_unet.widgets._own_layers import channel_words, layer_stack
        from napari_nuclei_unet.widgets._segment_words import axes_note

        image = self.image.value
        if image is None or previous_result(self.viewer.layers, None, image) is not None:
            return False
        ask = channel_words(image, self.axes.value,
                            None if self.channel.value < 0 else int(self.channel.value))
        if not ask and not self.axes.value.strip() and file_axes(image) is None:
            try:  # guessed axes whose short axis may be channels: before, not after (h_gui40)
                ask = axes_note(image.name, layer_stack(image, ""))
            except ValueError:
                ask = ""
        if ask:
            self.status.setText(f"{image.name} has no result yet: press Segment.{ask}")
        return bool(ask)

    def _bring_into_view(self, image: Any, result: Any) -> None:
        """Show ``image`` and its ``result`` (None: none yet), off a dataset's side by side."""
        from napari_nuclei_unet.widgets._compare_guards import step_aside_for
        from napari_nuclei_unet.widgets._own_layers import bring_into_view

        step_aside_for(self.viewer, image)
        bring_into_view(self.viewer, image, result)

    def _not_the_chosen_images(self) -> bool:
        """An image without a result chosen: the dock lets go of another image's result.

        Its table, Export CSV and Save labels stayed, for the image segmented before
        (GUI check h_gui23, M2). The result stays in the layer list; selected there, it
        is the dock's again. Returns whether it let go.
        """
        image, old = self.image.value, self.result_layer
        if image is None or old is None or unwrapped(self._shown.get("layer")) is unwrapped(
                image) or previous_result(self.viewer.layers, None, image) is not None:
            return False
        self.result_layer, self._shown, self.scores = None, {}, []
        self.table.set_table({})
        self.status.setText(
            f"{image.name} has no result yet: press Segment. The result of "
            f"{(old.metadata.get(RESULT_KEY) or {}).get('source', old.name)} stays in the "
            "layer list: select it there to export, save, compare or add it.")
        self._enable()
        return True

    def _own_labels(self) -> dict | str | None:
        """The user's own Labels layer selected for the chosen image (:func:`own_labels_target`)."""
        channel = None if self.channel.value < 0 else int(self.channel.value)
        if self.truth.value is not None and unwrapped(self.truth.value) is unwrapped(
                self.viewer.layers.selection.active):
            return None  # the ground truth scores; it is never trained on (h_rev11 M4)
        return own_labels_target(self.viewer.layers, (self.image.value, self.axes.value,
                                                      channel, self.viewer.dims.point))

    def say_what_add_adds(self, *_args: Any) -> None:
        """With the user's own Labels layer selected, say what Add plane will add (or why not).

        Said again when the selection, the image or the ground truth changes; the line it
        left said the opposite of what happened (GUI check h_gui21, M1).
        """
        own = self._own_labels() if self._worker is None else None
        text = self.status.text()
        if own is None:
            if text.startswith(OWN_WORDS) or text.endswith(OWN_REFUSED):
                self.status.setText("")
            return
        if isinstance(own, str):
            self.status.setText(f"{own} {OWN_REFUSED}")
            return
        stack, planes = own["stack"], own["planes"]
        if len(planes) > 1:  # labels of every plane: the one the sliders show (h_gui23 M1)
            from napari_nuclei_unet.widgets._own_layers import current_plane

            planes = [current_plane(own["layer"], stack, self.viewer.dims.point, own["axes"])]
        plane = f"{stack.plane_name(planes[0])} " if stack.n_planes > 1 else ""
        name = own["result"].name  # a kept file's planes added already (h_gui25 L1)
        done = added_planes(kept_file(name)) if kept_from(name) else []
        whose = "the sample's label mask" if own["result"].metadata.get(SAMPLE_ID_KEY) \
            else "yours"  # a DSB sample opened with its mask (GUI check h_gui43, L4)
        self.status.setText(f"{OWN_WORDS}“{own['result'].name}” ({whose}) as "
                            f"{own['layer'].name}'s {plane}correction."
                            + (f" Added already: {', '.join(done)}." if done else ""))

    def forget_removed(self, layer: Any) -> None:
        """The dock's result layer was deleted: its scores and table go, and it says so.

        The buttons greyed out while the status line still showed the deleted result's
        scores (GUI check h_gui16, N4).
        """
        if layer is None or unwrapped(layer) is not unwrapped(self.result_layer):
            return  # napari's plugin proxies: compare the layers behind them (h_gui17, M3)
        self.result_layer, self.scores = None, []
        self.table.set_table({})
        keep_unsaved_results([layer])  # painted on, not saved (once, whichever comes first)
        kept = layer.metadata.get(KEPT_KEY)
        self.status.setText(f"“{layer.name}” was deleted: segment the image again to "
                            "measure, save, compare or add it." + (
                                f" Its corrections, not saved, are kept in {kept}." if kept
                                else ""))
        self._enable()

    def compare(self) -> Any:
        """Score the result against the chosen Labels layer, per plane; push to the IoU panel.

        In a worker: a 6000 x 6000 plane held the window for 3.8 s (GUI check h_gui19,
        M2). Returns the worker (None when nothing is compared); ``scores`` holds the
        rows once they are in.
        """
        from napari_nuclei_unet.core.evaluation import ImageRow
        from napari_nuclei_unet.widgets._own_layers import (
            plane_scores,
            same_shape_or_why,
        )
        from napari_nuclei_unet.widgets._workers import notify

        truth, name = self.truth.value, self.shown_name()
        if truth is None or self.result_layer is None or not self._shown \
                or self.session.jobs.is_running("compare"):
            return None  # one at a time: the status named the second's truth (h_rev11 L1)
        stack, compared = self._shown["stack"], self.result_layer
        labels, truth_data = result_labels(self.result_layer), user_labels(truth)  # (M7)
        shape = stack.plane_shape if len(labels.shape) > 2 else ()
        info = self.result_layer.metadata.get(RESULT_KEY) or {}
        planes, laid = info.get("planes") or [0], ""
        if info.get(PLANE_AT) and tuple(truth_data.shape) == tuple(stack.labels_shape):
            truth_data = truth_data[stack.plane_index(planes[0])]  # one plane's result (M6)
        elif shape and tuple(truth_data.shape) == tuple(labels.shape[-2:]):
            # the truth of one plane of a stack: the plane the sliders show (it was
            # offered, then refused: GUI check h_gui36, M3)
            from napari_nuclei_unet.widgets._own_layers import current_plane

            flat = current_plane(self._shown["layer"], stack, self.viewer.dims.point,
                                 self._shown["axes"])
            if flat not in planes:
                self.status.setText(f"Comparing failed: {stack.plane_name(flat)}, the plane "
                                    "shown, was not segmented: segment it, or move the "
                                    "sliders to a segmented plane.")
                return None
            planes, laid = [flat], stack.plane_name(flat)
        why = same_shape_or_why(truth_data, labels)
        if why:
            notify(f"Comparing failed: {why}", warning=True)
            self.status.setText(f"Comparing failed: {why}")
            return None
        # as they are now (lazy or large: in the worker; a 3 x 4200² truth took 0.6 s here)
        truth_data, labels = (np.array(a) if isinstance(a, np.ndarray)
                              and a.nbytes <= COMPARE_COPY_BYTES else a
                              for a in (truth_data, labels))

        def scored(pairs: list) -> None:
            # planes by their axes, as Add plane names them (h_gui21 L3; h_gui36 L3)
            one = f"{name}-{stack.plane_name(planes[0])}" if info.get(PLANE_AT) else name
            ids = [f"{name}-{stack.plane_name(flat)}" if shape else one for flat, _ in pairs]
            # a plane of a stack not annotated: no score (one image's empty truth is one)
            rows = [ImageRow(id=i, modality="own image", iou=s.iou, dice=s.dice, ap50=s.ap50,
                             dsb_score=s.dsb_score, n_true=s.n_true, n_pred=s.n_pred)
                    for i, (_, s) in zip(ids, pairs, strict=True) if s.n_true or not shape]
            # the Scores table is the model in use's: a result another model made stays
            # out of it (an untrained model got its IoU 1.000: review h_rev23, L2)
            ours = self._model_key == model_key("", self.session.model, self.session.project_dir)
            if ours:
                self.session.put_rows(rows, dropped=set(ids) - {r.id for r in rows})  # named
            if unwrapped(self.result_layer) is not unwrapped(compared):
                return  # the dock let go of it meanwhile: not said under another image
            self.scores = rows
            lines = [f"{r.id}: IoU {r.iou:.3f}, DSB {r.dsb_score:.3f} ({r.n_true} nuclei "
                     f"in the ground truth, {r.n_pred} found)" for r in rows[:8]]
            left = len(pairs) - len(rows)
            self.status.setText("\n".join(
                (lines or [f"{truth.name} has no nuclei on the planes segmented: nothing to "
                           "score."])
                + ([f"… {len(rows) - 8} more planes"] if len(rows) > 8 else [])
                + ([f"{left} plane(s) without nuclei in {truth.name} (not annotated) are "
                    "not scored."] if left and rows else [])
                + ([f"{truth.name} is the ground truth of one plane: it was laid on {laid}, "
                    "the plane shown (move the sliders to its own plane)."] if laid else [])
                + ([] if ours or not rows else [
                    "Not put in the Scores table, which holds the model in use's scores: "
                    "this result was made with another model (press Segment to score it)."])))

        def failed(exc: BaseException) -> None:  # the notification fades; the dock says it
            from napari_nuclei_unet.widgets._workers import explain

            self.status.setText(f"Comparing failed: {explain(exc)}")

        self.status.setText(f"Comparing {self.shown_words()} with {truth.name}…")
        self.compare_button.enabled = False  # until the scores are in
        return self.session.jobs.start(
            "compare", plane_scores, truth_data, labels, planes if shape else [0], shape,
            on_returned=scored, on_errored=failed, on_finished=self._enable,
            action="Comparing", viewer=self.viewer)

    def watch_result_words(self, layer: Any) -> None:
        """Keep the dock's words of a save of ``layer`` true once it is edited again."""
        from napari_nuclei_unet.widgets._dock_life import _weak_slot

        layer = unwrapped(layer)  # napari's proxies are new at each access
        if layer not in self._words_watched:  # a result given new data: the same layer
            self._words_watched.add(layer)
            layer.events.paint.connect(_weak_slot(self._on_result_edited))

    def _say_saved(self, text: str, layer: Any, since: str = EDITED_SINCE) -> None:
        """Say ``text`` of ``layer`` saved; ``since`` is added once it is edited again.

        Call it before :func:`saved` / :func:`added` note the job done: a stroke painted
        while the file was written is not in it, and is said at once (review h_rev14, L2).
        """
        import weakref

        layer = unwrapped(layer)
        self.watch_result_words(layer)  # also a result of an earlier dock, own labels
        if layer.metadata.get(UNSAVED_KEY) is True:  # painted while it was written
            self.status.setText(text + since)
            self._saved_words = None
            return
        self.status.setText(text)
        self._saved_words = (text, weakref.ref(layer), since)

    def _on_result_edited(self, event: Any) -> None:
        words = self._saved_words
        if self._dead or words is None or unwrapped(event.source) is not words[1]():
            return
        if self.status.text() == words[0]:  # still says "saved" of this layer
            self.status.setText(words[0] + words[2])
        self._saved_words = None

    def shown_name(self) -> str:
        """The name of the image whose result the dock shows (files are named after it)."""
        stack = self._shown.get("stack")
        return stack.name if stack is not None else "labels"

    def shown_words(self) -> str:
        """That image's name as the layer list shows it ("stack scaled", not "stack_scaled")."""
        layer = self._shown.get("layer")
        return getattr(layer, "name", None) or self.shown_name()  # (GUI check h_gui40, L8)

    def _ask_path(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        base = self.shown_name()
        if what == "csv":
            path, _ = QFileDialog.getSaveFileName(self, "Export measurements",
                                                  f"{base}_measurements.csv", "CSV (*.csv)")
            if path:
                self.export_csv(with_suffix(path, ".csv"), background=True)
        else:
            flat = self.result_layer is not None and \
                len(result_labels(self.result_layer).shape) == 2
            path, _ = QFileDialog.getSaveFileName(  # OME-Zarr is written for 2-D labels
                self, "Save labels", f"{base}_labels.tif",
                "TIFF (*.tif);;OME-Zarr (*.ome.zarr)" if flat else "TIFF (*.tif)")
            if path:
                self.save_labels(with_suffix(path, ".tif", (".zarr",)), background=True)

    def features(self) -> dict:
        """The result layer's features as ``{column: array}`` (without napari's index)."""
        return layer_table(self.result_layer)

    def export_csv(self, path: str | Path, *, background: bool = False) -> Any:
        """Write the features table as CSV; returns the path (None on failure).

        With ``background`` (the dock's button) the file is written in a worker, which
        is returned: a large table never holds the window.
        """
        from napari_nuclei_unet.core.measure import write_csv

        layer, fresh = self.result_layer, {}
        labels = None if layer is None else result_labels(layer)
        if layer is None or not layer.metadata.get(EDITED_KEY) or not self._shown:
            return self._write("Exporting the measurements",
                               f"Measurements of {self.shown_words()} written to", write_csv,
                               (self.features(), path), background, "export csv")
        # painted on since: measured again (its CSV listed erased nuclei: h_gui17, H1; a
        # large image's, block by block: h_gui19, M1)
        stack = self._shown["stack"]  # every plane of a stack: also nuclei painted on one
        planes = list(range(stack.n_planes)) if len(labels.shape) > 2 else \
            (layer.metadata.get(RESULT_KEY) or {}).get("planes") or [0]  # a Cancel left empty
        lazy = not isinstance(labels, np.ndarray)

        def measure_and_write(labels: Any, path: str | Path) -> Path:
            from napari_nuclei_unet.core.own_images import measure_labels

            if lazy and len(labels.shape) > 2:  # a stack of large planes' (h_gui48, H1)
                from napari_nuclei_unet.core.bigmeasure import measure_large_planes

                fresh.update(measure_large_planes(labels, stack, planes))
            elif lazy:  # a large plane's zarr-backed labels (the block path's)
                from napari_nuclei_unet.core.bigimage import measure_large, plane_arrays

                fresh.update(measure_large(labels, plane_arrays(stack, planes[0], None)[1],
                                           plane=planes[0]))
            else:
                fresh.update(measure_labels(stack, labels, planes))
            return write_csv(fresh, path)

        def measured() -> None:  # the table shows what the file holds, now and later
            layer.features = layer_features(fresh)  # shown when chosen again (h_gui18 M-B)
            if unwrapped(self.result_layer) is unwrapped(layer):
                self.table.set_table(fresh)

        return self._write("Measuring the corrected labels and exporting them",
                           f"Measurements of {self.shown_words()} (as corrected) written to",
                           measure_and_write, (labels if lazy else labels.copy(), path),
                           background,
                           "export csv", after=measured)

    def save_labels(self, path: str | Path, *, background: bool = False) -> Any:
        """Save the result labels as TIFF (``.tif``) or OME-Zarr (``.zarr``).

        Returns the path (None on failure); with ``background``, the worker writing it.
        """
        if self.result_layer is None:
            return None
        layer = self.result_layer
        data = result_labels(layer)
        info = layer.metadata.get(RESULT_KEY, {})
        axes = info.get("axes") or "Q" * (data.ndim - 2) + "YX"
        if background and hasattr(data, "copy") and not hasattr(data, "dask"):
            data = data.copy()  # as the user sees it now, whatever they paint next
        return self._write("Saving the labels", f"Labels of {self.shown_words()} saved to",
                           write_labels, (Path(path), data, axes, layer.name, info),
                           background, "save labels", saves=layer)

    def _write(self, action: str, done: str, function: Any, args: tuple,
               background: bool, kind: str, after: Any = None, saves: Any = None) -> Any:
        """Run ``function(*args)`` (a worker with ``background``), and say what it wrote.

        ``saves``: the result layer written whole, saved once it is written (painted on
        and not saved, it is kept when it leaves the viewer).
        """
        from napari_nuclei_unet.widgets._workers import explain, notify, notify_error

        token = None

        def written(path: Any) -> None:
            notify(f"{done} {path}.")
            if saves is not None:
                try:
                    self._say_saved(f"{done} {path}.", saves)
                finally:  # the dock closed meanwhile: still saved (review h_rev20, M1)
                    saved(saves, token)
            else:
                self.status.setText(f"{done} {path}.")
            if after is not None:
                after()

        def failed(exc: BaseException) -> None:  # the notification fades; the dock says it
            if saves is not None:
                not_saved(saves, token)
            self.status.setText(f"{action} failed: {explain(exc)}")

        if background:
            worker = self.session.jobs.start(kind, function, *args, on_returned=written,
                                             on_errored=failed, action=action,
                                             viewer=self.viewer)
            if worker is not None and saves is not None:
                token = saving(saves)  # started: its end comes after this
            return worker
        token = saving(saves) if saves is not None else None
        try:
            path = function(*args)
        except (OSError, ValueError) as exc:
            notify_error(exc, action)
            failed(exc)
            return None
        written(path)
        return path

    # -- a correction for a fine-tuning project --------------------------------------
    def add_to_project(self, project_dir: str | Path | None = None) -> Any:
        """Add the current plane and its (corrected) labels to a fine-tuning project.

        The labels are copied as they are now; the project's files (one mask per
        nucleus: hundreds for a crowded plane, about a second) are written in a worker.
        Returns the worker (None when nothing is added); ``self.added`` is the new
        correction once it is written.
        """
        from napari_nuclei_unet.widgets._own_layers import safe_name
        from napari_nuclei_unet.widgets._workers import notify

        folder = str(project_dir or self.project.value or "")
        if folder in ("", "."):
            notify("Choose the fine-tuning project folder first.", warning=True)
            return None
        # your own labels selected (or why not); else the dock's result (it follows the
        # one chosen), or why a result it could not follow cannot be added
        target = self._own_labels() or \
            chosen_result(self.viewer.layers, None, self.result_layer, self._shown)
        plane = target if isinstance(target, str) else labels_to_add(self.viewer, target)
        why = (f"{folder} is a file, not a folder: choose a folder for the project."
               if Path(folder).exists() and not Path(folder).is_dir() else
               # e.g. a project remembered from before, read-only since
               unwritable_reason(folder, "in 'Fine-tuning project'")
               # no result, the one chosen cannot be added, own labels without nuclei
               or (plane if isinstance(plane, str) else None))
        if why:
            notify(why, warning=True)
            self.status.setText(f"Not added: {why}")  # the notification fades
            return None
        layer, stack, result_layer = target["layer"], target["stack"], target["result"]
        labels, flat, region = plane  # a region of a large plane (h_gui19, H1)
        where = f"-{stack.plane_name(flat)}" + (
            "" if region is None else f"-y{region[0].start}-x{region[1].start}")
        sample_id = safe_name(f"{stack.name}{where}")
        earlier_id = safe_name(f"{safe_name(layer.name, ome=True)}{where}", ome=True)
        self.added = None
        # this plane painted on, or labels of the user's own
        edited = target.get("own", False) or plane_edited(
            result_layer, painted_plane(result_layer, stack.plane_index(flat)))
        token = None

        def done(written: tuple[Any, str | None]) -> None:
            entry, replaced = written
            self.added = entry
            self.session.set_project_dir(folder)  # the Retrain dock shows this project
            self.session.note_project_changed(folder)
            text = (f"{'Added' if replaced is None else 'Replaced'} {entry.id} "
                    + (f"with the labels of “{result_layer.name}” " if target.get("own") else "")
                    + f"({nuclei(entry.n_nuclei)}) in the fine-tuning project {folder}"
                    + replaced_words(replaced))
            if region is not None:
                text += " " + region_words(layer.name, stack, region)  # the layer's name
            text += "" if edited else f" {NOT_EDITED}"  # in the dock too (h_gui41, L3)
            notify(text)
            try:  # the notification fades (GUI check h_gui11, L4)
                self._say_saved(text, result_layer, EDITED_SINCE_ADDED)
            finally:  # the dock closed meanwhile: still added (review h_rev20, M1)
                if target.get("own"):  # a kept file, added: not offered again (once each
                    set_aside(result_layer.name, stack.plane_name(flat),  # of its planes is)
                              stack.n_planes if len(target["labels"].shape) > 2 else 1)
                else:  # not kept on closing as unsaved when all its strokes are in (h_gui23)
                    added(result_layer, token,
                          painted_plane(result_layer, stack.plane_index(flat)), region)

        def failed(exc: BaseException) -> None:  # the notification fades; the dock says it
            not_saved(result_layer, token)
            self.status.setText(f"Not added to the fine-tuning project: {in_dock_words(exc)}")

        worker = self.session.jobs.start(
            ADD_KIND, _add_plane, folder, stack, flat, target["channel"], labels,
            sample_id, f"from layer {layer.name}, labels “{result_layer.name}” "
                       f"[{labels_token(result_layer)}]{'' if edited else UNEDITED_NOTE}",
            region, earlier_id if earlier_id != sample_id else None,
            on_returned=done, on_errored=failed, error_message=lambda exc: (
                f"Not added to the fine-tuning project: {in_dock_words(exc)}"),  # no --channel
            action="Adding to the fine-tuning project", viewer=self.viewer)
        if worker is not None and not target.get("own"):
            token = saving(result_layer)  # started (a second press is refused: h_rev12 M1)
        return worker
