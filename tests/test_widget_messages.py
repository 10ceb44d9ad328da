"""Plain-word notifications for system errors (``widgets._workers.explain``)."""

from __future__ import annotations

import errno

from napari_nuclei_unet.widgets._workers import explain


def test_an_os_error_with_a_file_and_a_reason_names_both():
    exc = OSError(errno.EISDIR, "Is a directory", "/data/out")
    assert explain(exc) == "Could not read or write /data/out: Is a directory."


def test_the_projects_own_os_errors_are_used_as_they_are():
    """They say which file and what was kept; wrapping them gave "Could not read or
    write : Could not write …. Any previous version of the file is kept.." (an empty
    name and two full stops)."""
    text = "Could not write /data/out: Is a directory. Any previous version of the file is kept."
    assert explain(OSError(text)) == text
    assert explain(OSError("Could not write x")) == "Could not write x."
    assert explain(OSError()) == "A file could not be read or written."
