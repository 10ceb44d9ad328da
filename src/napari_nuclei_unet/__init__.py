"""napari-nuclei-unet: segment cell nuclei with a U-Net inside napari.

Importing this package is cheap: torch, Qt and napari are imported only by the
modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
