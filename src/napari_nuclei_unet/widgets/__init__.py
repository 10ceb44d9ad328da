"""napari dock widgets: thin front ends over :mod:`napari_nuclei_unet.core`.

Each widget module is imported only when napari opens that widget (npe2 lazy
loading), so opening the plugin menu does not import torch.
"""
