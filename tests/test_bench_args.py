"""The fine-tuning benchmark's number-list options fail with a usage line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_finetune_domains.py"


@pytest.mark.parametrize(("args", "message"), [
    (["--thresholds", "0.5,1"], "every value must be above 0 and below 1, got [1.0]"),
    (["--thresholds", "0.5,,0.7"], "expected numbers separated by commas"),
    (["--extrapolations", "1,a"], "expected numbers separated by commas, e.g. 0.5,0.7, got '1,a'"),
    (["--extrapolations", "1,-1"], "every value must be above 0 and at most 10, got [-1.0]"),
])
def test_bad_number_lists_are_usage_errors(args, message):
    done = subprocess.run([sys.executable, str(SCRIPT), "unused-data-dir", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_good_number_lists_parse():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_finetune_domains as bench
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert bench.number_list(0.0, 10.0)("0.5,1,1.3") == [0.5, 1.0, 1.3]
    assert bench.number_list(0.0, 1.0, high_included=False)("0.4,0.8") == [0.4, 0.8]
