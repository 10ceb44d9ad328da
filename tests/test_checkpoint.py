import json

import numpy as np
import pytest
import torch

import napari_nuclei_unet.core.checkpoint as ckpt
from napari_nuclei_unet.core.checkpoint import (
    CheckpointError,
    LoadedModel,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from napari_nuclei_unet.core.config import ConfigError, TrainConfig
from napari_nuclei_unet.core.model import UNet


def _model(width=4, depth=2):
    torch.manual_seed(0)
    return UNet(base_width=width, depth=depth)


def _config(width=4, depth=2):
    return TrainConfig(base_width=width, depth=depth, crop_size=32)


def test_round_trip(tmp_path):
    net = _model()
    path = save_checkpoint(tmp_path / "m", net, _config(), {"metrics": {"val_iou": 0.5}})
    assert path == tmp_path / "m.safetensors" and (tmp_path / "m.json").exists()
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedModel) and loaded.path == path
    assert loaded.config == _config() and not loaded.model.training
    assert loaded.metadata["metrics"]["val_iou"] == 0.5
    assert loaded.metadata["architecture"]["name"] == "unet-v1"
    assert loaded.metadata["format_version"] == ckpt.FORMAT_VERSION
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    # the json path and the bare name work too
    assert load_checkpoint(tmp_path / "m.json").path == path
    assert read_metadata(tmp_path / "m")["config"]["base_width"] == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_files_are_readable_by_everyone(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(), _config(), {})
    for file in (path, tmp_path / "m.json"):
        assert file.stat().st_mode & 0o777 == 0o644, file


def test_pickle_files_rejected(tmp_path):
    for suffix in (".pt", ".pth", ".ckpt"):
        bad = tmp_path / f"model{suffix}"
        bad.write_bytes(b"not even looked at")
        with pytest.raises(CheckpointError, match="pickle") as caught:
            load_checkpoint(bad)
        assert "bioimage.io package." in str(caught.value)  # what to choose instead
    # beside a package's rdf.yaml: the package is named (GUI check h_gui31, L6)
    (tmp_path / "rdf.yaml").write_text("type: model\n")
    with pytest.raises(CheckpointError, match="choose its rdf.yaml"):
        load_checkpoint(tmp_path / "model.pt")
    (tmp_path / "weights.onnx").write_bytes(b"onnx")  # its other weights too (h_gui32 N4)
    with pytest.raises(CheckpointError, match="choose its rdf.yaml"):
        load_checkpoint(tmp_path / "weights.onnx")


def test_missing_json(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(), _config())
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError, match=r"m\.json is missing"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    # a file that exists but is no checkpoint is named as such
    (tmp_path / "notes.tif").write_bytes(b"II*\x00")
    with pytest.raises(CheckpointError, match=r"notes.tif is not a model checkpoint: choose"):
        load_checkpoint(tmp_path / "notes.tif")


def test_corrupt_weights(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(), _config())
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt") as info:
        load_checkpoint(path)
    assert "m.safetensors" in str(info.value)
    assert str(info.value).endswith("Use another checkpoint or retrain.")
    # a run's best or last: the other one is the one to try
    for broken, other in (("best", "last"), ("last", "best")):
        path = save_checkpoint(tmp_path / broken, _model(), _config())
        path.write_bytes(b"\x00garbage" * 10)
        with pytest.raises(CheckpointError, match=f"e.g. {other} instead of {broken}"):
            load_checkpoint(path)


def test_corrupt_json(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(), _config())
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_wrong_architecture(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(width=4), _config(width=4))
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["architecture"]["base_width"] = 8
    meta["config"]["base_width"] = 8
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatch") as info:
        load_checkpoint(path)
    assert "m.safetensors" in str(info.value)
    meta["architecture"]["base_width"] = 4
    meta["architecture"]["depth"] = 3
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing key"):
        load_checkpoint(path)
    meta["architecture"]["name"] = "resnet"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'resnet' model"):
        load_checkpoint(path)


def test_mixed_up_files_detected(tmp_path):
    save_checkpoint(tmp_path / "a", _model(), _config())
    save_checkpoint(tmp_path / "b", _model(), _config())
    (tmp_path / "b.json").replace(tmp_path / "a.json")
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_checkpoint(tmp_path / "a.safetensors")


def test_unknown_config_key(tmp_path):
    path = save_checkpoint(tmp_path / "m", _model(), _config())
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["config"]["bogus"] = 1
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="bogus"):
        load_checkpoint(path)
    with pytest.raises(ConfigError, match="Unknown TrainConfig key"):
        TrainConfig.from_dict({"bogus": 1})


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    good = _model()
    path = save_checkpoint(tmp_path / "best", good, _config(), {"metrics": {"val_iou": 0.7}})

    def broken_json(path, data):
        path.write_text("{half")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_json_file", broken_json)
    torch.manual_seed(1)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(path, UNet(base_width=4, depth=2), _config(), {"metrics": {"val_iou": 0.9}})
    monkeypatch.undo()
    loaded = load_checkpoint(path)
    assert loaded.metadata["metrics"]["val_iou"] == 0.7
    for key, value in good.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".best.lock")
    assert names == ["best.json", "best.safetensors"]


def test_fused_model_cannot_be_saved(tmp_path):
    with pytest.raises(CheckpointError, match="fused"):
        save_checkpoint(tmp_path / "m", _model().fuse_for_inference(), _config())


def test_default_model_missing_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "default_model_path", lambda: tmp_path / "default.safetensors")
    with pytest.raises(CheckpointError, match="default model is not installed"):
        load_checkpoint("default")


def test_default_model_path_location():
    path = ckpt.default_model_path()
    assert path.name == "default.safetensors" and path.parent.name == "models"


def test_config_round_trip_and_validation():
    cfg = TrainConfig(base_width=8, schedule="constant", num_threads=2)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="multiple of"):
        TrainConfig(crop_size=100, depth=4)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_metadata_reading_does_not_import_torch(tmp_path):
    from _widget_helpers import fresh_python

    path = save_checkpoint(tmp_path / "m", _model(), _config())
    code = (
        "import sys\nfrom napari_nuclei_unet.core.checkpoint import read_metadata\n"
        "from napari_nuclei_unet.core import config, device\n"
        f"read_metadata({str(path)!r})\nprint('torch' in sys.modules)"
    )
    assert fresh_python(code) == "False"
    assert np.isfinite(0.0)
