"""A biologist's journey through the GUI, with the longest main-thread stall per step.

Drives the real docks (the workflow panel) on the real DSB2018 stage1_train
under Xvfb: show the window, open the workflow panel (its tabs are built in idle
turns; the step waits for them), open the dataset, load all, default model, predict all, overlay,
threshold, score all, sort, jump to worst, train 1 minute, stop, resume, correct
2 images, fine-tune, switch version. A 10 ms ``QTimer`` heartbeat on the main
thread measures the longest stall (gap between beats minus 10 ms) of each step;
napari's own first GL draw (showing the window) is measured as its own step and
excepted from the target, as is the panel's idle warm-up (first draws of its
layers; once every warm-up job is over, the warmed-up heap is frozen:
``_gc_pause.settle_heap_steps``). A screenshot of the whole window is saved after each
step (outside the measured time).

Usage (target: every step <= 100 ms)::

    NUCLEI_UNET_DSB2018=/path/to/stage1_train \\
    xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_journey.py \\
        --size 1280x800 --out /tmp/journey-1280 [--predict-limit 60]

``--predict-limit N`` predicts only the first N loaded images (the whole set
takes ~8 min on a laptop CPU); every other step uses the whole dataset.
With ``--score-predicts``, "score all" predicts the images left (the Scores panel's
own prediction, as a user who presses Score all first meets it) instead of scoring the
predicted ones only.
``--gc-log`` prints every garbage collection of 20 ms or more with the stack of
the thread that triggered it, the objects promoted to the oldest generation per
step (what brings the next full collection closer), a heap census and, at the
end, the cyclic garbage among the frozen objects (what freezing kept in memory;
measured with one full collection after the report).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TARGET_MS = 100.0


class Heartbeat:
    """A 10 ms timer on the main thread; ``worst_ms`` is the longest stall since reset."""

    def __init__(self) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)
        self.last = time.perf_counter()
        self.worst_ms = 0.0
        self.phase = ""  # the click in progress (``mark``); a stall counts for it
        self.by_phase: dict[str, float] = {}

    def _beat(self) -> None:
        now = time.perf_counter()
        stall = (now - self.last) * 1000 - 10
        self.worst_ms = max(self.worst_ms, stall)
        if self.phase:
            self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0.0), stall)
        self.last = now

    def mark(self, phase: str) -> None:
        """Stalls from now on (until the next mark) count for ``phase`` as well."""
        self.phase = phase

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.worst_ms = 0.0
        self.phase = ""
        self.by_phase = {}

    def start(self) -> None:
        self.reset()
        self.timer.start()


class GcWatch:
    """The longest garbage collection (ms) since reset: a gen-2 pass walks the whole heap.

    With ``log=True`` (``--gc-log``) every collection of 20 ms or more is printed
    with its generation, duration, objects collected, the heap's tracked-object
    count and the stack of the thread that triggered it (the callback runs in that
    thread: the allocation that crossed the threshold, or a ``gc.collect()`` call).
    """

    def __init__(self, log: bool = False) -> None:
        self.longest_ms = 0.0
        self.log = log
        self._began = None
        self._young = 0
        self.pending = 0  # promoted to gen 2 since the last gen-2 collection (estimate)
        self.promoted: dict = {}  # per thread name, since reset
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            if self.log and info["generation"] == 1:  # survivors of these go to gen 2
                self._young = len(gc.get_objects(0)) + len(gc.get_objects(1))
            return
        if self._began is None:
            return
        ms = (time.perf_counter() - self._began) * 1000
        self._began = None
        self.longest_ms = max(self.longest_ms, ms)
        if self.log and info["generation"] == 1:
            name = threading.current_thread().name
            promoted = max(0, self._young - info["collected"])
            self.promoted[name] = self.promoted.get(name, 0) + promoted
            self.pending += promoted
        if self.log and info["generation"] == 2:
            print(f"    gc gen 2 after {self.pending} objects promoted to gen 2 since the "
                  "last one", flush=True)
            self.pending = 0
        if self.log and ms >= 20:
            import traceback

            try:
                stack = traceback.extract_stack(sys._getframe(1))
            except ValueError:  # triggered from C, no Python frame above
                stack = []
            lines = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}"
                     f" {f.name}" for f in stack[-40:]]
            print(f"    gc gen {info['generation']} {ms:.0f} ms, collected "
                  f"{info['collected']}, tracked {len(gc.get_objects())}, thread "
                  f"{threading.current_thread().name}, gc.get_count {gc.get_count()}",
                  flush=True)
            for line in reversed(lines):
                print(f"        {line}", flush=True)

    def reset(self) -> None:
        self.longest_ms = 0.0
        self.promoted = {}


def heap_census(n: int = 25) -> list[str]:
    """The ``n`` most common gc-tracked object types (module.type), with counts."""
    import gc
    from collections import Counter

    counts: Counter = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    total = sum(counts.values())
    modules: Counter = Counter(name.split(".")[0] for name in list(sys.modules))
    functions: Counter = Counter()
    for obj in gc.get_objects():
        if type(obj).__name__ == "function":
            functions[str(getattr(obj, "__module__", None)).split(".")[0]] += 1
    return ([f"tracked objects: {total}"]
            + [f"  {k:60s} {v}" for k, v in counts.most_common(n)]
            + ["modules per package: " + ", ".join(f"{k} {v}" for k, v in
                                                   modules.most_common(n))]
            + ["functions per package: " + ", ".join(f"{k} {v}" for k, v in
                                                     functions.most_common(n))])


def frozen_garbage() -> str:
    """The cyclic garbage among the objects the warm-up froze (thaws and collects them)."""
    from collections import Counter

    gc.collect()  # what is not frozen first: the rest was kept by freezing
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        began = time.perf_counter()
        found = gc.collect()
        took = time.perf_counter() - began
        size = sum(sys.getsizeof(obj) for obj in gc.garbage)
        arrays = sum(obj.nbytes for obj in gc.garbage if isinstance(obj, np.ndarray))
        kinds = Counter(type(obj).__name__ for obj in gc.garbage).most_common(8)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return (f"frozen objects: {frozen}; cyclic garbage among them: {found} objects, "
            f"{size / 1e6:.1f} MB (arrays {arrays / 1e6:.1f} MB), most common {kinds}; "
            f"collecting them all (thawed): {took * 1000:.0f} ms")


class StallSampler:
    """A watchdog thread: while the heartbeat is late, sample the main thread's stack.

    ``--why`` prints, per step, the functions most often on top of the main
    thread's stack during stalls over 100 ms (which code blocks the window).

    The watchdog only signals the main thread; :mod:`faulthandler` answers the signal
    there, in C, by writing the stack to a file, with no Python object made. Reading the
    frames from Python in the watchdog (``sys._current_frames``) made frame objects that
    could outlive their calls; their locals (Qt painters and paint devices) were then
    freed in the wrong order, and CPython crashed ("QPaintDevice: Cannot destroy paint
    device that is being painted", segmentation fault) in 8 of 11 runs, and still in 4
    of 6 when those frames were released on the main thread.
    """

    #: Sampling period (s), and how late the heartbeat must be for a sample to count
    #: in the stall (the whole stall is sampled, not only its part over 100 ms). A
    #: sample costs the main thread about 0.5 ms (a 60-frame stack, written line by
    #: line): every 5 ms, stalls read about 10 % longer; every 10 ms, about 5 %.
    PERIOD = 0.01
    FROM_MS = 15
    SIGNAL = signal.SIGUSR2
    #: A sample's mark (written by the watchdog) and a frame line (by faulthandler;
    #: "line ???" when unknown). faulthandler writes at most 100 frames, innermost first:
    #: in a deeper stack the outer frames are cut.
    _MARK = re.compile(r"#stall (\S+) (\S+)\n")
    _FRAME = re.compile(r'File "(.*)", line (?:\d+|\?+) in (.*)')

    def __init__(self, beat: Heartbeat) -> None:
        import faulthandler

        self.beat = beat
        self.main = threading.main_thread().ident
        handle, path = tempfile.mkstemp(prefix="journey-why-", suffix=".txt")
        os.close(handle)
        # appended to by both threads: the watchdog's marks, faulthandler's stacks
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.read_fd = os.open(path, os.O_RDONLY)
        os.unlink(path)  # nothing left behind; the two descriptors keep it
        faulthandler.register(self.SIGNAL, file=self.fd, all_threads=False)
        self.read_at = 0
        self.since = beat.last
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            began = self.beat.last
            late_ms = (time.perf_counter() - began) * 1000
            if late_ms < self.FROM_MS:
                continue
            # one write per mark; a stack written slowly (the main thread preempted for
            # longer than the period) can still be cut by the next mark: the parser then
            # loses a frame line, never a sample's mark
            os.write(self.fd, f"#stall {began!r} {late_ms:.1f}\n".encode())
            signal.pthread_kill(self.main, self.SIGNAL)

    def _samples(self) -> list[tuple[float, float, list[tuple[str, str]]]]:
        """(stall began, ms late, stack innermost first) of each sample since last read.

        Runs on the main thread, where faulthandler writes too: no stack is half
        written while it reads. A mark whose stack has not come yet gives an empty one.
        """
        size = os.fstat(self.read_fd).st_size - self.read_at
        text = os.pread(self.read_fd, size, self.read_at) if size > 0 else b""
        self.read_at += len(text)
        parts = self._MARK.split(text.decode("utf-8", "replace"))
        return [(float(parts[i]), float(parts[i + 1]), self._FRAME.findall(parts[i + 2]))
                for i in range(1, len(parts) - 2, 3)]

    def take(self, n: int = 5) -> list[str]:
        """Where the main thread was during this step's stalls (and reset for the next).

        Each sample stands for the time since the previous sample of its stall (the
        watchdog waits for the GIL, so samples are not exactly ``PERIOD`` apart).
        """
        from collections import Counter, defaultdict

        counts: Counter = Counter()  # ms per place, over samples 110 ms late or more
        episodes: defaultdict = defaultdict(Counter)  # per stall, ms per place
        previous: dict[float, float] = {}  # per stall, the last sample's lateness
        for began, late_ms, stack in sorted(self._samples(), key=lambda s: (s[0], s[1])):
            ms = late_ms - previous.get(began, late_ms - self.PERIOD * 1000)
            previous[began] = late_ms
            if not stack:
                continue
            ours = [f for f in stack if "napari_nuclei_unet" in f[0]]
            where = " < ".join(f"{Path(f[0]).name}:{f[1]}" for f in stack[:3])
            if ours:
                where = f"{Path(ours[0][0]).name}:{ours[0][1]} -> {where}"
            if late_ms >= 110:
                counts[where] += ms
            if began >= self.since:  # a stall from before the step's start is not its own
                episodes[began][where if ours else " < ".join(
                    f"{Path(f[0]).name}:{f[1]}" for f in stack[:6])] += ms
        worst = max(episodes.values(), key=lambda c: sum(c.values()), default=Counter())
        common = [f"{where} ({ms:.0f} ms)" for where, ms in counts.most_common(n)]
        if worst:
            common.append(f"longest stall, sampled from {self.FROM_MS} ms late, "
                          f"{sum(worst.values()):.0f} ms:")
            common += [f"   {where} ({ms:.0f} ms)" for where, ms in worst.most_common(8)]
        # the step's own stalls begin at or after the heartbeat's last beat (the step
        # resets it just before taking)
        self.since = self.beat.last
        return common


def pump(condition, timeout: float) -> bool:
    """Run the Qt event loop until ``condition()`` or ``timeout`` seconds."""
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        if condition():
            return True
        time.sleep(0.001)
    return bool(condition())


def done(worker) -> bool:
    return worker is None or bool(getattr(worker, "handled", True))


class Journey:
    def __init__(self, args: argparse.Namespace) -> None:
        import napari

        from napari_nuclei_unet.widgets._session import session_for
        from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[tuple[str, float, float, str]] = []
        width, height = (int(v) for v in args.size.split("x"))
        self.viewer = napari.Viewer(title="Nuclei U-Net journey", show=False)
        window = self.viewer.window._qt_window
        window.resize(width, height)
        self.panel = None  # opened as a step, once the window shows (as a user does)
        self._panel_class = WorkflowPanel
        self.session = session_for(self.viewer)
        self.beat = Heartbeat()
        self.gc = GcWatch(log=args.gc_log)
        self.sampler = StallSampler(self.beat) if args.why else None
        self.work = Path(tempfile.mkdtemp(prefix="journey-"))

    # ------------------------------------------------------------------ steps
    def step(self, name: str, action, timeout: float = 1800.0) -> None:
        """Run ``action()`` (returns a condition to wait for, or None) and measure it."""
        self.beat.reset()
        self.gc.reset()
        if self.sampler is not None:
            self.sampler.take()  # nothing from before the step (the last screenshot)
        started = time.perf_counter()
        profiler = None
        if any(part and part in name for part in self.args.profile.split(",")):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        condition = action()
        if condition is not None:
            if not pump(condition, timeout):
                print(f"  ! {name}: not finished after {timeout:.0f} s", flush=True)
        pump(lambda: False, 0.3)  # let handlers and repaints run (measured too)
        seconds = time.perf_counter() - started
        if profiler is not None:
            import pstats

            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(25)
        worst = self.beat.worst_ms
        phases = dict(self.beat.by_phase)
        gc_ms = self.gc.longest_ms
        why = self.sampler.take() if self.sampler is not None else []
        shot = self.out / f"{len(self.rows) + 1:02d}-{name.replace(' ', '-')}.png"
        self.viewer.screenshot(str(shot), canvas_only=False, flash=False)
        self.beat.reset()  # the screenshot's own stall is not the step's
        if self.sampler is not None:
            self.sampler.take()
        self.rows.append((name, seconds, worst, shot.name))
        print(f"{name:28s} {seconds:8.1f} s  longest stall {worst:7.1f} ms  "
              f"(longest gc {gc_ms:5.0f} ms)  {shot.name}", flush=True)
        for phase, ms in phases.items():
            print(f"      {phase:34s} longest stall {ms:7.1f} ms", flush=True)
        for where in why:
            print(f"      blocked in {where}", flush=True)
        if self.args.gc_log:
            print(f"      promoted to gen 2 in this step: {self.gc.promoted}; pending "
                  f"{self.gc.pending}", flush=True)
            self._census_delta()
        if self.args.stop_after and self.args.stop_after in name:
            self.report()
            raise SystemExit(0)

    def _census_delta(self) -> None:
        """Print how the heap's tracked objects grew during the step, by type."""
        import gc
        from collections import Counter

        counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}"
                         for o in gc.get_objects())
        before = getattr(self, "_census", None)
        self._census = counts
        if before is None:
            return
        grew = (counts - before).most_common(6)
        print(f"      heap: {sum(counts.values())} tracked "
              f"({sum(counts.values()) - sum(before.values()):+d}); grew: "
              + ", ".join(f"{k} +{v}" for k, v in grew), flush=True)

    def open_panel(self) -> None:
        """Plugins > Nuclei U-Net (all steps): make the panel and dock it."""
        self.panel = self._panel_class(self.viewer)
        self.viewer.window.add_dock_widget(self.panel, name="Nuclei U-Net (all steps)",
                                           area="right")

    def run(self) -> None:
        s, args = self.session, self.args
        self.beat.start()
        if self.sampler is not None:
            self.sampler.start()
        window = self.viewer.window
        # napari's first GL draw: excepted from the target, reported
        width, height = (int(v) for v in self.args.size.split("x"))

        def show():
            window.show()
            window._qt_window.resize(width, height)  # napari restores a saved size on show

        self.step("show window (first draw)", lambda: (show(), None)[1])
        # the Data tab at once, the other tabs one per event-loop turn
        self.step("open workflow panel", lambda: (self.open_panel(),
                                                  lambda: self.panel.tabs_built.done)[1])
        p = self.panel
        warm_up = getattr(p, "warm_up", None)
        if warm_up is not None:  # the panel makes its layers while the window is idle
            self.step("warm-up (idle, first draws)", lambda: lambda: warm_up.done, timeout=300)

        def wait_for(worker):
            return lambda: done(worker)

        self.step("open dataset", lambda: wait_for(p.data.open_dataset(args.data)))
        self.step("load all", lambda: wait_for(p.data.load_all()))

        def first():
            ids = sorted(s.samples)
            return wait_for(p.data.select(ids[0]))

        self.step("show first image", first)
        p.show_step("model")
        self.step("default model", lambda: wait_for(p.model.load("default")))
        if args.gc_log:
            for line in heap_census():
                print(f"    {line}", flush=True)
        p.show_step("compare")

        def predict():
            from napari_nuclei_unet.widgets._prediction_service import start_prediction_job

            samples = [s.samples[i] for i in sorted(s.samples)]
            if args.predict_limit:
                samples = samples[: args.predict_limit]
            p.compare.set_mode("side by side")
            return wait_for(start_prediction_job(
                self.viewer, samples, on_started=p.compare._on_job_started,
                on_progress=p.compare._on_progress, on_done=p.compare._on_job_done))

        self.step("predict all", predict)
        self.step("side by side", lambda: (p.compare.refresh(), None)[1])
        self.step("overlay", lambda: (p.compare.set_mode("overlay"), None)[1])

        def threshold():
            p.compare.set_threshold(0.6)
            return lambda: not s.jobs.is_running("rescore") and s.stale_count() == 0

        self.step("threshold 0.6", threshold)
        p.show_step("scores")

        def score_all():
            samples = set(s.samples)
            predicted = set(s.probabilities)
            if args.predict_limit and not args.score_predicts:  # score only what was
                # predicted (no new network run)
                for sid in samples - predicted:
                    s.samples.pop(sid)
            worker = p.scores.score_all()
            return wait_for(worker)

        all_samples = dict(s.samples)
        self.step("score all", score_all)
        s.samples.update(all_samples)
        self.step("sort by IoU", lambda: (p.scores.sort_by("iou"), None)[1])

        def worst():
            p.scores.jump_to_worst()
            return lambda: not s.jobs.kinds() or set(s.jobs.kinds()) <= {"list devices"}

        self.step("jump to worst", worst, timeout=60)
        # measured on its own: it was paid by "train" (the first draw after it)
        self.step("back to side by side", lambda: (p.compare.set_mode("side by side"), None)[1])
        self.train()
        self.retrain()
        self.report()

    def train(self) -> None:
        from napari_nuclei_unet.core.config import TrainConfig

        p, s = self.panel, self.session
        p.show_step("train")
        p.train.set_output_root(self.work / "runs")
        p.train.set_config(TrainConfig(base_width=8, depth=3, crop_size=128, batch_size=4,
                                       epochs=1000, steps_per_epoch=20, num_threads=1,
                                       amp=False))
        box: dict = {}

        def start():
            box["worker"] = p.train.start()
            t0 = time.monotonic()
            return lambda: time.monotonic() - t0 > self.args.train_seconds

        self.step("train 1 minute", start, timeout=self.args.train_seconds + 60)

        def stop():
            p.train.stop()
            return lambda: done(box["worker"])

        self.step("stop training", stop, timeout=300)
        run_dir = p.train.run_dir

        def resume():
            box["worker"] = p.train.resume(run_dir)
            t0 = time.monotonic()
            return lambda: time.monotonic() - t0 > 20

        self.step("resume (20 s)", resume, timeout=120)
        self.step("stop again", stop, timeout=300)
        pump(lambda: not s.jobs.is_running("load model"), 120)

    def retrain(self) -> None:
        from napari_nuclei_unet.widgets._compare_layers import shown_prediction_id
        from napari_nuclei_unet.widgets._prediction_service import DISPLAY_JOB

        p, s = self.panel, self.session
        p.show_step("retrain")
        dock = p.retrain
        dock.set_project(self.work / "project")
        predicted = sorted(s.probabilities)[:2]

        def correct():
            # per image, the user's clicks: show it (the Compare tab shows its
            # prediction beside it, thresholded in a worker), then "Correct the
            # prediction", paint, "Add to the training set"
            workers = []
            mark = self.beat.mark  # the longest stall of each click is printed too
            for n, sid in enumerate(predicted, 1):
                mark(f"{n}: show the image")
                dock.show_sample_id(sid)
                pump(lambda sid=sid: shown_prediction_id(self.viewer) == sid
                     and not s.jobs.is_running(DISPLAY_JOB), 60)
                # the user looks at the prediction before clicking (without this, the
                # click ran in the same stall as the prediction's first repaint)
                pump(lambda: False, 0.2)
                mark(f"{n}: edit prediction as labels")
                layer = dock.edit_prediction()
                if layer is None:
                    layer = dock.edit_label_mask()
                pump(lambda: False, 0.2)  # the user looks, then paints
                mark(f"{n}: paint")
                layer.data[5:15, 5:15] = int(np.max(layer.data)) + 1
                layer.refresh()
                pump(lambda: False, 0.2)  # then clicks "Add to the training set"
                mark(f"{n}: add to the training set")
                workers.append(dock.add_to_training_set())
                pump(lambda w=workers[-1]: done(w), 120)
            return lambda: all(done(w) for w in workers) and not dock.saves_pending()

        self.step("correct 2 images", correct, timeout=300)
        dock.epochs_spin.setValue(1)
        dock.steps_spin.setValue(5)
        self.step("fine-tune", lambda: wait_for_job(s, dock.start_finetune()), timeout=1800)
        names = [v.name for v in dock.versions()]
        self.step("switch version", lambda: wait_for_job(s, dock.use_version(names[0])))

    def report(self) -> None:
        print()
        print(f"| step ({self.args.size}) | seconds | longest main-thread stall (ms) | "
              "screenshot |")
        print("|---|---:|---:|---|")
        for name, seconds, worst, shot in self.rows:
            mark = "" if worst <= TARGET_MS or _excepted(name) else " (over)"
            print(f"| {name} | {seconds:.1f} | {worst:.0f}{mark} | {shot} |")
        measured = [w for n, _s, w, _ in self.rows if not _excepted(n)]
        print(f"\nworst step (first draw excepted): {max(measured):.0f} ms "
              f"(target <= {TARGET_MS:.0f} ms); screenshots in {self.out}")
        if self.args.gc_log:
            print(frozen_garbage())


def _excepted(name: str) -> bool:
    """napari's first draws: the window's, and the warm-up's first draw of each layer."""
    return name.startswith(("show window", "warm-up"))


def wait_for_job(session, worker):
    return lambda: done(worker) and not session.jobs.is_running("predict")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x800", help="window size, e.g. 1600x1000")
    parser.add_argument("--data", default=os.environ.get("NUCLEI_UNET_DSB2018"),
                        help="stage1_train folder (default: $NUCLEI_UNET_DSB2018)")
    parser.add_argument("--out", default=None, help="folder for the screenshots")
    parser.add_argument("--predict-limit", type=int, default=0,
                        help="predict only the first N images (0: all)")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--score-predicts", action="store_true",
                        help="with --predict-limit: 'score all' predicts the other images "
                             "(as for a user who presses Score all without Predict all)")
    parser.add_argument("--profile", default="",
                        help="profile the main thread during the steps whose name contains "
                             "one of these comma-separated texts (cProfile, cumulative)")
    parser.add_argument("--stop-after", default="",
                        help="end the journey after the step whose name contains this text")
    parser.add_argument("--gc-log", action="store_true",
                        help="diagnosis: print every garbage collection of 20 ms or more "
                             "(generation, objects, the triggering thread's stack) and a "
                             "census of the heap's tracked objects after the default model; "
                             "at the end, the garbage freezing kept")
    parser.add_argument("--why", action="store_true",
                        help="print where the main thread was during stalls (a sampling "
                             "thread reads the main thread's frames: for diagnosis only, "
                             "CPython 3.11 may rarely crash doing so)")
    parser.add_argument("--cold", action="store_true",
                        help="do not import torch (and fix it to one thread) before the "
                             "window, as a user opening the panel from napari's Plugins "
                             "menu: the panel's first worker then imports it")
    args = parser.parse_args()
    if not args.data or not Path(args.data).is_dir():
        print("Set NUCLEI_UNET_DSB2018 (or --data) to the stage1_train folder.")
        return 2
    args.out = args.out or f"/tmp/journey-{args.size}"
    if not args.cold:
        # torch's first import holds the GIL for 150-260 ms (its C initialisation),
        # whichever thread imports it: done here, before the window, it stays out of
        # the steps (README: "torch's first import"; --cold measures it)
        import torch

        torch.set_num_threads(1)
    journey = Journey(args)
    journey.run()
    # close the window as a user does: Qt objects left to the interpreter's shutdown
    # crashed it once (segmentation fault after the report)
    journey.viewer.close()
    pump(lambda: False, 0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
