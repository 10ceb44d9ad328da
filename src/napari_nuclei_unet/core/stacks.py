"""The user's own images: TIFF/OME-TIFF/ImageJ stacks, zarr arrays, PNG/JPEG, as 2-D planes.

:func:`open_stack` reads a file's axes from its metadata (OME-XML, ImageJ hyperstack,
tifffile shaped TIFF) or takes them from the caller (``axes="ZCYX"``), and returns an
:class:`ImageStack`: a lazy view of the array (pages are read when a plane is asked
for) whose planes are every index of the non-channel, non-YX axes (T, Z, ...) in
their order. A plane is one channel (``channel=N``, 0-based on the channel axis) or
the RGB composite of an RGB image, as ``(H, W)`` or ``(H, W, 3)`` of the file's dtype.

Axis letters follow tifffile/OME: ``T`` time, ``Z`` depth, ``C`` channel, ``S``
colour samples (RGB), ``Y``/``X`` the plane, others (``Q``, ``I``...) any
stack axis. ``S`` is treated as the channel axis.

Needs numpy and tifffile (zarr for ``aszarr`` and ``.zarr`` folders, PIL for
PNG/JPEG), all imported when used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .imageio import IMAGE_FILE_SUFFIXES, TIFF_SUFFIXES
from .tiff_checks import vendor_format_words

#: Where :class:`ImageFileError` messages tell the user to give a setting, as the command
#: line asks for it. A front end that asks in other words (the Segment dock's fields)
#: passes its own to :meth:`ImageFileError.worded`.
COMMAND_LINE_WORDS = {"channel": "with --channel N", "axes": "with --axes"}


class ImageFileError(ValueError):
    """A user's image cannot be read as asked; the message says why and what to do.

    A message about a setting the user gives (the nuclear channel, the axes) is made with
    :meth:`about_settings` from a template that holds ``{channel}`` or ``{axes}`` where
    the setting is named; ``str()`` names it as the command line asks for it.
    """

    _template: str | None = None
    _values: dict[str, Any] | None = None

    @classmethod
    def about_settings(cls, template: str, **values: Any) -> ImageFileError:
        """An error about a setting the user gives.

        ``template`` is a ``str.format`` template filled with ``values``; it names the
        settings by ``{channel}`` / ``{axes}``.
        """
        error = cls(template.format(**values, **COMMAND_LINE_WORDS))
        error._template, error._values = template, values
        return error

    @property
    def about_a_setting(self) -> bool:
        """Whether it says a setting the user gives does not fit, not that the file is bad."""
        return self._template is not None

    def worded(self, words: dict[str, str]) -> str:
        """The message with the settings named by ``words``.

        ``words`` has the keys of :data:`COMMAND_LINE_WORDS`; a message that names no
        setting is returned as it is.
        """
        if self._template is None:
            return str(self)
        return self._template.format(**(self._values or {}), **words)


def stack_name(path: str | os.PathLike) -> str:
    """Output name of an image file: its name without ``.ome.tif``, ``.tif``, ``.zarr``..."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if Path(name).suffix else name


#: Examples of axes for a number of dimensions, for messages.
AXES_EXAMPLES = {2: "YX", 3: "ZYX or CYX", 4: "TCYX or ZCYX", 5: "TZCYX"}


def yx_last(axes: str) -> bool:
    """Whether ``axes`` end in ``YX``, a channel axis (``C``/``S``) anywhere allowed.

    The labels keep the image's rows and columns only when the plane's axes are its
    last two (``ZYX``, ``CYX``, ``YXC``; not ``XY`` or ``YXZ``).
    """
    return axes.replace("C", "").replace("S", "").endswith("YX")


def check_axes(axes: str, ndim: int, source: str = "the image", *,
               read_by: str | None = None) -> str:
    """Validate an axes string (e.g. ``"TZCYX"``) for an array of ``ndim`` dimensions.

    Parameters
    ----------
    axes : str
        One letter per dimension, in order.
    ndim : int
        Number of dimensions of the array.
    source : str
        How to name the image in messages.
    read_by : str, optional
        None when the user gave ``axes``. Otherwise they were read from the file, by
        ``read_by`` (e.g. ``"tifffile"``; ``""``: guessed from the shape): axes that do
        not say what the dimensions are (``QQYX``) are then asked for, not corrected.

    Returns
    -------
    str
        The axes in upper case.

    Raises
    ------
    ImageFileError
        When the length, the letters or Y/X are wrong, or Y and X are not the last two
        axes (a channel axis may follow: ``YXC``).
    """
    axes = str(axes).strip().upper()
    hint = ("Give one letter per dimension, e.g. ZCYX (Z planes, channels, rows, columns) "
            "or TCYX (time, channels, rows, columns).")
    if "Y" in axes and "X" in axes and not yx_last(axes) and len(set(axes)) == len(axes):
        # (a letter twice: "ZCYXX" was told to put YX last, not its count: CLI check h_cli2)
        raise ImageFileError(
            f"Axes {axes!r} for {source}: an image's last two axes are its rows (Y) and "
            "columns (X), so name them YX, in that order, at the end (a channel axis may "
            "follow: YXC). Otherwise the labels would not line up with the image.")
    if len(axes) != ndim:
        raise ImageFileError(
            f"Axes {axes!r} have {len(axes)} letters but {source} has {ndim} dimensions. "
            + hint)
    if read_by is not None and not (len(set(axes)) == len(axes) and "Y" in axes
                                    and "X" in axes):
        found = f"{read_by} reads them as {axes}" if read_by else f"read as {axes}"
        example = AXES_EXAMPLES.get(ndim, "TZCYX with one letter per dimension")
        raise ImageFileError.about_settings(
            "{source} does not say what its {ndim} dimensions are ({found}); give them "
            "{axes}, e.g. {example} (T time, Z depth, C channels, Y rows, X columns).",
            source=source, ndim=ndim, found=found, example=example)
    if not axes.isalpha() or len(set(axes)) != len(axes):
        raise ImageFileError(f"Axes {axes!r} for {source} must be distinct letters. " + hint)
    if "Y" not in axes or "X" not in axes:
        raise ImageFileError(f"Axes {axes!r} for {source} need a Y and an X axis. " + hint)
    if "C" in axes and "S" in axes:
        raise ImageFileError.about_settings(
            "Axes {given!r} for {source} have both C and S (colour samples); give one "
            "channel axis only, e.g. {axes}.", given=axes, source=source)
    return axes


@dataclass
class ImageStack:
    """A lazily read image with named axes, seen as a sequence of 2-D planes.

    Attributes
    ----------
    name : str
        Output name (file name without suffixes).
    data : array-like
        The array in ``plane axes + [C] + Y + X`` order (numpy, zarr or dask).
    axes : str
        Axes of ``data``, e.g. ``"TZCYX"``; the channel axis (if any) is ``"C"``.
    source : str
        Where it came from (for messages).
    rgb : bool
        Whether the channel axis holds the red, green, blue (and alpha) samples of a
        colour image: the default plane is then the RGB composite.
    stored_axes : str
        The axes as the array is stored, before they were put in order and ``S``
        became ``C`` (e.g. ``"SYX"``); the order to give them back in.
    pixels_per_um : (float, float) or None
        The pixel size the file records, as pixels per micrometre ``(x, y)`` (an
        OME-TIFF's ``PhysicalSizeX/Y``, an ImageJ TIFF's resolution and unit); None when
        it records none.
    z_spacing_um : float or None
        The distance between its Z planes the file records, in micrometres (an
        OME-TIFF's ``PhysicalSizeZ``, an ImageJ hyperstack's ``spacing``); None when
        it records none.
    other_series : int
        How many more images (positions, series) a TIFF holds after the first, the one
        read: a multi-position OME-TIFF's other positions were left out without a word
        (CLI check h_cli2, M2).
    """

    name: str
    data: Any
    axes: str
    source: str
    rgb: bool = False
    stored_axes: str = ""
    pixels_per_um: tuple[float, float] | None = None
    z_spacing_um: float | None = None
    other_series: int = 0

    @property
    def doubtful_rgb(self) -> bool:
        """Whether this RGB image may hold planes or channels instead of colours.

        Colour photos are 8-bit; a 16-bit or float image with 3 or 4 samples, taken as
        RGB from a file's own axes (a plain ``tifffile.imwrite`` of a ``(3, H, W)``
        stack), is almost always 3 planes or 3 channels of a microscope.
        """
        return self.rgb and self.dtype != np.uint8

    def doubtful_rgb_note(self, name: str, words: dict[str, str] | None = None) -> str:
        """Why this image, read as RGB, may hold planes or channels, and how to say so.

        ``""`` unless :attr:`doubtful_rgb`. The settings are named by ``words`` (the keys
        of :data:`COMMAND_LINE_WORDS`, which is the default), as in
        :meth:`ImageFileError.worded`; ``name`` is how the front end names the image.
        """
        if not self.doubtful_rgb:
            return ""
        words = words or COMMAND_LINE_WORDS
        n, stored = self.n_channels, self.stored_axes or self.axes
        sample = "S" if "S" in stored else "C"
        planes, channels = stored.replace(sample, "Z"), stored.replace(sample, "C")
        what = ("one RGB colour image" if self.n_planes == 1
                else f"{self.n_planes} RGB colour images")
        each = "" if self.n_planes == 1 else " each"
        as_channels = (f"its axes are {channels}: give them {words['axes']}, and the nuclei's "
                       f"channel (0 to {n - 1}) {words['channel']}")
        if "Z" in stored or not yx_last(planes):
            advice = f"If it holds {n} channels{each}, {as_channels}."
        else:
            advice = (f"If it holds {n} planes{each}, its axes are {planes}: give them "
                      f"{words['axes']}. If it holds {n} channels{each}, {as_channels}.")
        return (f"{name} is read as {what} ({n} samples, {self.depth}; colour photos are "
                f"8-bit). {advice}")

    @property
    def depth(self) -> str:
        """The pixel type in words: ``"16-bit"``, ``"32-bit float"``."""
        return f"{self.dtype.itemsize * 8}-bit" + (" float" if self.dtype.kind == "f" else "")

    @property
    def plane_axes(self) -> str:
        """Axes that index planes (everything but C, Y, X), e.g. ``"TZ"``."""
        return "".join(a for a in self.axes if a not in "CYX")

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Shape of the plane axes (``()`` for a single 2-D image)."""
        return tuple(self.data.shape[: len(self.plane_axes)])

    @property
    def few_planes(self) -> tuple[str, int] | None:
        """The first plane axis of 2-4 entries ``(letter, n)``, which may be channels.

        A file of 2-4 channels that records no axes opens as a stack of planes; the
        Segment dock and ``predict`` say so (None: no such axis).
        """
        return next(((a, n) for a, n in zip(self.plane_axes, self.plane_shape, strict=True)
                     if 1 < n <= 4), None)

    @property
    def n_planes(self) -> int:
        """Number of 2-D planes."""
        return int(math.prod(self.plane_shape))

    @property
    def n_channels(self) -> int:
        """Size of the channel axis (1 when there is none)."""
        return int(self.data.shape[self.axes.index("C")]) if "C" in self.axes else 1

    @property
    def yx_shape(self) -> tuple[int, int]:
        """``(H, W)`` of every plane."""
        return int(self.data.shape[-2]), int(self.data.shape[-1])

    @property
    def dtype(self) -> np.dtype:
        """Pixel type."""
        return np.dtype(self.data.dtype)

    @property
    def labels_shape(self) -> tuple[int, ...]:
        """Shape of the label image: the input's shape without its channel axis."""
        return (*self.plane_shape, *self.yx_shape)

    def check_channel(self, channel: int | None) -> int | None:
        """Validate a channel choice; return the channel index, or None for all/RGB.

        Parameters
        ----------
        channel : int or None
            0-based index on the channel axis; None = the only channel, or the RGB
            composite of a colour image.

        Raises
        ------
        ImageFileError
            When the index is out of range, or several non-RGB channels and none chosen.
        """
        n = self.n_channels
        if channel is None:
            if n == 1 or self.rgb:
                return None
            raise ImageFileError.about_settings(
                "{source} has {n} channels (axes {given}); choose the nuclear channel "
                "{channel} (0 to {last}), or give other axes {axes} if these are not "
                "channels.", source=self.source, n=n, given=self.stored_axes or self.axes,
                last=n - 1)  # as given, not put in order (CLI check h_cli1, L6)
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
            raise ImageFileError(f"Channel must be a whole number, got {channel!r}.")
        if not 0 <= int(channel) < n:
            extra = "" if "C" in self.axes else " (it has no channel axis; name one {axes})"
            raise ImageFileError.about_settings(
                "Channel {chosen} does not exist in {source}: it has {n} channel(s), "
                "numbered 0 to {last}" + extra + ".", chosen=channel, source=self.source,
                n=n, last=n - 1)
        return int(channel) if "C" in self.axes else None

    def plane_name(self, flat: int) -> str:
        """Plane number ``flat`` in words for ids: ``"plane3"``, or ``"t1-z2"``.

        Named by its axes when several index the planes (a time-lapse of z-stacks read
        "plane5": GUI check h_gui16, N6); 0-based, as napari's sliders.
        """
        if len(self.plane_axes) < 2:
            return f"plane{flat}"
        return "-".join(f"{axis.lower()}{i}" for axis, i in
                        zip(self.plane_axes, self.plane_index(flat), strict=True))

    def plane_index(self, flat: int) -> tuple[int, ...]:
        """Index tuple on the plane axes of plane number ``flat`` (C order)."""
        return tuple(int(i) for i in np.unravel_index(flat, self.plane_shape)) if \
            self.plane_shape else ()

    def _read(self, index: tuple) -> np.ndarray:
        """``self.data[index]`` read; a file that cannot be decoded is said in plain words.

        A truncated TIFF is opened lazily and fails only here, in tifffile's words
        ("corrupted strip cannot be reshaped from (20429,) to (1, 256, 320, 1)").
        """
        import zlib

        try:
            return np.asarray(self.data[index])
        except (ValueError, OSError, EOFError, RuntimeError, zlib.error) as exc:
            # RuntimeError: imagecodecs' decoders ("DeflateError: ... BAD_DATA"), which
            # the command line called a bug of its own (review h_rev15, H4)
            at = index[:len(self.plane_axes)]
            where = ", ".join(f"{axis}={i}" for axis, i in zip(self.plane_axes, at, strict=True))
            if where and all(isinstance(i, (int, np.integer)) for i in at):  # counted from 1,
                flat = int(np.ravel_multi_index(at, self.plane_shape)) + 1  # as Fiji does
                where = f"plane {flat} of {self.n_planes} ({where})"
            what = (f"{self.source}: its {where} cannot be decoded" if where
                    else f"{self.source} is not a readable image")
            if not (self.source and Path(self.source).is_file()):  # a layer, a store
                raise ImageFileError(f"{self.source} could not be read ({exc}).") from exc
            raise ImageFileError(
                f"{what} ({exc}). The file may be corrupt or truncated (e.g. an "
                "interrupted copy or download): replace it with a fresh copy.") from exc

    def channels(self, flat: int) -> np.ndarray:
        """Every channel of plane ``flat`` as ``(C, H, W)`` (``(1, H, W)`` without C)."""
        raw = self._read(self.plane_index(flat))
        return raw if "C" in self.axes else raw[None]

    def plane(self, flat: int, channel: int | None = None,
              region: tuple[slice, slice] | None = None) -> np.ndarray:
        """Plane ``flat`` to segment: ``(H, W)`` one channel, or ``(H, W, 3|4)`` RGB.

        Parameters
        ----------
        flat : int
            Plane number, ``0 <= flat < n_planes``.
        channel : int or None
            See :meth:`check_channel`.
        region : (slice, slice), optional
            Rows and columns to read (only those are read from a lazy image).
        """
        channel = self.check_channel(channel)
        index = self.plane_index(flat)
        rows_cols = tuple(region) if region is not None else ()
        if "C" not in self.axes:
            return self._read((*index, *rows_cols))
        if channel is not None:
            return self._read((*index, channel, *rows_cols))
        raw = self._read((*index, slice(None), *rows_cols) if rows_cols else index)
        return np.moveaxis(raw, 0, -1) if raw.shape[0] > 1 else raw[0]

    def iter_planes(self, channel: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(flat index, plane)`` for every plane, in order."""
        self.check_channel(channel)
        for flat in range(self.n_planes):
            yield flat, self.plane(flat, channel)


def _check_plane_size(axes: str, shape: tuple[int, ...], source: str) -> None:
    """Refuse axes given for a file that make its planes a few pixels wide.

    ``--axes CYX`` on an RGB file made "images" of 256 x 3 pixels (its colours as
    columns), segmented with exit status 0 (README check h_readme1, L1).
    """
    sizes = dict(zip(axes, shape, strict=True))
    h, w = sizes["Y"], sizes["X"]
    if min(h, w) > 4 or max(h, w) < 32:  # long and thin only: tiny test images pass
        return
    raise ImageFileError.about_settings(
        "Axes {given} for {source} make its planes {h} x {w} pixels: a dimension of {n} is "
        "more likely its colours or channels than its rows or columns. Give the axes in the "
        "file's order {axes} (e.g. YXS for a colour image).", given=axes, source=source, h=h,
        w=w, n=min(h, w))


def make_stack(name: str, data: Any, axes: str, source: str, rgb_hint: bool, *,
               read_by: str | None = None,
               pixels: tuple[float, float] | None = None) -> ImageStack:
    """An :class:`ImageStack` of ``data``: axes reordered to plane axes + C + Y + X.

    ``S`` becomes ``C``; ``read_by`` as for :func:`check_axes`; ``pixels``: the file's
    pixels per micrometre.
    """
    stored = check_axes(axes, len(data.shape), source, read_by=read_by)
    if read_by is None:
        _check_plane_size(stored, tuple(data.shape), source)
    axes = stored.replace("S", "C")
    rgb = rgb_hint and "C" in axes and data.shape[axes.index("C")] in (3, 4)
    order = [i for i, a in enumerate(axes) if a not in "CYX"]
    order += [axes.index(a) for a in "CYX" if a in axes]
    new_axes = "".join(axes[i] for i in order)
    if order != list(range(len(axes))):
        if isinstance(data, np.ndarray) or hasattr(data, "dask"):
            data = data.transpose(order)  # numpy view / lazy dask graph
        else:
            data = _LazyTranspose(data, order)
    return ImageStack(name, data, new_axes, source, rgb, stored, pixels)


class _LazyTranspose:
    """A transposed view of a zarr/tifffile array that reads only what is indexed."""

    def __init__(self, data: Any, order: list[int]) -> None:
        self._data = data
        self._order = order
        self.shape = tuple(data.shape[i] for i in order)
        self.dtype = data.dtype
        self.ndim = len(order)

    def __getitem__(self, index: Any) -> np.ndarray:
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (self.ndim - len(index))
        source: list[Any] = [slice(None)] * self.ndim
        for position, axis in enumerate(self._order):
            source[axis] = index[position]
        raw = np.asarray(self._data[tuple(source)])
        kept = [axis for axis in self._order if not isinstance(source[axis], (int, np.integer))]
        remaining = [a for a in range(self.ndim) if not isinstance(source[a], (int, np.integer))]
        return np.transpose(raw, [remaining.index(a) for a in kept])


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether :func:`open_stack` takes ``path`` by its name.

    A TIFF, PNG, JPEG or BMP file, or a ``.zarr`` folder.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".zarr":
        return path.is_dir()
    return suffix in IMAGE_FILE_SUFFIXES and path.is_file()


def open_stack(path: str | os.PathLike, axes: str | None = None) -> ImageStack:
    """Open a user's image file lazily.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF/OME-TIFF/ImageJ hyperstack, a ``.zarr`` folder (array or OME-Zarr), or a
        PNG/JPEG/BMP image.
    axes : str, optional
        Axes of the stored array, overriding its metadata (e.g. ``"ZCYX"``).

    Returns
    -------
    ImageStack

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ImageFileError
        When it cannot be read, or ``axes`` do not fit.
    """
    from .stack_readers import open_plain, open_tiff, open_zarr, plain_inside

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give an image file (TIFF, OME-TIFF, "
                                "PNG, JPEG) or a .zarr folder.")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zarr":
        return open_zarr(path, axes)
    if path.is_file() and path.stat().st_size == 0:  # not "header=b''" (h_rev15, L2)
        raise ImageFileError(f"{path} is an empty file (0 bytes): replace it with a fresh "
                             "copy.")
    if suffix in TIFF_SUFFIXES and not plain_inside(path):  # a PNG named .tif: read
        return open_tiff(path, axes)
    if suffix in IMAGE_FILE_SUFFIXES:
        return open_plain(path, axes)
    vendor = vendor_format_words(path)
    if vendor:
        raise ImageFileError(vendor)
    raise ImageFileError(f"{path}: unknown image type {suffix!r}; expected one of "
                         f"{', '.join(IMAGE_FILE_SUFFIXES)} or a .zarr folder.")


def stack_from_array(data: Any, axes: str, name: str = "image", *, rgb: bool = False,
                     read_by: str | None = None) -> ImageStack:
    """Wrap an in-memory or lazy array (numpy, dask, zarr) as an :class:`ImageStack`.

    Parameters
    ----------
    data : array-like
        The pixels.
    axes : str
        One letter per dimension (``"YX"``, ``"ZYX"``, ``"TCYX"``, ``"YXC"``...).
    name : str
        Output name.
    rgb : bool
        Whether a channel axis of size 3 or 4 holds RGB(A) samples.
    read_by : str, optional
        None when the user gave ``axes``; else who guessed them, as for
        :func:`check_axes` (``""``: guessed from the shape).
    """
    return make_stack(name, data, axes, name, rgb, read_by=read_by)
