"""The shipped model's recorded scores say when they were measured (not today's score)."""

import json
from pathlib import Path

import napari_nuclei_unet

DEFAULT_JSON = Path(napari_nuclei_unet.__file__).parent / "models" / "default.json"


def test_recorded_scores_are_dated_before_any_figure():
    """The Model dock lists these sections row by row: the first row says when they are from."""
    metadata = json.loads(DEFAULT_JSON.read_text(encoding="utf-8"))
    assert list(metadata["metrics"])[0] == "measured"
    assert "during training" in metadata["metrics"]["measured"]
    evaluation = metadata["evaluation"]
    assert list(evaluation)[:2] == ["measured", "note"]
    assert "not today's score" in evaluation["measured"]
    assert "nuclei-unet evaluate default" in evaluation["note"]
    # the figures themselves stay as measured when the model was made
    assert round(evaluation["mean_iou"], 3) == 0.862 and round(evaluation["dsb_score"], 3) == 0.582
