"""Run the whole fault and bad-input corpus; count the outcomes; measure peak memory.

Usage::

    python benchmarks/bench_faults.py [--only TEXT] [--skip-crashes] [--json OUT.json]

Every case of ``tests/test_faults_corpus.py`` (bombs in zips, PNGs and TIFFs, damaged
and odd zips, FIFOs, symbolic-link loops, hostile checkpoint JSON and weights, bad
training options, a training that runs out of memory) is built in a temporary folder
and run in a fresh interpreter through the ``nuclei-unet`` command line, the Python
API or the napari reader. Each run is classified by its exit status and stderr:

- plain error: exit 2 with one ``nuclei-unet: error: ...`` line, or a ``ValueError`` /
  ``OSError`` (DatasetError, CheckpointError, ConfigError...) from the API;
- success: exit 0 (the bad part, if any, skipped with a note);
- traceback: a Python traceback;
- this is a bug: the CLI's message for an unexpected error;
- hang or killed: a time-out or a signal.

Then crashes are injected into checkpoint saves: a forked child is killed
(``os._exit``) just before its k-th file operation, for every k, and the checkpoint
and its resume state are loaded: a set that is neither the complete old nor the
complete new one counts as data lost.

Prints the count of cases by outcome, the peak memory (``ru_maxrss``) of every hostile
file (VmHWM, the
process's own peak resident memory) and every case whose outcome was not the expected one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_faults_corpus as corpus  # noqa: E402


def crash_injection(folder: Path) -> tuple[int, int, int]:
    """Kill a checkpoint save before each of its file operations.

    Returns
    -------
    (int, int, int)
        Crash points tried, sets lost (unloadable or mixed), resume states lost.
    """
    import torch

    from napari_nuclei_unet.core import atomic
    from napari_nuclei_unet.core.checkpoint import (
        load_checkpoint,
        load_train_state,
        save_checkpoint,
    )
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    torch.set_num_threads(1)
    config = TrainConfig(base_width=4, depth=2, crop_size=32)

    def save(path, seed):
        torch.manual_seed(seed)
        model = UNet(base_width=4, depth=2)
        state = ({"m": torch.full((2,), float(seed))}, {"epoch": seed})
        save_checkpoint(path, model, config, {"metrics": {"seed": seed}}, train_state=state)
        return model.state_dict()

    tried = lost = lost_resume = 0
    k = 0
    while True:
        path = folder / f"k{k}" / "last"
        old = save(path, 1)
        torch.manual_seed(2)
        new = UNet(base_width=4, depth=2).state_dict()
        pid = os.fork()
        if pid == 0:  # the child: die before operation k
            count = 0

            def hook(op, p, k=k):
                nonlocal count
                if count == k:
                    os._exit(17)
                count += 1

            atomic.fault_hook = hook
            save(path, 2)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        tried += 1
        try:
            loaded = load_checkpoint(path)
            seed = loaded.metadata["metrics"]["seed"]
            reference = old if seed == 1 else new
            if any(not torch.equal(v, reference[key])
                   for key, v in loaded.model.state_dict().items()):
                lost += 1
            _, state, meta = load_train_state(path)
            if float(state["m"][0]) != seed or meta["resume"]["epoch"] != seed:
                lost_resume += 1
        except Exception as exc:  # noqa: BLE001 - anything unloadable is data lost
            print(f"  crash point {k}: {type(exc).__name__}: {exc}", file=sys.stderr)
            lost += 1
        if os.WEXITSTATUS(status) == 0:
            return tried, lost, lost_resume
        k += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--skip-crashes", action="store_true",
                        help="do not run the checkpoint crash injection")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    cases = [c for c in corpus.corpus() if not args.only or args.only in c.name]
    outcomes: Counter[str] = Counter()
    rows, unexpected = [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        for i, case in enumerate(cases):
            result = corpus.run_case(case, Path(tmp) / f"{i:03d}")
            outcomes[result.outcome] += 1
            rows.append({"case": case.name, "outcome": result.outcome,
                         "expected": result.expected, "peak_mb": result.peak_mb,
                         "hostile": case.hostile, "message": result.message})
            mark = "" if result.expected else "   <-- unexpected"
            print(f"{case.name:40s} {result.outcome:14s} "
                  f"{(result.peak_mb or 0):7.0f} MB{mark}", file=sys.stderr, flush=True)
            if not result.expected:
                unexpected.append(rows[-1])
        crash = None
        if not args.skip_crashes and hasattr(os, "fork"):
            crash = crash_injection(Path(tmp) / "crash")
    elapsed = time.perf_counter() - started

    print(f"\nFault corpus: {len(cases)} cases in {elapsed:.0f} s")
    print(f"{'outcome':24s} cases")
    for outcome in corpus.OUTCOMES:
        print(f"{outcome:24s} {outcomes.get(outcome, 0):5d}")
    print(f"{'as expected':24s} {len(cases) - len(unexpected):5d} / {len(cases)}")
    hostile = [r for r in rows if r["hostile"]]
    if hostile:
        print("\nPeak memory on hostile files (VmHWM of the process, MB; limit 1024):")
        for row in hostile:
            print(f"  {row['case']:40s} {row['peak_mb'] or 0:7.0f}")
        print(f"  {'max':40s} {max(r['peak_mb'] or 0 for r in hostile):7.0f}")
    if crash is not None:
        tried, lost, lost_resume = crash
        print(f"\nCrash injection: {tried} crash points in a checkpoint save; sets lost or "
              f"mixed: {lost}; resume states lost: {lost_resume}")
    if unexpected:
        print("\nUnexpected outcomes:")
        for row in unexpected:
            print(f"  {row['case']}: {row['outcome']}: {row['message'][:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "crash": crash}, indent=2))
    return 0 if not unexpected and (crash is None or crash[1:] == (0, 0)) else 1


if __name__ == "__main__":
    sys.exit(main())
