"""Synthetic nuclei images: shapes, non-overlapping masks, styles, DSB layout on disk."""

import numpy as np
import pytest
from PIL import Image
from skimage.morphology import dilation, disk

from napari_nuclei_unet.core.synthetic import (
    SAMPLE_SPECS,
    STYLES,
    make_synthetic_sample,
    write_dsb_sample,
    write_synthetic_dataset,
)


@pytest.fixture(scope="module", params=STYLES)
def style_sample(request):
    image, masks = make_synthetic_sample(request.param, shape=(128, 160), seed=3)
    return request.param, image, masks


def test_shapes_and_dtypes(style_sample):
    _, image, masks = style_sample
    assert image.shape == (128, 160, 3)
    assert image.dtype == np.uint8
    assert len(masks) >= 3
    for m in masks:
        assert m.shape == (128, 160)
        assert m.dtype == bool
        assert m.sum() >= 12


def test_masks_do_not_overlap(style_sample):
    _, _, masks = style_sample
    coverage = np.sum(masks, axis=0)
    assert coverage.max() == 1


def test_some_nuclei_touch():
    image, masks = make_synthetic_sample("fluorescence", seed=0)
    touching = 0
    for i, a in enumerate(masks):
        grown = dilation(a, disk(1))
        touching += sum(bool((grown & b).any()) for b in masks[i + 1 :])
    assert touching >= 1


def test_sizes_vary():
    _, masks = make_synthetic_sample("histology", shape=(256, 256), seed=1)
    radii = np.sqrt([m.sum() / np.pi for m in masks])
    assert radii.min() < 7 and radii.max() > 11


def test_same_seed_same_sample_other_seed_differs():
    a, ma = make_synthetic_sample("brightfield", shape=(64, 64), seed=5)
    b, mb = make_synthetic_sample("brightfield", shape=(64, 64), seed=5)
    c, _ = make_synthetic_sample("brightfield", shape=(64, 64), seed=6)
    assert np.array_equal(a, b)
    assert len(ma) == len(mb) and all(np.array_equal(x, y) for x, y in zip(ma, mb, strict=True))
    assert not np.array_equal(a, c)


def _background_and_nuclei(image, masks):
    fg = np.any(masks, axis=0)
    grey = image.mean(axis=2)
    return grey[~fg].mean(), grey[fg].mean()


def test_fluorescence_is_grey_with_bright_nuclei_on_dark_background():
    image, masks = make_synthetic_sample("fluorescence", seed=2)
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])
    background, nuclei = _background_and_nuclei(image, masks)
    assert background < 20
    assert nuclei > background + 30


def test_brightfield_is_grey_with_dark_nuclei_on_bright_background():
    image, masks = make_synthetic_sample("brightfield", shape=(256, 320), seed=2)
    assert np.array_equal(image[..., 0], image[..., 2])
    background, nuclei = _background_and_nuclei(image, masks)
    assert background > 150
    assert nuclei < background - 50


def test_histology_is_coloured_purple_nuclei_on_pink():
    image, masks = make_synthetic_sample("histology", seed=2)
    fg = np.any(masks, axis=0)
    r, g, b = (image[..., k].astype(float) for k in range(3))
    # colour: the channels differ a lot (unlike the grey styles)
    assert np.abs(r - g).mean() > 15
    # eosin background: pink, red above green
    assert r[~fg].mean() > g[~fg].mean() + 15
    # haematoxylin nuclei: darker than the background and blue-purple (blue above green)
    assert image[fg].mean() < image[~fg].mean() - 40
    assert b[fg].mean() > g[fg].mean() + 20


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown style"):
        make_synthetic_sample("confocal")
    with pytest.raises(ValueError, match="shape"):
        make_synthetic_sample("fluorescence", shape=(4, 4))


def test_n_nuclei_is_respected_roughly():
    _, masks = make_synthetic_sample("fluorescence", shape=(256, 256), n_nuclei=5, seed=0)
    assert 1 <= len(masks) <= 5


def test_write_dsb_sample_layout(tmp_path):
    image, masks = make_synthetic_sample("fluorescence", shape=(48, 64), n_nuclei=4, seed=0)
    folder = write_dsb_sample(tmp_path, "abc", image, masks)
    assert folder == tmp_path / "abc"
    with Image.open(folder / "images" / "abc.png") as im:
        assert im.mode == "RGBA"
        rgba = np.asarray(im)
    assert rgba.shape == (48, 64, 4)
    assert (rgba[..., 3] == 255).all()
    assert np.array_equal(rgba[..., :3], image)
    files = sorted((folder / "masks").glob("*.png"))
    assert len(files) == len(masks)
    for f, m in zip(files, masks, strict=True):
        with Image.open(f) as im:
            assert im.mode == "L"
            arr = np.asarray(im)
        assert set(np.unique(arr)) <= {0, 255}
        assert np.array_equal(arr > 0, m)


def test_write_dsb_sample_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_dsb_sample(tmp_path, "x", np.zeros((8, 8, 3), np.float32), [])
    with pytest.raises(ValueError, match="shape"):
        write_dsb_sample(tmp_path, "x", np.zeros((8, 8, 3), np.uint8), [np.zeros((4, 4), bool)])


def test_write_synthetic_dataset(tmp_path):
    ids = write_synthetic_dataset(tmp_path, n_per_style=2, seed=1)
    assert ids == sorted(f"{s}-{k}" for s in STYLES for k in range(2))
    for sample_id in ids:
        assert (tmp_path / sample_id / "images" / f"{sample_id}.png").is_file()
        assert list((tmp_path / sample_id / "masks").glob("*.png"))


def test_sample_specs_cover_every_style():
    assert {s.style for s in SAMPLE_SPECS} == set(STYLES)
    assert len({s.sample_id for s in SAMPLE_SPECS}) == len(SAMPLE_SPECS)
