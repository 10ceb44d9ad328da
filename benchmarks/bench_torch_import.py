"""How long a worker's first ``import torch`` holds up the main thread.

The plugin's first worker that needs torch imports it while napari's main thread draws
and answers the user. Python holds its interpreter lock (GIL) while the dynamic linker
loads a library, so the main thread waited 150-270 ms for ``libtorch_cpu`` alone.
``widgets._workers.import_torch_safely`` now loads that library first through libc's
``dlopen`` called as a ctypes foreign function, which releases the lock.

Each run is a fresh Python process (torch is imported once per process): its main
thread wakes every 5 ms while a worker thread imports torch, and the longest gap
between two wake-ups is printed, for a plain ``import torch`` and for the plugin's
``import_torch_safely``, the runs interleaved::

    python benchmarks/bench_torch_import.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, threading, time
mode = sys.argv[1]
done = threading.Event()

def work():
    if mode == "plugin":
        from napari_nuclei_unet.widgets._workers import import_torch_safely
        import_torch_safely()
    else:
        import torch  # noqa: F401
    done.set()

if mode == "plugin":
    import napari_nuclei_unet.widgets._workers  # noqa: F401 - its own import is not timed
worst, last = 0.0, time.perf_counter()
thread = threading.Thread(target=work)
started = time.perf_counter()
thread.start()
while not done.is_set():
    time.sleep(0.005)
    now = time.perf_counter()
    worst, last = max(worst, now - last), now
thread.join()
print(json.dumps({"worst_ms": 1000 * worst, "import_s": time.perf_counter() - started}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {"import torch": [], "import_torch_safely": []}
    for _ in range(args.runs):
        for label, mode in (("import torch", "plain"), ("import_torch_safely", "plugin")):
            out = subprocess.run([sys.executable, "-c", CHILD, mode], check=True,
                                 capture_output=True, text=True).stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
    for label, runs in results.items():
        worst = ", ".join(f"{r['worst_ms']:.0f}" for r in runs)
        took = ", ".join(f"{r['import_s']:.2f}" for r in runs)
        print(f"{label:20s} main thread's longest gap (ms): {worst}   import took (s): {took}")


if __name__ == "__main__":
    main()
