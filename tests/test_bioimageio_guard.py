"""A hostile bioimage.io package is refused from its files' sizes and types, quickly.

Each used to exhaust memory or block inside bioimageio.spec (review h_rev17, F1, F2):
an alias bomb of 2 KB grew to 7.6 GB, a 23 MB zip took 2.4 GB, a FIFO hung for ever.
"""

from __future__ import annotations

import os
import zipfile

import pytest

from napari_nuclei_unet.bioimageio.guard import MAX_RDF_BYTES, check_package
from napari_nuclei_unet.core.checkpoint import CheckpointError

RDF = "type: model\nformat_version: 0.5.3\nname: test\nweights: {}\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 9)}]\n"
    for k in range(8))


def refused(source) -> str:
    with pytest.raises(CheckpointError) as info:
        check_package(source)
    return str(info.value)


def test_a_plain_package_passes(tmp_path):
    (tmp_path / "rdf.yaml").write_text(RDF)
    (tmp_path / "weights.pt").write_bytes(b"x" * 1000)
    check_package(tmp_path)
    check_package(tmp_path / "rdf.yaml")
    with zipfile.ZipFile(tmp_path / "p.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdf.yaml", RDF)
        archive.writestr("weights.pt", b"x" * 1000)
    check_package(tmp_path / "p.zip")


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    (tmp_path / "rdf.yaml").write_text(RDF + LAUGHS)
    assert "uses YAML aliases (*a)" in refused(tmp_path)
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as archive:
        archive.writestr("bioimageio.yaml", RDF + LAUGHS)
    assert "uses YAML aliases" in refused(tmp_path / "p.zip")


def test_oversized_and_inflating_members_are_refused_from_the_zip_header(tmp_path):
    with zipfile.ZipFile(tmp_path / "big_rdf.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdf.yaml", RDF + "#" * (MAX_RDF_BYTES + 1))
    assert "holds 1 MB, more than the 1 MB" in refused(tmp_path / "big_rdf.zip")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdf.yaml", RDF)
        archive.writestr("weights.pt", bytes(20 * 2**20))  # 20 MB of zeros: ~1000-fold
    assert "likely a zip bomb" in refused(tmp_path / "bomb.zip")


def test_a_pipe_in_the_package_is_refused_without_blocking(tmp_path):
    (tmp_path / "rdf.yaml").write_text(RDF)
    os.mkfifo(tmp_path / "weights.pt")
    assert "is not a regular file (a pipe or a device)" in refused(tmp_path)
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(RDF + "#" * (MAX_RDF_BYTES + 1))
    assert "more than the 1 MB a model package's description" in refused(folder)


def test_the_real_package_passes():
    from test_bioimageio import _real_package

    check_package(_real_package())


@pytest.mark.parametrize("rdf, words", [
    ("type: dataset\nformat_version: 0.3.0\nname: x\n",
     "describes a bioimage.io dataset, not a model"),
    ("type: model\nformat_version: 0.4.10\nname: x\n",
     "is a bioimage.io model of format 0.4.10; napari-nuclei-unet reads format 0.5"),
    (RDF.replace("weights: {}", "weights:\n  torchscript: {source: ../elsewhere/w.pt}"),
     "takes its weights from ../elsewhere/w.pt, outside the package"),
    (RDF.replace("weights: {}", "weights:\n  onnx: {source: /srv/w.onnx}"),
     "takes its weights from /srv/w.onnx, outside the package"),
])
def test_a_description_that_cannot_be_a_usable_model_is_said_in_a_few_words(tmp_path, rdf,
                                                                            words):
    # pydantic's validation text ("Invalid dataset description: name: Value should have
    # at least 5 items", 25 lines for format 0.4), and weights read from outside the
    # package, silently (review h_rev17, L9 and L5)
    (tmp_path / "rdf.yaml").write_text(rdf)
    assert words in refused(tmp_path)


def test_weights_inside_the_package_or_at_an_address_pass(tmp_path):
    (tmp_path / "rdf.yaml").write_text(RDF.replace(
        "weights: {}", "weights:\n  torchscript: {source: sub/w.pt}\n"
                       "  onnx: {source: 'https://example.org/w.onnx'}"))
    check_package(tmp_path)


def test_every_name_a_description_may_have_is_checked(tmp_path):
    # "model.bioimageio.yaml" got past the guard, in a folder and in a zip, and its alias
    # bomb ran 61 s up to a 3 GB limit (review h_rev18, H2)
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "model.bioimageio.yaml").write_text(RDF + LAUGHS)
    assert "uses YAML aliases" in refused(folder)
    assert "uses YAML aliases" in refused(folder / "model.bioimageio.yaml")
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as archive:
        archive.writestr("model.bioimageio.yaml", RDF + LAUGHS)
    assert "uses YAML aliases" in refused(tmp_path / "p.zip")


@pytest.mark.parametrize("depth", [100, 3000, 200_000])
def test_a_deeply_nested_description_is_refused_at_once(tmp_path, depth):
    # 3,000 deep: RecursionError, "this is a bug"; 200,000 deep (400 KB): PyYAML had not
    # parsed it after 120 s (review h_rev18, M4)
    import time

    (tmp_path / "rdf.yaml").write_text(RDF + "deep: " + "[" * depth + "]" * depth + "\n")
    start = time.perf_counter()
    assert "nested more than 64 levels deep" in refused(tmp_path)
    assert time.perf_counter() - start < 5


def test_a_description_given_itself_is_checked_with_its_weights_not_its_folder(tmp_path):
    # one in a Downloads folder beside a 2 GB film was refused (review h_rev18, L6)
    (tmp_path / "film.mp4").touch()
    os.truncate(tmp_path / "film.mp4", 2 * 2**30)  # sparse: no disk used
    (tmp_path / "rdf.yaml").write_text(RDF.replace(
        "weights: {}", "weights:\n  torchscript: {source: w.pt}"))
    (tmp_path / "w.pt").write_bytes(b"x")
    check_package(tmp_path / "rdf.yaml")
    assert "film.mp4" in refused(tmp_path)  # the folder given: all of its files
    os.truncate(tmp_path / "w.pt", 2 * 2**30)
    assert "w.pt" in refused(tmp_path / "rdf.yaml")


def test_a_pipe_in_a_sub_folder_is_refused(tmp_path):
    (tmp_path / "rdf.yaml").write_text(RDF)
    (tmp_path / "weights").mkdir()
    os.mkfifo(tmp_path / "weights" / "w.pt")
    assert "is not a regular file" in refused(tmp_path)


def test_many_files_never_hide_the_description_and_too_many_are_refused(tmp_path,
                                                                         monkeypatch):
    # the walk stopped silently after MAX_FILES files: 2,001 empty files sorted before
    # rdf.yaml let an alias bomb or a FIFO as weights through (review h_rev19, H1)
    from napari_nuclei_unet.bioimageio import guard

    monkeypatch.setattr(guard, "MAX_FILES", 5)
    for k in range(6):
        (tmp_path / f"a{k}.txt").write_bytes(b"")
    (tmp_path / "rdf.yaml").write_text(RDF + LAUGHS)
    assert "uses YAML aliases" in refused(tmp_path)
    (tmp_path / "rdf.yaml").write_text(RDF.replace("{}", "{torchscript: {source: w.pt}}"))
    os.mkfifo(tmp_path / "w.pt")
    assert "not a regular file" in refused(tmp_path)
    (tmp_path / "w.pt").unlink()
    assert "holds more than 5 files" in refused(tmp_path)
    (tmp_path / "a0.txt").unlink()
    (tmp_path / "a1.txt").unlink()
    check_package(tmp_path)  # 5 files
    # a package cloned with git: .git is not the package's (review h_rev20, L2)
    for k in range(8):
        (tmp_path / ".git" / "objects" / f"{k:02d}").mkdir(parents=True)
        (tmp_path / ".git" / "objects" / f"{k:02d}" / "blob").write_bytes(b"x")
    check_package(tmp_path)


def test_a_damaged_zip_or_a_yaml_tag_is_said_as_an_invalid_package(tmp_path):
    # the guard's own reads raised NotImplementedError / ConstructorError, which the CLI
    # called "this is a bug" (review h_rev19, M1)
    with zipfile.ZipFile(tmp_path / "method.zip", "w") as archive:
        archive.writestr("rdf.yaml", RDF)
    raw = bytearray((tmp_path / "method.zip").read_bytes())
    for at in (8, raw.rindex(b"PK\x01\x02") + 10):  # the member's method: 9 (deflate64)
        raw[at:at + 2] = (9).to_bytes(2, "little")
    (tmp_path / "method.zip").write_bytes(bytes(raw))
    message = refused(tmp_path / "method.zip")
    assert "is not a valid bioimage.io model package" in message
    assert "compression method 9" in message
    (tmp_path / "rdf.yaml").write_text("type: model\nname: !custom x\n")
    check_package(tmp_path)  # left to bioimageio.spec, which says what is wrong
    # a value PyYAML cannot make: "day is out of range for month", no file named (h_rev20 L1)
    (tmp_path / "rdf.yaml").write_text("type: model\ncreated: 2001-02-30\n")
    message = refused(tmp_path)
    assert message.startswith(f"{tmp_path / 'rdf.yaml'} is not a valid bioimage.io "
                              "description: a value in it cannot be read (day is out of range "
                              "for month).")
