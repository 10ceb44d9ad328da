"""core.paths.same_path: one rule for "the same file" in the CLI, the core and the docks."""

from __future__ import annotations

import os

import pytest

from napari_nuclei_unet.core.paths import same_path


def test_same_path_resolves_links_and_dots(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    assert same_path(folder, tmp_path / "link")
    assert same_path(str(folder), tmp_path / "x" / ".." / "project")
    assert not same_path(folder, tmp_path)


@pytest.mark.parametrize("other", [None, 3, object()])
def test_same_path_is_false_for_what_is_not_a_path(tmp_path, other):
    assert not same_path(tmp_path, other)
    assert not same_path(other, tmp_path)


def test_same_path_never_raises_on_a_loop_of_links(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert not same_path(tmp_path / "a", tmp_path / "c")
    assert os.path.islink(tmp_path / "a")
