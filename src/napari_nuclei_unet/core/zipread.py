"""Reading one zip member with bounded memory: sizes, ratio, encryption and method first.

Used by :mod:`napari_nuclei_unet.core.dataset` (and the CLI's image finder) and by
:mod:`napari_nuclei_unet.core.dsb2018_pin` for every member of a DSB2018 zip, so that a
small hostile zip cannot make the program allocate gigabytes and a damaged one gets a
plain message, the same wherever it is read.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator

from .imageio import DatasetError

__all__ = ["MAX_COMPRESSION_RATIO", "MAX_MEMBER_BYTES", "RATIO_MIN_BYTES", "inflation",
           "iter_zip_member", "read_zip_member"]

#: Largest zip member read (an image or mask of a DSB sample is at most a few MB).
MAX_MEMBER_BYTES = 256 * 1024 * 1024
#: A member that inflates by more than this factor and to more than
#: :data:`RATIO_MIN_BYTES` is refused as a likely zip bomb.
MAX_COMPRESSION_RATIO = 200
RATIO_MIN_BYTES = 16 * 1024 * 1024
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def read_zip_member(archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, *,
                    where: str) -> bytes:
    """Read one zip member whole: :func:`iter_zip_member`'s chunks, joined.

    Parameters
    ----------
    archive, name, where
        As for :func:`iter_zip_member`.

    Returns
    -------
    bytes
        The member's content.

    Raises
    ------
    DatasetError
        As :func:`iter_zip_member` says.
    """
    return b"".join(iter_zip_member(archive, name, where=where))


def iter_zip_member(archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, *,
                    where: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Stream one zip member in chunks, after checking what its header declares.

    The one place that reads a member of a user's zip: the dataset reader and the
    content check of ``stage1_train`` (:mod:`napari_nuclei_unet.core.dsb2018_pin`)
    both read through it, so a bad member gets the same message everywhere.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open zip.
    name : str or zipfile.ZipInfo
        The member.
    where : str
        The zip's path, for messages.
    chunk_bytes : int
        Most bytes per chunk.

    Yields
    ------
    bytes
        The member's content, chunk by chunk.

    Raises
    ------
    DatasetError
        For an encrypted member, an unsupported compression method, a member larger
        than :data:`MAX_MEMBER_BYTES` (declared or actual) or inflating suspiciously
        much, a bad CRC or a truncated zip; the message names the member and what to do.
    """
    info = name if isinstance(name, zipfile.ZipInfo) else None
    member = info.filename if info is not None else str(name)
    label = f"{where}:{member}"
    try:
        if info is None:
            info = archive.getinfo(member)
    except KeyError:
        raise DatasetError(
            f"{label} is missing from the zip (it changed since it was opened?). Open it again."
        ) from None
    _check_header(info, label)
    try:
        with archive.open(info) as handle:
            total = 0
            while chunk := handle.read(chunk_bytes):
                total += len(chunk)
                if total > info.file_size or total > MAX_MEMBER_BYTES:
                    raise DatasetError(
                        f"{label} inflates to more than its declared size "
                        f"({info.file_size:,} bytes): the zip is corrupt or hostile; it was "
                        "not read."
                    )
                yield chunk
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(
            f"Cannot read {label}: {reason}. The zip is damaged or truncated (e.g. an "
            "interrupted download): download or copy it again."
        ) from exc


def _check_header(info: zipfile.ZipInfo, label: str) -> None:
    """Refuse a member from what its header declares, before reading any of it."""
    if info.flag_bits & 0x1:
        raise DatasetError(
            f"{label} is encrypted (password-protected); napari-nuclei-unet reads plain zips "
            "only. Extract it with its password and give the folder instead."
        )
    if info.compress_type not in _ZIP_METHODS:
        raise DatasetError(
            f"{label} uses zip compression method {info.compress_type}, which cannot be read "
            "here (supported: stored, deflate, bzip2, lzma). Extract the zip with a tool that "
            "knows it, and give the folder, or re-create the zip with ordinary compression."
        )
    if info.file_size > MAX_MEMBER_BYTES:
        raise DatasetError(
            f"{label} is {info.file_size / 2**20:,.0f} MB uncompressed, more than the "
            f"{MAX_MEMBER_BYTES / 2**20:,.0f} MB an image or mask file may have; it was not read."
        )
    ratio = inflation(info)
    if ratio:
        raise DatasetError(
            f"{label} inflates {ratio:,.0f}-fold ({info.compress_size:,} bytes to "
            f"{info.file_size:,}), like a zip bomb, not an image; it was not read."
        )


def inflation(info: zipfile.ZipInfo) -> float:
    """How many times a member inflates when that is a zip bomb's, else 0.

    More than :data:`MAX_COMPRESSION_RATIO`-fold, to more than :data:`RATIO_MIN_BYTES`:
    the one rule of the dataset reader and of the bioimage.io package guard.
    """
    ratio = info.file_size / max(1, info.compress_size)
    return ratio if info.file_size > RATIO_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO else 0.0
