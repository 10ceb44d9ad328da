"""The retraining dock's files: the remembered project folder and unsaved drafts.

No Qt and no napari here (plain files), so the rules are easy to test:

- the project folder last used is remembered in a small JSON file in the user
  config dir (``<config>/retrain.json``), so the dock reopens it next time;
- a mask being corrected but not yet added to the training set is kept as a
  *draft* in ``<project>/drafts/<id>.npz`` (written to a temporary file, then
  renamed into place), so a crash or a switch to another image never loses it.
  Drafts are not training data: ``core.finetune.CorrectionStore`` ignores them.

``NUCLEI_UNET_CONFIG_DIR`` and ``NUCLEI_UNET_DATA_DIR`` override the platform
folders (tests use them so that they never touch the user's files).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write, atomic_write_bytes

APP_NAME = "napari-nuclei-unet"
SETTINGS_NAME = "retrain.json"
DRAFTS_DIR = "drafts"
#: What a correction started from: the label mask, or the model's prediction.
START_LABEL, START_PREDICTION = "label mask", "prediction"
#: Ends the note of a plane the Segment dock added without a correction painted on it.
UNEDITED_NOTE = " (not edited)"


def config_dir() -> Path:
    """The user config folder of the plugin (``NUCLEI_UNET_CONFIG_DIR`` overrides it)."""
    override = os.environ.get("NUCLEI_UNET_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """The user data folder of the plugin (``NUCLEI_UNET_DATA_DIR`` overrides it)."""
    override = os.environ.get("NUCLEI_UNET_DATA_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def default_project_dir() -> Path:
    """``<user data dir>/projects/default`` (:func:`data_dir`)."""
    return data_dir() / "projects" / "default"


#: Said when a project folder that cannot be written to is refused.
READ_ONLY_HINT = (" To use one of its models, open its versions/vNNN/model.safetensors with "
                  "the Model dock's 'Checkpoint…', or copy the project folder to a place "
                  "you can write to.")


def unwritable_reason(folder: str | os.PathLike, how: str = "with 'Change…'") -> str | None:
    """Why a fine-tuning project cannot be written in ``folder``, in plain words, or None.

    A file is made and removed in the folder (or, when it does not exist yet, in the
    nearest folder above it that does), and in its ``versions`` folder: that is what a
    round writes. ``how``: where the dock asking chooses another folder.
    """
    from napari_nuclei_unet.widgets._workers import write_problem

    folder = Path(folder)
    for probe in [p for p in (folder, folder / "versions") if p.is_dir()] or [folder]:
        problem = write_problem(probe)
        if problem:
            return (f"The project folder {folder} cannot be written to ({problem}): a round "
                    "would train and then fail to save. Choose another project folder "
                    f"{how}.")
    return None


def read_setting(file_name: str, key: str) -> str | None:
    """A text remembered under ``key`` in ``<config>/<file_name>``, or None.

    A missing or unreadable settings file is not an error.
    """
    try:
        data = json.loads((config_dir() / file_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def write_setting(file_name: str, key: str, value: str) -> None:
    """Remember ``value`` under ``key`` in ``<config>/<file_name>`` (its other keys kept).

    Raises
    ------
    OSError
        When the config folder is not writable.
    """
    path = config_dir() / file_name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[key] = value
    text = json.dumps(data, indent=2).encode("utf-8")
    atomic_write_bytes(path, text)


def last_project_dir() -> Path:
    """The project folder used last time, or :func:`default_project_dir` the first time."""
    project = read_setting(SETTINGS_NAME, "project")
    return Path(project).expanduser() if project else default_project_dir()


def remember_project_dir(project: str | os.PathLike) -> None:
    """Remember ``project`` as the folder to reopen next time.

    Raises
    ------
    OSError
        When the config folder is not writable.
    """
    write_setting(SETTINGS_NAME, "project", str(Path(project).expanduser().absolute()))


@dataclass(frozen=True)
class Draft:
    """A correction in progress, not yet in the training set.

    Attributes
    ----------
    sample_id : str
        The image it belongs to.
    labels : numpy.ndarray
        ``(H, W)`` integer labels as painted so far.
    start : str
        What the user started from: :data:`START_LABEL` or :data:`START_PREDICTION`.
    saved : str
        ISO 8601 UTC time of the save.
    """

    sample_id: str
    labels: np.ndarray
    start: str
    saved: str


class DraftStore:
    """Unsaved corrections of a project, one ``drafts/<id>.npz`` file per image.

    Parameters
    ----------
    project_dir : str or os.PathLike
        The fine-tuning project folder.
    """

    def __init__(self, project_dir: str | os.PathLike) -> None:
        self.path = Path(project_dir).expanduser().absolute() / DRAFTS_DIR

    def _file(self, sample_id: str) -> Path:
        from napari_nuclei_unet.core.finetune import safe_sample_id

        return self.path / f"{safe_sample_id(sample_id)}.npz"

    def save(self, sample_id: str, labels: np.ndarray, start: str) -> Path:
        """Write (or replace) the draft of ``sample_id`` crash-safely.

        Parameters
        ----------
        sample_id : str
            The image.
        labels : numpy.ndarray
            ``(H, W)`` integer labels.
        start : str
            :data:`START_LABEL` or :data:`START_PREDICTION`.

        Returns
        -------
        pathlib.Path
            The draft file.
        """
        path = self._file(sample_id)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        labels = np.asarray(labels)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a path would get ".npz" appended
                np.savez_compressed(handle, labels=labels, sample_id=np.array(sample_id),
                                    start=np.array(start), saved=np.array(stamp))

        atomic_write(path, write)
        return path

    def load(self, sample_id: str) -> Draft | None:
        """The draft of ``sample_id``, or None (also for an unreadable file)."""
        path = self._file(sample_id)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return Draft(str(data["sample_id"]), np.array(data["labels"]),
                             str(data["start"]), str(data["saved"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # cut short or damaged outside (a sync tool): h_rev22, L2

    def has(self, sample_id: str) -> bool:
        """Whether ``sample_id`` has a draft."""
        return self._file(sample_id).is_file()

    def delete(self, sample_id: str) -> None:
        """Forget the draft of ``sample_id`` (no error when there is none)."""
        self._file(sample_id).unlink(missing_ok=True)

    def ids(self) -> list[str]:
        """Ids (file stems) of the drafts, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(p.stem for p in self.path.glob("*.npz") if not p.name.startswith("."))


def local_time(stamp: str, *, short: bool = False) -> str:
    """An ISO 8601 time in local time ("" when it cannot be read).

    Parameters
    ----------
    stamp : str
        ISO 8601 time, e.g. ``"2026-11-25T15:18:02+00:00"``.
    short : bool, optional
        ``"15:18"`` today, ``"25 Nov 15:18"`` this year, else ``"2025-11-25"``;
        otherwise always ``"2026-11-25 15:18"``.

    Returns
    -------
    str
    """
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    if not short:
        return moment.strftime("%Y-%m-%d %H:%M")
    now = datetime.now(moment.tzinfo)
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    if moment.year == now.year:
        return f"{moment.day} {moment.strftime('%b %H:%M')}"
    return moment.strftime("%Y-%m-%d")


def leave_other_choice(store: Any, version: Any, versions: list) -> None:
    """The model in use is ``version`` of the project: forget another version chosen.

    ``store``: the project's ``ModelVersions``; ``versions``: its versions, as just
    listed. After 'Use this version' on a refused version, going back to the default
    model (the project's ``v000``) in the Model dock left the refused one the project's
    model after a restart (GUI check h_gui28, L1). The project's own rule applies again
    (its newest version a round made current); nothing is chosen in the user's name: a
    model only looked at leaves that rule alone (review h_rev14, H1).

    Raises
    ------
    OSError
        When the choice cannot be removed.
    """
    chosen = store.current(versions)
    if chosen is not None and chosen.name != version.name:
        store.forget_choice()


#: The Retrain dock's note of the round it runs (``<project>/round-in-progress.json``):
#: written before a round starts, removed when it ends; napari closing during the round
#: marks it "closed". Read when the project is next opened, so that a round closed or
#: crashed away is not silently forgotten (GUI check h_gui28, L3). Each round's note
#: has an id: a round ending removes or marks only its own (review h_rev14, M2).
ROUND_NOTE = "round-in-progress.json"
#: The notification of such a round (napari's toast shows the first words; the dock's
#: '3. Fine-tune the model' says the rest).
ROUND_LOST_NOTICE = ("Fine-tuning round not saved: napari stopped while it ran (see '3. "
                     "Fine-tune the model' in Retrain).")


def start_round_note(project: str | os.PathLike, corrections: int,
                     round_id: str | None = None) -> str:
    """Write the note of a round about to start on ``corrections`` images; its id.

    Written by the round's worker once it holds the project's round lock
    (``core.finetune.rounds.round_lock``): a round refused by the lock wrote its note
    over the running round's, then removed it as its own (reviews h_rev25, B5; h_rev26,
    8). The note is a courtesy, not data: a folder that cannot be written to is not an
    error here (the round itself says so).
    """
    import socket
    import uuid

    round_id = round_id or uuid.uuid4().hex
    _write_round_note(Path(project), {
        "round": round_id, "state": "running", "corrections": int(corrections),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "pid": os.getpid(), "process_started": _started()})
    return round_id


def close_round_note(project: str | os.PathLike, round_id: str, at: str) -> None:
    """Mark round ``round_id``'s note "closed" (napari closes), ``at`` where it was.

    Nothing is written when the note is gone or another round's: the round ended.
    """
    note = _read_round_note(Path(project) / ROUND_NOTE)
    if note is not None and note.get("round") == round_id:
        _write_round_note(Path(project), {**note, "state": "closed", "at": at})


def forget_round(project: str | os.PathLike, round_id: str) -> None:
    """Remove round ``round_id``'s note (it ended and said how); another's stays."""
    note = _read_round_note(Path(project) / ROUND_NOTE)
    if note is not None and note.get("round") == round_id:
        forget_round_note(project)


def forget_round_note(project: str | os.PathLike) -> None:
    """Remove the note of ``project`` whichever round's (said to the user)."""
    try:
        (Path(project) / ROUND_NOTE).unlink(missing_ok=True)
    except OSError:
        pass


def _write_round_note(project: Path, note: dict[str, object]) -> None:
    try:
        atomic_write_bytes(project / ROUND_NOTE, json.dumps(note, indent=2).encode("utf-8"))
    except OSError:
        pass


def _read_round_note(path: Path) -> dict[str, object] | None:
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def _started(pid: int | None = None) -> float | None:
    """When process ``pid`` (this one by default) started (seconds), None if unknown."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _process_alive(note: dict[str, object]) -> bool:
    """Whether the process that wrote ``note`` still runs.

    The same process, not its pid given to another since: compared with its start time.
    """
    import psutil

    pid, started = note.get("pid"), note.get("process_started")
    if not isinstance(pid, int) or pid <= 0 or not psutil.pid_exists(pid):
        return False
    if not isinstance(started, (int, float)):
        return True  # cannot tell: not said
    now = _started(pid)
    return now is None or abs(now - float(started)) < 1.0


def _saved_since(project: Path, started: str) -> bool:
    """Whether a version of ``project`` was saved after ``started`` (an ISO time)."""
    from napari_nuclei_unet.core.finetune import ModelVersions

    try:
        since = datetime.fromisoformat(started)
        return any(datetime.fromisoformat(v.created) >= since
                   for v in ModelVersions(project).list() if not v.is_base and v.created)
    except (TypeError, ValueError, OSError):
        return False


def interrupted_round(project: str | os.PathLike) -> str | None:
    """Plain words about a round of ``project`` that never ended, or None.

    A round napari's closing stopped, or one whose napari stopped without ending it (a
    crash, a killed process): nothing of it was saved. A round still running (in this
    napari or in another one on this computer) is not one; neither is one running on
    another computer, which cannot be told from one that crashed there, nor one whose
    version was saved after all (napari closed while it saved it).
    """
    import socket

    note = _read_round_note(Path(project) / ROUND_NOTE)
    if note is None:
        return None
    state = note.get("state")
    if state == "running" and (note.get("host") != socket.gethostname()
                               or _process_alive(note)):
        return None
    if _saved_since(Path(project), str(note.get("started", ""))):
        return None
    when = local_time(str(note.get("started", "")), short=True)
    count = note.get("corrections")
    about = ", ".join(part for part in (
        f"started {when}" if when else "",
        f"on {count} corrected image{'s' if count != 1 else ''}"
        if isinstance(count, int) else "") if part)
    about = f" ({about})" if about else ""
    if state == "closed":
        where = note.get("at")
        where = f" {where}" if isinstance(where, str) and where else ""
        how = f"was stopped{where} when napari was closed"
    else:
        how = "never finished: napari stopped while it ran (it may have crashed)"
    return (f"The last fine-tuning round of this project{about} {how}. Nothing of it "
            "was saved and the model is unchanged: press Fine-tune to run it again.")
