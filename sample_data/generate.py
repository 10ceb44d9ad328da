"""Regenerate the synthetic sample images shipped in ``sample_data/``.

Usage (from the repository root, with the package installed)::

    python sample_data/generate.py

The output is deterministic: the ids, styles, sizes and seeds are listed in
:data:`napari_nuclei_unet.core.synthetic.SAMPLE_SPECS`. Old sample folders named
in that list are deleted first, so removed masks do not linger.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from napari_nuclei_unet.core.synthetic import SAMPLE_SPECS, make_synthetic_sample, write_dsb_sample

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    """Write every sample of ``SAMPLE_SPECS`` into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    for spec in SAMPLE_SPECS:
        folder = args.out / spec.sample_id
        if folder.exists():
            shutil.rmtree(folder)
        image, masks = make_synthetic_sample(spec.style, shape=spec.shape, seed=spec.seed)
        write_dsb_sample(args.out, spec.sample_id, image, masks)
        print(f"{folder}: {spec.style} {spec.shape[0]}x{spec.shape[1]}, {len(masks)} nuclei")


if __name__ == "__main__":
    main()
