"""widgets._plots.TrainingCurves: which curves, panels and legend entries are drawn."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from _widget_helpers import pixels_of, rendered

pytestmark = pytest.mark.gui

BLUE, ORANGE, GREEN = (0x3D, 0x9D, 0xF2), (0xF5, 0xA1, 0x42), (0x5C, 0xC9, 0x6B)


def epoch(k):
    return SimpleNamespace(epoch=k, epochs=3, train_loss=1.0 / k, val_loss=1.2 / k,
                           val_iou=0.3 * k)


def test_all_series_by_default(qtbot):
    from napari_nuclei_unet.widgets._plots import TrainingCurves

    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.set_history([epoch(1), epoch(2)])
    assert curves.panels == [0, 1]
    assert len(curves.points("val_loss")) == 2
    image = rendered(curves)
    assert all(pixels_of(image, c) > 0 for c in (BLUE, ORANGE, GREEN))


def test_training_loss_only_draws_no_validation_legend_or_panel(qtbot):
    from napari_nuclei_unet.widgets._plots import TrainingCurves

    curves = TrainingCurves(series=("train_loss",), empty_text="nothing yet")
    qtbot.addWidget(curves)
    assert rendered(curves).any()  # empty: paints its message without failing
    curves.set_history([epoch(1), epoch(2)])
    curves.add_epoch(epoch(3))
    assert curves.panels == [0]
    assert [e for e, _ in curves.points("train_loss")] == [1, 2, 3]
    assert curves.points("val_loss") == [] and curves.points("val_iou") == []
    image = rendered(curves, (320, 150))
    assert pixels_of(image, BLUE) > 0
    assert pixels_of(image, ORANGE) == 0  # no "validation loss" legend entry
    assert pixels_of(image, GREEN) == 0  # no IoU panel, no star


def test_unknown_series_is_refused(qtbot):
    from napari_nuclei_unet.widgets._plots import TrainingCurves

    with pytest.raises(ValueError, match="val_los"):
        TrainingCurves(series=("val_los",))
    with pytest.raises(ValueError, match="one or more"):
        TrainingCurves(series=())


def test_histogram_counts_bins_over_zero_to_one():
    from napari_nuclei_unet.widgets._plots import histogram_counts

    counts = histogram_counts([0.0, 0.04, 0.05, 0.5, 0.99, 1.0, float("nan"), -0.1, 1.2])
    assert len(counts) == 20 and sum(counts) == 8  # NaN skipped, outside values clipped
    assert counts[0] == 3 and counts[1] == 1 and counts[10] == 1 and counts[19] == 3


def test_iou_histogram_paints_bars_in_their_bins_and_the_median(qtbot):
    from napari_nuclei_unet.widgets._plots import HISTOGRAM_BINS, IoUHistogram, theme_colors

    bar = tuple(int(theme_colors("dark")["bar"][i:i + 2], 16) for i in (1, 3, 5))
    histogram = IoUHistogram("dark")
    qtbot.addWidget(histogram)
    assert pixels_of(rendered(histogram, (400, 160)), bar) == 0  # no scores: no bars
    assert histogram.median() is None
    histogram.set_values([0.12, 0.13, 0.14, 0.81, float("nan")])
    assert histogram.counts()[2] == 3 and histogram.counts()[16] == 1
    assert histogram.median() == pytest.approx(0.135)
    image = rendered(histogram, (400, 160))
    assert pixels_of(image, bar) > 0
    # a bar stands only in the columns of the bins that hold scores
    columns_with_bar = {x for x in range(image.shape[1])
                        if pixels_of(image[:, x:x + 1], bar) > 0}
    bins = {histogram.bin_at(x + 0.5) for x in columns_with_bar} - {None}
    assert bins == {2, 16}
    assert histogram.bin_at(0) is None and histogram.bin_at(399) is None
    assert HISTOGRAM_BINS == 20
    # the light theme repaints in its own colours
    histogram.set_theme("light")
    light = tuple(int(theme_colors("light")["background"][i:i + 2], 16) for i in (1, 3, 5))
    assert pixels_of(rendered(histogram, (400, 160)), light) > 0
