"""Reading single image and mask files into the arrays the rest of the core expects.

Everything here works on one file (a path or its bytes); dataset layouts live in
:mod:`napari_nuclei_unet.core.dataset`. :class:`DatasetError` is defined here so that
the readers can raise it; :mod:`~napari_nuclei_unet.core.dataset` re-exports it and is
its documented home.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .pngrows import PNG_SIGNATURE as _PNG_SIGNATURE
from .pngrows import nonzero_span, png_grey8_rows, unfilter_rows

ImageSource = str | os.PathLike | bytes

#: The image files read as one's own images (a ``.zarr`` folder is read too, by
#: :func:`~napari_nuclei_unet.core.stacks.open_stack`), and as a sample's image: the one
#: list of the command line, the fine-tuning layout and napari's reader.
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_FILE_SUFFIXES = PLAIN_SUFFIXES + TIFF_SUFFIXES

#: File names that operating systems and archivers leave behind; ignored silently.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "icon\r"})

#: Low and high percentiles used to map images of more than 8 bits to uint8.
HIGH_BIT_DEPTH_PERCENTILES = (0.1, 99.9)

#: Largest image (height x width) decoded: 64 megapixels, e.g. 8192 x 8192. A file
#: claiming more is refused from its header, before any pixel is decoded, so that a
#: small hostile file cannot make the program allocate gigabytes.
MAX_IMAGE_PIXELS = 1 << 26

#: Largest image or mask file read into memory whole.
MAX_FILE_BYTES = 512 * 1024 * 1024

_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, zlib.error,
                  Image.DecompressionBombError, EOFError, struct.error, IndexError, KeyError,
                  MemoryError)


class DatasetError(ValueError):
    """A dataset, sample or image file cannot be read.

    The message names the file or folder, says what is wrong and what to do.
    """


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped or resolved automatically (e.g. a bad sample)."""


class SkippedSamplesWarning(DatasetWarning):
    """Samples that failed to decode and were skipped (also listed in ``skipped``)."""


def is_junk_name(name: str) -> bool:
    """Return True for hidden files and OS/archiver litter (``.DS_Store``, ``Thumbs.db``...).

    Parameters
    ----------
    name : str
        A file or folder name (not a path).

    Returns
    -------
    bool
        Whether the entry should be ignored without a warning.
    """
    return name.startswith(".") or name.lower() in JUNK_NAMES or name.startswith("._")


def _describe(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, bytes):
        return "<image bytes>"
    return str(source)


def check_regular_file(path: str | os.PathLike, *, max_bytes: int | None = None,
                       what: str = "file") -> os.stat_result:
    """Stat ``path`` and make sure it is a regular file that may be read whole.

    A FIFO, a device or a socket would block or never end; a symbolic-link loop or a
    missing file gets a plain message.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_bytes : int, optional
        Refuse files larger than this.
    what : str
        What the file is, for messages.

    Returns
    -------
    os.stat_result

    Raises
    ------
    DatasetError
        When the file cannot be used; the message says why.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if getattr(exc, "errno", None) == 40 or "symbolic links" in str(exc):
            raise DatasetError(
                f"{path} is a symbolic link loop (links that point at each other): replace it "
                "by the real file or folder."
            ) from exc
        raise DatasetError(
            f"Cannot read {path}: {exc.strerror or exc}. Check that the {what} exists and is "
            "readable."
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device or socket, not a regular file")
        raise DatasetError(
            f"{path} is {kind}; expected a regular {what}. Give the path of the file itself."
        )
    if max_bytes is not None and st.st_size > max_bytes:
        raise DatasetError(
            f"{path} is {st.st_size / 2**20:,.0f} MB, more than the {max_bytes / 2**20:,.0f} MB "
            f"a single {what} may have here. Split it, or give a smaller file."
        )
    return st


def _read_bytes(source: ImageSource, name: str | None) -> bytes:
    if isinstance(source, bytes):
        return source
    check_regular_file(source, max_bytes=MAX_FILE_BYTES, what="image file")
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {_describe(source, name)}: {exc.strerror or exc}. "
            "Check that the file exists and is readable."
        ) from exc


def _too_big(name: str, height: int, width: int) -> DatasetError:
    return DatasetError(
        f"{name} claims to be {width:,} x {height:,} pixels, more than the "
        f"{MAX_IMAGE_PIXELS:,} pixels an image may have here; it was not decoded (a corrupt "
        "or hostile file, or an image that needs tiling). Crop or downscale it first."
    )


def check_image_size(data: bytes, *, name: str) -> tuple[int, int] | None:
    """Refuse an image whose header claims more than :data:`MAX_IMAGE_PIXELS` pixels.

    Only the header is read (PNG: IHDR; TIFF: the first page's tags; others: PIL's
    lazy open), never the pixels.

    Parameters
    ----------
    data : bytes
        The file's content.
    name : str
        The file, for messages.

    Returns
    -------
    tuple of int or None
        ``(height, width)`` when the header could be read, else None (the decoder
        then names the problem).

    Raises
    ------
    DatasetError
        When the image is too large.
    """
    size = None
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        size = (int(height), int(width))
    elif data[:4] in _TIFF_SIGNATURES:
        size = _tiff_size(data, name)
    else:
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = (int(im.height), int(im.width))
        except Image.DecompressionBombError:
            raise _too_big(name, 0, 0) from None
        except Exception:  # noqa: BLE001 - the decoder will name the problem
            return None
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _too_big(name, *size)
    return size


def _tiff_size(data: bytes, name: str) -> tuple[int, int] | None:
    """(height, width) of a TIFF's first image; refuses more than MAX_IMAGE_PIXELS values."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            shape = tuple(int(n) for n in page.shape)
            itemsize = int(page.dtype.itemsize) if page.dtype is not None else 1
            series = tif.series[0] if tif.series else page
            values = 1
            for n in series.shape:  # imread reads the whole first series
                values *= int(n)
    except Exception:  # noqa: BLE001 - the decoder will name the problem
        return None
    if values * itemsize > MAX_FILE_BYTES:
        raise DatasetError(
            f"{name}: its first image holds {values:,} values of {itemsize} bytes (shape "
            f"{shape}), more than can be decoded here; it was not decoded. Crop or downscale "
            "it first."
        )
    if len(shape) < 2:
        return None
    axes = [n for n in shape if n > 4] or list(shape)
    return (axes[0], axes[1]) if len(axes) >= 2 else None


def image_size(source: ImageSource, *, name: str | None = None) -> tuple[int, int]:
    """Return ``(height, width)`` of an image file without decoding its pixels.

    PNG headers are parsed directly (a few bytes); other formats go through PIL's
    lazy :func:`PIL.Image.open`.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The file, or its content.
    name : str, optional
        How to name the file in error messages (default: the path).

    Returns
    -------
    tuple of int
        ``(height, width)``.

    Raises
    ------
    DatasetError
        When the file is not a readable image.
    """
    if isinstance(source, bytes):
        head = source[:33]
    else:
        try:
            with open(source, "rb") as fh:
                head = fh.read(33)
        except OSError as exc:
            raise DatasetError(
                f"Cannot read {_describe(source, name)}: {exc.strerror or exc}."
            ) from exc
    if head[:8] == _PNG_SIGNATURE and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(height), int(width)
    data = _read_bytes(source, name)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.height), int(im.width)
    except Image.DecompressionBombError as exc:
        raise _not_an_image(source, name, exc) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _not_an_image(source, name, exc) from exc


_FILE_OBJECT = re.compile(r"<_io\.\w+ object at 0x[0-9a-fA-F]+>|<_io\.\w+ name=[^>]*>")


def plain_reason(exc: BaseException, name: str) -> str:
    """``str(exc)`` without Python object addresses (``<_io.BytesIO object at 0x...>``)."""
    return _FILE_OBJECT.sub(name, str(exc)) or type(exc).__name__


def _not_an_image(source: ImageSource, name: str | None, exc: Exception, *,
                  sample: bool = True) -> DatasetError:
    """``sample``: the image of a dataset's sample folder, which may be deleted to skip it."""
    what = _describe(source, name)
    if isinstance(exc, Image.DecompressionBombError):
        return DatasetError(
            f"{what} is too large to decode safely ({plain_reason(exc, what)}); it was not "
            "decoded. Crop or downscale the image first."
        )
    # the decoder's own words name the file again: by its name alone (GUI check h_gui14:
    # every reason held the whole path twice, about 450 characters a file)
    short = os.path.basename(what) or what
    suffix = os.path.splitext(short)[1].lower()
    if suffix and suffix not in IMAGE_FILE_SUFFIXES:  # a notes.txt: no fresh copy helps
        return DatasetError(  # (CLI check h_cli1, L3)
            f"{what} is not an image file ({suffix} is not an image format this plugin "
            "reads): give a TIFF, PNG, JPEG or BMP image, or a folder of them.")
    exc_text = plain_reason(exc, short).replace(what, short)
    return DatasetError(
        f"{what} is not a readable image ({exc_text}). The file may be corrupt "
        "or truncated (e.g. an interrupted download or extraction): replace it with a "
        "fresh copy" + (", or delete the sample folder to skip it." if sample else ".")
    )


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Convert a decoded image array to ``(H, W, 3)`` uint8.

    - grey ``(H, W)`` or ``(H, W, 1)`` is repeated into 3 channels;
    - ``(H, W, 2)`` is taken as grey + alpha, ``(H, W, 4)`` as RGB + alpha: alpha is
      dropped (DSB2018 images are RGBA with alpha always 255);
    - uint8 is kept as is; any other dtype (16-bit, 32-bit, float) is mapped to
      0..255 linearly between the image's own 0.1 and 99.9 percentiles
      (:data:`HIGH_BIT_DEPTH_PERCENTILES`), clipping outside. Percentiles rather than
      min/max so that a few hot pixels do not leave the image nearly black; a
      constant image becomes 0.

    Parameters
    ----------
    array : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` with C in 1..4.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, C-contiguous.

    Raises
    ------
    ValueError
        For any other shape.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channel-first TIFF
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"expected a 2-D grey or (H, W, C) colour image with C in 1..4, got shape {a.shape}"
        )
    if a.shape[2] in (2, 4):
        a = a[:, :, :-1]
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    values = a.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    low, high = np.percentile(finite, HIGH_BIT_DEPTH_PERCENTILES)
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(a.shape, np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _decode_pil(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        if im.mode.startswith("I;16"):
            return np.asarray(im).astype(np.uint16)
        return np.asarray(im)


def _decode_tiff(data: bytes) -> np.ndarray:
    import tifffile  # lazy: only TIFFs need it (installed with scikit-image)

    a = tifffile.imread(io.BytesIO(data))
    while a.ndim > 3:  # a stack: take the first plane
        a = a[0]
    return a


def read_image(source: ImageSource, *, name: str | None = None,
               sample: bool = True) -> np.ndarray:
    """Read a PNG, TIFF or JPEG image as ``(H, W, 3)`` uint8.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The image file, or its content.
    name : str, optional
        How to name the file in error messages (default: the path).
    sample : bool, default True
        The image of a dataset's sample folder: a file that cannot be read is said to
        be skipped by deleting that folder (not for a plain file: review h_rev15, L4).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8. See :func:`to_rgb8` for how grey, alpha and 16-bit
        images are converted.

    Raises
    ------
    DatasetError
        When the file is missing, corrupt, truncated or not an image.
    """
    data = _read_bytes(source, name)
    check_image_size(data, name=_describe(source, name))
    try:
        if data[:4] in _TIFF_SIGNATURES:
            array = _decode_tiff(data)
        else:
            array = _decode_pil(data)
    except _DECODE_ERRORS as exc:
        raise _not_an_image(source, name, exc, sample=sample) from exc
    try:
        return to_rgb8(array)
    except ValueError as exc:
        raise DatasetError(f"{_describe(source, name)}: unsupported image layout: {exc}.") from exc


def read_mask(source: ImageSource, *, name: str | None = None) -> np.ndarray:
    """Read a binary mask image as a 2-D array whose non-zero pixels are foreground.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The mask file (any PIL-readable format; DSB2018 uses 0/255 greyscale PNG).
    name : str, optional
        How to name the file in error messages.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` array (uint8 in the common case); test it with ``!= 0``. For colour
        masks a pixel is foreground when any colour channel is non-zero (alpha ignored).

    Raises
    ------
    DatasetError
        When the file is corrupt, truncated or not an image.
    """
    data = _read_bytes(source, name)
    check_image_size(data, name=_describe(source, name))
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("L")
            elif im.mode == "1":
                im = im.convert("L")
            a = np.asarray(im)
    except _DECODE_ERRORS as exc:
        raise _not_an_image(source, name, exc) from exc
    if a.ndim == 3:
        channels = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1]
        a = channels.any(axis=2).view(np.uint8)
    return a


# ---------------------------------------------------------------------------
# binary mask PNGs (the fast path's decoding is in .pngrows)
# ---------------------------------------------------------------------------

MaskBox = tuple[int, int, np.ndarray]  # (row0, col0, bool crop of the non-zero bounding box)


def read_mask_box(
    data: bytes, *, name: str, shape: tuple[int, int] | None = None
) -> MaskBox | None:
    """Decode a mask PNG to the bounding box of its non-zero pixels.

    8-bit greyscale PNGs (all DSB2018 masks) take a fast path: libdeflate when the
    ``deflate`` package is installed, and only the rows that hold the object are
    un-filtered. Anything else goes through PIL.

    Parameters
    ----------
    data : bytes
        The mask file's content.
    name : str
        The file, for error messages.
    shape : tuple of int, optional
        Expected ``(height, width)`` (the image's); a different size is an error.

    Returns
    -------
    tuple or None
        ``(row0, col0, crop)`` where ``crop`` is a bool array of the non-zero
        bounding box, or None for an all-zero mask.

    Raises
    ------
    DatasetError
        When the file is corrupt or its size differs from ``shape``.
    """
    size = check_image_size(data, name=name)
    if size is not None:
        _check_mask_shape(size, shape, name)
    parsed = png_grey8_rows(data)
    if parsed is None:
        return _mask_box_pil(data, name, shape)
    height, width, raw = parsed
    _check_mask_shape((height, width), shape, name)
    span = nonzero_span(raw)
    if span is None:
        return None
    r0, r1 = span[0] // (width + 1), span[1] // (width + 1)
    rows = np.frombuffer(raw, np.uint8, count=(r1 - r0 + 1) * (width + 1), offset=r0 * (width + 1))
    try:
        pixels = unfilter_rows(rows.reshape(r1 - r0 + 1, width + 1))
    except ValueError:
        return _mask_box_pil(data, name, shape)  # PIL names the problem
    return _crop_box(pixels != 0, r0, 0)


def _crop_box(fg: np.ndarray, r0: int, c0: int) -> MaskBox | None:
    """Crop a boolean array to the bounding box of its True pixels."""
    flat = np.flatnonzero(fg)
    if flat.size == 0:
        return None
    width = fg.shape[1]
    top, bottom = int(flat[0]) // width, int(flat[-1]) // width
    cols = flat % width
    left, right = int(cols.min()), int(cols.max())
    crop = fg[top : bottom + 1, left : right + 1]
    return r0 + top, c0 + left, crop


def _check_mask_shape(got: tuple[int, int], expected: tuple[int, int] | None, name: str) -> None:
    if expected is not None and tuple(got) != tuple(expected):
        raise DatasetError(
            f"{name}: mask is {got[0]}x{got[1]} pixels but its image is "
            f"{expected[0]}x{expected[1]}. Each mask must have its image's size: fix or "
            "remove this mask file."
        )


def _mask_box_pil(data: bytes, name: str, shape: tuple[int, int] | None) -> MaskBox | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_mask_shape((im.height, im.width), shape, name)
            im.load()
    except DatasetError:
        raise
    except _DECODE_ERRORS as exc:
        raise _not_an_image(data, name, exc) from exc
    mask = read_mask(data, name=name)
    if mask.dtype.itemsize > 1:  # 16- or 32-bit: a label image has many values
        values = np.unique(mask[mask != 0])
        if values.size > 1:
            raise DatasetError(
                f"{name} holds {values.size} different labels: it is a label image, not a "
                "mask. masks/ takes one black-and-white PNG per nucleus (the command "
                "'nuclei-unet finetune' also reads a label image saved as NAME_labels.tif "
                "next to its image NAME.tif).")
    return _crop_box(mask != 0, 0, 0)
