"""Fast decoding of 8-bit greyscale PNG scanlines, for binary mask files.

DSB2018 stores every nucleus as its own full-size PNG that is almost all zero. These
helpers inflate the image data (libdeflate when the optional ``deflate`` package is
installed, else zlib), find the rows that hold non-zero bytes and undo the PNG filters
of those rows only. Pure numpy and the standard library; the checks and the error
messages are :func:`napari_nuclei_unet.core.imageio.read_mask_box`'s.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

try:  # libdeflate inflates ~10x faster than zlib; optional, zlib is the fallback
    from deflate import zlib_decompress as _fast_inflate
except ImportError:  # pragma: no cover - depends on the environment
    _fast_inflate = None


def _inflate(data: bytes, size: int) -> bytes:
    if _fast_inflate is not None:
        return _fast_inflate(data, size)
    return zlib.decompress(data, bufsize=size)


def png_grey8_rows(data: bytes) -> tuple[int, int, bytes] | None:
    """Return (height, width, raw filtered scanlines) of an 8-bit grey PNG, else None."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or colour != 0 or interlace != 0:
        return None
    idat = []
    pos, end = 8, len(data)
    while pos + 8 <= end:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        return None  # no IEND: truncated, let PIL produce the error
    size = height * (width + 1)
    try:
        raw = _inflate(b"".join(idat), size)
    except Exception:  # noqa: BLE001 - any inflate failure: PIL gives the precise error
        return None
    if len(raw) != size:
        return None
    return height, width, raw


def unfilter_rows(rows: np.ndarray) -> np.ndarray:
    """Undo PNG scanline filters for 1 byte per pixel.

    ``rows`` is (n, width + 1) with the filter type first; the row above the first
    one is all zero. Returns the (n, width) pixels. Sub and Up are vectorised; Average
    and Paeth run a scalar loop limited to the columns where the row or the row above
    is non-zero (plus what the left neighbour carries on), which for a nucleus mask is
    a few dozen pixels.
    """
    filters = rows[:, 0]
    pixels = rows[:, 1:]
    if not filters.any():
        return pixels
    out = pixels.copy()
    zero_row = np.zeros(out.shape[1], np.uint8)
    for i in np.flatnonzero(filters).tolist():
        kind = int(filters[i])
        up = out[i - 1] if i > 0 else zero_row
        if kind == 1:
            out[i] = np.cumsum(out[i], dtype=np.uint8)  # wraps modulo 256 like PNG
        elif kind == 2:
            out[i] += up
        elif kind in (3, 4):
            _unfilter_scalar(out[i], up, kind)
        else:
            raise ValueError(f"invalid PNG filter type {kind}")
    return out


def _unfilter_scalar(row: np.ndarray, up: np.ndarray, kind: int) -> None:
    """Average (3) or Paeth (4) in place on one row, touching only the active columns."""
    active = np.flatnonzero(row | up)
    if active.size == 0:
        return
    start, last = int(active[0]), int(active[-1])
    raw = row.tolist()
    above = up.tolist()
    width = len(raw)
    left = 0
    x = start
    while x < width:
        if x > last + 1 and left == 0:
            break  # nothing left to carry: the rest of the row is zero
        b = above[x]
        if kind == 3:
            value = (raw[x] + ((left + b) >> 1)) & 0xFF
        else:
            c = above[x - 1] if x > 0 else 0
            p = left + b - c
            pa, pb, pc = abs(p - left), abs(p - b), abs(p - c)
            pred = left if pa <= pb and pa <= pc else (b if pb <= pc else c)
            value = (raw[x] + pred) & 0xFF
        raw[x] = value
        left = value
        x += 1
    row[start:x] = raw[start:x]


def nonzero_span(raw: bytes) -> tuple[int, int] | None:
    """First and last index of a non-zero byte, to within 8 bytes (None if all zero)."""
    n_words = len(raw) // 8
    nonzero = np.frombuffer(raw, np.uint64, count=n_words) != 0
    tail = np.flatnonzero(np.frombuffer(raw, np.uint8, offset=n_words * 8))
    # argmax on a bool array stops at the first True: much cheaper than flatnonzero
    first_word = int(nonzero.argmax()) if n_words else 0
    if n_words == 0 or not nonzero[first_word]:
        if tail.size == 0:
            return None
        return n_words * 8 + int(tail[0]), n_words * 8 + int(tail[-1])
    first = first_word * 8
    if tail.size:
        return first, n_words * 8 + int(tail[-1])
    return first, (n_words - 1 - int(nonzero[::-1].argmax())) * 8 + 7
