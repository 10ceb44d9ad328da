"""The sub-commands of ``nuclei-unet`` (see :mod:`napari_nuclei_unet.cli`).

One module per command, each with ``run(args) -> int``; they are imported only when
their command runs.
"""
