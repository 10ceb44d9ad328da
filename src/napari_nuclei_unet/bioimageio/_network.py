"""The network inside an exported bioimage.io package.

This file is copied into every package, after the source of ``core/model.py``, as the
architecture of the ``pytorch_state_dict`` weights; the TorchScript and ONNX weights are
traced from the same class. Lines marked ``# package only`` are left out of the copy.
"""

import torch
from torch import nn

from napari_nuclei_unet.core.model import UNet  # package only


class NucleiForeground(nn.Module):
    """A nuclei-unet U-Net that maps scaled images to foreground probabilities.

    The package's declared preprocessing scales the image so that its 1st and 99.8th
    percentiles map to 0 and 1 (as napari-nuclei-unet does). This module then does the
    one step that bioimage.io preprocessing cannot express: when the median of the
    grey (channel mean) image is above 0.5, i.e. the background is bright (brightfield,
    H&E), it inverts the image (``1 - x``). It returns the sigmoid of the first
    (foreground) output channel.

    Parameters
    ----------
    **unet_kwargs
        Arguments of ``UNet`` (``in_channels``, ``base_width``, ``depth``, ...).
    """

    def __init__(self, **unet_kwargs) -> None:
        super().__init__()
        self.net = UNet(**unet_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` scaled image -> ``(N, 1, H, W)`` foreground probability."""
        flat = x.mean(dim=1).flatten(1)
        median = torch.sort(flat, dim=1).values[:, (flat.shape[1] - 1) // 2]
        bright = (median > 0.5).view(-1, 1, 1, 1)
        x = torch.where(bright, 1.0 - x, x)
        return torch.sigmoid(self.net(x)[:, :1])
