"""Synthetic nuclei images in the DSB2018 layout.

The images imitate the three kinds of pictures in the 2018 Data Science Bowl
training set (BBBC038): dark-background fluorescence, bright-background
brightfield and colour H&E-like histology. Nuclei are ellipses with perturbed
outlines, of varied size, some of them in touching pairs; every pixel belongs to
at most one nucleus, as in the real annotations. They are meant for tests, the
offline sample data of the napari plugin (``sample_data/``) and quick demos, not
for training a model that should work on real data.

Only numpy, scikit-image and Pillow (a scikit-image dependency, used to write
the PNGs) are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.filters import gaussian
from skimage.measure import label as label_components

STYLES = ("fluorescence", "brightfield", "histology")

# Optical densities (R, G, B) of haematoxylin and eosin per unit stain, used to render the
# histology style by Beer-Lambert absorption, I = I0 * exp(-sum(c * od)). Haematoxylin is
# Ruifrok & Johnston's (2001) vector; eosin is Macenko et al.'s (2009) reference, which
# gives a pinker (less magenta) background than Ruifrok's.
_HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29])
_EOSIN_OD = np.array([0.2159, 0.8012, 0.5581])


@dataclass(frozen=True)
class SyntheticSampleSpec:
    """How one of the shipped synthetic samples in ``sample_data/`` is made.

    Attributes
    ----------
    sample_id : str
        Folder name and image file stem of the sample.
    style : str
        One of :data:`STYLES`.
    shape : tuple of int
        Image height and width in pixels.
    seed : int
        Seed of the random generator.
    """

    sample_id: str
    style: str
    shape: tuple[int, int]
    seed: int


#: The samples that ``sample_data/generate.py`` writes (and the plugin ships).
SAMPLE_SPECS: tuple[SyntheticSampleSpec, ...] = (
    SyntheticSampleSpec("synthetic-fluorescence-1", "fluorescence", (256, 256), 2018),
    SyntheticSampleSpec("synthetic-fluorescence-2", "fluorescence", (256, 256), 2019),
    SyntheticSampleSpec("synthetic-brightfield-1", "brightfield", (256, 320), 2020),
    SyntheticSampleSpec("synthetic-histology-1", "histology", (256, 256), 2021),
)


def _default_n_nuclei(style: str, shape: tuple[int, int]) -> int:
    area = shape[0] * shape[1]
    # nuclei per 256 x 256 image; histology slides are crowded, brightfield sparse
    per_tile = {"fluorescence": 30, "brightfield": 9, "histology": 30}[style]
    return max(1, round(per_tile * area / (256 * 256)))


def _outline_radius(rng: np.random.Generator, n_harmonics: int = 5):
    """Random smooth radial perturbation ``phi -> factor`` around 1 (irregular outlines)."""
    ks = np.arange(2, 2 + n_harmonics)
    amps = rng.uniform(0.0, 0.09, size=n_harmonics) / np.sqrt(ks - 1)
    phases = rng.uniform(0, 2 * np.pi, size=n_harmonics)

    def factor(phi: np.ndarray) -> np.ndarray:
        return 1.0 + np.sum(
            amps[:, None] * np.cos(ks[:, None] * phi.ravel() + phases[:, None]), axis=0
        ).reshape(phi.shape)

    return factor


@dataclass
class _Nucleus:
    cy: float
    cx: float
    ry: float  # semi-axis along the rotated y axis
    rx: float
    theta: float
    factor: object  # callable phi -> radial factor

    @property
    def r_max(self) -> float:
        return max(self.ry, self.rx) * 1.3

    def normalized_distance(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """0 at the centre, 1 on the (irregular) outline, > 1 outside."""
        dy, dx = yy - self.cy, xx - self.cx
        c, s = np.cos(self.theta), np.sin(self.theta)
        u = (c * dx + s * dy) / self.rx
        v = (-s * dx + c * dy) / self.ry
        return np.hypot(u, v) / self.factor(np.arctan2(v, u))


def _place_nuclei(rng, style, shape, n_nuclei) -> list[_Nucleus]:
    h, w = shape
    r_lo, r_hi = {
        "fluorescence": (4.0, 16.0),
        "brightfield": (6.0, 13.0),
        "histology": (5.0, 20.0),
    }[style]
    nuclei: list[_Nucleus] = []

    def make(cy, cx):
        # log-uniform sizes: many small nuclei, a few large ones
        r = float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))))
        aspect = rng.uniform(0.6, 1.0)
        return _Nucleus(cy, cx, r * aspect, r, rng.uniform(0, np.pi), _outline_radius(rng))

    def free(n, margin):
        return all(
            np.hypot(n.cy - o.cy, n.cx - o.cx) > margin * (max(n.ry, n.rx) + max(o.ry, o.rx))
            for o in nuclei
        )

    attempts = 0
    while len(nuclei) < n_nuclei and attempts < 200 * n_nuclei:
        attempts += 1
        partner = nuclei[int(rng.integers(len(nuclei)))] if nuclei else None
        if partner is not None and rng.random() < 0.25:
            # a touching/overlapping pair: centre just inside the sum of the radii
            cand = make(0.0, 0.0)
            dist = 0.85 * (min(partner.ry, partner.rx) + min(cand.ry, cand.rx)) + rng.uniform(0, 2)
            angle = rng.uniform(0, 2 * np.pi)
            cand.cy = partner.cy + dist * np.sin(angle)
            cand.cx = partner.cx + dist * np.cos(angle)
            others = [o for o in nuclei if o is not partner]
            ok = (
                0 <= cand.cy < h
                and 0 <= cand.cx < w
                and all(
                    np.hypot(cand.cy - o.cy, cand.cx - o.cx)
                    > 1.05 * (max(cand.ry, cand.rx) + max(o.ry, o.rx))
                    for o in others
                )
            )
        else:
            cand = make(rng.uniform(0, h), rng.uniform(0, w))
            ok = free(cand, 1.1)
        if ok:
            nuclei.append(cand)
    return nuclei


def _rasterize(nuclei: list[_Nucleus], shape) -> tuple[np.ndarray, np.ndarray]:
    """Label image (nearest outline wins where nuclei overlap) and normalised distance."""
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    for i, n in enumerate(nuclei, start=1):
        y0, y1 = max(0, int(n.cy - n.r_max) - 1), min(shape[0], int(n.cy + n.r_max) + 2)
        x0, x1 = max(0, int(n.cx - n.r_max) - 1), min(shape[1], int(n.cx + n.r_max) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
        d = n.normalized_distance(yy, xx)
        sub_best = best[y0:y1, x0:x1]
        win = (d <= 1.0) & (d < sub_best)
        sub_best[win] = d[win]
        labels[y0:y1, x0:x1][win] = i
    return labels, best


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``sigma``."""
    f = gaussian(rng.normal(size=shape), sigma=sigma, preserve_range=True)
    return (f - f.mean()) / (f.std() + 1e-12)


def _illumination(rng, shape, strength) -> np.ndarray:
    """Smooth multiplicative field around 1: a tilt plus a vignette."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    yy = yy / max(h - 1, 1) - 0.5
    xx = xx / max(w - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    tilt = np.cos(angle) * xx + np.sin(angle) * yy
    cy, cx = rng.uniform(-0.3, 0.3, size=2)
    vignette = (xx - cx) ** 2 + (yy - cy) ** 2
    field = 1.0 + strength * (tilt - 0.8 * vignette)
    return field / field.mean()


def _masks_from_labels(labels: np.ndarray, n: int, min_area: int) -> list[np.ndarray]:
    masks = []
    for i in range(1, n + 1):
        m = labels == i
        if m.sum() < min_area:
            continue
        # keep one piece per nucleus: contact resolution may cut off a sliver
        pieces, k = label_components(m, return_num=True)
        if k > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            m = pieces == (1 + int(np.argmax(sizes)))
        masks.append(m)
    return masks


def _render_fluorescence(rng, shape, nuclei, labels, dist, masks) -> np.ndarray:
    img = np.full(shape, 4.0) + 2.0 * _smooth_noise(rng, shape, 12)
    dome = (1.0 - np.clip(dist, 0, 1) ** 2) ** 0.35  # flat-topped, dimmer at the rim
    chromatin = 1.0 + 0.18 * _smooth_noise(rng, shape, 1.2)
    for m in masks:
        img[m] = (rng.uniform(45, 200) * dome * chromatin)[m]
    img = gaussian(img, sigma=1.1, preserve_range=True)  # slightly out of focus
    img *= _illumination(rng, shape, 0.35)
    img = rng.poisson(np.clip(img, 0, None) * 2.0) / 2.0  # shot noise
    img += rng.normal(0, 0.8, size=shape)
    grey = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _render_brightfield(rng, shape, nuclei, labels, dist, masks) -> np.ndarray:
    h, w = shape
    absorb = np.zeros(shape)
    # pale cytoplasm around each nucleus: a larger, smoother blob
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    for n in nuclei:
        cyto = _Nucleus(
            n.cy + rng.normal(0, 3),
            n.cx + rng.normal(0, 3),
            n.ry * rng.uniform(2, 3),
            n.rx * rng.uniform(2, 3),
            rng.uniform(0, np.pi),
            _outline_radius(rng),
        )
        d = cyto.normalized_distance(yy, xx)
        absorb += rng.uniform(0.12, 0.22) * (d <= 1.0)
    absorb = gaussian(absorb, sigma=1.5, preserve_range=True)
    absorb += 0.04 * _smooth_noise(rng, shape, 3) * (absorb > 0.02)
    texture = _smooth_noise(rng, shape, 1.3)
    d = np.clip(dist, 0, 1)
    rim = 0.15 * np.exp(-(((1 - d) / 0.15) ** 2))  # darker nuclear envelope
    for m in masks:
        absorb[m] += (rng.uniform(0.55, 0.95) * (0.85 + 0.15 * d) + rim + 0.12 * texture)[m]
    absorb = gaussian(absorb, sigma=0.9, preserve_range=True)
    img = 215.0 * _illumination(rng, shape, 0.25) * np.exp(-absorb)
    img += rng.normal(0, 2.5, size=shape)
    grey = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _render_histology(rng, shape, nuclei, labels, dist, masks) -> np.ndarray:
    # eosin: stroma with fibrous texture and some paler gaps; a trace of haematoxylin everywhere
    fibres = _smooth_noise(rng, shape, 1.5)
    eosin = 0.32 + 0.09 * _smooth_noise(rng, shape, 12) + 0.04 * fibres
    # a few paler gaps between tissue, as in loosely packed sections
    eosin *= np.clip(1.6 + 1.2 * _smooth_noise(rng, shape, 18), 0.25, 1.0)
    eosin = np.clip(eosin, 0.03, None)
    hema = 0.04 + 0.02 * _smooth_noise(rng, shape, 6)
    texture = _smooth_noise(rng, shape, 1.0)
    d = np.clip(dist, 0, 1)
    for m in masks:
        hema[m] = (rng.uniform(0.55, 1.25) * (0.8 + 0.25 * d) * (1.0 + 0.22 * texture))[m]
        eosin[m] *= 0.85  # some eosin in nuclei too: purple rather than blue
    hema = gaussian(hema, sigma=0.8, preserve_range=True)
    eosin = gaussian(eosin, sigma=0.8, preserve_range=True)
    od = hema[..., None] * _HEMATOXYLIN_OD + eosin[..., None] * _EOSIN_OD
    white = 245.0 * _illumination(rng, shape, 0.15)
    img = white[..., None] * np.exp(-od)
    img += rng.normal(0, 2.0, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


_RENDERERS = {
    "fluorescence": _render_fluorescence,
    "brightfield": _render_brightfield,
    "histology": _render_histology,
}


def make_synthetic_sample(
    style: str = "fluorescence",
    *,
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Make one synthetic nuclei image and its per-nucleus masks.

    Parameters
    ----------
    style : {"fluorescence", "brightfield", "histology"}
        ``"fluorescence"``: bright, textured, slightly blurred nuclei on a dark
        background (grey, R = G = B). ``"brightfield"``: dark nuclei in pale
        cytoplasm on a bright grey background. ``"histology"``: H&E-like, purple
        haematoxylin nuclei on pink eosin-stained tissue.
    shape : tuple of int, optional
        Image height and width in pixels.
    n_nuclei : int, optional
        How many nuclei to try to place. Defaults to a density typical for the
        style (about 30, 9 and 30 per 256 x 256 pixels). Fewer may be placed in a
        crowded image, and nuclei cut to a few pixels by the border are dropped.
    seed : int, optional
        Seed of the random generator; the same arguments give the same result.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB image.
    masks : list of numpy.ndarray
        One ``(H, W)`` boolean mask per nucleus. Masks never overlap, but
        touching nuclei share a boundary.

    Raises
    ------
    ValueError
        If ``style`` is unknown or ``shape`` is not two positive integers.
    """
    if style not in _RENDERERS:
        raise ValueError(f"unknown style {style!r}: expected one of {', '.join(STYLES)}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be (height, width) of at least 8 x 8 pixels, got {shape}")
    if n_nuclei is None:
        n_nuclei = _default_n_nuclei(style, shape)
    rng = np.random.default_rng(seed)
    nuclei = _place_nuclei(rng, style, shape, int(n_nuclei))
    labels, dist = _rasterize(nuclei, shape)
    masks = _masks_from_labels(labels, len(nuclei), min_area=12)
    image = _RENDERERS[style](rng, shape, nuclei, labels, dist, masks)
    return image, masks


def write_dsb_sample(
    root: str | os.PathLike, sample_id: str, image: np.ndarray, masks: list[np.ndarray]
) -> Path:
    """Write one sample in the DSB2018 layout.

    Writes ``<root>/<id>/images/<id>.png`` (RGBA, alpha 255, like the real data)
    and one ``<root>/<id>/masks/<id>_mask<NNN>.png`` (8-bit, 0/255) per mask, so
    that the sorted mask file names follow the order of ``masks``.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder (created if missing).
    sample_id : str
        Sample id: the folder name and the image file stem.
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB image (``(H, W)`` grey is accepted too).
    masks : list of numpy.ndarray
        ``(H, W)`` boolean masks, one per nucleus.

    Returns
    -------
    pathlib.Path
        The sample folder ``<root>/<id>``.

    Raises
    ------
    ValueError
        If the image is not uint8 ``(H, W[, 3])`` or a mask has another shape.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    folder = Path(root) / sample_id
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(folder / "images" / f"{sample_id}.png", optimize=True)
    for i, mask in enumerate(masks, start=1):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"mask {i} of {sample_id} has shape {mask.shape}, expected {image.shape[:2]}"
            )
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
            folder / "masks" / f"{sample_id}_mask{i:03d}.png", optimize=True
        )
    return folder


def write_synthetic_dataset(
    root: str | os.PathLike,
    n_per_style: int = 1,
    seed: int = 0,
    *,
    styles: tuple[str, ...] = STYLES,
    shape: tuple[int, int] = (64, 64),
    n_nuclei: int | None = None,
) -> list[str]:
    """Write a small synthetic dataset in the ``stage1_train`` layout (for tests).

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder (created if missing).
    n_per_style : int, optional
        Number of samples per style.
    seed : int, optional
        Base seed; every sample gets its own seed derived from it.
    styles : tuple of str, optional
        Which styles to write.
    shape : tuple of int, optional
        Image height and width; small by default so tests stay fast.
    n_nuclei : int, optional
        Nuclei per image (default: the style's typical density).

    Returns
    -------
    list of str
        The sample ids written, sorted (``"<style>-<k>"``, e.g. ``"fluorescence-0"``).
    """
    ids = []
    for s_idx, style in enumerate(styles):
        for k in range(n_per_style):
            sample_id = f"{style}-{k}"
            image, masks = make_synthetic_sample(
                style, shape=shape, n_nuclei=n_nuclei, seed=seed * 1000 + s_idx * 100 + k
            )
            write_dsb_sample(root, sample_id, image, masks)
            ids.append(sample_id)
    return sorted(ids)
