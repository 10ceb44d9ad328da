"""Random training crops at native resolution, and their augmentation (torch).

Images stay in memory as raw ``uint8`` tensors (on the training device, so a GPU
run never copies data from the host), each with its per-image normalisation
(:func:`~napari_nuclei_unet.core.normalize.normalization_params`). A batch is made by

1. cutting a random square window out of each chosen image (images smaller than the
   window were reflect-padded once, up front);
2. normalising it with that image's affine map (exactly what prediction does);
3. resampling it to ``crop_size`` with a random scale factor (scale jitter), in one
   batched ``grid_sample``;
4. random flips and 90-degree rotations;
5. mild intensity jitter: contrast, brightness, gamma, per-channel colour, noise,
   random grey conversion and random inversion;
6. with ``strong``: H&E stain jitter by colour deconvolution (before normalisation),
   strong dimming with 8-bit quantisation (a raw image with max ~10-80 of 255), hue
   and saturation, blur/defocus, and wider gamma and noise.

With ``contours``, the target gets a second channel: the nuclei's inner borders
(:func:`contour_map`), resampled with the mask.

All randomness comes from one :class:`numpy.random.Generator`, whose state is plain
JSON, so a resumed run continues the same random stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .normalize import as_rgb, normalization_params, prepare_plane


@dataclass(frozen=True)
class AugmentSettings:
    """Which augmentations to apply (from :class:`TrainConfig`).

    Attributes
    ----------
    flips, rot90, intensity, invert : bool
        See :class:`~napari_nuclei_unet.core.config.TrainConfig`.
    scale : float
        Scale jitter amplitude: factors in ``[1/(1+scale), 1+scale]``, log-uniform.
    invert_probability : float
        Chance of inverting a crop (when ``invert``).
    grey_probability : float
        Chance of converting a crop to grey (when ``invert``).
    """

    flips: bool = True
    rot90: bool = True
    intensity: bool = True
    invert: bool = True
    scale: float = 0.0
    invert_probability: float = 0.15
    grey_probability: float = 0.2
    strong: bool = False

    @classmethod
    def from_config(cls, config) -> AugmentSettings:
        """Build the settings of a :class:`TrainConfig`."""
        return cls(
            flips=config.augment_flips,
            rot90=config.augment_rot90,
            intensity=config.augment_intensity,
            invert=config.augment_invert,
            scale=config.augment_scale,
            strong=getattr(config, "augment_strong", False),
        )


class CropSampler:
    """Draw augmented random crops from in-memory samples.

    Parameters
    ----------
    samples : sequence of Sample
        Objects with ``image`` ((H, W, 3) uint8, or anything :func:`as_rgb` accepts)
        and ``labels`` ((H, W) int, 0 = background).
    crop_size : int
        Side of the square crops returned.
    settings : AugmentSettings
        Augmentations to apply.
    device : torch.device or str, default "cpu"
        Where images are stored and batches are made.
    contours : bool, default False
        Also return the contour target (a second target channel).
    """

    def __init__(
        self,
        samples: Sequence,
        crop_size: int,
        settings: AugmentSettings | None = None,
        device: torch.device | str = "cpu",
        contours: bool = False,
    ) -> None:
        if not samples:
            raise ValueError("CropSampler needs at least one sample.")
        self.crop_size = int(crop_size)
        self.settings = settings or AugmentSettings()
        self.device = torch.device(device)
        # Window cut from the image before resampling: large enough for the biggest
        # scale factor (sampling a region of crop * (1 + scale) pixels).
        self.window = int(math.ceil(self.crop_size * (1.0 + self.settings.scale)))
        self.contours = bool(contours)
        self.images: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        colour = []
        params = []
        for sample in samples:
            image = np.ascontiguousarray(as_rgb(sample.image))
            if image.dtype != np.uint8:
                raise ValueError(
                    f"Sample {getattr(sample, 'id', '?')}: training expects uint8 images, "
                    f"got {image.dtype}."
                )
            image = as_rgb(prepare_plane(image))  # as segment_image sees it
            norm = normalization_params(image)
            params.append((norm.scale, norm.offset))
            labels = np.asarray(sample.labels)
            mask = (labels > 0).astype(np.uint8)
            if self.contours:
                mask = mask + contour_map(labels).astype(np.uint8) * 2  # bit 0 fg, bit 1 contour
            colour.append(_is_colour(image))
            image, mask = _pad_to_at_least(image, mask, self.window)
            if not image.flags.writeable:  # e.g. a memory-mapped or cached sample
                image = image.copy()  # torch must not share memory it cannot write
            self.images.append(torch.from_numpy(image).to(self.device))
            self.masks.append(torch.from_numpy(mask).to(self.device))
        self.norm = torch.tensor(params, dtype=torch.float32, device=self.device)
        self.colour = np.asarray(colour, dtype=bool)

    def __len__(self) -> int:
        return len(self.images)

    def batch(
        self, rng: np.random.Generator, indices: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Make one augmented batch.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of all randomness.
        indices : sequence of int
            Which images to crop (one crop each).

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``(N, 3, crop, crop)`` float32 normalised images and ``(N, 1, crop, crop)``
            float32 0/1 masks (``(N, 2, crop, crop)``: mask and contour, with
            ``contours``), on the sampler's device.
        """
        indices = [int(i) for i in indices]
        n, w = len(indices), self.window
        windows, masks = [], []
        for i in indices:
            image, mask = self.images[i], self.masks[i]
            y0 = int(rng.integers(0, image.shape[0] - w + 1))
            x0 = int(rng.integers(0, image.shape[1] - w + 1))
            windows.append(image[y0 : y0 + w, x0 : x0 + w])
            masks.append(mask[y0 : y0 + w, x0 : x0 + w])
        x = torch.stack(windows).permute(0, 3, 1, 2).float()
        packed = torch.stack(masks)[:, None]
        if self.contours:
            y = torch.cat([packed & 1, (packed >> 1) & 1], dim=1).float()
        else:
            y = packed.float()
        norm = self.norm[indices].clone()
        s = self.settings
        if s.strong:
            x, norm = self._raw_jitter(rng, x, norm, self.colour[indices])
        x = x * norm[:, 0, None, None, None] + norm[:, 1, None, None, None]
        x, y = self._geometric(rng, x, y)
        if s.intensity:
            x = self._jitter(rng, x)
        if s.strong:
            x = self._strong(rng, x)
        if s.invert:
            grey = np.flatnonzero(rng.random(n) < s.grey_probability).tolist()
            if grey:
                x[grey] = x[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
            invert = np.flatnonzero(rng.random(n) < s.invert_probability).tolist()
            if invert:
                x[invert] = 1.0 - x[invert]
        return x.contiguous(), y.contiguous()

    def _geometric(
        self, rng: np.random.Generator, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale jitter, flips and 90-degree rotations in one batched resampling.

        A region of ``crop * factor`` pixels at a random place in the window is mapped
        onto the ``crop x crop`` output; flips negate an axis of the affine map and a
        transpose swaps its rows (with flips: all 8 right-angle symmetries).
        """
        n, w, c = x.shape[0], self.window, self.crop_size
        s = self.settings
        if s.scale > 0:
            amplitude = math.log1p(s.scale)
            side = c * np.exp(rng.uniform(-amplitude, amplitude, n))  # region side, <= w
        else:
            side = np.full(n, float(c))
        slack = w - side
        cx = rng.uniform(0, 1, n) * slack + side / 2
        cy = rng.uniform(0, 1, n) * slack + side / 2
        sx = np.where(rng.random(n) < 0.5, -1.0, 1.0) if s.flips else np.ones(n)
        sy = np.where(rng.random(n) < 0.5, -1.0, 1.0) if s.flips else np.ones(n)
        transpose = rng.random(n) < 0.5 if s.rot90 else np.zeros(n, bool)
        if s.scale == 0 and not s.flips and not s.rot90:
            # Plain crops: take the pixels as they are (no resampling).
            x0 = np.round(cx - side / 2).astype(int)
            y0 = np.round(cy - side / 2).astype(int)
            xs = torch.stack([x[i, :, y0[i] : y0[i] + c, x0[i] : x0[i] + c] for i in range(n)])
            ys = torch.stack([y[i, :, y0[i] : y0[i] + c, x0[i] : x0[i] + c] for i in range(n)])
            return xs, ys
        theta = np.zeros((n, 2, 3), dtype=np.float32)
        a = side / w
        theta[:, 0, 0] = np.where(transpose, 0, a * sx)
        theta[:, 0, 1] = np.where(transpose, a * sy, 0)
        theta[:, 1, 0] = np.where(transpose, a * sx, 0)
        theta[:, 1, 1] = np.where(transpose, 0, a * sy)
        theta[:, 0, 2] = 2 * cx / w - 1
        theta[:, 1, 2] = 2 * cy / w - 1
        grid = F.affine_grid(
            torch.from_numpy(theta).to(self.device), [n, 1, c, c], align_corners=False
        )
        both = torch.cat([x, y], dim=1)
        both = F.grid_sample(
            both, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        mask = (both[:, 3:4] > 0.5).float()
        if both.shape[1] > 4:
            # the contour stays soft: a thin line must not vanish when a crop is shrunk
            mask = torch.cat([mask, both[:, 4:].clamp(0.0, 1.0)], dim=1)
        return both[:, :3], mask

    def _raw_jitter(
        self, rng: np.random.Generator, x: torch.Tensor, norm: torch.Tensor, colour: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stain jitter and dimming on raw ``0..255`` windows; returns ``x`` and the maps.

        Stain jitter (colour images, half of them): Beer-Lambert optical density, the
        haematoxylin/eosin/DAB concentrations of :func:`skimage.color.rgb2hed`'s
        matrix, each scaled by ``[0.6, 1.4]`` and shifted, then back to RGB.
        Dimming (15 % of crops): the raw values times ``[0.03, 0.3]``, rounded to
        integers (what an 8-bit camera records of a dim sample); the affine map is
        divided accordingly, as a percentile normalisation of the dim image would be.
        """
        n = x.shape[0]
        stain = np.flatnonzero(colour & (rng.random(n) < 0.5)).tolist()
        if stain:
            from skimage.color import hed_from_rgb, rgb_from_hed

            forward = torch.as_tensor(hed_from_rgb, dtype=torch.float32, device=self.device)
            backward = torch.as_tensor(rgb_from_hed, dtype=torch.float32, device=self.device)
            alpha = torch.as_tensor(rng.uniform(0.6, 1.4, (len(stain), 3)), dtype=torch.float32,
                                    device=self.device)
            beta = torch.as_tensor(rng.uniform(-0.05, 0.05, (len(stain), 3)),
                                   dtype=torch.float32, device=self.device)
            raw = x[stain].clamp(min=1.0) / 255.0
            od = -torch.log(raw).permute(0, 2, 3, 1)  # (k, h, w, 3)
            hed = od @ forward
            hed = hed * alpha[:, None, None, :] + beta[:, None, None, :]
            rgb = torch.exp(-(hed.clamp(min=0) @ backward)).permute(0, 3, 1, 2)
            x[stain] = (rgb * 255.0).clamp(0.0, 255.0)
        dim = np.flatnonzero(rng.random(n) < 0.15).tolist()
        if dim:
            factor = np.exp(rng.uniform(np.log(0.03), np.log(0.3), len(dim)))
            f = torch.as_tensor(factor, dtype=torch.float32, device=self.device)
            x[dim] = torch.round(x[dim] * f[:, None, None, None])
            norm[dim, 0] = norm[dim, 0] / f
        return x, norm

    def _strong(self, rng: np.random.Generator, x: torch.Tensor) -> torch.Tensor:
        """Hue/saturation, blur/defocus, strong gamma and noise on normalised crops."""
        n = x.shape[0]
        dev = self.device
        colour = np.flatnonzero(rng.random(n) < 0.3).tolist()
        if colour:
            # rotate colours about the grey axis (hue) and scale their distance to it
            angle = rng.uniform(-np.pi / 4, np.pi / 4, len(colour))
            sat = rng.uniform(0.0, 1.6, len(colour))
            k = np.ones(3) / np.sqrt(3.0)
            cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
            mats = []
            for a, sv in zip(angle, sat, strict=True):
                rot = np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * cross @ cross
                grey = np.full((3, 3), 1.0 / 3.0)
                mats.append(grey + sv * (rot - grey))
            m = torch.as_tensor(np.stack(mats), dtype=torch.float32, device=dev)
            x[colour] = torch.einsum("kij,kjhw->kihw", m, x[colour])
        blur = np.flatnonzero(rng.random(n) < 0.2).tolist()
        for i, sigma in zip(blur, rng.uniform(0.6, 2.5, len(blur)), strict=True):
            radius = int(math.ceil(2.5 * sigma))
            t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=dev)
            kernel = torch.exp(-0.5 * (t / float(sigma)) ** 2)
            kernel = (kernel / kernel.sum()).repeat(3, 1)
            crop = F.pad(x[i : i + 1], (radius, radius, radius, radius), mode="reflect")
            crop = F.conv2d(crop, kernel[:, None, None, :], groups=3)
            x[i : i + 1] = F.conv2d(crop, kernel[:, None, :, None], groups=3)
        gamma_on = np.flatnonzero(rng.random(n) < 0.3).tolist()
        if gamma_on:
            gamma = torch.as_tensor(np.exp(rng.uniform(-0.7, 0.7, len(gamma_on))),
                                    dtype=torch.float32, device=dev)
            x[gamma_on] = x[gamma_on].clamp(min=0).pow(gamma.reshape(-1, 1, 1, 1))
        noisy = np.flatnonzero(rng.random(n) < 0.2).tolist()
        if noisy:
            generator = torch.Generator(device=dev)
            generator.manual_seed(int(rng.integers(0, 2**62)))
            noise = torch.randn((len(noisy), *x.shape[1:]), generator=generator, device=dev)
            sigma = torch.as_tensor(rng.uniform(0.02, 0.12, len(noisy)), dtype=torch.float32,
                                    device=dev)
            x[noisy] += noise * sigma.reshape(-1, 1, 1, 1)
        return x

    def _jitter(self, rng: np.random.Generator, x: torch.Tensor) -> torch.Tensor:
        """Mild per-crop contrast, brightness, gamma, colour and noise jitter."""
        n = x.shape[0]

        def per_sample(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float32, device=self.device)

        gamma_on = np.flatnonzero(rng.random(n) < 0.5).tolist()
        gamma = np.exp(rng.uniform(-0.3, 0.3, n))
        if gamma_on:
            g = per_sample(gamma[gamma_on]).reshape(-1, 1, 1, 1)
            x[gamma_on] = x[gamma_on].clamp(min=0).pow(g)
        contrast = np.exp(rng.uniform(-0.25, 0.25, (n, 1, 1, 1)))
        colour = np.exp(rng.uniform(-0.1, 0.1, (n, 3, 1, 1)))
        brightness = rng.uniform(-0.08, 0.08, (n, 1, 1, 1))
        x = torch.addcmul(per_sample(np.repeat(brightness, 3, axis=1)), x,
                          per_sample(contrast * colour))
        noisy = np.flatnonzero(rng.random(n) < 0.3).tolist()
        sigma = rng.uniform(0, 0.04, n)
        if noisy:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(rng.integers(0, 2**62)))
            noise = torch.randn(
                (len(noisy), *x.shape[1:]), generator=generator, device=self.device
            )
            x[noisy] += noise * per_sample(sigma[noisy]).reshape(-1, 1, 1, 1)
        return x


def contour_map(labels: np.ndarray) -> np.ndarray:
    """The inner border of every nucleus: the contour target of two-head models.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` instance labels, 0 = background.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool, True on the pixels of a nucleus that touch another label or
        the background (so two touching nuclei are separated by a two-pixel band).
    """
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    return find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)


def _is_colour(image: np.ndarray) -> bool:
    """True when the RGB channels of an image differ (stained tissue, not grey)."""
    step = max(1, int(math.sqrt(image.shape[0] * image.shape[1] / 65536)))
    sub = image[::step, ::step].astype(np.int16)
    return float(np.abs(sub - sub.mean(axis=2, keepdims=True)).mean()) > 2.0


def _pad_to_at_least(
    image: np.ndarray, mask: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad ``image`` (H, W, C) and ``mask`` (H, W) so both sides are >= ``size``."""
    pad_h = max(0, size - image.shape[0])
    pad_w = max(0, size - image.shape[1])
    if not pad_h and not pad_w:
        return image, mask
    before_h, before_w = pad_h // 2, pad_w // 2
    pads = ((before_h, pad_h - before_h), (before_w, pad_w - before_w))
    # "symmetric" never fails for pads larger than the image (numpy repeats reflections).
    image = np.pad(image, (*pads, (0, 0)), mode="symmetric")
    mask = np.pad(mask, pads, mode="symmetric")
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
