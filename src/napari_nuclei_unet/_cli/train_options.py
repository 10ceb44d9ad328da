"""Command line options for every :class:`TrainConfig` field, and the config they give.

The options are made from the dataclass itself, so a field added to
:class:`~napari_nuclei_unet.core.config.TrainConfig` gets its option (and its help,
taken from the class docstring) without touching the CLI. Only :mod:`core.config`
is imported, which does not import torch.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

#: Short spellings kept for habit (``--lr``) next to the generated ``--learning-rate``;
#: ``--threads`` is also what ``finetune`` calls ``--num-threads``.
ALIASES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("--lr",),
    "early_stopping_patience": ("--patience",),
    "num_threads": ("--threads",),
}

#: Prefix of the argparse ``dest`` of config options (avoids clashes with other options).
DEST_PREFIX = "config_"

_NONE_WORDS = ("none", "auto", "off")


def _field_help() -> dict[str, str]:
    """One-paragraph help per field, read from the ``Attributes`` section of the docstring."""
    from ..core.config import TrainConfig

    doc = TrainConfig.__doc__ or ""
    section = doc.split("Attributes", 1)[-1]
    helps: dict[str, str] = {}
    current: list[str] = []
    for line in section.splitlines():
        header = re.match(r"^\s{4}(\w+(?:, \w+)*) : ", line)
        if header:
            current = [name.strip() for name in header.group(1).split(",")]
            for name in current:
                helps[name] = ""
        elif line.strip() and current and not set(line.strip()) <= {"-"}:
            for name in current:
                helps[name] = (helps[name] + " " + line.strip()).strip()
    # Plain text for the terminal: drop reStructuredText markup.
    return {
        name: re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
        for name, text in helps.items()
    }


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in _NONE_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'none', got {text!r}"
        ) from None


def _optional_float(text: str) -> float | None:
    if text.strip().lower() in _NONE_WORDS:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or 'none', got {text!r}"
        ) from None


def add_train_config_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`TrainConfig` field to ``parser``.

    Booleans get ``--name/--no-name`` (e.g. ``--no-amp``); optional integers accept
    ``none``. An option not given leaves no attribute in the namespace, so values from
    ``--config`` or the dataclass defaults apply unless the option is used.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``train`` sub-command parser.
    """
    from ..core.config import TrainConfig

    helps = _field_help()
    group = parser.add_argument_group(
        "training configuration",
        "Each option sets one training setting (its default in brackets); they are also "
        "the keys of a --config file.",
    )
    defaults = TrainConfig()
    for field in fields(TrainConfig):
        name = field.name
        default = getattr(defaults, name)
        flags = (*ALIASES.get(name, ()), "--" + name.replace("_", "-"))
        text = helps.get(name, "").replace("%", "%%")
        text = f"{text} [{default}]" if text else f"[{default}]"
        dest = DEST_PREFIX + name
        annotation = str(field.type)
        if isinstance(default, bool):
            group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=text)
        elif "None" in annotation and "int" in annotation:
            group.add_argument(*flags, dest=dest, type=_optional_int,
                               default=argparse.SUPPRESS,
                               metavar="N|none", help=text)
        elif "None" in annotation and "float" in annotation:
            group.add_argument(*flags, dest=dest, type=_optional_float,
                               default=argparse.SUPPRESS,
                               metavar="X|none", help=text)
        elif isinstance(default, int):
            group.add_argument(*flags, dest=dest, type=int, default=argparse.SUPPRESS,
                               metavar="N", help=text)
        elif isinstance(default, float):
            group.add_argument(*flags, dest=dest, type=float, default=argparse.SUPPRESS,
                               metavar="X", help=text)
        else:
            group.add_argument(*flags, dest=dest, type=str, default=argparse.SUPPRESS,
                               metavar="TEXT", help=text)


def _read_config_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Configuration file {file} does not exist.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Configuration file {file} is not valid JSON: {exc}.") from exc
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a checkpoint's sidecar: take its training configuration
    if not isinstance(data, dict):
        raise ValueError(
            f"Configuration file {file} must hold a JSON object of TrainConfig fields, "
            f"e.g. {{\"epochs\": 20, \"crop_size\": 256}}."
        )
    return data


#: Fields that fix the network's shape: a resumed run cannot change them.
ARCHITECTURE_FIELDS = ("base_width", "depth", "in_channels")


def _saved_config(resume: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training configuration and resume record stored with a run's checkpoint."""
    from ..core.checkpoint import read_metadata

    metadata = read_metadata(resume)
    return dict(metadata["config"]), dict(metadata.get("resume") or {})


def _finished_note(resume: str, record: dict[str, Any], epochs: int) -> str | None:
    """A note when the run already trained every epoch it would train now."""
    done = record.get("epoch")
    if not isinstance(done, int) or not record.get("epoch_complete", True) or done < epochs:
        return None
    trained = (f"all {done} epochs" if done == epochs
               else f"{done} epochs, more than the {epochs} asked for")
    return (f"the run of {resume} already trained {trained}: there is nothing left to "
            f"train. To train it further, give --epochs {done + 10} (or any number above "
            f"{done}).")


def config_from_args(args: argparse.Namespace, *, notes: list[str] | None = None) -> Any:
    """Build the :class:`TrainConfig` of a ``train`` command line.

    Without ``--resume``: the ``--config`` file's values (or the defaults), overridden
    by the options given. With ``--resume CKPT``: the configuration saved with CKPT,
    so a resumed run continues exactly as it started; ``--config`` values and options
    given on the command line still win, and each one that changes a saved value is
    listed in ``notes`` (printed by the caller), except the network's shape
    (base_width, depth, in_channels), which a resumed run cannot change.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments: ``config`` (a JSON file or None), ``resume`` and the
        generated options.
    notes : list of str, optional
        Receives one line per saved value changed by the command line.

    Returns
    -------
    TrainConfig
        The resulting configuration.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing or malformed file, an invalid value (``ConfigError``), or an
        attempt to change the network's shape on resume.
    """
    from ..core.config import ConfigError, TrainConfig

    data = _read_config_file(args.config) if getattr(args, "config", None) else {}
    # Options not given are absent from args (argparse.SUPPRESS), so "--patience none"
    # (None) is told apart from "not given".
    changes = {
        field.name: getattr(args, DEST_PREFIX + field.name)
        for field in fields(TrainConfig)
        if hasattr(args, DEST_PREFIX + field.name)
    }
    resume = getattr(args, "resume", None)
    if not resume:
        config = TrainConfig.from_dict(data)
        with _flags_named(changes):
            return config.replace(**changes) if changes else config
    saved, record = _saved_config(resume)
    try:
        base = TrainConfig.from_dict(saved)
    except (ConfigError, TypeError) as exc:
        raise ValueError(
            f"Cannot resume from {resume}: its saved configuration is bad: {exc}"
        ) from exc
    given = {**data, **changes}
    for name in ARCHITECTURE_FIELDS:
        if name in given and given[name] != getattr(base, name):
            raise ValueError(
                f"Cannot resume from {resume} with {name}={given[name]}: the run was started "
                f"with {name}={getattr(base, name)}, and a resumed run keeps the network's "
                f"shape. Leave out the {name} option, or start a new run (use --init "
                f"{resume} to start from its weights)."
            )
    for name, value in given.items():
        if name in saved and value != saved[name] and notes is not None:
            more = ("; the learning rate follows the longer schedule, so it rises again "
                    "before it decays" if name == "epochs" and isinstance(value, int)
                    and value > saved[name] and saved.get("schedule") == "cosine"
                    and not saved.get("time_budget_s")  # its place is time, not steps
                    else "")  # a warm restart nobody had said (review h_rev23, L3)
            notes.append(f"resuming with {name}={value} (the run was started with "
                         f"{name}={saved[name]}{more})")
    with _flags_named(changes):
        config = base.replace(**given) if given else base
    finished = _finished_note(resume, record, config.epochs)
    if finished and notes is not None:
        notes.append(finished)
    return config


def flag_of(name: str) -> str:
    """The command-line option of a ``TrainConfig`` field: ``--lr``, ``--crop-size``..."""
    return (*ALIASES.get(name, ()), "--" + name.replace("_", "-"))[0]


@contextmanager
def _flags_named(given: dict[str, Any]) -> Iterator[None]:
    """Reword a refused value given on the command line by its option, not its field.

    ``TrainConfig.learning_rate must be a finite number`` -> ``--lr must be ...``.
    """
    from ..core.config import ConfigError

    try:
        yield
    except ConfigError as exc:
        text = str(exc)
        for name in given:
            text = text.replace(f"TrainConfig.{name} ", f"{flag_of(name)} ")
        if text == str(exc):
            raise
        raise ConfigError(text) from None
