"""The documented install brings a Qt binding, so the demo and the docks can start."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
QT_BINDINGS = ("pyqt5", "pyqt6", "pyside2", "pyside6", "napari[all]", "napari[qt]")


def _extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["optional-dependencies"]


def _has_qt(requirements: list[str]) -> bool:
    return any(binding in req.lower().replace(" ", "") for req in requirements
               for binding in QT_BINDINGS)


def test_all_extra_installs_a_qt_binding():
    extras = _extras()
    assert "all" in extras, "pyproject needs an `all` extra for the GUI"
    assert _has_qt(extras["all"])
    assert _has_qt(extras["testing"])


def test_documented_install_uses_the_gui_extra_and_no_sudo():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    installs = re.findall(r"pip install[^\n]*", text)
    # the README's first command (the demo line) installs the Qt binding
    assert '".[all]"' in installs[0] and "nuclei-unet demo" in installs[0], installs[0]
    assert any('-e ".[all]"' in line or "[all]" in line for line in installs), installs
    commands = [line for line in text.splitlines() if "apt-get" in line or "pip " in line]
    assert not any(line.lstrip().startswith("sudo") for line in commands), commands
    assert "nuclei-unet demo" in text
