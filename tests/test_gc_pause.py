"""The warm-ups' hold on full garbage collections (issue 11: no freeze while they import).

Two or three full collections of 250-450 ms each fell in the user's first clicks while
the workflow panel's warm-ups imported about 2,000 modules; the pause holds them off,
lets young collections run, freezes the warmed-up heap at its end and always gives
the collector back its previous thresholds.
"""

from __future__ import annotations

import gc
import time

import pytest

from napari_nuclei_unet.widgets._gc_pause import NO_FULL_COLLECTION, CollectionPause


@pytest.fixture
def collector():
    """Automatic collection on, and the collector restored after the test."""
    was, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    yield thresholds
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    if was:
        gc.enable()
    else:
        gc.disable()


def _full_held() -> bool:
    return gc.get_threshold()[2] == NO_FULL_COLLECTION


def test_pause_is_counted_and_restores_the_thresholds(collector):
    pause = CollectionPause(max_s=60)
    first = pause.hold()
    second = pause.hold()
    assert _full_held() and gc.isenabled() and pause.active  # young collections run
    assert not pause.release(first)  # another holder still holds it
    assert _full_held()
    assert not pause.release(first)  # released twice: ignored, not counted again
    assert _full_held()
    assert pause.release(second) and gc.get_threshold() == collector and not pause.active


def test_pause_keeps_collection_off_when_it_was_off(collector):
    gc.disable()
    pause = CollectionPause(max_s=60)
    token = pause.hold()
    assert pause.release(token, freeze=True)
    assert not gc.isenabled() and gc.get_threshold() == collector  # as it was


def test_young_collections_run_and_no_full_one_while_held(collector):
    """Enough new long-lived objects to start a full collection start none while held."""
    generations: list[int] = []

    def seen(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    gc.collect()  # the next full one is due after a quarter of what it keeps
    pause = CollectionPause(max_s=60)
    token = pause.hold()
    gc.callbacks.append(seen)
    try:
        kept = [[] for _ in range(len(gc.get_objects()) // 4 + 100_000)]
    finally:
        gc.callbacks.remove(seen)
        pause.release(token)
    assert kept and 0 in generations and 2 not in generations


def test_release_freezes_the_heap_after_a_young_collection(collector, monkeypatch):
    collected: list[tuple] = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(a) or real(*a))
    pause = CollectionPause(max_s=60)
    assert not pause.frozen
    pause.release(pause.hold(), freeze=True)
    assert collected == [(1,)]  # the young generations only: a few milliseconds
    assert pause.frozen and gc.get_freeze_count() > 0
    assert gc.get_threshold() == collector
    assert pause.thaw() and not pause.frozen and gc.get_freeze_count() == 0
    assert not pause.thaw()  # once


def test_a_release_without_freeze_freezes_nothing(collector):
    pause = CollectionPause(max_s=60)
    pause.release(pause.hold())
    assert not pause.frozen and gc.get_freeze_count() == 0


def test_thresholds_come_back_when_collecting_fails(collector, monkeypatch):
    def fail(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(gc, "collect", fail)
    pause = CollectionPause(max_s=60)
    token = pause.hold()
    with pytest.raises(RuntimeError):
        pause.release(token, freeze=True)
    assert gc.get_threshold() == collector and not pause.active and not pause.frozen


def test_pause_expires_without_a_release(collector):
    pause = CollectionPause(max_s=0.05)
    token = pause.hold()
    deadline = time.monotonic() + 5
    while pause.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.get_threshold() == collector and not pause.active
    assert not pause.release(token, freeze=True)  # a late release changes nothing
    assert not pause.frozen
    later = pause.hold()  # a new pause works as the first did
    assert _full_held()
    assert pause.release(later) and gc.get_threshold() == collector
