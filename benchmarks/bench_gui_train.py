"""Training speed in the Train dock's worker vs. the plain ``core.training.train`` loop.

Both sides train the same configuration on the same synthetic samples in the same
process (torch already warmed up); the runs alternate (CLI, GUI, CLI, GUI, ...)
so that a machine whose load changes affects both alike. Throughput is training
crops per second over the whole run (validation and checkpoints included, the
same work on both sides). Target: the GUI within 15 % of the plain loop.

    xvfb-run -a python benchmarks/bench_gui_train.py            # 3 repetitions
    xvfb-run -a python benchmarks/bench_gui_train.py --reps 5 --threads 2

``--threads`` sets ``TrainConfig.num_threads`` for both sides (default: the Train
dock's automatic choice, all physical cores but one, for both sides).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_samples(n_per_style: int = 4, shape=(128, 128)):
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.synthetic import STYLES, make_synthetic_sample

    samples = []
    for style in STYLES:
        for k in range(n_per_style):
            image, masks = make_synthetic_sample(style, shape=shape, seed=k)
            labels = np.zeros(shape, np.int32)
            for i, mask in enumerate(masks, start=1):
                labels[mask] = i
            samples.append(Sample(f"{style}-{k}", image, labels, style))
    return samples


def plain_loop(config, samples, out_dir: Path) -> float:
    """Seconds of ``drive(train(...))`` without any GUI."""
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    tic = time.perf_counter()
    drive(train(config, samples, out_dir=out_dir))
    return time.perf_counter() - tic


def gui_worker(app, widget, config, out_root: Path) -> tuple[float, float]:
    """Seconds from Start until the dock's worker has finished (handlers included).

    Also returns the CPU seconds the main (UI) thread used meanwhile.
    """
    from qtpy.QtCore import QEventLoop

    widget.set_config(config)
    widget.set_output_root(out_root)
    loop = QEventLoop()  # an idle event loop, as in napari (no busy polling)
    tic, cpu = time.perf_counter(), time.thread_time()
    worker = widget.start()
    if worker is None:
        raise RuntimeError("the Train dock refused to start")
    worker.finished.connect(loop.quit)  # after the dock's own handlers
    loop.exec()
    elapsed, ui_cpu = time.perf_counter() - tic, time.thread_time() - cpu
    # the dock then loads the best model: let it finish outside the timing
    while widget.session.jobs.is_running("load model"):
        app.processEvents()
        time.sleep(0.01)
    return elapsed, ui_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--base-width", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.train_widget import TrainWidget, gui_cpu_threads

    viewer = napari.Viewer(show=True)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    app = QApplication.instance()
    session = session_for(viewer)
    while session.jobs.is_running("list devices"):  # the dock's warm-up
        app.processEvents()
        time.sleep(0.01)
    samples = synthetic_samples()
    session.samples.update({s.id: s for s in samples})
    threads = args.threads or gui_cpu_threads()
    config = TrainConfig(base_width=args.base_width, depth=3, crop_size=args.crop,
                         batch_size=args.batch_size, epochs=args.epochs,
                         steps_per_epoch=args.steps, val_fraction=0.25, amp=False,
                         num_threads=threads, device="cpu")
    crops = config.epochs * config.steps_per_epoch * config.batch_size

    cli, gui, ui_share = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            cli.append(crops / plain_loop(config, samples, Path(tmp) / f"cli{rep}"))
            seconds, ui_cpu = gui_worker(app, widget, config, Path(tmp) / "gui")
            gui.append(crops / seconds)
            ui_share.append(ui_cpu / seconds)
            print(f"rep {rep + 1}: plain loop {cli[-1]:.1f} crops/s, GUI worker {gui[-1]:.1f} "
                  f"crops/s (UI thread busy {100 * ui_share[-1]:.0f} % of one core)", flush=True)
    viewer.close()

    cli_median, gui_median = statistics.median(cli), statistics.median(gui)
    # paired runs saw the same machine load
    ratio = statistics.median(g / c for g, c in zip(gui, cli, strict=True))
    print(f"config: base_width={config.base_width} depth={config.depth} crop={config.crop_size} "
          f"batch={config.batch_size} {config.epochs}x{config.steps_per_epoch} steps, "
          f"{threads} CPU thread(s), {len(samples)} samples")
    print(f"plain core train() loop: {cli_median:.1f} crops/s (median of {args.reps})")
    print(f"Train dock GUI worker:   {gui_median:.1f} crops/s (median of {args.reps})")
    print(f"GUI / plain (median of paired runs): {ratio:.2f} ({(ratio - 1) * 100:+.0f} %; "
          "target: no worse than -15 %)")
    print(f"UI thread CPU while training: {100 * statistics.median(ui_share):.0f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
