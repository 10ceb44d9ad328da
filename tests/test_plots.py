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
