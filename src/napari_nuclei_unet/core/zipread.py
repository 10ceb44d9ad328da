"""Reading one zip member with bounded memory: sizes, ratio, encryption and method first.

Used by :mod:`napari_nuclei_unet.core.dataset` (and the CLI's image finder) for every
member of a DSB2018 zip, so that a small hostile zip cannot make the program allocate
gigabytes and a damaged one gets a plain message.
"""

from __future__ import annotations

import zipfile
import zlib

from .imageio import DatasetError

__all__ = ["MAX_COMPRESSION_RATIO", "MAX_MEMBER_BYTES", "RATIO_MIN_BYTES", "read_zip_member"]

#: Largest zip member read (an image or mask of a DSB sample is at most a few MB).
MAX_MEMBER_BYTES = 256 * 1024 * 1024
#: A member that inflates by more than this factor and to more than
#: :data:`RATIO_MIN_BYTES` is refused as a likely zip bomb.
MAX_COMPRESSION_RATIO = 200
RATIO_MIN_BYTES = 16 * 1024 * 1024
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def read_zip_member(archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, *,
                    where: str) -> bytes:
    """Read one zip member with its size checked first and its content streamed.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open zip.
    name : str or zipfile.ZipInfo
        The member.
    where : str
        The zip's path, for messages.

    Returns
    -------
    bytes
        The member's content.

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
    ratio = info.file_size / max(1, info.compress_size)
    if info.file_size > RATIO_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
        raise DatasetError(
            f"{label} inflates {ratio:,.0f}-fold ({info.compress_size:,} bytes to "
            f"{info.file_size:,}), like a zip bomb, not an image; it was not read."
        )
    try:
        with archive.open(info) as handle:
            chunks, total = [], 0
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > info.file_size or total > MAX_MEMBER_BYTES:
                    raise DatasetError(
                        f"{label} inflates to more than its declared size "
                        f"({info.file_size:,} bytes): the zip is corrupt or hostile; it was "
                        "not read."
                    )
                chunks.append(chunk)
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(
            f"Cannot read {label}: {reason}. The zip is damaged or truncated (e.g. an "
            "interrupted download): download or copy it again."
        ) from exc
    return b"".join(chunks)
