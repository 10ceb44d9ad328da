"""The U-Net of Ronneberger et al. (2015), sized for nuclei segmentation.

Imports torch at module level: only training, inference and checkpoint loading
import this module, and they do so inside functions.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "unet-v1"


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> BatchNorm -> ReLU`` layers (a U-Net level).

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels of both convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


#: Names of the output channels, in order, for ``out_channels`` 1 and 2.
HEADS = {1: ("foreground",), 2: ("foreground", "contour")}


class UNet(nn.Module):
    """U-Net for nucleus segmentation: a foreground map, optionally a contour map.

    The classic encoder-decoder of Ronneberger, Fischer and Brox, "U-Net: Convolutional
    Networks for Biomedical Image Segmentation", MICCAI 2015 (arXiv:1505.04597), with
    "same" padding and batch normalisation: each level is two
    ``conv3x3 -> BatchNorm -> ReLU`` blocks; the encoder halves the resolution with
    2x2 max-pooling and doubles the channels; the decoder doubles the resolution with
    a 2x2 transposed convolution, concatenates the skip connection of the same level
    and applies another two-conv block; a 1x1 convolution gives one logit per pixel and
    output channel: channel 0 is the foreground, channel 1 (when ``out_channels=2``) the
    contour of each nucleus (a band along its border, where touching nuclei meet), used
    to seed the instance watershed.

    Parameters
    ----------
    in_channels : int, default 3
        Channels of the input image.
    base_width : int, default 16
        Channels of the first level; level ``k`` has ``base_width * 2**k``.
    depth : int, default 4
        Number of poolings. Inputs are padded (reflect) to a multiple of ``2**depth``
        and the output is cropped back, so any ``H x W`` is accepted.
    out_channels : int, default 1
        1 (foreground; the v1 models) or 2 (foreground + contour).
    training_diameter : float or None, default None
        Typical nucleus diameter (pixels) of the training crops as the network saw them;
        None for models that do not record it. Stored in the architecture so that
        :func:`~napari_nuclei_unet.core.segment.segment_image` rescales images to it.

    Examples
    --------
    >>> net = UNet(base_width=4, depth=2)
    >>> net(torch.zeros(1, 3, 37, 51)).shape
    torch.Size([1, 1, 37, 51])
    >>> UNet(base_width=4, depth=2, out_channels=2)(torch.zeros(1, 3, 16, 16)).shape
    torch.Size([1, 2, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_width: int = 16,
        depth: int = 4,
        out_channels: int = 1,
        training_diameter: float | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or base_width < 1 or depth < 1:
            raise ValueError(
                f"UNet needs in_channels, base_width and depth >= 1; got {in_channels}, "
                f"{base_width}, {depth}."
            )
        if out_channels not in HEADS:
            raise ValueError(f"UNet out_channels must be 1 or 2; got {out_channels}.")
        if training_diameter is not None and not training_diameter > 0:
            raise ValueError(
                f"UNet training_diameter must be a positive number of pixels; got "
                f"{training_diameter}."
            )
        self.out_channels = int(out_channels)
        self.training_diameter = (
            None if training_diameter is None else float(training_diameter)
        )
        self.in_channels = in_channels
        self.base_width = base_width
        self.depth = depth
        widths = [base_width * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.down.append(ConvBlock(channels, width))
            channels = width
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose2d(channels, width, kernel_size=2, stride=2))
            self.up.append(ConvBlock(2 * width, width))
            channels = width
        self.head = nn.Conv2d(channels, self.out_channels, kernel_size=1)

    @property
    def heads(self) -> tuple[str, ...]:
        """Names of the output channels (``("foreground",)`` or ``("foreground", "contour")``)."""
        return HEADS[self.out_channels]

    @property
    def multiple(self) -> int:
        """Input sizes are padded internally to a multiple of this."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict foreground logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)`` normalised images, any ``H, W >= 1``.

        Returns
        -------
        torch.Tensor
            ``(N, out_channels, H, W)`` logits (apply a sigmoid for probabilities);
            channel 0 is the foreground.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects input of shape (N, {self.in_channels}, H, W); got {tuple(x.shape)}."
            )
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up, strict=True):
            x = upsample(x)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)[..., :height, :width]

    def fuse_for_inference(self, channels_last: bool = True) -> UNet:
        """Return an eval-mode copy with every BatchNorm folded into its convolution.

        The copy computes the same function as ``self.eval()`` (up to float rounding)
        with fewer kernels, which matters most on CPU. The original model is untouched.

        Parameters
        ----------
        channels_last : bool, default True
            Store the copy's weights in ``torch.channels_last`` memory format, which
            is faster for convolutions on CPU (oneDNN) and on CUDA tensor cores.

        Returns
        -------
        UNet
            A new model in eval mode with ``requires_grad`` off.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        fused = copy.deepcopy(self).eval()
        for block in [*fused.down, *fused.up]:
            layers = list(block)
            new_layers: list[nn.Module] = []
            i = 0
            while i < len(layers):
                layer = layers[i]
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(layer, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d):
                    new_layers.append(fuse_conv_bn_eval(layer, nxt))
                    i += 2
                else:
                    new_layers.append(layer)
                    i += 1
            for idx in range(len(block) - 1, -1, -1):
                del block[idx]
            for layer in new_layers:
                block.append(layer)
        for p in fused.parameters():
            p.requires_grad_(False)
        if channels_last:
            fused = fused.to(memory_format=torch.channels_last)
        fused.is_fused = True
        return fused

    def architecture(self) -> dict:
        """Return the constructor arguments, as stored in checkpoints.

        ``out_channels`` and ``training_diameter`` are written only when they differ
        from the v1 defaults, so a v1 model describes itself exactly as before.
        """
        arch = {
            "name": ARCHITECTURE,
            "in_channels": self.in_channels,
            "base_width": self.base_width,
            "depth": self.depth,
        }
        if self.out_channels != 1:
            arch["out_channels"] = self.out_channels
        if self.training_diameter is not None:
            arch["training_diameter"] = self.training_diameter
        return arch


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dimensions (bottom/right) up to a multiple of ``multiple``.

    Reflect padding is used where the image is large enough, replicate padding
    otherwise (reflection needs the pad to be smaller than the side).

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` tensor.
    multiple : int
        Target multiple.

    Returns
    -------
    torch.Tensor
        ``(N, C, H', W')`` with ``H' % multiple == W' % multiple == 0``.
    """
    height, width = x.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
