"""``python -m napari_nuclei_unet.bioimageio ...``: bioimageio.core's own command line.

The same as the ``bioimageio`` command (e.g. ``test OUT.zip``), with the compatibility
fix of :mod:`napari_nuclei_unet.bioimageio._compat` applied first, so it also works where
bioimageio.spec 0.5.12 meets a newer pydantic.
"""

from __future__ import annotations


def main() -> None:
    """Run bioimageio.core's command line with the compatibility fix applied."""
    from .load import _import_bioimageio

    _import_bioimageio()
    from bioimageio.core.__main__ import main as bioimageio_main

    bioimageio_main()


if __name__ == "__main__":
    main()
