"""Shared helpers of the command-line tests: run ``nuclei-unet`` in-process, check errors."""

from __future__ import annotations

from napari_nuclei_unet.cli import main


def run_cli(capsys, *argv):
    """Run ``nuclei-unet ARGV``; its exit status, stdout and stderr."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    """A bad input's answer: exit 2, one plain line, no traceback, holding ``fragments``."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nuclei-unet: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
