"""The warm-ups' pause of automatic garbage collection (issue 11: no freeze while they import).

Two or three full collections of 250-450 ms each fell in the user's first clicks while
the workflow panel's warm-ups imported about 2,000 modules; the pause keeps them out
and always gives the collector back its previous state.
"""

from __future__ import annotations

import gc
import time

import pytest

from napari_nuclei_unet.widgets._gc_pause import CollectionPause


@pytest.fixture
def collector():
    """Automatic collection on, and restored after the test whatever it did."""
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_pause_is_counted_and_restores_collection(collector):
    pause = CollectionPause(max_s=60)
    first = pause.hold()
    second = pause.hold()
    assert not gc.isenabled() and pause.active
    assert not pause.release(first)  # another holder still holds it
    assert not gc.isenabled()
    assert not pause.release(first)  # released twice: ignored, not counted again
    assert not gc.isenabled()
    assert pause.release(second) and gc.isenabled() and not pause.active


def test_pause_keeps_collection_off_when_it_was_off(collector):
    gc.disable()
    pause = CollectionPause(max_s=60)
    token = pause.hold()
    assert pause.release(token, collect=True)
    assert not gc.isenabled()  # the previous state, not "on"


def test_release_collects_once_then_turns_collection_on(collector, monkeypatch):
    seen: list[bool] = []
    monkeypatch.setattr(gc, "collect", lambda *a: seen.append(gc.isenabled()) or 0)
    pause = CollectionPause(max_s=60)
    pause.release(pause.hold(), collect=True)
    assert seen == [False] and gc.isenabled()  # collected while paused, then turned on


def test_collection_comes_back_when_collecting_fails(collector, monkeypatch):
    def fail(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(gc, "collect", fail)
    pause = CollectionPause(max_s=60)
    token = pause.hold()
    with pytest.raises(RuntimeError):
        pause.release(token, collect=True)
    assert gc.isenabled() and not pause.active


def test_pause_expires_without_a_release(collector):
    pause = CollectionPause(max_s=0.05)
    token = pause.hold()
    deadline = time.monotonic() + 5
    while pause.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.isenabled() and not pause.active
    assert not pause.release(token)  # a late release changes nothing
    assert gc.isenabled()
    later = pause.hold()  # a new pause works as the first did
    assert not gc.isenabled()
    assert pause.release(later) and gc.isenabled()
