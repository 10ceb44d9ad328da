"""Download the DSB2018 ``stage1_train.zip`` (BBBC038) into the user cache with pooch.

After a download its content is checked against the manifest pinned in the package
(:mod:`napari_nuclei_unet.core.dsb2018_pin`): every member is hashed and compared,
and a copy that differs is deleted with a message naming the samples that differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where the Broad Bioimage Benchmark Collection serves the DSB2018 training set (CC0).
DEFAULT_URL = "https://data.broadinstitute.org/bbbc/BBBC038/stage1_train.zip"

#: Expected hash of ``stage1_train.zip`` as pooch understands it (``"sha256:<hex>"``,
#: ``"md5:<hex>"``). None: not pinned, because the published hash of the file the Broad
#: serves could not be verified while this was written (no internet access; no
#: trustworthy published value found). The archive's *content* is pinned instead and
#: always checked (see :func:`fetch_stage1_train`). Set :data:`HASH_ENV` or pass
#: ``known_hash`` to have the archive's own hash checked too.
DEFAULT_KNOWN_HASH: str | None = None

#: Environment variable with the expected hash (``sha256:<hex>``), used when
#: ``known_hash`` is not given and :data:`DEFAULT_KNOWN_HASH` is None.
HASH_ENV = "NUCLEI_UNET_DSB2018_HASH"

#: File name of the download in the cache.
ZIP_NAME = "stage1_train.zip"

#: Suffix of the note, next to the zip, that its content was checked (size, mtime, digest).
VERIFIED_SUFFIX = ".verified"

#: Environment variable that overrides the cache root (the zip goes to ``<root>/downloads``).
CACHE_ENV = "NUCLEI_UNET_CACHE_DIR"


class DownloadError(RuntimeError):
    """A download failed: offline, HTTP error or a file whose hash does not match.

    Parameters
    ----------
    url : str
        What was being downloaded.
    reason : str
        Why it failed, in plain words.
    """

    def __init__(self, url: str, reason: str):
        super().__init__(f"Could not download {url}: {reason}")
        self.url = url
        self.reason = reason


def cache_root() -> Path:
    """The plugin's cache folder.

    Returns
    -------
    pathlib.Path
        ``$NUCLEI_UNET_CACHE_DIR`` if set, else the platform's user cache folder for
        ``napari-nuclei-unet`` (``~/.cache/napari-nuclei-unet`` on Linux).
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-nuclei-unet"))


def cached_path(fname: str = ZIP_NAME, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`fetch_stage1_train` keeps (or will keep) the download.

    Parameters
    ----------
    fname : str, optional
        File name in the cache.
    cache_dir : str or os.PathLike, optional
        Cache folder; default :func:`download_dir`.

    Returns
    -------
    pathlib.Path
        The path; it exists once the file has been downloaded.
    """
    return (Path(cache_dir) if cache_dir is not None else download_dir()) / fname


def download_dir() -> Path:
    """Folder that downloads are cached in: ``cache_root() / "downloads"``."""
    return cache_root() / "downloads"


def _reason(exc: BaseException) -> str:
    """Plain-words reason for a failed download."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        resp = exc.response
        return f"the server answered HTTP {resp.status_code} {resp.reason or ''}".rstrip()
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not connect to the server (are you offline?)"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the server did not answer in time"
    if isinstance(exc, ValueError) and "hash" in str(exc).lower():
        return (
            "the downloaded file does not have the expected hash (a corrupt or changed "
            f"file; it was not kept): {exc}"
        )
    return f"{type(exc).__name__}: {exc}"


def fetch_stage1_train(
    *,
    url: str = DEFAULT_URL,
    known_hash: str | None = DEFAULT_KNOWN_HASH,
    cache_dir: str | os.PathLike | None = None,
    progressbar: bool | Any = False,
    timeout: float = 60.0,
    fname: str = ZIP_NAME,
    log: Callable[[str], None] | None = None,
    check_content: bool = True,
    manifest: dict | str | os.PathLike | None = None,
) -> Path:
    """Download ``stage1_train.zip`` once and return its path in the cache.

    A file already in the cache is returned without downloading again (if
    ``known_hash`` is given it must match, otherwise it is downloaded anew).
    Its content is checked against the pinned manifest once (every member hashed,
    :func:`napari_nuclei_unet.core.dsb2018_pin.verify_stage1_train`); a note next to
    the zip records the check, so later calls do not read it again.

    Parameters
    ----------
    url : str, optional
        Where to download from; the BBBC038 copy by default.
    known_hash : str, optional
        Expected hash, e.g. ``"sha256:<hex>"``; None uses ``$NUCLEI_UNET_DSB2018_HASH``
        when set, else skips the check.
    cache_dir : str or os.PathLike, optional
        Folder to store the zip in; default :func:`download_dir`.
    progressbar : bool or object, optional
        True for a tqdm bar on the terminal, or a tqdm-like object (such as
        ``napari.utils.progress``) that pooch updates.
    timeout : float, optional
        Seconds to wait for the server before giving up.
    fname : str, optional
        File name in the cache.
    log : callable, optional
        Called with a one-line message before a download starts.
    check_content : bool, optional
        Check the zip's content against the manifest (default True).
    manifest : dict or str or os.PathLike, optional
        The manifest to check against; default the one shipped with the package.

    Returns
    -------
    pathlib.Path
        Path of the zip in the cache.

    Raises
    ------
    DownloadError
        With the URL and the reason in plain words, when the server cannot be
        reached, answers with an HTTP error, the file's hash does not match, or its
        content differs from the manifest (the file is deleted in the last two cases).
    """
    import pooch

    if known_hash is None:
        known_hash = os.environ.get(HASH_ENV) or None
    if known_hash is not None and ":" not in known_hash and len(known_hash) != 64:
        raise DownloadError(url, f"the expected hash {known_hash!r} is not 'sha256:<64 hex>' "
                                 f"or 'md5:<32 hex>' (set by known_hash or {HASH_ENV})")
    target = cached_path(fname, cache_dir)
    folder = target.parent
    if log is not None and not target.exists():
        log(f"Downloading {url} to {target} ...")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        downloader = pooch.HTTPDownloader(
            progressbar=progressbar, timeout=timeout, chunk_size=1 << 16
        )
        path = pooch.retrieve(
            url, known_hash=known_hash, fname=fname, path=folder, downloader=downloader
        )
    except Exception as exc:  # pooch lets requests' and its own errors through
        raise DownloadError(url, _reason(exc)) from exc
    path = Path(path)
    if check_content:
        _check_content(path, url, manifest, log)
    return path


def _check_content(path: Path, url: str, manifest: dict | str | os.PathLike | None,
                   log: Callable[[str], None] | None) -> None:
    """Verify the zip against the manifest unless a note says this very file passed."""
    from .dsb2018_pin import load_manifest, verify_stage1_train
    from .imageio import DatasetError

    if not isinstance(manifest, dict):
        manifest = load_manifest(manifest)
    note = path.with_name(path.name + VERIFIED_SUFFIX)
    st = path.stat()
    stamp = f"{st.st_size} {st.st_mtime_ns} {manifest['digest']}\n"
    try:
        if note.read_text(encoding="utf-8") == stamp:
            return
    except OSError:
        pass
    if log is not None:
        log(f"Checking the content of {path} ...")
    try:
        verify_stage1_train(path, manifest)
    except DatasetError as exc:
        path.unlink(missing_ok=True)
        note.unlink(missing_ok=True)
        raise DownloadError(url, (
            f"{exc} The downloaded file was deleted: try again, or get stage1_train.zip "
            "from Kaggle or BBBC038."
        )) from exc
    try:
        note.write_text(stamp, encoding="utf-8")
    except OSError:  # a read-only cache: the check is simply made again next time
        pass
