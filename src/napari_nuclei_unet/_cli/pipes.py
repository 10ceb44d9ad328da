"""Output streams whose reader may go away: the command goes on, its lines go nowhere.

``nuclei-unet predict plate/ --out r 2>&1 | head -3`` stopped after the fourth image
with exit status 0 (README check h_readme1, H1): ``head`` exits after three lines, the
next note raised :class:`BrokenPipeError`, and the command took that for the end. A
long command's lines are for watching it; whoever stops reading them has not asked to
stop the work (Ctrl-C does that). Once a stream's reader is gone, its file descriptor
is pointed at ``os.devnull``, so later lines, and the flush at exit, go nowhere quietly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class PipeSafe:
    """Wrap ``stream``: writes after its reader went away are dropped, not raised."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        try:  # the descriptor itself: the buffered text and the flush at exit go nowhere
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (AttributeError, OSError, ValueError):  # no descriptor (a test's stream)
            self._stream = open(os.devnull, "w")  # noqa: SIM115 - kept for the run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def readers_may_go() -> Iterator[None]:
    """Within: ``sys.stdout`` and ``sys.stderr`` are :class:`PipeSafe`; restored after."""
    saved = sys.stdout, sys.stderr
    wrapped = PipeSafe(sys.stdout), PipeSafe(sys.stderr)
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        for stream in wrapped:  # what is still buffered (a pipe's stdout is): flushed here,
            stream.flush()  # where a reader gone is caught, not at exit (review h_rev30, H1)
        sys.stdout, sys.stderr = saved
