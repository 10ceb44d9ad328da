"""Worker helpers: registering a job with napari never warns the user."""

import sys
import warnings

import pytest
from napari.utils._proxies import PublicOnlyProxy

from napari_nuclei_unet.widgets import _workers


def test_task_registration_through_the_plugin_proxy_does_not_warn(make_napari_viewer):
    viewer = PublicOnlyProxy(make_napari_viewer())  # what npe2 hands a dock widget
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        status_id = _workers._register_task(viewer, "testing", lambda: None)
        assert status_id is not None
        _workers._finish_task(viewer, status_id)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_torch_library_is_loaded_before_the_import_in_a_worker():
    """A worker's first ``import torch`` held the GIL 150-270 ms while libtorch_cpu
    loaded (the window froze that long when the panel opened): the library is loaded
    first without the GIL, and the import then finds it loaded."""
    from _widget_helpers import fresh_python

    last = fresh_python(
        "import sys\n"
        "from napari_nuclei_unet.widgets import _workers\n"
        "assert 'torch' not in sys.modules\n"
        "loaded = []\n"
        "def spy():\n"
        "    loaded.append(_workers.__dict__['_real']())\n"
        "    loaded.append('libtorch_cpu' in open('/proc/self/maps').read())\n"
        "    loaded.append('torch' in sys.modules)\n"
        "_workers._real, _workers.load_torch_library = _workers.load_torch_library, spy\n"
        "_workers.import_torch_safely()  # loads the library first, then imports torch\n"
        "import torch\n"
        "again = _workers._real()  # imported: nothing to do\n"
        "print(*loaded, again, float(torch.ones(3).sum()))\n"
    )
    assert last == "True True False False 3.0"


def test_the_job_guard_says_when_a_job_starts_and_when_it_has_ended(qtbot):
    # the IoU panel follows a prediction started in another dock by these signals
    # (it polled twice a second for its end)
    guard = _workers.WorkerGuard()
    seen: list[tuple[str, str, bool]] = []
    guard.started.connect(lambda kind: seen.append(("started", kind, guard.is_running(kind))))
    guard.ended.connect(lambda kind: seen.append(("ended", kind, guard.is_running(kind))))
    worker = guard.start("count", lambda: 3, on_finished=lambda: seen.append(
        ("finished", "count", guard.is_running("count"))))
    qtbot.waitUntil(lambda: worker.handled, timeout=10_000)
    assert seen == [("started", "count", True), ("finished", "count", False),
                    ("ended", "count", False)]
    assert guard.start("count", lambda: 3, refuse=False) is not None
    qtbot.waitUntil(lambda: len(seen) == 5, timeout=10_000)


def test_warnings_for_developers_in_a_job_are_not_shown_to_the_user(qtbot):
    # a bioimage.io package's loading left a file open: "unclosed file <...>" reached
    # the user as a yellow notification (GUI check h_gui9)
    import warnings as python_warnings

    from _widget_helpers import capture_notifications

    def job():
        python_warnings.warn("unclosed file <_io.BufferedReader name='rdf.yaml'>",
                             ResourceWarning, stacklevel=2)
        python_warnings.warn("old spelling", DeprecationWarning, stacklevel=2)
        python_warnings.warn("3 samples were skipped", stacklevel=2)  # the user's: shown
        return 1

    guard = _workers.WorkerGuard()
    with capture_notifications() as notes:
        worker = guard.start("job", job)
        qtbot.waitUntil(lambda: worker.handled, timeout=10_000)
    assert notes.any("3 samples were skipped")
    assert not notes.any("unclosed file") and not notes.any("old spelling")


def test_jobs_that_overlap_put_the_warning_hooks_back(qtbot):
    # Python's warning hooks are one for the process: each superqt worker replaces them
    # while it runs and puts back what it found, so two jobs that overlap put back each
    # other's. After them every warning of the session went to the first job's handler,
    # with an "always" filter (even the developers' warnings napari hides)
    import threading
    import warnings as python_warnings

    first_may_end, second_may_end = threading.Event(), threading.Event()
    first_started, second_started = threading.Event(), threading.Event()
    shown, filters = python_warnings.showwarning, list(python_warnings.filters)
    guard = _workers.WorkerGuard()
    first = guard.start("first", lambda: (first_started.set(), first_may_end.wait(10)))
    assert first_started.wait(10)  # inside its hooks before the second starts
    second = guard.start("second", lambda: (second_started.set(), second_may_end.wait(10)))
    assert second_started.wait(10)  # both inside their hooks; the first ends first
    first_may_end.set()
    qtbot.waitUntil(lambda: first.handled, timeout=10_000)
    second_may_end.set()
    qtbot.waitUntil(lambda: second.handled, timeout=10_000)
    assert python_warnings.showwarning is shown
    assert python_warnings.filters == filters


def test_a_runtime_error_in_a_generator_job_is_reported_and_ends_it(qtbot):
    # superqt takes a RuntimeError out of a generator for a deleted worker: no errored,
    # no finished; torch's "out of memory" said nothing and the job stayed "already
    # running" for the rest of the session (review h_rev9)
    from _widget_helpers import capture_notifications

    seen = []

    def job():
        yield 1
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    guard = _workers.WorkerGuard()
    with capture_notifications() as notes:
        worker = guard.start("predict", job, on_errored=seen.append)
        qtbot.waitUntil(lambda: worker.handled, timeout=10_000)
    assert not guard.is_running("predict")
    assert [type(e) for e in seen] == [RuntimeError]  # the dock gets what the job raised
    assert notes.texts("error") and "memory" in notes.texts("error")[0].lower()


@pytest.mark.parametrize("quit_app", [False, True])
def test_ctrl_w_and_ctrl_q_list_the_running_jobs_as_the_close_button_does(
        make_napari_viewer, monkeypatch, quit_app):
    # Ctrl+W showed only "Confirm to close window" during a training, which closing
    # then stopped without a word (GUI check h_gui47, M1)
    import numpy as np
    from napari._qt.dialogs import confirm_close_dialog
    from qtpy.QtWidgets import QDialog

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 4)))
    window = viewer.window._qt_window
    asked = []
    answer = [QDialog.DialogCode.Rejected]

    class Dialog:
        def __init__(self, parent, close_app=False, display_checkbox=True, extra_info=""):
            asked.append((close_app, display_checkbox, extra_info))

        def exec_(self):
            return answer[0]

    with monkeypatch.context() as patch:  # undone before the viewer is closed
        patch.setattr(confirm_close_dialog, "ConfirmCloseDialog", Dialog)
        patch.setattr("napari._qt.qt_main_window.ConfirmCloseDialog", Dialog)
        napari_close = []  # napari's own close, as the wrapper finds it
        patch.setattr(type(window), "close", lambda self, quit_app=False, confirm_need=False:
                      napari_close.append((quit_app, confirm_need)))
        status_id = _workers._register_task(viewer, "training run-1", lambda: None)
        window.close(quit_app=quit_app, confirm_need=True)  # what napari's Ctrl+W / Ctrl+Q call
        assert asked == [(quit_app, False, "Nuclei U-Net: training run-1")]
        assert napari_close == []  # Cancel: nothing is closed
        answer[0] = QDialog.DialogCode.Accepted
        window.close(quit_app=quit_app, confirm_need=True)
        assert napari_close == [(quit_app, False)]  # asked once, then napari closes
        # a close from code is not asked about, as napari's is not; none once the job ended
        window.close()
        _workers._finish_task(viewer, status_id)
        window.close(quit_app=quit_app, confirm_need=True)
        assert len(asked) == 2 and napari_close[1:] == [(False, False), (quit_app, True)]
