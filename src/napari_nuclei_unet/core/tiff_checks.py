"""What a user's image file may be besides an image: cut short, or a maker's own format.

* :func:`tifffile_log` -- tifffile's warnings while a file is opened, collected per
  thread instead of printed; a chain of images that ends early (:data:`CUT_SHORT`)
  means the file was cut short.
* :func:`vendor_format_words` -- a microscope maker's file (``.czi``, ``.nd2``...),
  said to need exporting as OME-TIFF, not to be damaged.

Used by :mod:`.stacks` and the command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

#: Microscope makers' own formats, not read: said as such, not as a damaged file
#: (review h_rev15, M15). (Slide scanners' .ndpi/.svs/.scn are TIFFs underneath.)
VENDOR_FORMATS = {".czi": "Zeiss", ".nd2": "Nikon", ".lif": "Leica", ".lof": "Leica",
                  ".oib": "Olympus", ".oir": "Olympus", ".vsi": "Olympus", ".ims": "Imaris",
                  ".sld": "SlideBook", ".dv": "DeltaVision"}


def vendor_format_words(path: str | os.PathLike) -> str | None:
    """What to do with a microscope maker's file that is not read; None for other files."""
    suffix = Path(path).suffix.lower()
    maker = VENDOR_FORMATS.get(suffix)
    if maker is None:
        return None
    return (f"{Path(path).name}: {maker} {suffix} files are not read here. "
            f"{export_advice(1)}")


def export_advice(files: int) -> str:
    """How to make OME-TIFF of a microscope maker's file, or of ``files`` of them."""
    it, that = ("it", "that file") if files == 1 else ("them", "those files")
    return (f"Export {it} as OME-TIFF (Fiji: open {it} with Bio-Formats, then File > Save "
            f"As > OME-TIFF; or Bio-Formats' bfconvert) and give {that}.")


#: What tifffile logs when a file's chain of images ends before its last one: the
#: file was cut short (an interrupted copy), and only the images before the cut are
#: found; tifffile goes on with those (review h_rev15, H2).
CUT_SHORT = "invalid page offset"
TRUNCATED_ADVICE = ("The file may be truncated (e.g. an interrupted copy or download): "
                    "replace it with a fresh copy.")


class _Captured(threading.local):
    messages: list[str] | None = None


_CAPTURED = _Captured()


class _CaptureFilter(logging.Filter):
    """Keeps tifffile's records of a thread that captures them from its log (no others)."""

    def filter(self, record: logging.LogRecord) -> bool:
        messages = _CAPTURED.messages
        if messages is None:
            return True
        messages.append(record.getMessage())
        return False


@contextlib.contextmanager
def tifffile_log() -> Iterator[list[str]]:
    """Collect what tifffile logs in this thread while a file is opened, instead of printing it.

    Its raw lines ("<tifffile.TiffPages @8> invalid page offset 655696") went to the
    user's terminal, even with ``-q`` (review h_rev15, L11); the caller says in plain
    words what they mean. Per thread: another thread's file is not this one's, and
    tifffile's log is never switched off (review h_rev16, M4).
    """
    logger = logging.getLogger("tifffile")
    if not any(isinstance(f, _CaptureFilter) for f in logger.filters):
        logger.addFilter(_CaptureFilter())
    previous, _CAPTURED.messages = _CAPTURED.messages, []
    try:
        yield _CAPTURED.messages
    finally:
        _CAPTURED.messages = previous
