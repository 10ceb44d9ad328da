"""Export a nuclei-unet checkpoint as a bioimage.io model package (format 0.5).

The package holds the same network three ways: TorchScript (``torch.jit.trace``), ONNX
(``torch.onnx.export``) and ``pytorch_state_dict`` with its architecture source (the
U-Net of ``core/model.py`` plus :class:`~napari_nuclei_unet.bioimageio._network.NucleiForeground`).
Its input is the raw RGB image (grey images repeated to 3 channels); the declared
preprocessing scales the 1st..99.8th percentile range to 0..1, as napari-nuclei-unet
does; the bright-background inversion, which bioimage.io preprocessing cannot express,
and the sigmoid are inside the network. bioimageio.spec validates the description and
writes the zip; bioimageio.core's ``test_model`` can check it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.checkpoint import CheckpointError

CITATIONS = [
    {
        "text": "Ronneberger, O., Fischer, P. and Brox, T. U-Net: Convolutional Networks for "
                "Biomedical Image Segmentation. MICCAI 2015.",
        "doi": "10.1007/978-3-319-24574-4_28",
    },
    {
        "text": "Caicedo, J. C. et al. Nucleus segmentation across imaging experiments: the "
                "2018 Data Science Bowl. Nature Methods 16, 1247-1253 (2019).",
        "doi": "10.1038/s41592-019-0612-7",
    },
]
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.8
HALO = 32
ONNX_OPSET = 17
#: A hidden partial package older than this (seconds) beside the destination was left
#: by an export that was killed; younger ones may be another export's, in progress.
STALE_PARTIAL_S = 3600.0
INPUT_ID = "raw"
OUTPUT_ID = "probability"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def architecture_source() -> str:
    """Source of the exported architecture file: ``core/model.py`` + ``_network.py``."""
    from ..core import model as model_module
    from . import _network

    network = [
        line for line in inspect.getsource(_network).splitlines()
        if "# package only" not in line and not line.startswith("from __future__")
    ]
    return inspect.getsource(model_module) + "\n\n# --- napari-nuclei-unet export wrapper ---\n" \
        + "\n".join(network) + "\n"


def _scale_range(image: np.ndarray) -> np.ndarray:
    """The package's declared preprocessing, on a ``(1, C, H, W)`` float32 array."""
    low, high = np.percentile(image, [LOW_PERCENTILE, HIGH_PERCENTILE])
    return ((image - low) / (high - low + 1e-6)).astype(np.float32)


def _cover(image: np.ndarray, probability: np.ndarray, path: Path) -> None:
    """Write a 2:1 cover: the test image beside its foreground probability."""
    from PIL import Image

    rgb = np.clip(image, 0, 255).astype(np.uint8)
    grey = (np.clip(probability, 0, 1) * 255).astype(np.uint8)
    panel = np.concatenate([rgb, np.repeat(grey[:, :, None], 3, axis=2)], axis=1)
    Image.fromarray(panel).resize((512, 256)).save(path)


def _scores(metadata: dict) -> tuple[dict, dict]:
    """The model's scores: its training's metrics, else (a fine-tuning version) its round's."""
    from ..core.finetune.versions import round_scores

    metrics = metadata.get("metrics") or {}
    return metrics, ({} if metrics else round_scores(metadata))


def _readme(name: str, metadata: dict, kwargs: dict, path: Path) -> None:
    metrics, rounds = _scores(metadata)
    lines = [
        f"# {name}",
        "",
        "A U-Net (Ronneberger et al. 2015) that predicts the foreground probability of cell "
        "nuclei in 2-D images, trained with napari-nuclei-unet on DSB2018-style data "
        "(Caicedo et al. 2019).",
        "",
        "## Input and output",
        "",
        "- Input `raw`: the image as `(batch, channel, y, x)` with 3 channels (RGB; repeat a "
        "grey image three times), any value range.",
        f"- Preprocessing (declared): `scale_range` over channel, y and x jointly, "
        f"percentiles {LOW_PERCENTILE} and {HIGH_PERCENTILE}.",
        "- Inside the network: when the median of the scaled grey image is above 0.5 (bright "
        "background: brightfield, H&E) the image is inverted, as napari-nuclei-unet does; "
        "bioimage.io preprocessing cannot express this step. Tools that tile an image decide "
        "it per tile.",
        "- Output `probability`: `(batch, 1, y, x)` foreground probability in [0, 1] "
        "(sigmoid inside the network). Threshold at 0.5 and split touching nuclei (e.g. "
        "watershed) for instances.",
        "",
        "## Weights",
        "",
        "TorchScript and ONNX (traced from the same network), and the PyTorch state dict "
        "with the architecture source `nuclei_unet_architecture.py` "
        f"(`NucleiForeground(**{kwargs})`).",
        "",
        "## Training",
        "",
        f"Exported by napari-nuclei-unet {__version__}.",
        "",
        "## Validation",
        "",
        "The test tensors are a synthetic fluorescence image and this network's output; "
        "`bioimageio test` reproduces them with each weight format.",
    ]
    if rounds:  # a fine-tuning version: the user's corrections, scored before and after
        lines.append("Fine-tuned on its user's corrected images (one round), scored "
                     "before and after it: "
                     + ", ".join(f"{k} {v['before']:.3f} -> {v['after']:.3f}"
                                 for k, v in rounds.items()) + ".")
    elif metrics:
        lines.append("Validation metrics recorded at training: "
                     + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                 for k, v in metrics.items() if isinstance(v, (int, float)))
                     + ".")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_package_folder(model: str | os.PathLike, folder: Path, *,
                         authors: Sequence[str] = (), name: str | None = None,
                         license: str = "CC-BY-4.0", test_size: int = 256) -> Path:
    """Write every file of the package and its ``rdf.yaml`` into ``folder``.

    Parameters
    ----------
    model : str or os.PathLike
        A checkpoint, or ``"default"``.
    folder : pathlib.Path
        An empty folder.
    authors : sequence of str
        Author names (default: one anonymous author, named after napari-nuclei-unet).
    name : str, optional
        Package name (default: :func:`default_package_name`, e.g. "Nuclei U-Net (lab-a
        v002)" for a fine-tuning project's version).
    license : str, default "CC-BY-4.0"
        SPDX licence identifier of the weights.
    test_size : int, default 256
        Side of the synthetic test image.

    Returns
    -------
    pathlib.Path
        The ``rdf.yaml`` written.
    """
    import torch

    from ..core.checkpoint import load_checkpoint
    from ..core.finetune.versions import resolve_model_folder
    from ..core.sharing import (
        shareable_round,
        shareable_training_data,
        shareable_training_record,
    )
    from ..core.synthetic import make_synthetic_sample
    from ._network import NucleiForeground

    loaded = load_checkpoint(resolve_model_folder(model), device="cpu")
    net = loaded.model.float().eval()
    kwargs = {k: v for k, v in net.architecture().items() if k != "name"}
    wrapper = NucleiForeground(**kwargs)
    wrapper.net.load_state_dict(net.state_dict())
    wrapper.eval()
    multiple = int(getattr(net, "multiple", 16))
    minimum = max(multiple, -(-(2 * HALO + multiple) // multiple) * multiple)
    in_channels = int(kwargs.get("in_channels", 3))
    if in_channels != 3:
        raise CheckpointError(
            f"{loaded.path} takes {in_channels} input channels; the bioimage.io export "
            "supports the usual 3-channel (RGB) models."
        )

    size = max(minimum, -(-test_size // multiple) * multiple)
    image, _ = make_synthetic_sample("fluorescence", shape=(size, size), seed=0)
    raw = np.asarray(image, dtype=np.float32)[:, :, :3]
    test_input = np.ascontiguousarray(raw.transpose(2, 0, 1)[None])  # (1, 3, H, W)
    with torch.inference_mode():
        test_output = wrapper(torch.from_numpy(_scale_range(test_input))).numpy()

    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", test_output.astype(np.float32))
    _cover(raw, test_output[0, 0], folder / "cover.png")
    from PIL import Image

    Image.fromarray(np.asarray(image)[:, :, :3]).save(folder / "sample_input.png")
    Image.fromarray((test_output[0, 0] * 255).round().astype(np.uint8)).save(
        folder / "sample_output.png")
    (folder / "nuclei_unet_architecture.py").write_text(architecture_source(), encoding="utf-8")
    torch.save(wrapper.state_dict(), folder / "weights_state_dict.pt")
    example = torch.from_numpy(_scale_range(test_input))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example)
        traced.save(str(folder / "weights_torchscript.pt"))
        dynamic = {0: "batch", 2: "y", 3: "x"}
        torch.onnx.export(
            wrapper, (example,), str(folder / "weights.onnx"), dynamo=False,
            opset_version=ONNX_OPSET, input_names=[INPUT_ID], output_names=[OUTPUT_ID],
            dynamic_axes={INPUT_ID: dynamic, OUTPUT_ID: dynamic},
        )
    name = name or default_package_name(loaded)
    _readme(name, loaded.metadata, kwargs, folder / "README.md")

    def file(path: str) -> dict:
        return {"source": path, "sha256": _sha256(folder / path)}

    torch_version = torch.__version__.split("+")[0]
    space = {"min": minimum, "step": multiple}
    training, rounds = _scores(loaded.metadata)
    rdf: dict[str, Any] = {
        "format_version": "0.5.4",
        "type": "model",
        "name": name,
        "description": "U-Net foreground probability of cell nuclei in 2-D images "
                       "(napari-nuclei-unet, DSB2018).",
        "authors": [{"name": a} for a in (authors or ["napari-nuclei-unet user"])],
        "cite": CITATIONS,
        "license": license,
        "covers": ["cover.png"],
        "documentation": "README.md",
        "tags": ["unet2d", "pytorch", "nucleus", "nuclei", "segmentation", "dsb2018",
                 "fluorescence-light-microscopy", "2d", "napari-nuclei-unet"],
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "inputs": [{
            "id": INPUT_ID,
            "description": "RGB image (grey: the same plane three times), any value range",
            "axes": [
                {"type": "batch"},
                {"type": "channel", "channel_names": ["red", "green", "blue"]},
                {"type": "space", "id": "y", "size": space},
                {"type": "space", "id": "x", "size": space},
            ],
            "test_tensor": file("test_input.npy"),
            "sample_tensor": file("sample_input.png"),
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {
                    "axes": ["channel", "y", "x"], "min_percentile": LOW_PERCENTILE,
                    "max_percentile": HIGH_PERCENTILE}},
            ],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "foreground (nucleus) probability in [0, 1]",
            "axes": [
                {"type": "batch"},
                {"type": "channel", "channel_names": ["foreground"]},
                {"type": "space", "id": "y", "halo": HALO,
                 "size": {"tensor_id": INPUT_ID, "axis_id": "y"}},
                {"type": "space", "id": "x", "halo": HALO,
                 "size": {"tensor_id": INPUT_ID, "axis_id": "x"}},
            ],
            "data": {"type": "float32", "range": [0.0, 1.0]},
            "test_tensor": file("test_output.npy"),
            "sample_tensor": file("sample_output.png"),
        }],
        "weights": {
            "pytorch_state_dict": {
                **file("weights_state_dict.pt"),
                "architecture": {**file("nuclei_unet_architecture.py"),
                                 "callable": "NucleiForeground", "kwargs": kwargs},
                "pytorch_version": torch_version,
            },
            "torchscript": {**file("weights_torchscript.pt"),
                            "parent": "pytorch_state_dict", "pytorch_version": torch_version},
            "onnx": {**file("weights.onnx"), "parent": "pytorch_state_dict",
                     "opset_version": ONNX_OPSET},
        },
        "config": {"napari_nuclei_unet": {
            "version": __version__,
            "architecture": net.architecture(),
            "metrics": training or rounds,
            # read back when the package is loaded (the Model dock's settings and date)
            "train_config": loaded.config.to_dict(),
            **({"trained": str(loaded.metadata["created"])}
               if loaded.metadata.get("created") else {}),
            # which images it was trained and validated on (ids only), read back: the
            # Split column of a loaded package said "unseen" for them (h_gui15, M2)
            **({"training_data": shared_data} if (shared_data := shareable_training_data(
                loaded.metadata)) else {}),
            # its held-out scores, epochs and hardware, read back (h_gui31, L2)
            **shareable_training_record(loaded.metadata, loaded.path),
            # a fine-tuning version: its round (images, base model, scores), read back
            **({"finetune": shared} if (shared := shareable_round(loaded.metadata,
                                                                  loaded.path)) else {}),
        }},
    }
    rdf_path = folder / "rdf.yaml"
    # JSON is valid YAML 1.2 and needs no YAML writer.
    rdf_path.write_text(json.dumps(rdf, indent=2) + "\n", encoding="utf-8")
    return rdf_path


#: The characters bioimage.io (spec 0.5) allows in a model's name.
NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
#: bioimage.io (spec 0.5) keeps a model's name to this many characters.
NAME_LIMIT = 128


def model_words(loaded: Any) -> str:
    """The model's name for a colleague: a fine-tuning version with its project's name.

    The Retrain dock's own project is called "default": "default v001" read as the
    shipped model (GUI check h_gui40, L9); it is "fine-tuned v001".
    """
    from ..core.model_names import model_name, version_project

    project = version_project(loaded)
    name = model_name(loaded)
    if project is None:
        return name
    return f"{'fine-tuned' if project.name == 'default' else project.name} {name}"


def default_package_name(loaded: Any) -> str:
    """A bioimage.io name: ``"Nuclei U-Net (lab-a v002)"``, only allowed characters.

    The Model dock's export offers it, and ``nuclei-unet export`` uses it without
    ``--name`` (every package was "Nuclei U-Net (napari-nuclei-unet)" there, two versions
    of a project alike).
    """
    which = "".join(c if c in NAME_CHARACTERS else "-" for c in model_words(loaded))
    if which.startswith("Nuclei U-Net ("):  # a package's own name: not wrapped again
        return which[:NAME_LIMIT]  # ("Nuclei U-Net (Nuclei U-Net (lab-a v002))": h_rev30)
    return f"Nuclei U-Net ({which.strip(' -') or 'model'})"[:NAME_LIMIT]


#: Licences most models are shared under, offered first (the Export dialog's choices).
COMMON_LICENSES = ("CC-BY-4.0", "CC0-1.0", "MIT", "BSD-3-Clause", "Apache-2.0")


def check_license(license: str) -> None:
    """Refuse a licence bioimage.io does not know (an SPDX id), in a short sentence.

    It was refused only after the whole export, with the ~700 ids bioimage.io knows on
    one line (review h_rev15, M11).
    """
    try:
        from bioimageio.spec.model.v0_5 import LicenseId
    except ImportError:  # the export says that bioimageio.core is missing
        return
    try:
        LicenseId(license)
        return
    except ValueError:  # pydantic's ValidationError
        pass
    known = _spdx_ids()
    same = [lid for lid in known if lid.lower() == license.strip().lower()]
    hint = (f"did you mean {same[0]}? (the ids are case-sensitive)" if same else
            f"e.g. {', '.join(COMMON_LICENSES)}; any SPDX licence id (spdx.org/licenses)")
    raise ValueError(f"--license {license!r} is not a licence id bioimage.io knows: {hint}.")


def _spdx_ids() -> list[str]:
    """The SPDX licence ids bioimage.io's spec ships (empty if its list cannot be read)."""
    import importlib.resources
    import json

    try:
        text = (importlib.resources.files("bioimageio.spec") / "static" /
                "spdx_licenses.json").read_text(encoding="utf-8")
        return [str(entry["licenseId"]) for entry in json.loads(text)["licenses"]]
    except (OSError, ValueError, KeyError, TypeError, ModuleNotFoundError):
        return []


def check_export(model: str | os.PathLike, out: str | os.PathLike, *, name: str | None = None,
                 overwrite: bool = False, license: str | None = None) -> Path:
    """Refuse an export that would fail, before anything is built; return ``out``.

    Raises
    ------
    ValueError
        When ``model`` is already a package, ``name`` holds characters bioimage.io
        refuses, ``license`` is not an SPDX licence id, or ``out`` is not a ``.zip``.
    FileExistsError
        When ``out`` exists and ``overwrite`` is False.
    FileNotFoundError
        When the folder of ``out`` does not exist (a typo: it was created silently).
    """
    from .load import is_bioimageio_package

    if is_bioimageio_package(model):
        raise ValueError(
            f"{model} is already a bioimage.io package; export takes a napari-nuclei-unet "
            "checkpoint (.safetensors with its .json) or 'default'."
        )
    if name is not None and not name.strip():
        raise ValueError("--name is empty: give the model a name, e.g. 'Nuclei U-Net "
                         "(our lab)', or leave --name out.")
    if name is not None and set(name) - NAME_CHARACTERS:
        odd = "".join(sorted(set(name) - NAME_CHARACTERS))
        raise ValueError(
            f"--name {name!r}: bioimage.io names may hold only the letters a-z and A-Z "
            f"(no accents), digits, spaces and _ + - ( ), not {odd!r}; e.g. 'Nuclei U-Net "
            "(our lab)'.")  # "only letters ... not 'èü'" (CLI check h_cli2)
    if license is not None:
        check_license(license)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ValueError(f"--bioimageio {out}: give a file name ending in .zip.")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"The folder {out.parent} does not exist: create it first, or "
                                "write the package in a folder that exists.")
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; choose another name or add --overwrite."
        )
    return out


def export_bioimageio(model: str | os.PathLike, out: str | os.PathLike, *,
                      authors: Sequence[str] = (), name: str | None = None,
                      license: str = "CC-BY-4.0", overwrite: bool = False) -> Path:
    """Export ``model`` as a bioimage.io model package ``out`` (a ``.zip``).

    Parameters
    ----------
    model : str or os.PathLike
        A checkpoint, or ``"default"``.
    out : str or os.PathLike
        The ``.zip`` to write (written to a temporary name, then moved into place).
    authors, name, license
        See :func:`build_package_folder`.
    overwrite : bool, default False
        Replace an existing ``out``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    CheckpointError
        When bioimageio.core is missing, the checkpoint cannot be loaded, or the package
        does not validate.
    FileExistsError
        When ``out`` exists and ``overwrite`` is False.
    """
    out = check_export(model, out, name=name, overwrite=overwrite, license=license)
    from .load import _import_bioimageio

    _import_bioimageio("Exporting a bioimage.io model package")
    from bioimageio.spec import load_model_description, save_bioimageio_package

    from ..core.atomic import (
        chmod_shareable,
        fsync_dir,
        fsync_file,
        make_temp,
        plain_os_error,
        remove_stale_temps,
        replace,
    )

    try:  # said at once, not after the export's seconds of work; a name of its own:
        # two exports to one file wrote into the same ".NAME.partial" (h_rev17, L3)
        partial = make_temp(out)
        chmod_shareable(partial)  # mkstemp's 0600: colleagues could not read it (h_rev18 M3)
    except OSError as exc:
        raise plain_os_error(exc, out) from exc
    # what an export killed midway left (h_rev19, L2); not another export's, in progress
    remove_stale_temps(out.parent, out.name, keep={partial.name}, older_than_s=STALE_PARTIAL_S)
    try:
        with tempfile.TemporaryDirectory(prefix="nuclei-unet-bioimageio-") as tmp:
            folder = Path(tmp) / "package"
            folder.mkdir()
            rdf = build_package_folder(model, folder, authors=authors, name=name,
                                       license=license)
            try:
                descr = load_model_description(str(rdf))
            except ValueError as exc:
                raise CheckpointError(
                    f"The exported package does not validate: {exc}") from exc
            try:
                save_bioimageio_package(descr, output_path=partial)
                fsync_file(partial)  # whole on disk before it replaces the file (h_rev19 L2)
                replace(partial, out)
                fsync_dir(out.parent)
            except OSError as exc:
                if exc.filename is not None and Path(exc.filename) not in (partial, out):
                    raise  # another file's error says its own name
                raise plain_os_error(exc, out) from exc
    finally:
        partial.unlink(missing_ok=True)
    return out
