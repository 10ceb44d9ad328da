"""Build the pinned content manifest of DSB2018 stage1_train (BBBC038).

Run from the project root, on the authoritative copy of the dataset::

    python benchmarks/build_dsb2018_manifest.py /work/shared/dsb2018/stage1_train

It hashes every file (SHA-256), one SHA-256 per sample over its sorted
(path, file SHA-256) pairs, and writes ``src/napari_nuclei_unet/core/dsb2018_manifest.json``
(or ``--out``). The output is deterministic: the same content gives the same bytes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from napari_nuclei_unet.core.dsb2018_pin import SHIPPED_MANIFEST, build_manifest, write_manifest


def main(argv: list[str] | None = None) -> None:
    """Build the manifest and print its size and digest.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="stage1_train folder or stage1_train.zip")
    parser.add_argument("--out", default=str(SHIPPED_MANIFEST), help="manifest to write")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    manifest = build_manifest(args.dataset)
    write_manifest(manifest, args.out)
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {manifest['n_samples']} samples, {manifest['n_files']} files, "
          f"{size:,} bytes, digest {manifest['digest']} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
