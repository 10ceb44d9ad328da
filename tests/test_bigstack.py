"""A stack of large planes: each plane block by block, one result numbered across planes."""

from __future__ import annotations

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")

SIZE = 150  # a "large" plane here: BIG_PIXELS is lowered below it


@pytest.fixture
def stack_file(tmp_path, monkeypatch):
    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    monkeypatch.setattr(bigimage, "BIG_PIXELS", 120 * 120)
    planes = [make_synthetic_sample("fluorescence", shape=(SIZE, SIZE), seed=k,
                                    n_nuclei=12)[0][..., 0].astype(np.uint16) * 50
              for k in range(3)]
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack(planes), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 3.0, "unit": "um"})
    return path, planes


def test_a_stack_of_large_planes_is_segmented_block_by_block(stack_file, tmp_path,
                                                             monkeypatch):
    # each plane was segmented whole: a 2 x 6000 x 6000 stack took 2.3 GB where one
    # such plane streamed in 0.64 GB, and slide-scan stacks had to be split into files
    # first (CLI check h_cli3, M5)
    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.own_images import process_file

    path, planes = stack_file
    segmented = []
    real = bigimage.segment_large

    def counted(model, plane, out, *args, **kwargs):
        segmented.append(plane.shape)
        return (yield from real(model, plane, out, *args, **kwargs))

    monkeypatch.setattr(bigimage, "segment_large", counted)
    summary = process_file("default", path, tmp_path / "out", block=128)
    assert segmented == [(SIZE, SIZE)] * 3  # every plane through the block path
    labels = tifffile.imread(summary.labels)
    assert labels.shape == (3, SIZE, SIZE)
    with tifffile.TiffFile(summary.labels) as tif:  # a hyperstack with the Z spacing, as a
        # stack segmented whole gives it (review h_rev30, M1)
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        assert tif.imagej_metadata["spacing"] == 3.0
    stored = zarr.open(summary.zarr, mode="r")
    assert np.array_equal(np.asarray(stored["0"][:]), labels)
    axes = stored.attrs["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"] and axes[0]["type"] == "space"
    (scales,) = stored.attrs["multiscales"][0]["datasets"]
    assert scales["coordinateTransformations"][0]["scale"] == [3.0, 0.5, 0.5]
    assert {a.get("unit") for a in axes} == {"micrometer"}
    # each plane as its own large image: the same nuclei, numbered on across the planes
    top = 0
    for k, plane in enumerate(planes):
        alone = drive_one(plane, tmp_path / f"alone{k}.ome.zarr")
        mine = labels[k]
        assert same_partition(mine, alone)
        assert mine[mine > 0].min() == top + 1 if mine.any() else True
        top = max(top, int(mine.max()))
    assert summary.n_nuclei == top == len(np.unique(labels)) - 1
    import csv

    with open(summary.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    table = {key: [float(r[key]) for r in rows] for key in ("label", "plane", "z", "area")}
    assert sorted(np.asarray(table["label"], int)) == list(range(1, top + 1))
    for label, plane, z, area in zip(table["label"], table["plane"], table["z"],
                                     table["area"], strict=True):
        assert plane == z and int((labels[int(plane)] == int(label)).sum()) == int(area)
    assert not list((tmp_path / "out").glob(".*"))  # the planes' work folder is gone


def drive_one(plane, out):
    from napari_nuclei_unet.core.bigimage import segment_large
    from napari_nuclei_unet.core.progress import drive

    return np.asarray(drive(segment_large("default", plane, out, block=128)).labels()[:])


def same_partition(a, b):
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]], axis=1), axis=0)
    return len(pairs) == len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1]))


@pytest.mark.parametrize("where", ["between planes", "within a plane"])
def test_a_stop_keeps_an_earlier_result(stack_file, tmp_path, monkeypatch, where):
    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.bigstack import segment_large_planes
    from napari_nuclei_unet.core.progress import drive

    path, _ = stack_file
    out = tmp_path / "stack_labels.ome.zarr"
    first = drive(segment_large_planes("default", path, out, block=128))
    assert not first.cancelled and first.planes == 3
    before = np.asarray(first.labels()[:])
    done, asked = [], []
    real = bigimage.segment_large

    def counted(*args, **kwargs):
        result = yield from real(*args, **kwargs)
        if not result.cancelled:
            done.append(result)
        return result

    monkeypatch.setattr(bigimage, "segment_large", counted)

    def stop():  # once the first plane is done (asked next between planes), or at once
        asked.append(1)
        return bool(done) if where == "between planes" else len(asked) > 1

    again = drive(segment_large_planes("default", path, out, block=128, should_stop=stop))
    assert again.cancelled
    assert len(done) == (1 if where == "between planes" else 0)
    assert np.array_equal(np.asarray(zarr.open(str(out), mode="r")["0"][:]), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["stack.tif", out.name])


def test_the_cli_sends_a_stack_of_large_planes_to_a_cluster_in_blocks(stack_file, tmp_path,
                                                                      capsys, monkeypatch):
    # one such file went whole to one worker, as a small image does
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from napari_nuclei_unet.cli import main
    from napari_nuclei_unet.core import bigimage

    path, _ = stack_file
    args = ["predict", "default", str(path), "--block", "128"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    plain = tifffile.imread(tmp_path / "plain" / "stack_labels.tif")
    assert plain.shape == (3, SIZE, SIZE)
    clients = []
    real = bigimage.segment_large

    def recorded(*a, **kwargs):
        clients.append(kwargs.get("client"))
        return (yield from real(*a, **kwargs))

    monkeypatch.setattr(bigimage, "segment_large", recorded)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        assert main([*args, "--out", str(tmp_path / "dist"), "--scheduler",
                     cluster.scheduler_address]) == 0
    assert len(clients) == 3 and all(c is not None for c in clients)
    dist = tifffile.imread(tmp_path / "dist" / "stack_labels.tif")
    assert all(same_partition(a, b) for a, b in zip(plain, dist, strict=True))
    capsys.readouterr()


def test_a_32_bit_label_stack_from_zarr_keeps_its_z_spacing_as_ome(tmp_path):
    from napari_nuclei_unet.core.ome_zarr import create_array, open_ome_group
    from napari_nuclei_unet.core.own_images import write_labels_tiff

    labels = create_array(open_ome_group(tmp_path / "l.zarr"), "0", (3, 40, 50), (1, 32, 32),
                          np.uint32)
    labels[1, 5:9, 5:9] = 70000
    write_labels_tiff(tmp_path / "l.tif", labels, "ZYX", (2.0, 2.0), 3.0)
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.is_ome and "PhysicalSizeZ=\"3.0\"" in tif.ome_metadata
        assert np.array_equal(tif.asarray(), labels[:])


def test_the_ome_zarr_of_a_stack_puts_time_first(tmp_path, monkeypatch):
    # a ZTYX file gave an OME-Zarr of axes z, t, y, x, which OME-Zarr 0.4 does not allow
    # (review h_rev30, L1): time first, then depth; the TIFF takes the same order
    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.own_images import process_file
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    monkeypatch.setattr(bigimage, "BIG_PIXELS", 120 * 120)
    planes = [make_synthetic_sample("fluorescence", shape=(SIZE, SIZE), seed=k,
                                    n_nuclei=6 + 2 * k)[0][..., 0].astype(np.uint16) * 50
              for k in range(4)]
    data = np.stack(planes).reshape(2, 2, SIZE, SIZE)  # Z, T
    tifffile.imwrite(tmp_path / "zt.tif", data, metadata={"axes": "ZTYX"})
    summary = process_file("default", tmp_path / "zt.tif", tmp_path / "out", block=128)
    stored = zarr.open(summary.zarr, mode="r")
    assert [a["name"] for a in stored.attrs["multiscales"][0]["axes"]] == ["t", "z", "y", "x"]
    labels = np.asarray(stored["0"][:])
    assert labels.shape == (2, 2, SIZE, SIZE)
    with tifffile.TiffFile(summary.labels) as tif:
        assert tif.series[0].axes == "TZYX"
        assert np.array_equal(tif.asarray(), labels)
    for z in range(2):
        for t in range(2):
            assert same_partition(labels[t, z], drive_one(data[z, t], tmp_path / f"{z}{t}.zarr"))


def test_the_files_read_lazily_are_not_all_kept_open(tmp_path):
    # each large file stayed open for the life of the process: a folder of 1,000 ran
    # out of file descriptors (review h_rev30, L6)
    import os

    from napari_nuclei_unet.core import lazy_plane

    def open_files():
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0

    def read(k):
        path = tmp_path / f"f{k}.tif"
        tifffile.imwrite(path, np.full((64, 64), k, np.uint16), tile=(32, 32))
        assert int(lazy_plane.LazyPlane(str(path), None, None)[0:2, 0:2][0, 0]) == k

    read(0)  # zarr's own event loop opens its descriptors once, at its first read
    lazy_plane._OPENED.clear()
    before = open_files()
    for k in range(1, lazy_plane.MOST_OPEN + 7):
        read(k)
    assert len(lazy_plane._OPENED) <= lazy_plane.MOST_OPEN
    assert open_files() - before <= lazy_plane.MOST_OPEN + 1


def test_an_open_stack_keeps_its_axis_order_room_and_the_planes_done(tmp_path, monkeypatch):
    # the Segment dock's stack of large planes: the labels lie over its layer (the
    # stack's own order, not OME-Zarr's), painted nuclei fit, and Cancel keeps the planes
    # finished (it segmented only the plane shown before)
    import dask.array as da

    from napari_nuclei_unet.core.bigstack import segment_stack_planes
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.stacks import stack_from_array
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    planes = [make_synthetic_sample("fluorescence", shape=(SIZE, SIZE), seed=k,
                                    n_nuclei=6 + 2 * k)[0][..., 0].astype(np.uint16) * 50
              for k in range(4)]
    data = np.stack(planes).reshape(2, 2, SIZE, SIZE)  # Z, T
    stack = stack_from_array(da.from_array(data, chunks=(1, 1, 64, 64)), "ZTYX", "zt")
    out = tmp_path / "work" / "zt_labels.ome.zarr"
    updates = []
    whole = drive(segment_stack_planes("default", stack, out, room=70000), updates.append)
    labels = np.asarray(whole.labels()[:])
    # the bar never runs back: a plane's joining filled it, then the next plane's first
    # block took it back to a quarter (GUI check h_gui48, M2)
    planes_done = [u for u in updates if "of 4 planes" in u.message]  # then the numbering
    bar = [u.done / u.total for u in planes_done]
    assert bar == sorted(bar) and bar[-1] == 1.0
    assert sorted({u.done / u.total for u in planes_done if u.stage == "merge"}) == \
        [0.25, 0.5, 0.75, 1.0]
    assert whole.axes == "ZTYX" and labels.shape == (2, 2, SIZE, SIZE)
    assert labels.dtype == np.uint32 and whole.done == [0, 1, 2, 3]  # 70,000 more fit
    for z in range(2):
        for t in range(2):
            assert same_partition(labels[z, t], drive_one(data[z, t], tmp_path / f"{z}{t}"))
    assert list(whole.table["z"]) == [int(z) for z in whole.table["plane"] // 2]
    from napari_nuclei_unet.core import bigimage

    done, real = [], bigimage.segment_large

    def counted(*args, **kwargs):
        result = yield from real(*args, **kwargs)
        done.append(result)
        return result

    monkeypatch.setattr(bigimage, "segment_large", counted)
    cut = drive(segment_stack_planes("default", stack, out,
                                     should_stop=lambda: len(done) >= 2))  # z = 0 done
    kept = np.asarray(cut.labels()[:])
    assert cut.cancelled and cut.done == [0, 1] and kept.dtype == np.uint16
    assert np.array_equal(kept[0] > 0, labels[0] > 0) and not kept[1].any()
    assert set(cut.table["plane"]) == {0, 1}
    # an earlier result's planes not reached keep their labels, numbered after the new
    # ones (a stopped run emptied them: GUI check h_gui49, M2)
    from napari_nuclei_unet.core.own_images import StackResult

    done.clear()
    merged = drive(segment_stack_planes(
        "default", stack, out, earlier=StackResult(labels, whole.table, [0, 1, 2, 3]),
        should_stop=lambda: len(done) >= 2))
    both = np.asarray(merged.labels()[:])
    assert merged.cancelled and merged.done == [0, 1] and merged.kept == [2, 3]
    n_new = int(both[0].max())  # z = 0 segmented again: labels 1..n_new
    assert np.array_equal(both[0] > 0, labels[0] > 0) and len(np.unique(both[0])) == n_new + 1
    assert np.array_equal(both[1] > 0, labels[1] > 0)
    kept = np.unique(both[1])[1:]  # numbered on from the new ones, with no gap: shifted
    assert list(kept) == list(range(n_new + 1, n_new + 1 + len(kept)))  # by the new ones'
    # largest, they grew at each Cancel (GUI check h_gui50, L)
    assert len(kept) == len(np.unique(labels[1])) - 1
    assert merged.n_nuclei == len(merged.table["label"]) == len(np.unique(both)) - 1
    for flat in (2, 3):  # their rows, with the labels they have now
        rows = merged.table["label"][merged.table["plane"] == flat]
        assert sorted(rows) == sorted(set(np.unique(both[1, flat - 2])) - {0})
    # one plane again, into the earlier result: the others keep its labels
    again = drive(segment_stack_planes(
        "default", stack, out, earlier=StackResult(both, merged.table, [0, 1, 2, 3]),
        planes=[3]))
    one = np.asarray(again.labels()[:])
    assert again.done == [3] and again.kept == [0, 1, 2] and not again.cancelled
    assert all(np.array_equal(one[z, t] > 0, labels[z, t] > 0) for z in (0, 1) for t in (0, 1))
    assert int(one[1, 1].max()) == len(np.unique(one[1, 1])) - 1  # the new ones from 1
    assert again.n_nuclei == len(np.unique(one)) - 1 == len(np.unique(labels)) - 1
    kept_labels = one
    none = drive(segment_stack_planes("default", stack, out, should_stop=lambda: True))
    assert none.cancelled and none.done == [] and not none.n_nuclei
    assert np.array_equal(np.asarray(zarr.open(str(out), mode="r")["0"][:]), kept_labels)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no work folder left
