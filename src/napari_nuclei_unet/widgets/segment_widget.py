"""The "Segment image layer" dock: segment any napari Image layer, measure, export, compare.

Choose an Image layer (grey or RGB; uint8, uint16 or float; stacks and multi-channel
data with their axes, e.g. ``ZCYX``), the nuclear channel, the current plane or all
planes, the nucleus diameter (0 = automatic), the threshold, the model (the session's,
the shipped default, or a file) and TTA, then press **Segment**. Planes are segmented
in 2-D in a background thread with progress, ETA and Cancel; dask/zarr-backed layers
(an OME-Zarr, a big TIFF opened lazily) go block by block through the big-image path
into a zarr-backed Labels layer. The result is a Labels layer named after the input
with a features table (``layer.features``) shown below, exportable to CSV; labels
save as TIFF (or OME-Zarr). **Compare** scores the result against any Labels layer
(per-plane IoU and DSB score, also pushed to the IoU panel), and **Add to
fine-tuning project** stores the current plane with its (corrected) labels.

Programmatic use::

    widget = SegmentWidget(viewer)
    worker = widget.segment()            # the worker; widget.result_layer when done
    widget.export_csv("cells.csv"); widget.save_labels("cells_labels.tif")
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    RadioButtons,
    SpinBox,
)
from qtpy.QtWidgets import QLabel, QProgressBar, QWidget

from napari_nuclei_unet.widgets._dock_life import (
    connect_napari,
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._features_table import FeaturesTable
from napari_nuclei_unet.widgets._image_settings import ImageSettings, ImageSettingsFields
from napari_nuclei_unet.widgets._layer_files import file_axes
from napari_nuclei_unet.widgets._layers import (
    IMAGE_LAYER,
    is_placeholder,
    is_users_layer,
    line_up,
    unwrapped,
)
from napari_nuclei_unet.widgets._own_layers import (
    PLANE_AT,
    layer_yx_shape,
    under_its_result,
)
from napari_nuclei_unet.widgets._progress import eta_text
from napari_nuclei_unet.widgets._scroll import keep_narrow, scrolled_layout
from napari_nuclei_unet.widgets._segment_jobs import (  # noqa: F401 - in_dock_words, as before
    DOCK_WORDS,
    RESULT_KEY,
    _add_plane,
    _job,
    chosen_result,
    earlier_result,
    in_dock_words,
    labels_to_add,
    layer_features,
    layer_table,
    model_key,
    model_words,
    previous_result,
    project_model,
    read_from,
    region_words,
    with_suffix,
)
from napari_nuclei_unet.widgets._segment_outputs import (  # noqa: F401 - as before
    ADD_KIND,
    NOT_EDITED,
    SegmentOutputs,
)
from napari_nuclei_unet.widgets._segment_project import ProjectField
from napari_nuclei_unet.widgets._segment_words import (
    FOCUS_TOOLTIP,
    axes_note,
    channel_hint,
    done_words,
    labels_note,
    left_out_words,
    rgb_note,
    source_gone_note,
    without_in_use,
)
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._unsaved_labels import (
    say_kept_once,
)

if TYPE_CHECKING:
    import napari

KIND = "segment layer"
ALL, CURRENT = "all planes", "current plane"
FIRST_WORDS = "Choose an image layer and press Segment."
#: Repaint the progress at most this often (seconds).
REPAINT_S = 0.1


#: The workflow panel's own image layers (its sample and its prediction pane): chosen
#: only by the user, never because they were added.
class SegmentWidget(SegmentOutputs, ImageSettingsFields, ProjectField, QWidget):
    """Dock widget: segment any Image layer (see the module docstring)."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.result_layer = self.result = None  # the result shown; the last job's result
        self.scores: list = []
        self.added: Any = None  # the correction the last "Add plane…" wrote
        self._saved_words: tuple | None = None  # said of a save: words, layer, then added
        self._words_watched: Any = weakref.WeakSet()  # result layers whose edits it hears
        self._source: dict[str, Any] = {}  # what the running (or last) job segments
        self._shown: dict[str, Any] = {}  # what the shown result was segmented from
        self._dead = False  # the dock was destroyed: a job's late result is not shown
        self._note = ""  # said again with the result (e.g. a doubtful RGB layer)
        self._said_kept: set[str] = set()
        self._model_words = ""  # the model a running segmentation uses, in words
        self._model_key = ""  # ... and its weights (segment_jobs.model_key)
        self._stop = False
        self._listing = False  # the layer lists are being made again (_refresh_choices)
        self._settings = ImageSettings()  # image (and its file) -> (axes, channel)
        self._restoring = False
        self._worker: Any = None  # the running segmentation (stopped when the dock closes)
        self._previous: Any = None  # the layer with the result of the image being segmented
        self._started = self._last_paint = 0.0  # progress: the job's start, the last repaint
        self._build()
        self._connect()

    # -- layout ----------------------------------------------------------------------
    def _build(self) -> None:
        self.image = ComboBox(label="Image", choices=self._image_choices, nullable=True)
        self.axes = LineEdit(label="Axes", value="")
        self.axes.tooltip = ("Axes of the layer's data, e.g. ZCYX or TCYX when one axis "
                             "holds channels. Empty: guessed (…YX, or RGB).")
        self.channel = SpinBox(label="Nuclear channel", value=-1, min=-1, max=255)
        self.channel.tooltip = "0-based channel; -1 = the only channel, or the RGB composite."
        self.planes = RadioButtons(label="Planes", choices=[CURRENT, ALL], value=ALL,
                                   orientation="horizontal")
        self.diameter = FloatSpinBox(label="Diameter (px)", value=0.0, min=0.0, max=1e3, step=1.0)
        self.diameter.tooltip = "Typical nucleus diameter in pixels; 0 = automatic."
        self.threshold = FloatSpinBox(label="Threshold", value=0.5, min=0.05, max=0.95, step=0.05)
        self.model_file = FileEdit(label="Model file", mode="r", value="",
                                   filter="*.safetensors *.zip *.yaml")
        self.model_file.tooltip = ("Empty: the model in use (Model or Retrain dock), or "
                                   "the shipped default model; 'default' names it too.")
        self.tta = CheckBox(text="Test-time augmentation (4x slower)", value=False)
        self.focus = CheckBox(text="tighter if out of focus", value=True)
        self.focus.tooltip = FOCUS_TOOLTIP
        # beside the Threshold it raises: a row of its own overflowed 1280 x 800
        self._threshold_row = Container(label="Threshold", widgets=[self.threshold, self.focus],
                                        layout="horizontal", labels=False)
        self._threshold_row.margins = (0, 0, 0, 0)
        self.segment_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.export_button = PushButton(text="Export CSV…", enabled=False)
        self.save_button = PushButton(text="Save labels…", enabled=False)
        self.truth = ComboBox(label="Ground truth", choices=self._labels_choices, nullable=True)
        self.truth.tooltip = ("A Labels layer of the true nuclei. A label image opened with "
                              "File > Open becomes an Image layer: right-click it in the "
                              "layer list > Convert to Labels.")
        self.compare_button = PushButton(text="Compare", enabled=False)
        self.project = FileEdit(label="Fine-tuning project", mode="d",
                                value=str(self.session.fine_tuning_project()))
        self.project.tooltip = ("Where 'Add plane' stores corrections: the Retrain dock's "
                                "project (changing it here changes it there too).")
        self.add_button = PushButton(text="Add plane to fine-tuning project", enabled=False)
        for combo in (self.image, self.truth):  # a long layer name (a DSB2018 id is 64
            keep_narrow(combo.native)          # characters) widened the dock past its edge
        self.form = Container(widgets=[
            self.image, self.axes, self.channel, self.planes, self.diameter,
            self._threshold_row,
            self.model_file, self.tta,
            Container(widgets=[self.segment_button, self.cancel_button], layout="horizontal",
                      labels=False),
        ])
        self.after = Container(widgets=[
            Container(widgets=[self.export_button, self.save_button], layout="horizontal",
                      labels=False),
            self.truth, self.compare_button, self.project, self.add_button,
        ])
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel(FIRST_WORDS)
        self.status.setWordWrap(True)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.table = FeaturesTable()
        layout = scrolled_layout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.model_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.after.native)
        self.segment_button.changed.connect(lambda *_: self.segment())
        self.cancel_button.changed.connect(lambda *_: self.cancel())
        self.export_button.changed.connect(lambda *_: self._ask_path("csv"))
        self.save_button.changed.connect(lambda *_: self._ask_path("labels"))
        self.compare_button.changed.connect(lambda *_: self.compare())
        self.add_button.changed.connect(lambda *_: self.add_to_project())
        self.truth.changed.connect(lambda *_: self._enable() or self.say_what_add_adds())
        for field in (self.axes, self.channel):  # (h_gui22 N1)
            field.changed.connect(lambda *_: self.say_what_add_adds())
            field.changed.connect(self._on_setting_changed)
        self.axes.native.editingFinished.connect(  # set, not as typed (h_rev25 M16, h_rev26 4)
            lambda: self._line_up_labels(again=True))
        self.image.changed.connect(self._on_image_chosen)
        self.model_file.changed.connect(lambda *_: self._show_model())
        # a typed folder counts when editing ends (Enter, or leaving the field): each
        # keystroke ("/", "/w", ...) is not a project; the Select button's folder at once
        self.project.changed.connect(lambda *_: self._on_project_field(typing=True))
        self.project.line_edit.native.editingFinished.connect(self._on_project_field)

    def _image_choices(self, *_args: Any) -> list:
        import napari

        return [(layer.name, layer) for layer in self.viewer.layers  # the dataset's sample
                if isinstance(layer, napari.layers.Image) and not is_placeholder(layer)
                and (is_users_layer(layer) or layer.name == IMAGE_LAYER)]  # not its copy

    def _labels_choices(self, *_args: Any) -> list:
        """Labels layers that can be the chosen image's ground truth.

        Of its size, and not a result of another image (the list offered every image's
        results: left alone at stop 34).
        """
        import napari

        from napari_nuclei_unet.widgets._own_layers import is_other_images_result

        result, image = unwrapped(self.result_layer), self.image.value
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, napari.layers.Labels) and unwrapped(layer) is not result
                and not is_placeholder(layer) and not (layer.metadata.get(RESULT_KEY) or {})
                .get(PLANE_AT)  # one plane's result is no other plane's truth (h_rev11 L10)
                and (image is None or (layer_yx_shape(layer) == layer_yx_shape(image)
                                       and not is_other_images_result(layer, image)))]

    def _connect(self) -> None:
        events = self.viewer.layers.events
        self._pairs = [(self.session.model_changed, self._show_model),
                       (self.session.project_chosen, self._on_project_chosen)]
        for signal, slot in self._pairs:
            signal.connect(slot)
        self._pairs += connect_napari([(events.inserted, self._on_inserted),
                                       (events.removed, self._on_removed),
                                       (events.renamed, self._refresh_choices),  # h_gui36 L4
                                       (self.viewer.layers.selection.events.active,
                                        self.follow_chosen_result),
                                       (self.viewer.dims.events.current_step,
                                        self.say_what_add_adds)])  # of the plane shown
        on_destroyed(self, self._closed)
        share_the_column_when_shown(self)  # stacked under another dock
        if self.image.value is not None and not is_users_layer(self.image.value):
            self.image.value = None  # the form's first choice, made as it was built
        self._refresh_choices()
        self._show_model()

    def _closed(self) -> None:
        """The dock was closed: its segmentation stops, since no dock would show it."""
        disconnect_all(self._pairs)
        self._dead = True
        worker = self._worker  # plain Python state only: the widget is being destroyed
        if worker is not None and self.session.jobs.running(KIND) is worker:
            from napari_nuclei_unet.widgets._workers import notify

            self._stop = True
            notify("The Segment dock was closed: its segmentation stopped.")

    def _model_path(self) -> str:
        path = str(self.model_file.value or "")
        return "" if path in (".", "") else path

    def model_words(self) -> str:
        """Which model Segment uses, in words (the dock shows it above its status)."""
        return model_words(self._model_path(), self.session.model, self.session.project_dir)

    def _show_model(self, *_args: Any) -> None:
        words = self.model_words()  # not "Model: model v002" (GUI check h_gui31, L3)
        self.model_label.setText(f"Model: {words.removeprefix('model ')}.")
        if self.result is None or not self.status.text().startswith("Segmentation done"):
            return
        # the result line said "(the model in use)" of another model (h_gui33, M3), and
        # "is now" of the very model that made it (h_gui34, N2): compared by weights
        other = self._model_key != self._used_model_key()
        self.status.setText(self._result_line(self.result) + (
            f" The model in use is now {without_in_use(words)}: press Segment to see its "
            "result." if other else ""))

    def _used_model_key(self) -> str:
        """The weights Segment uses now (:func:`model_key`), to compare with a result's."""
        return model_key(self._model_path(), self.session.model, self.session.project_dir)

    def _result_line(self, result: Any) -> str:
        """The status line of the last segmentation's ``result``."""
        pixels = getattr(self._source.get("stack"), "pixels_per_um", None)
        return (done_words(result, self._model_words, pixels, self._source.get("threshold", 0.5))
                + left_out_words(result, self._source.get("stack")) + channel_hint(
            result, self._source.get("stack"), self._source.get("channel")) + self._note
            + source_gone_note(self._source.get("path")))

    def _on_image_chosen(self, *_args: Any) -> None:
        """Its result becomes the dock's; another image's ground truth is not offered."""
        self._restore_settings()
        self._line_up_labels()  # its own labels, opened before it (GUI check h_gui41, L5)
        # the canvas changes for the user's choice, not for the list's own (a layer
        # deleted): that one took the view off a dataset's side by side (h_gui27, L1)
        self.follow_chosen_result(selection=False, show=not self._listing)
        if not self._listing:
            self.show_chosen_image()  # one without a result (h_gui26 L2)
        else:
            self.ask_channel()  # an image just opened: which channel holds nuclei?
        self.truth.reset_choices()  # a ground truth of another size is no longer a choice
        self._enable()
        image = self.image.value
        kept = say_kept_once(image, self._said_kept)  # closed on, unsaved
        if kept or self.status.text().startswith("Your corrected labels of ") or \
                self.status.text() == FIRST_WORDS or self.status.text().endswith(
                    "in Image to see it here."):  # an image chosen (h_gui24 N4)
            none_yet = image is not None and previous_result(self.viewer.layers, None,
                                                             image) is None  # (not blank:
            self.status.setText(kept or (  # GUI check h_gui45, L5)
                f"{image.name} has no result yet: press Segment." if none_yet else ""))
        self.say_what_add_adds()

    def _line_up_labels(self, again: bool = False) -> None:
        """The user's labels of the chosen image lie over its planes (:func:`line_up`)."""
        from napari.layers import Labels

        for layer in [la for la in self.viewer.layers if isinstance(la, Labels)]:
            if is_users_layer(layer):
                line_up(layer, self.image.value, self.axes.value, again)

    def _on_inserted(self, event: Any = None) -> None:
        """List the layers again; an image the user just opened becomes the choice.

        Opening a file is how a user says which image comes next: keeping the earlier
        choice (the workflow panel's sample, say) segmented the wrong image.
        """
        import napari

        self._refresh_choices()
        layer = getattr(event, "value", None)
        if isinstance(layer, napari.layers.Labels) and is_users_layer(layer):
            line_up(layer, self.image.value, self.axes.value)  # a stack's, over its planes
        if isinstance(layer, napari.layers.Image) and is_users_layer(layer) \
                and layer in self.image.choices:
            listing, self._listing = self._listing, True  # napari shows it: the canvas
            try:  # stays as napari made it (a see-through image over a result, say)
                self.image.value = layer
            finally:
                self._listing = listing
            under_its_result(self.viewer, layer)  # opened again: not over its result

    def _on_removed(self, event: Any = None) -> None:
        """List the layers again; deleting the image being segmented stops the job."""
        self._refresh_choices()
        self.forget_removed(getattr(event, "value", None))  # the dock's result: said
        worker, image = self._worker, self._source.get("layer")
        if worker is not None and self.session.jobs.running(KIND) is worker \
                and image is not None and getattr(event, "value", None) is image:
            # said in the dock only: a notification right after a stack is deleted made
            # napari crash under software OpenGL (napari alone does: see the README)
            self._stop = True
            self.status.setText(f"{image.name} was deleted: its segmentation stops.")

    def _refresh_choices(self, *_args: Any) -> None:
        current, listing = self.image.value, self._listing
        self._listing = True  # a choice made here is not the user's (h_gui27, L1)
        try:
            self.form.reset_choices()
            self.after.reset_choices()
            own = [c for c in self.image.choices if c is not None and is_users_layer(c)]
            if self.image.value is None and own:  # the dataset's sample: offered, not
                self.image.value = own[-1]  # chosen (GUI check h_gui36, L2)
            elif current is not None and current in self.image.choices:
                self.image.value = current
        finally:
            self._listing = listing
        self._enable()

    def _enable(self) -> None:
        has = self.result_layer is not None and self.result_layer in self.viewer.layers
        self.export_button.enabled = has
        self.save_button.enabled = has
        self.add_button.enabled = has or self._own_labels() is not None
        self.compare_button.enabled = has and self.truth.value is not None

    # -- segmentation --------------------------------------------------------------------
    def segment(self) -> Any:
        """Segment the chosen layer in a worker; returns the worker (None if refused)."""
        from napari_nuclei_unet.core.bigimage import BIG_PIXELS
        from napari_nuclei_unet.widgets._own_layers import (
            channel_gaps,
            current_plane,
            is_lazy,
            layer_axes,
            layer_data,
            layer_stack,
        )
        from napari_nuclei_unet.widgets._workers import notify, notify_error

        layer = self.image.value
        if layer is None:
            notify("Open or choose an image layer first.", warning=True)
            return None
        try:
            stack = layer_stack(layer, self.axes.value)
            channel = None if self.channel.value < 0 else int(self.channel.value)
            stack.check_channel(channel)
            # the spin boxes keep both in range; SegmentOptions checks them in the worker
            settings = {"diameter": float(self.diameter.value),
                        "threshold": float(self.threshold.value), "tta": bool(self.tta.value),
                        "focus": bool(self.focus.value)}
            plane = current_plane(layer, stack, self.viewer.dims.point, self.axes.value)
        except ValueError as exc:
            message = in_dock_words(exc, str)
            notify_error(ValueError(message), "Segmenting the layer")
            self.status.setText(f"Not segmented: {message}")  # the notification fades
            return None
        h, w = stack.yx_shape
        big = is_lazy(layer_data(layer)) or getattr(layer, "multiscale", False) or \
            h * w >= BIG_PIXELS
        # a large stack's planes, block by block, as one layer; one plane (a 2-D layer
        # of its own) where the labels need a channel gap (a zarr has no such view)
        one = big and bool(channel_gaps(layer_axes(layer, self.axes.value),
                                           getattr(layer, "rgb", False)))
        planes = [plane] if (self.planes.value == CURRENT or one) else None
        if big and stack.n_planes == 1:
            planes = [plane]
        model_path = self._model_path()
        version = None if model_path or self.session.model is not None else \
            project_model(self.session.project_dir)
        if version is not None:  # nothing loaded: the project's model, as Fine-tune does
            model_path = str(version.model)
        self._stop = False
        self._source = {"layer": layer, "stack": stack, "channel": channel,
                        "axes": layer_axes(layer, self.axes.value), "path": read_from(layer),
                        "threshold": settings["threshold"]}
        guessed = not self.axes.value.strip() and file_axes(layer) is None  # (h_gui36 L5)
        self._note = (rgb_note(layer.name, stack) if guessed and channel is None else "") + \
            (axes_note(layer.name, stack) if guessed and not big else "") + \
            ("" if big else labels_note(layer.name, stack, plane, channel)) + \
            (f" Note: {layer.name} is large or read from disk and its channel axis comes "
             f"after a plane axis: only the current plane ({stack.plane_name(plane)}) "
             "is segmented; move the sliders and press Segment for another." if one and
             stack.n_planes > 1 and self.planes.value != CURRENT
             else "")  # 'all planes' did one, unsaid (GUI check h_gui19, L2)
        self._model_words = self.model_words()
        self._model_key = self._used_model_key()
        # each large plane of a stack has its own (2-D) result layer: another plane's
        # result replaced it, and that plane's nuclei were lost
        settings_now = (channel, self._source["axes"])
        # a large stack's plane again, over its unpainted result of every plane: into that
        # result, as any stack's (it went into a 2-D layer drawn over it: h_gui49, L)
        whole = previous_result(self.viewer.layers, self.result_layer, layer, whole=True) \
            if big and planes is not None and stack.n_planes > 1 and not one else None
        into = earlier_result(whole, stack, settings_now) if whole is not None else None
        self._previous = whole if into is not None else previous_result(
            self.viewer.layers, self.result_layer, layer,
            planes if big and stack.n_planes > 1 else None, whole=planes is None)
        earlier = into if big and planes is not None else earlier_result(
            self._previous, stack, settings_now)  # (a plane's own 2-D layer: none)
        worker = self.session.jobs.start(
            KIND, _job, model_path, self.session.model, stack, settings, channel=channel,
            planes=planes, big=big, should_stop=lambda: self._stop, earlier=earlier,
            on_yielded=self._on_progress, on_returned=self._on_returned,
            on_errored=self._on_errored, on_finished=self._on_finished,
            action="Segmenting the image layer", viewer=self.viewer, cancel=self.cancel)
        self._worker = worker
        if worker is not None:
            self._started = time.perf_counter()
            self._last_paint = 0.0
            self.segment_button.enabled = False
            self.cancel_button.enabled = True
            self.progress.setRange(0, 0)
            self.progress.setVisible(True)
            # the last result's table and buttons would speak for this image: cleared
            self.table.set_table({})
            for button in (self.export_button, self.save_button, self.add_button,
                           self.compare_button):
                button.enabled = False
            what = f"{len(planes or range(stack.n_planes))} plane(s)" + \
                (", block by block" if big else "")
            self.status.setText(f"Segmenting {layer.name} ({what})…{self._note}")
        return worker

    def cancel(self) -> None:
        """Ask the running segmentation to stop (planes done so far are kept)."""
        self._stop = True
        self.status.setText("Stopping…")

    def _on_progress(self, update: Any) -> None:
        now = time.perf_counter()
        total, done = getattr(update, "total", 0), getattr(update, "done", 0)
        if self._stop or now - self._last_paint < REPAINT_S and done < total:
            return  # "Stopping…" stays (a late block replaced it: h_gui19, L4)
        self._last_paint = now
        elapsed = now - self._started
        if total == 1 and not done:  # within one plane: how many network steps is not
            self.progress.setRange(0, 0)  # known ahead (busy, not a bar stuck at 0 %)
        elif total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        eta = eta_text(done, total, elapsed, min_done=min(3, total - 1))  # not from 1 block
        eta = f", {eta}" if eta else f", {elapsed:.0f} s so far"
        stage, message = getattr(update, "stage", ""), getattr(update, "message", "")
        # every block done: their seams are joined, ~10 s on 6000 x 6000 (h_gui31, L4)
        joining = stage == "merge" or (stage == "blocks" and total > 1 and done >= total)
        what = "Joining the blocks" if joining else \
            f"{done}/{total} {'blocks' if stage == 'blocks' else 'planes'}"  # h_gui20 N4
        if stage == "number":  # every plane done: not "Joining the blocks" (stop 48)
            what, message = "Numbering the nuclei across the planes", message if done else ""
        self.status.setText(f"{what}{eta}" + (f" — {message}" if message else ""))

    _gone_words = ""  # the image segmented was deleted during the job: said, kept (L4)
    _aside = False  # the job's result was kept aside: another image was chosen meanwhile

    def _on_returned(self, result: Any) -> None:
        from napari_nuclei_unet.widgets._working_copies import release

        image = self._source.get("layer")
        if self._dead and result.labels is not None and image in self.viewer.layers:
            return self._keep_orphan(result)  # the planes done (README check h_readme2)
        if result.labels is not None and image in self.viewer.layers and \
                unwrapped(self.image.value) is not unwrapped(image):
            return self._keep_aside(result)  # another image chosen meanwhile
        if self._dead or image is not None and image not in self.viewer.layers:
            release(self.viewer, result.zarr_path)  # not shown: its working copy goes
            if not self._dead:  # (destroyed during the job: nothing to say it in)
                self._gone_words = f"{image.name} was deleted: its labels were not added."
                self.status.setText(self._gone_words)
            return
        if result.labels is None:
            self.status.setText(result.message or "Cancelled: nothing was segmented.")
            return
        self.result = result
        under = self._show_result(result)
        self.status.setText(self._result_line(result) + under)

    def _keep_orphan(self, result: Any) -> None:
        """A result that arrived after the dock was closed: kept over its image, and said."""
        from napari_nuclei_unet.widgets._segment_result import place_result, show_placed
        from napari_nuclei_unet.widgets._workers import notify

        placed = place_result(self.viewer, self._source, result, self._previous)
        show_placed(self.viewer, self._source, placed)
        done = len(result.planes)
        notify(f"The Segment dock was closed while it worked: the {done} plane(s) it had "
               f"segmented are kept as the layer “{placed.layer.name}”." if result.cancelled
               else f"The Segment dock was closed while it worked: its result is the layer "
               f"“{placed.layer.name}”.")

    def _keep_aside(self, result: Any) -> None:
        """A result whose image is no longer the one chosen: kept, not taken over the dock.

        It filled the table, Export CSV and Add plane under another image's name
        (README check h_readme2, M2); it is shown once its image is chosen again.
        """
        from napari_nuclei_unet.widgets._segment_result import keep_aside

        image = self._source["layer"]
        layer = keep_aside(self.viewer, self._source, result, self._previous)
        if unwrapped(self.result_layer) is unwrapped(layer):  # its earlier result, refilled:
            self.result_layer = None  # not the dock's (its rows filled the table at the end)
        self._aside = True  # the image chosen is shown once the job is over
        self.status.setText(f"{image.name}'s result is ready as the layer “{layer.name}”: "
                            f"choose {image.name} in Image to see it here.")

    def _on_errored(self, exc: BaseException) -> None:
        # the notification fades; the dock keeps saying what happened (not "0/1 planes")
        self.status.setText(f"Segmentation failed: {in_dock_words(exc)}")

    def _on_finished(self) -> None:
        self._worker = None  # the dock follows the result chosen again
        self.segment_button.enabled, self.cancel_button.enabled = True, False
        self.progress.setVisible(False)
        if self.result_layer is None:  # none came: the chosen image's, if it has one
            self.follow_chosen_result(selection=False)
        if self._aside and self.result_layer is None and self.image.value is not None:
            self._bring_into_view(unwrapped(self.image.value), None)  # not the job's image,
            self.viewer.layers.selection.active = unwrapped(self.image.value)  # nor its
            # hidden result under the brush
        self._aside = False
        gone, self._gone_words = self._gone_words, ""
        if gone and not self.status.text().startswith(gone):  # not overwritten by the
            self.status.setText(f"{gone} {self.status.text()}".strip())  # next image's
        elif not self.table.model().rowCount():
            self.table.set_table(layer_table(self.result_layer))  # cancelled (h_gui20 N3)
        self._enable()

    def _show_result(self, result: Any) -> str:
        """Place and show ``result``; returns words on a kept layer shown under it."""
        from napari_nuclei_unet.widgets._segment_result import place_result, show_placed

        placed = place_result(self.viewer, self._source, result, self._previous)
        self.result_layer = placed.layer
        self.watch_result_words(self.result_layer)
        self.table.set_table(result.table)
        self._shown = dict(self._source)  # what "Add plane" and "Compare" speak of
        show_placed(self.viewer, self._source, placed)
        self._refresh_choices()
        return placed.under
