"""``nuclei-unet train --contour-head`` and ``evaluate --diameter/--tta`` on tiny data."""

import json

import pytest

from napari_nuclei_unet.cli import main
from napari_nuclei_unet.core.checkpoint import load_checkpoint
from napari_nuclei_unet.core.synthetic import write_synthetic_dataset

TINY = ["--base-width", "4", "--depth", "2", "--crop-size", "32", "--batch-size", "2",
        "--steps-per-epoch", "2", "--device", "cpu", "--num-threads", "1"]


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "stage1_train"
    write_synthetic_dataset(root, n_per_style=2, shape=(48, 64), seed=3)
    return root


@pytest.fixture(scope="module")
def two_head(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["-q", "train", str(dataset), "--out", str(out), "--epochs", "1",
                 "--contour-head", "--augment-strong", "--augment-scale", "1", *TINY]) == 0
    return out / "best.safetensors"


def test_contour_head_training_records_heads_and_diameter(two_head):
    loaded = load_checkpoint(two_head)
    arch = loaded.metadata["architecture"]
    assert arch["out_channels"] == 2 and arch["training_diameter"] > 0
    assert loaded.config.contour_head and loaded.config.augment_strong


@pytest.mark.parametrize("extra", [[], ["--diameter", "0"], ["--diameter", "30", "--tta"]])
def test_evaluate_with_diameter_and_tta(two_head, dataset, capsys, extra):
    code = main(["evaluate", str(two_head), str(dataset), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["summary"]["n"] == 6


def test_evaluate_table_says_how_it_segmented(two_head, dataset, capsys):
    assert main(["evaluate", str(two_head), str(dataset), "--diameter", "0", "--tta"]) == 0
    out = capsys.readouterr().out
    assert "contour-seeded" in out and "diameter automatic" in out and "TTA" in out


def test_negative_diameter_is_a_plain_error(two_head, dataset, capsys):
    code = main(["evaluate", str(two_head), str(dataset), "--diameter", "-3"])
    err = capsys.readouterr().err
    assert code == 2 and "--diameter" in err and "Traceback" not in err
