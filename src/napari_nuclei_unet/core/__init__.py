"""Compute and IO core: numpy and torch only, never Qt or napari.

torch is imported lazily inside the functions and modules that need it, so that
importing :mod:`napari_nuclei_unet.core` (and with it the napari reader and sample
data) stays fast.
"""
