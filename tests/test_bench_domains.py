"""The fine-tuning benchmark's domains: its draws and the kinds of image it makes."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_finetune_domains as bench  # noqa: E402

from napari_nuclei_unet.core.dataset import Sample  # noqa: E402


def _disk_sample(sample_id="im", peak=200, background=10):
    yy, xx = np.mgrid[:64, :64]
    inside = (yy - 32) ** 2 + (xx - 32) ** 2 <= 8**2
    image = np.repeat(np.where(inside, peak, background).astype(np.uint8)[..., None], 3, 2)
    return Sample(sample_id, image, inside.astype(np.int32), "fluorescence")


class _Data:
    """A stand-in for DSBDataset: 40 fluorescence images of 256 x 256 (in its infos)."""

    def __init__(self, n=40):
        self.infos = [SimpleNamespace(id=f"im{i:02d}", modality="fluorescence", height=256,
                                      width=256) for i in range(n)]

    def load(self, sample_id):
        peak = 100 + int(sample_id[2:]) * 3  # images told apart by their brightness
        return _disk_sample(sample_id, peak)


@pytest.mark.parametrize("domain", ["fluo-dim", "fluo-blur", "fluo-haze", "fluo-cells"])
def test_extra_corrections_keep_the_draws_own_corrections_and_others(domain):
    data = _Data()
    corrected, others, _ = bench.domain_samples(data, domain, set(), set(), 3, 10, 4)
    more, same, _ = bench.domain_samples(data, domain, set(), set(), 3, 10, 4, extra=20)
    assert [s.id for s in same] == [s.id for s in others]
    assert [s.id for s in more[:3]] == [s.id for s in corrected] and len(more) == 23
    assert not {s.id for s in more} & {s.id for s in same}
    # the same pixels too (fluo-dim's noise and fluo-haze's light are drawn in turn)
    for a, b in zip(corrected + others, more[:3] + same, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_the_cells_are_stained_around_each_nucleus_and_the_labels_kept():
    sample = _disk_sample()
    out = bench.transformed(sample, "fluo-cells", np.random.default_rng(0))
    np.testing.assert_array_equal(out.labels, sample.labels)
    grey = out.image[..., 0].astype(float)
    assert grey[32, 32] == 200  # the nucleus as it was
    ring = grey[32, 32 + 8 + 3]  # 3 px outside its edge: the stained cell
    assert 0.5 * 200 < ring < 0.7 * 200
    assert grey[2, 2] == 10  # far from any cell: the background as it was


def test_haze_keeps_the_nucleus_brighter_than_its_surroundings_and_fits_8_bit():
    sample = _disk_sample()
    out = bench.transformed(sample, "fluo-haze", np.random.default_rng(0))
    grey = out.image[..., 0].astype(float)
    assert out.image.dtype == np.uint8 and grey.max() <= 235
    assert grey[32, 32] > grey[32, 32 + 8 + 3] > 0  # a nucleus above its haze
    assert grey.min() > 10  # the uneven light lifts the background


def test_routed_rows_are_the_rounds_where_the_gate_chose_it_and_the_base_models_elsewhere():
    before, after = ["b0", "b1", "b2"], ["a0", "a1", "a2"]
    assert bench.routed(before, after, [True, False, True]) == ["a0", "b1", "a2"]
    with pytest.raises(ValueError):
        bench.routed(before, after, [True])  # one choice per image
