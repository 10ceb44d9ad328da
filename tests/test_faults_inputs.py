"""The bad-input corpus through the CLI, the Python API and the napari reader.

Hostile files (decompression bombs in a zip, a PNG and a TIFF) run in a fresh
interpreter whose peak memory (``resource.getrusage``) must stay under 1 GB; the other
cases run in this process. Every case must end in a plain-words error or a success
(the bad part skipped with a note), never a traceback or "this is a bug".
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_faults_corpus as corpus  # noqa: E402
from napari_nuclei_unet.cli import main  # noqa: E402

CASES = corpus.corpus()
PEAK_LIMIT_MB = 1024

_IN_PROCESS = [c for c in CASES if not c.hostile and "rlimit_as_gb" not in c.notes]
_HOSTILE = [c for c in CASES if c.hostile and not c.name.endswith("/predict")]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    import napari_nuclei_unet._reader as reader

    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path / "cache"))
    # the reader snippets replace _reader._show_error: put it back afterwards
    monkeypatch.setattr(reader, "_show_error", reader._show_error)


def _plain(message: str) -> bool:
    return bool(message.strip()) and "<_io." not in message and not re.search(
        r"0x[0-9a-f]{6,}", message)


def _run_in_process(case, folder, capsys):
    values = case.build(folder)
    if case.argv is not None:
        code = main([a.format(**values) for a in case.argv])
        err = capsys.readouterr().err
        assert "Traceback" not in err and "this is a bug" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("nuclei-unet: error:")]
        if code == 2:
            assert len(lines) == 1 and _plain(lines[0]), err
            return "plain error", lines[0]
        assert code == 0, err
        return "success", err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(case.api.format(**values), "<case>", "exec"), {})
        except (ValueError, OSError) as exc:
            assert _plain(str(exc)), str(exc)
            return "plain error", str(exc)
    return "success", ""


@pytest.mark.parametrize("case", _IN_PROCESS, ids=[c.name for c in _IN_PROCESS])
def test_bad_input_gets_a_plain_answer(case, tmp_path, capsys):
    outcome, message = _run_in_process(case, tmp_path, capsys)
    assert outcome == ("success" if case.expect == "ok" else "plain error"), message


@pytest.mark.parametrize("case", _HOSTILE, ids=[c.name for c in _HOSTILE])
def test_hostile_file_costs_under_1_gb(case, tmp_path):
    result = corpus.run_case(case, tmp_path)
    assert result.outcome in ("success", "plain error"), result.message
    assert result.expected, (result.outcome, result.message)
    assert result.peak_mb is not None and result.peak_mb <= PEAK_LIMIT_MB, result.peak_mb


def test_bad_samples_are_named_and_counted(tmp_path, capsys):
    """One bad sample (a broken mask) is listed by info; the counts come from the labels."""
    root = corpus.with_bad_sample(tmp_path / "ds", "masks/z9bad_m0.png", b"\x89PNG\r\n")
    code = main(["-q", "info", str(root)])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"samples\s+3\b", out), out
    assert re.search(r"nuclei\s+9\b", out), out  # 3 good samples x 3 masks, decoded
    assert "z9bad" in out and "not a readable image" in out


def test_empty_mask_files_are_not_counted_as_nuclei(tmp_path, capsys):
    import numpy as np

    members = corpus.sample_members("a0", seed=0)
    members["a0/masks/empty.png"] = corpus.png_bytes(np.zeros((40, 48), np.uint8))
    corpus.write_folder(tmp_path / "ds", members)
    assert main(["-q", "info", str(tmp_path / "ds")]) == 0
    assert re.search(r"nuclei\s+3\b", capsys.readouterr().out)


def test_duplicate_zip_members_never_merge_masks(tmp_path):
    from napari_nuclei_unet.core.dataset import DSBDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = DSBDataset.open(corpus._dup_zip(tmp_path), use_cache=False)
    assert dataset.ids() == ["s0good"]
    assert any("duplicate names" in reason for _, reason in dataset.skipped)


def test_reader_reads_zip_members_in_place(tmp_path, monkeypatch):
    import tempfile

    import napari_nuclei_unet._reader as reader

    path = corpus.zip_with_bad_sample(tmp_path / "ok.zip", "images/z9bad.png")
    monkeypatch.setattr(tempfile, "TemporaryDirectory", None)  # extracting would fail
    layers = reader.read_dsb(str(path))
    assert layers[0][1]["name"] == "s0good"


@pytest.mark.parametrize("build, reason", [
    (corpus._zip_bomb, "uncompressed, more than"),
    (corpus._ratio_zip, "like a zip bomb"),
    (lambda f: corpus.zip_with_bad_sample(f / "e.zip", "images/z9bad.png", flag=0x1),
     "encrypted"),
    (lambda f: corpus.zip_with_bad_sample(f / "m.zip", "images/z9bad.png", method=98),
     "compression method 98"),
])
def test_zip_members_are_checked_before_they_are_inflated(build, reason, tmp_path):
    from napari_nuclei_unet.core.dataset import DSBDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = DSBDataset.open(build(tmp_path), use_cache=False)
    reasons = " ".join(r for _, r in dataset.skipped)
    assert reason in reasons, reasons
    assert "z9bad" not in dataset.ids()
