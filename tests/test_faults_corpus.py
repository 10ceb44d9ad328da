"""The fault and bad-input corpus, generated on the fly (small files; hostile ones are bombs).

Each :class:`Case` builds its inputs in a folder and says how to run it: through the
command line (``argv``), the Python API or the napari reader (``api``: a snippet run
in a fresh interpreter). ``benchmarks/bench_faults.py`` runs every case and counts the
outcomes; the ``test_faults_*`` files run them as tests. Nothing here needs the
network or real data.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: Side of the image bombs: 32,000 x 32,001 one-byte pixels = 1.02 GB once decoded,
#: more than the 1 GB that reading any hostile file may cost.
BOMB_SIDE = 32_000


@dataclass
class Case:
    """One bad input or fault.

    Attributes
    ----------
    name : str
        Short id.
    build : callable
        ``build(folder) -> dict`` writes the inputs into ``folder`` and returns the
        values substituted into ``argv`` / ``api`` (``{data}``, ``{model}``...).
    argv : list of str, optional
        A ``nuclei-unet`` command line (with ``{placeholders}``).
    api : str, optional
        Python code run in a fresh interpreter (with ``{placeholders}``); it must raise
        or return normally.
    expect : str
        ``"error"`` (a plain-words refusal) or ``"ok"`` (works, maybe skipping a part).
    hostile : bool
        A file built to exhaust memory: peak memory is measured.
    """

    name: str
    build: Callable[[Path], dict]
    argv: list[str] | None = None
    api: str | None = None
    expect: str = "error"
    hostile: bool = False
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# file builders
# ---------------------------------------------------------------------------


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _sample_arrays(seed: int, shape=(40, 48), n=3):
    rng = np.random.default_rng(seed)
    image = np.full((*shape, 3), 12, np.uint8)
    masks = []
    for k in range(n):
        m = np.zeros(shape, np.uint8)
        r, c = 4 + 11 * k, 5 + 12 * k
        m[r : r + 8, c : c + 9] = 255
        image[m > 0] = 180 + int(rng.integers(0, 40))
        masks.append(m)
    return image, masks


def sample_members(sample_id: str, seed: int = 0, prefix: str = "") -> dict[str, bytes]:
    """Member name -> content of one good DSB sample."""
    image, masks = _sample_arrays(seed)
    base = f"{prefix}{sample_id}"
    out = {f"{base}/images/{sample_id}.png": png_bytes(image)}
    for k, m in enumerate(masks):
        out[f"{base}/masks/{sample_id}_m{k}.png"] = png_bytes(m)
    return out


def write_folder(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def good_dataset(root: Path, n: int = 3) -> Path:
    members = {}
    for k in range(n):
        members.update(sample_members(f"s{k}good", seed=k))
    return write_folder(root, members)


def write_zip(path: Path, members: list[tuple[str, bytes]], *, level: int = 6) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def patch_zip_member(path: Path, member: str, *, flag: int | None = None,
                     method: int | None = None, crc: int | None = None) -> Path:
    """Change the flag bits, the compression method or the CRC of one member, in place."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for sig, flag_at, method_at, crc_at, nlen_at, name_at in (
            (b"PK\x03\x04", 6, 8, 14, 26, 30), (b"PK\x01\x02", 8, 10, 16, 28, 46)):
        pos = data.find(sig)
        while pos >= 0:
            n_len = struct.unpack_from("<H", data, pos + nlen_at)[0]
            if bytes(data[pos + name_at : pos + name_at + n_len]) == name:
                if flag is not None:
                    old = struct.unpack_from("<H", data, pos + flag_at)[0]
                    struct.pack_into("<H", data, pos + flag_at, old | flag)
                if method is not None:
                    struct.pack_into("<H", data, pos + method_at, method)
                if crc is not None:
                    struct.pack_into("<I", data, pos + crc_at, crc)
            pos = data.find(sig, pos + 4)
    path.write_bytes(bytes(data))
    return path


_ZEROS_STREAM: dict[int, bytes] = {}


def zlib_zeros(n_bytes: int) -> bytes:
    """A zlib stream that inflates to ``n_bytes`` zero bytes (cached per process)."""
    if n_bytes not in _ZEROS_STREAM:
        comp = zlib.compressobj(1)
        chunk = bytes(1 << 24)
        parts, left = [], n_bytes
        while left:
            take = min(left, len(chunk))
            parts.append(comp.compress(chunk[:take]))
            left -= take
        parts.append(comp.flush())
        _ZEROS_STREAM[n_bytes] = b"".join(parts)
    return _ZEROS_STREAM[n_bytes]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png_bomb(side: int = BOMB_SIDE, *, full: bool = True) -> bytes:
    """An 8-bit grey PNG claiming side x side pixels, its IDAT inflating to all of them."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib_zeros(side * (side + 1)) if full else zlib.compress(bytes(1000))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def tiff_bomb(side: int = BOMB_SIDE) -> bytes:
    """A deflate TIFF of (side) x (side + 1) one-byte pixels whose strip inflates fully."""
    strip = zlib_zeros(side * (side + 1))
    tags = [(256, 4, side + 1), (257, 4, side), (258, 3, 8), (259, 3, 8), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, side), (279, 4, len(strip))]
    ifd_size = 2 + 12 * len(tags) + 4
    strip_at = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)))
    for tag, kind, value in tags:
        if tag == 273:
            value = strip_at
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, 1, value)
    out += struct.pack("<I", 0)
    return bytes(out) + strip


def rgb_png_over_pil_limit() -> bytes:
    """An RGB PNG header claiming 15,000 x 15,000 px (over PIL's decompression-bomb limit)."""
    ihdr = struct.pack(">IIBBBBB", 15000, 15000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(bytes(1000))) + _png_chunk(b"IEND", b""))


def with_bad_sample(root: Path, member: str, data: bytes) -> Path:
    """A good dataset plus one sample whose ``member`` (relative name) is ``data``."""
    good_dataset(root)
    members = sample_members("z9bad", seed=9)
    members[f"z9bad/{member}"] = data
    return write_folder(root, members)


def zip_with_bad_sample(path: Path, member: str, data: bytes | None = None, **patch) -> Path:
    members = []
    for k in range(2):
        members += list(sample_members(f"s{k}good", seed=k, prefix="stage1_train/").items())
    bad = sample_members("z9bad", seed=9, prefix="stage1_train/")
    target = f"stage1_train/z9bad/{member}"
    if data is not None:
        bad[target] = data
    members += list(bad.items())
    write_zip(path, members, level=1)
    if patch:
        patch_zip_member(path, target, **patch)
    return path


def tiny_checkpoint(folder: Path, name: str = "model") -> Path:
    import torch

    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    torch.manual_seed(0)
    model = UNet(base_width=4, depth=2)
    return save_checkpoint(folder / name, model, TrainConfig(base_width=4, depth=2,
                                                               crop_size=32))


def edit_sidecar(weights: Path, change: Callable[[dict], object]) -> Path:
    sidecar = weights.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    result = change(data)
    sidecar.write_text(result if isinstance(result, str) else json.dumps(data))
    return weights


def rewrite_weights(weights: Path, transform: Callable) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), framework="pt") as handle:
        header = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    save_file({k: transform(k, v) for k, v in tensors.items()}, str(weights), metadata=header)
    return weights


# ---------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------

INFO = ["info", "{data}"]
PREDICT = ["-q", "predict", "{model}", "{data}", "--out", "{out}"]
TINY = ["--base-width", "4", "--depth", "2", "--crop-size", "32", "--batch-size", "2",
        "--steps-per-epoch", "1", "--epochs", "1", "--device", "cpu", "--num-threads", "1"]


def _data(build: Callable[[Path], Path]) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        return {"data": str(build(folder)), "out": str(folder / "out")}
    return run


def _with_model(build: Callable[[Path], Path]) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        values = _data(build)(folder)
        values["model"] = str(tiny_checkpoint(folder))
        return values
    return run


def _model(edit: Callable[[Path], Path]) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        weights = tiny_checkpoint(folder)
        edit(weights)
        values = {"model": str(weights), "out": str(folder / "out")}
        values["data"] = str(good_dataset(folder / "data", n=1))
        return values
    return run


def _fifo(folder: Path) -> Path:
    path = folder / "data.zip"
    os.mkfifo(path)
    return path


def _loop(folder: Path) -> Path:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


def _loop_inside(folder: Path) -> Path:
    root = good_dataset(folder / "ds")
    (root / "z9loop" / "images").mkdir(parents=True)
    (root / "z9loop" / "masks").mkdir(parents=True)
    (folder / "x").symlink_to(folder / "y")
    (folder / "y").symlink_to(folder / "x")
    (root / "z9loop" / "images" / "z9loop.png").symlink_to(folder / "x")
    return root


def _two_images(folder: Path) -> Path:
    root = good_dataset(folder / "ds", n=1)
    members = sample_members("z9two", seed=4)
    image = members.pop("z9two/images/z9two.png")
    members["z9two/images/first.png"] = image
    members["z9two/images/second.png"] = image
    return write_folder(root, members)


def _dup_zip(folder: Path) -> Path:
    members = list(sample_members("s0good", seed=0, prefix="stage1_train/").items())
    a = sample_members("z9dup", seed=1, prefix="stage1_train/")
    b = sample_members("z9dup", seed=2, prefix="stage1_train/")
    members += list(a.items()) + list(b.items())  # every member of z9dup twice
    return write_zip(folder / "dup.zip", members)


def _zip_bomb(folder: Path) -> Path:
    # 300 MB of zeros as the image: 0.3 MB on disk
    path = folder / "bomb.zip"
    members = list(sample_members("s0good", seed=0, prefix="stage1_train/").items())
    members += list(sample_members("z9bad", seed=9, prefix="stage1_train/").items())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members:
            if name.endswith("z9bad/images/z9bad.png"):
                with zf.open(name, "w", force_zip64=True) as out:
                    chunk = bytes(1 << 24)
                    for _ in range(18):
                        out.write(chunk)
            else:
                zf.writestr(name, data)
    return path


def _ratio_zip(folder: Path) -> Path:
    # 20 MB of zeros (ratio ~1000): under the size cap, refused by the ratio check
    return zip_with_bad_sample(folder / "ratio.zip", "images/z9bad.png", bytes(20 << 20))


def _write_cfg(folder: Path, text: str) -> dict:
    path = folder / "config.json"
    path.write_text(text)
    return {"data": str(good_dataset(folder / "data", n=2)), "out": str(folder / "run"),
            "config": str(path)}


def _out_is_file(folder: Path) -> dict:
    (folder / "file").write_text("x")
    return {"data": str(good_dataset(folder / "data", n=2)), "out": str(folder / "file")}


def _train_data(folder: Path) -> dict:
    return {"data": str(good_dataset(folder / "data", n=2)), "out": str(folder / "run")}


API_OPEN = ("from napari_nuclei_unet.core.dataset import DSBDataset\n"
            "d = DSBDataset.open({data!r}, use_cache=False)\n"
            "drive_all = __import__('napari_nuclei_unet.core.progress', fromlist=['drive'])\n"
            "samples = drive_all.drive(d.iter_load(use_cache=False))\n"
            "assert samples, 'no sample decoded'\n")
API_LOAD = ("from napari_nuclei_unet.core.checkpoint import load_checkpoint\n"
            "load_checkpoint({model!r})\n")
API_READER = ("import napari_nuclei_unet._reader as r\n"
              "shown = []\n"
              "r._show_error = shown.append\n"
              "layers = r.read_dsb({data!r})\n"
              "if shown: raise ValueError(shown[0])\n")
API_IMAGE = ("from napari_nuclei_unet.core.imageio import read_image, read_mask_box\n"
             "data = open({data!r}, 'rb').read()\n"
             "read_mask_box(data, name={data!r}) if {mask!r} else read_image({data!r})\n")


def _image_file(name: str, make: Callable[[], bytes], mask: bool = False):
    def run(folder: Path) -> dict:
        path = folder / name
        path.write_bytes(make())
        return {"data": str(path), "mask": mask}
    return run


def corpus() -> list[Case]:
    """Every case of the corpus (builders run lazily, in the folder given)."""
    cases: list[Case] = []

    def dataset_cases(name, build, expect, hostile=False, predict=True):
        cases.append(Case(f"{name}/info", _data(build), argv=INFO, expect=expect,
                          hostile=hostile))
        cases.append(Case(f"{name}/api", _data(build), api=API_OPEN, expect=expect,
                          hostile=hostile))
        cases.append(Case(f"{name}/reader", _data(build), api=API_READER, expect=expect,
                          hostile=hostile))
        if predict:
            cases.append(Case(f"{name}/predict", _with_model(build), argv=PREDICT,
                              expect=expect, hostile=hostile))

    # hostile files: bounded memory, one bad sample is skipped (the rest is used)
    dataset_cases("zip-bomb-member", _zip_bomb, "ok", hostile=True)
    dataset_cases("zip-ratio-member", _ratio_zip, "ok", hostile=True)
    dataset_cases("png-mask-bomb",
                  lambda f: with_bad_sample(f / "ds", "masks/z9bad_m0.png", png_bomb()),
                  "ok", hostile=True, predict=False)
    dataset_cases("png-image-bomb",
                  lambda f: with_bad_sample(f / "ds", "images/z9bad.png", png_bomb()),
                  "ok", hostile=True)
    dataset_cases("tiff-image-bomb",
                  lambda f: with_bad_sample(f / "ds", "images/z9bad.png", tiff_bomb()),
                  "ok", hostile=True)
    dataset_cases("png-over-pil-limit",
                  lambda f: with_bad_sample(f / "ds", "images/z9bad.png",
                                            rgb_png_over_pil_limit()), "ok")
    cases.append(Case("png-mask-bomb/file", _image_file("m.png", png_bomb, True),
                      api=API_IMAGE, hostile=True))
    cases.append(Case("tiff-bomb/file", _image_file("i.tif", tiff_bomb), api=API_IMAGE,
                      hostile=True))
    # damaged or odd zips: the sample is skipped with a plain reason
    dataset_cases("zip-encrypted-member",
                  lambda f: zip_with_bad_sample(f / "enc.zip", "images/z9bad.png", flag=0x1),
                  "ok")
    dataset_cases("zip-unsupported-method",
                  lambda f: zip_with_bad_sample(f / "ppmd.zip", "images/z9bad.png", method=98),
                  "ok")
    dataset_cases("zip-bad-crc",
                  lambda f: zip_with_bad_sample(f / "crc.zip", "images/z9bad.png",
                                                crc=0x12345678), "ok")
    dataset_cases("zip-duplicate-names", _dup_zip, "ok")
    dataset_cases("broken-mask",
                  lambda f: with_bad_sample(f / "ds", "masks/z9bad_m0.png", b"\x89PNG\r\n"),
                  "ok", predict=False)
    dataset_cases("two-images-none-named", _two_images, "ok")
    dataset_cases("symlink-loop-inside", _loop_inside, "ok")
    # not a dataset at all
    dataset_cases("fifo", _fifo, "error")
    dataset_cases("symlink-loop", _loop, "error")
    # hostile or damaged checkpoints
    for name, edit in {
        "ckpt-depth-40": lambda w: edit_sidecar(w, lambda d: d["architecture"].update(depth=40)),
        "ckpt-width-4096": lambda w: edit_sidecar(
            w, lambda d: d["architecture"].update(base_width=4096)),
        "ckpt-out-channels-99": lambda w: edit_sidecar(
            w, lambda d: d["architecture"].update(out_channels=99)),
        "ckpt-diameter-nan": lambda w: edit_sidecar(
            w, lambda d: d["architecture"].update(training_diameter="big")),
        "ckpt-format-version-str": lambda w: edit_sidecar(
            w, lambda d: d.update(format_version="2")),
        "ckpt-architecture-list": lambda w: edit_sidecar(
            w, lambda d: d.update(architecture=["unet", 4])),
        "ckpt-config-list": lambda w: edit_sidecar(w, lambda d: d.update(config=[1, 2])),
        "ckpt-lr-null": lambda w: edit_sidecar(
            w, lambda d: d["config"].update(learning_rate=None)),
        "ckpt-deep-json": lambda w: edit_sidecar(w, lambda d: "[" * 100000 + "]" * 100000),
        "ckpt-bool-weights": lambda w: rewrite_weights(w, lambda k, v: v > 0),
        "ckpt-int-weights": lambda w: rewrite_weights(
            w, lambda k, v: v.to(__import__("torch").int32) if v.is_floating_point() else v),
        "ckpt-nan-weights": lambda w: rewrite_weights(
            w, lambda k, v: v * float("nan") if v.is_floating_point() else v),
        "ckpt-truncated": lambda w: w.write_bytes(w.read_bytes()[:100]),
        "ckpt-pickle": lambda w: w.with_suffix(".pt").write_bytes(b"\x80\x04K\x01."),
    }.items():
        key = "model_pt" if name == "ckpt-pickle" else "model"
        build = _model(edit)
        if name == "ckpt-pickle":
            def build(folder, _edit=edit):
                values = _model(_edit)(folder)
                values["model_pt"] = str(Path(values["model"]).with_suffix(".pt"))
                return values
        cases.append(Case(f"{name}/predict", build,
                          argv=["-q", "predict", "{" + key + "}", "{data}", "--out", "{out}"]))
        cases.append(Case(f"{name}/api", build,
                          api=API_LOAD.replace("{model!r}", "{" + key + "!r}")))
    # bad training options (refused up front, before any data is read)
    for name, extra in {
        "lr-inf": ["--lr", "inf"],
        "augment-scale-inf": ["--augment-scale", "inf"],
        "seed-negative": ["--seed", "-1"],
        "min-lr-fraction-5": ["--min-lr-fraction", "5"],
        "weight-decay-nan": ["--weight-decay", "nan"],
        "depth-40": ["--depth", "40"],
    }.items():
        cases.append(Case(f"train-{name}", _train_data,
                          argv=["-q", "train", "{data}", "--out", "{out}", *TINY, *extra]))
    cases.append(Case("train-config-json-list", lambda f: _write_cfg(f, "[1, 2]"),
                      argv=["-q", "train", "{data}", "--out", "{out}", "--config", "{config}"]))
    cases.append(Case("train-out-is-a-file", _out_is_file,
                      argv=["-q", "train", "{data}", "--out", "{out}", *TINY]))
    cases.append(Case("train-crop-4096-out-of-memory", _train_data,
                      argv=["-q", "train", "{data}", "--out", "{out}", *TINY,
                            "--crop-size", "4096", "--batch-size", "64"],
                      notes={"rlimit_as_gb": 3}))
    cases.append(Case("train-good", _train_data,
                      argv=["-q", "train", "{data}", "--out", "{out}", *TINY], expect="ok"))
    return cases


# ---------------------------------------------------------------------------
# running a case
# ---------------------------------------------------------------------------

OUTCOMES = ("plain error", "success", "traceback", "this is a bug", "hang or killed")

_CHILD = r"""
import json, os, resource, sys, traceback

def _report():
    # VmHWM: this program's own peak (ru_maxrss would include the parent's size at fork)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        pass
    peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    sys.stderr.write(f"\nPEAK_KB={peak}\n")
    sys.stderr.flush()

kind, payload = sys.argv[1], sys.argv[2]
code = 0
if kind == "cli":
    from napari_nuclei_unet.cli import main
    code = main(json.loads(payload))
else:
    try:
        exec(compile(payload, "<case>", "exec"), {})
    except (ValueError, OSError) as exc:  # the plain-words error classes
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        code = 2
    except BaseException:
        traceback.print_exc()
        code = 1
_report()
sys.exit(code)
"""


@dataclass
class Result:
    """What running a case gave."""

    case: Case
    outcome: str
    expected: bool
    peak_mb: float | None
    message: str


def _fill(template: str, values: dict) -> str:
    return template.format(**values)


def classify(code: int | None, err: str) -> str:
    """The outcome of a run from its exit status and stderr."""
    if code is None or code < 0 or code in (124, 137):
        return "hang or killed"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if "this is a bug" in err:
        return "this is a bug"
    if code == 0:
        return "success"
    if code == 2:
        return "plain error"
    return "traceback"


def run_case(case: Case, folder: Path, *, timeout: float = 300.0) -> Result:
    """Build a case in ``folder`` and run it in a fresh interpreter (peak memory measured)."""
    import resource
    import subprocess
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    values = case.build(folder)
    if case.argv is not None:
        payload = json.dumps([_fill(a, values) for a in case.argv])
        kind = "cli"
    else:
        payload = case.api.format(**values)
        kind = "api"
    limit_gb = case.notes.get("rlimit_as_gb")

    def limit() -> None:  # pragma: no cover - runs in the child
        if limit_gb:
            resource.setrlimit(resource.RLIMIT_AS, (limit_gb << 30, limit_gb << 30))

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUCLEI_UNET_CACHE_DIR=str(folder / "cache"))
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, kind, payload], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              preexec_fn=limit if limit_gb else None)
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = None, (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else ""
    peak = None
    for line in err.splitlines():
        if line.startswith("PEAK_KB="):
            peak = int(line.split("=", 1)[1]) / 1024
    err = "\n".join(line for line in err.splitlines() if not line.startswith("PEAK_KB="))
    outcome = classify(code, err)
    expected = outcome == ("success" if case.expect == "ok" else "plain error")
    lines = [line for line in err.splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    return Result(case, outcome, expected, peak, message)
