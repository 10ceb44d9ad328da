"""The Model dock's "Export for bioimage.io…": the model in use, as a package for colleagues.

A bioimage.io package (``.zip``) is what Fiji (deepImageJ), ilastik, QuPath and other
napari installs open. The export is
:func:`~napari_nuclei_unet.bioimageio.export.export_bioimageio`, run as ``nuclei-unet
export MODEL --bioimageio OUT.zip`` in a process of its own, which a worker waits for
(it traces the network and validates the package: seconds). A magicgui dialog asks the
package's name, its authors, its licence and where to save it.

A mixin of :class:`~napari_nuclei_unet.widgets.model_widget.ModelWidget`: it uses the
dock's ``session`` and its ``export_button`` and ``export_status``.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_nuclei_unet.bioimageio.export import (
    NAME_LIMIT,
    default_package_name,
    model_words,
)
from napari_nuclei_unet.widgets._model_names import model_name

#: Licences offered for the weights (SPDX identifiers; bioimage.io asks for one).
LICENSES = ("CC-BY-4.0", "CC0-1.0", "MIT", "BSD-3-Clause", "Apache-2.0")


@dataclass(frozen=True)
class ExportChoice:
    """What the user asked for in the dialog."""

    out: Path
    name: str
    authors: tuple[str, ...]
    license: str
    overwrite: bool = False


def why_not_exportable(loaded: Any) -> str | None:
    """Why the model in use cannot be exported (None: it can).

    Parameters
    ----------
    loaded : LoadedModel or None
        The session's model.
    """
    if loaded is None:
        return "Load a model first (Default model or Checkpoint…)."
    metadata = getattr(loaded, "metadata", None) or {}
    if metadata.get("bioimageio") or metadata.get("train_config_recorded") is False:
        return ("The model in use is a bioimage.io package already: share its own .zip, "
                "or load a napari-nuclei-unet model to export it.")
    if getattr(loaded, "path", None) is None:
        return "The model in use is not saved to a file, so it cannot be exported."
    return None


def refused_words(loaded: Any) -> str:
    """The export dialog's note on a version its round did not make current ("" else)."""
    info = (getattr(loaded, "metadata", None) or {}).get("finetune") or {}
    if not isinstance(info, dict) or info.get("adopted") is not False:
        return ""
    return (" Note: its fine-tuning round did not make it current (its own checks found it "
            "no better, or worse on other images); the package records its scores.")


def default_name(loaded: Any) -> str:
    """A bioimage.io name: ``"Nuclei U-Net (lab-a v002)"`` (as ``nuclei-unet export``'s)."""
    return default_package_name(loaded)


def default_file(loaded: Any, folder: Path | None = None) -> Path:
    """Where the dialog proposes to save: ``~/nuclei-unet-<model>.zip``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_words(loaded)).strip("-.") or "model"
    return (folder or Path.home()) / f"nuclei-unet-{stem}.zip"


def name_problem(name: str) -> str | None:
    """Why bioimage.io would refuse ``name`` (None: it is fine), in plain words."""
    from napari_nuclei_unet.bioimageio.export import NAME_CHARACTERS

    if not name.strip():
        return "Give the package a name, e.g. 'Nuclei U-Net (our lab)'."
    odd = "".join(sorted(set(name) - NAME_CHARACTERS))
    if odd:
        return (f"A bioimage.io name may hold only letters, digits, spaces and _ + - ( ), "
                f"not {odd!r}; e.g. 'Nuclei U-Net (our lab)'.")
    if len(name) > NAME_LIMIT:
        return f"A bioimage.io name may be {NAME_LIMIT} characters long at most."
    return None


def split_authors(text: str) -> tuple[str, ...]:
    """``"Ada Lovelace; Alan Turing"`` -> the two names (``;`` separates, commas stay)."""
    return tuple(part.strip() for part in text.split(";") if part.strip())


class ExportError(ValueError):
    """The export command failed; its message is the command's own plain sentence."""


def export_command(model: str, choice: ExportChoice) -> list[str]:
    """The ``nuclei-unet export`` command line the dock runs for ``choice``."""
    import sys

    command = [sys.executable, "-m", "napari_nuclei_unet.cli", "export", model,
               "--bioimageio", str(choice.out), "--license", choice.license, "--quiet"]
    if choice.name:
        command += ["--name", choice.name]
    for author in choice.authors:
        command += ["--author", author]
    if choice.overwrite:
        command.append("--overwrite")
    return command


#: Seconds an export stopped by an interrupt has to tidy up (its partial file, its
#: temporary folder) before it is killed.
STOP_GRACE_S = 5.0


class ExportRun:
    """The export's process, for stopping it from the main thread (napari closing)."""

    def __init__(self) -> None:
        self.process: Any = None
        self.stopped = False

    def stop(self) -> None:
        """Interrupt the export's process: it removes what it wrote, and the job ends.

        No package and no error are said; the process is killed if it has not ended
        after :data:`STOP_GRACE_S`.
        """
        self.stopped = True
        _interrupt(self.process)


def _interrupt(process: Any) -> None:
    import signal
    import sys

    if process is None or process.poll() is not None:
        return
    if sys.platform == "win32":
        process.terminate()
    else:
        process.send_signal(signal.SIGINT)  # the command's Ctrl-C: it cleans up, exits 130


def _export(model: str, choice: ExportChoice,
            run: ExportRun) -> Generator[None, None, tuple[Path, int] | None]:
    """Write the package with ``nuclei-unet export`` in its own process (a worker's job).

    The first export in napari's own process froze the window for 0.56 s (loading
    bioimageio.spec, onnx and the tracer holds Python's lock;
    ``benchmarks/bench_export_gui.py``); in a process of its own it cannot. Its
    messages go to a temporary file (a pipe read only at the end could fill up). Returns
    the package and its size, or None when ``run`` was stopped.
    """
    import subprocess
    import sys
    import tempfile
    import time

    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as messages:
        process = subprocess.Popen(export_command(model, choice), stdout=subprocess.DEVNULL,
                                   stderr=messages, stdin=subprocess.DEVNULL,
                                   creationflags=flags)
        run.process = process
        try:
            if run.stopped:  # stopped while the process started
                _interrupt(process)
            stopped_at = None
            while process.poll() is None:
                if run.stopped and stopped_at is None:
                    stopped_at = time.monotonic()
                if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_S:
                    process.kill()
                yield None
                time.sleep(0.1)
        finally:
            if process.poll() is None:  # the generator was closed
                process.kill()
            process.wait()
        messages.seek(0)
        err = messages.read()
    if run.stopped:
        return None
    if process.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"the export stopped (exit status {process.returncode})"
        raise ExportError(last.removeprefix("nuclei-unet: error: "))
    return choice.out, choice.out.stat().st_size


def _remember_picked(file_edit: Any) -> set[Path]:
    """The paths ``file_edit``'s file picker returns, from now on (a set it fills).

    A save dialog asks itself whether to replace an existing file; the dock then does
    not ask again (two questions: review h_rev8 L5). magicgui has no public hook for
    what its picker returned, so its dialog function is wrapped; without it (another
    magicgui), the dock asks as for a typed path.
    """
    picked: set[Path] = set()
    show = getattr(file_edit, "_show_file_dialog", None)
    if callable(show):
        def show_and_remember(*args: Any, **kwargs: Any) -> Any:
            result = show(*args, **kwargs)
            if isinstance(result, str) and result:
                picked.add(Path(result).expanduser())
            return result

        file_edit._show_file_dialog = show_and_remember
    return picked


def _export_error(exc: BaseException) -> str | None:
    """The notification for a failed export (None: the default wording)."""
    if isinstance(exc, ExportError):
        return f"The model could not be exported: {exc}"
    return None


class ModelExport:
    """The "Export for bioimage.io…" button of the Model dock."""

    _last_folder: Path | None = None
    _export_run: ExportRun | None = None
    _exported_model: int | None = None  # id() of the model the export line speaks of
    _last_choice: ExportChoice | None = None  # the dialog offers the authors, licence again

    def _update_export_button(self) -> None:
        reason = why_not_exportable(self.session.model)
        busy = self.session.jobs.is_running("export model")
        shown = id(self.session.model)  # not the object: its weights would stay in memory
        if not busy and shown != self._exported_model:  # about another model: forgotten
            self.export_status.setText("")
            self._exported_model = shown
        self.export_button.setEnabled(reason is None and not busy)
        self.export_button.setToolTip(
            reason or "Save the model in use as a bioimage.io package (.zip): Fiji "
            "(deepImageJ), ilastik, QuPath and other napari installs open it.")

    def ask_export(self, again: ExportChoice | None = None,
                   problem: str = "") -> ExportChoice | None:
        """The dialog: name, authors, licence and file (None: cancelled).

        ``again``: what the user typed, offered again with the ``problem`` it had.
        """
        from magicgui.widgets import Container, Dialog, Label, create_widget

        loaded = self.session.model
        last = again or self._last_choice
        intro = Label(value=f"⚠ {problem}" if problem else (
            f"Save {model_name(loaded)} as a bioimage.io package (.zip), which Fiji "
            "(deepImageJ), ilastik, QuPath and napari open. It records the names of the "
            "images the model was trained, validated and fine-tuned on (not their folders "
            "or pixels)." + refused_words(loaded)))
        intro.native.setWordWrap(True)
        intro.native.setMinimumWidth(480)  # wrapped at the form's width, not at a third
        fields = [
            create_widget(again.name if again else default_name(loaded), annotation=str,
                          name="name", label="Name",
                          options={"tooltip": "Shown in the tools that open the package"}),
            create_widget("; ".join(last.authors) if last else "", annotation=str,
                          name="authors", label="Authors",
                          options={"tooltip": "Your name and your colleagues'; separate "
                                              "names with ;"}),
            create_widget(last.license if last else LICENSES[0], name="license",
                          label="Licence",
                          widget_type="ComboBox",
                          options={"choices": LICENSES,
                                   "tooltip": "The licence of the weights (SPDX name)"}),
            create_widget(again.out if again else default_file(loaded, self._last_folder),
                          annotation=Path,
                          name="out", label="Save as",
                          options={"mode": "w", "filter": "*.zip"}),
        ]
        picked = _remember_picked(fields[-1])
        # the introduction above the form, over both its columns (it sat in the fields'
        # column, the labels' column empty beside it: GUI check h_gui14, N10)
        form = Container(widgets=fields)
        form.margins = (0, 0, 0, 0)
        dialog = Dialog(widgets=[intro, form], labels=False, parent=self)
        dialog.native.setWindowTitle("Export the model for bioimage.io")
        # the file's path, whole: the dialog's layout sets its size (SetMinAndMaxSize), so
        # the path's field asks for the room (the dialog was 295 px wide: h_gui13, L3)
        fields[-1].line_edit.native.setMinimumWidth(380)
        from qtpy.QtWidgets import QDialogButtonBox

        for box in dialog.native.findChildren(QDialogButtonBox):
            ok = box.button(QDialogButtonBox.StandardButton.Ok)
            if ok is not None:
                ok.setText("Export")
        if not dialog.exec():
            return None
        values = form.asdict()
        out = Path(str(values["out"])).expanduser()
        if out.suffix.lower() != ".zip":
            out = out.with_name(out.name + ".zip")
        # the file picker asked already whether to replace the file it returned
        return ExportChoice(out, str(values["name"]).strip(),
                            split_authors(str(values["authors"])), str(values["license"]),
                            overwrite=out in picked)

    def _choose_export(self) -> None:
        choice = self.ask_export()
        # a name bioimage.io refuses: the dialog again, with what was typed and why
        while choice is not None and name_problem(choice.name):
            choice = self.ask_export(choice, name_problem(choice.name) or "")
        if choice is not None:
            self.export_model(choice)

    def _confirm_overwrite(self, out: Path) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "Replace the file?",
                                      f"{out} already exists. Replace it?")
        return answer == QMessageBox.StandardButton.Yes

    def export_model(self, choice: ExportChoice) -> Any:
        """Export the model in use as ``choice`` asks, in a worker; the worker (None: not started).

        A name bioimage.io would refuse, or a model that cannot be exported, is said in the
        dock and nothing starts; an existing file is replaced only when the user agrees.
        """
        from dataclasses import replace

        from napari_nuclei_unet.widgets._workers import explain, notify

        loaded = self.session.model
        problem = why_not_exportable(loaded) or name_problem(choice.name)
        if problem is None and choice.out.is_dir():
            problem = f"{choice.out} is a folder: give a file name ending in .zip."
        if problem is not None:
            self.export_status.setText(problem)
            return None
        if choice.out.exists() and not choice.overwrite:
            if not self._confirm_overwrite(choice.out):
                self.export_status.setText("Not exported: the file exists.")
                return None
            choice = replace(choice, overwrite=True)
        self._last_folder = choice.out.parent
        self._last_choice = choice
        shown = model_name(loaded)

        def done(result: tuple[Path, int] | None) -> None:
            if result is None:
                self.export_status.setText("The export was stopped; nothing was written.")
                return
            path, size = result
            text = (f"Exported {shown} to {path} ({size / 1e6:.1f} MB). Open it in Fiji "
                    "(deepImageJ), ilastik, QuPath or napari (Checkpoint… here).")
            if not choice.authors:
                text += " Tip: name the authors next time (the package says "\
                        "“napari-nuclei-unet user”)."
            notify(text)  # first: the dock may have been closed meanwhile
            self.export_status.setText(text)

        def failed(exc: BaseException) -> None:  # the notification fades; the dock says it
            self.export_status.setText(_export_error(exc) or f"Export failed: {explain(exc)}")

        self._export_run = run = ExportRun()
        worker = self.session.jobs.start(
            "export model", _export, str(loaded.path), choice, run,
            on_returned=done, on_errored=failed, on_finished=self._update_export_button,
            action=f"Exporting {shown}", error_message=_export_error,
            viewer=self.viewer, cancel=run.stop,  # closing napari asks, then stops it
        )
        if worker is not None:
            self.export_status.setText(
                f"Exporting {shown} to {choice.out} (the network is traced and checked: "
                "about ten seconds) …")
            self._update_export_button()
        return worker
