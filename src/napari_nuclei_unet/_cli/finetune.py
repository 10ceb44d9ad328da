"""``nuclei-unet finetune MODEL CORRECTIONS --out PROJECT``: one fine-tuning round."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..core.imageio import IMAGE_FILE_SUFFIXES
from ..core.paths import same_path
from .data import is_dataset_folder, load_samples, open_dataset
from .diameter import finetune_options
from .info import format_table
from .predict import counted
from .progress import TrainReporter, first_names, note
from .stopping import StopRequest


def _load_corrections(path: str, *, quiet: bool, project: str | None = None,
                      axes: str | None = None, channel: int | None = None) -> list[Any]:
    """Corrected samples from a project, image + label image pairs, or a DSB-style folder.

    Pairs (``NAME.tif`` beside ``NAME_labels.tif``) are stored in ``project`` (the
    round's ``--out``) as the Segment dock stores the planes it adds; without a project
    (images kept aside) they are read through a temporary one.
    """
    check_labelled_exists(path)
    samples = own_labelled_samples(path, quiet=quiet, project=project, axes=axes,
                                   channel=channel)
    if samples is None:
        samples = load_samples(open_dataset(path, quiet=quiet), quiet=quiet)
    return samples


def _is_project(folder: Path) -> bool:
    """Whether ``folder`` is a fine-tuning project (its index or its corrections)."""
    from ..core.finetune import CORRECTIONS_DIR, PROJECT_FILE

    return (folder / PROJECT_FILE).exists() or (folder / CORRECTIONS_DIR).is_dir()


def _kept_aside(path: str) -> set[str]:
    """Ids of the corrections kept aside when ``path`` is a fine-tuning project."""
    from ..core.finetune import CorrectionStore

    if not _is_project(Path(path)):
        return set()
    return {c.id for c in CorrectionStore(path).list() if c.aside}


def refuse_own_image_options(args: argparse.Namespace, where: Any) -> None:
    """Refuse ``--channel``/``--axes`` for a DSB2018 dataset, as ``predict`` does.

    ``info`` and ``evaluate`` took them there without a word (review h_rev30, L4).
    """
    given = [f"--{name}" for name in ("channel", "axes") if getattr(args, name, None)
             is not None]
    if given:
        from .failures import UsageError

        raise UsageError(f"{' and '.join(given)} apply to images beside their label images; "
                         f"{where} is a DSB2018 dataset, whose images are read without "
                         f"{'them' if len(given) > 1 else 'it'}: leave "
                         f"{'them' if len(given) > 1 else 'it'} out.")


def check_labelled_exists(path: str) -> None:
    """Refuse a missing folder of labelled images, naming the three forms it may take."""
    from ..core.dataset import check_not_dangling
    from ..core.finetune import CORRECTIONS_DIR, LABELS_SUFFIX, PROJECT_FILE

    check_not_dangling(path)
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} does not exist: give a folder of images with their corrected label "
            f"images (NAME.tif and NAME{LABELS_SUFFIX}.tif), a fine-tuning project folder "
            f"(with {CORRECTIONS_DIR}/ and {PROJECT_FILE}), or a DSB2018 dataset (a folder "
            "like stage1_train, its .zip, or one sample folder).")


def own_labelled_samples(path: str | Path, *, quiet: bool, project: str | None = None,
                         axes: str | None = None, channel: int | None = None,
                         origins: dict | None = None,
                         skipped: list | None = None) -> list | None:
    """The labelled images of a fine-tuning project or of a folder of image + label pairs.

    None for anything else (a DSB2018 dataset, its zip or one sample folder). Pairs are
    stored in ``project`` when given, else read through a temporary project. A folder of
    images (or label images) that pair up with nothing is refused, saying what is
    missing, rather than read as a dataset it is not. ``origins``, when given, gets each
    pair's sample id -> (image file name, plane number). Read, not stored: a pair whose
    file cannot be read is skipped with a note (``skipped`` gets its ``(name, reason)``).
    """
    from ..core.finetune import (
        LABELS_SUFFIX,
        CorrectionStore,
        FinetuneError,
    )
    from ..core.finetune.own import pair_up

    folder = Path(path)
    if _is_project(folder):
        store = CorrectionStore(folder)
        # a project kept in the folder of its pairs: pairs new or edited since were
        # left out without a word (CLI check h_cli1, M4)
        beside = pair_up(folder)
        if beside.pairs and project is not None and same_path(folder, project):
            _store_pairs(store, beside, quiet=quiet, axes=axes, channel=channel,
                         verb=f"added to the project in {project}")
        elif beside.pairs:
            note(f"{counted(len(beside.pairs), 'image + label image pair')} in {folder} not "
                 f"used: it is read as the fine-tuning project it holds (give it as --out "
                 "too, to add them to it).", quiet=quiet)
        samples = store.load_samples()
        note(f"{len(samples)} corrections from project {store.path}", quiet=quiet)
        return samples
    if not folder.is_dir():
        return None
    found = pair_up(folder)
    if found.pairs and project is None:
        return read_pairs(found, quiet=quiet, axes=axes, channel=channel, origins=origins,
                          skipped=skipped)
    if found.pairs:
        return _store_pairs(CorrectionStore(project), found, quiet=quiet, axes=axes,
                            channel=channel, verb=f"added to the project in {project}")
    if is_dataset_folder(folder):
        return None  # the DSB2018 layout
    orphans = [p.name for p in found.orphans]
    if orphans:
        raise FinetuneError(
            f"{path} holds label images ({first_names(orphans)}) but not the images they "
            f"were made from: copy each image beside its labels ({_image_of(orphans[0])} "
            f"beside {orphans[0]}).")
    images = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_FILE_SUFFIXES]
    if images:
        raise FinetuneError(
            f"{path} holds images ({first_names(sorted(images))}) but no label image "
            f"beside them: save each one's labels as NAME{LABELS_SUFFIX}.tif next to "
            f"NAME.tif (the name 'nuclei-unet predict' gives its labels), or give a "
            "fine-tuning project or a folder of samples in the DSB2018 layout.")
    if not any(folder.iterdir()):  # said as the DSB2018 layout alone (h_cli1, L9)
        raise FinetuneError(
            f"{path} is empty: give a folder of images with their corrected label images "
            f"(NAME.tif and NAME{LABELS_SUFFIX}.tif), a fine-tuning project folder, or a "
            "DSB2018 dataset (a folder like stage1_train, its .zip, or one sample folder).")
    return None


def _project_others(args: argparse.Namespace, corrections: list[Any]) -> list[Any]:
    """The --out project's other corrections, which a round learns from as in the dock.

    A round given a folder of pairs trained on, and was checked on, those pairs only: the
    corrections added in the Retrain dock were neither (review h_rev24, M1).
    """
    from ..core.finetune import CorrectionStore

    out = Path(args.out)
    if not _is_project(out) or same_path(args.corrections, out):
        return []
    have = {s.id for s in corrections}
    others = [s for s in CorrectionStore(out).load_samples() if s.id not in have]
    learned = [s for s in others if s.id not in _kept_aside(str(out))]  # (h_rev25, M9)
    if learned:
        note(f"{counted(len(learned), 'earlier correction')} of project {out} join the "
             "round, as in the Retrain dock.", quiet=args.quiet)
    return others


def _removed_count(store: Any) -> int:
    """How many copies the project's ``removed/`` folder holds."""
    from ..core.finetune import REMOVED_DIR

    try:
        return sum(1 for _ in (Path(store.path) / REMOVED_DIR).iterdir())
    except OSError:
        return 0


def _image_of(labels_name: str) -> str:
    """The image a label image was predicted from, as its name says: ``cells.tif or cells.png``.

    predict writes TIFF labels of any image, so the image's own suffix is not known (it
    named ``b.tif`` for ``b.png``: CLI check h_cli2).
    """
    from ..core.finetune import LABELS_SUFFIX

    base = labels_name.rsplit(".", 1)[0][: -len(LABELS_SUFFIX)]
    return f"{base}.tif or {base}.png"


def read_pairs(found: Any, *, quiet: bool, axes: str | None = None,
               channel: int | None = None, origins: dict | None = None,
               skipped: list | None = None) -> list[Any]:
    """Samples of the pairs of ``found`` (``own.pair_up``), as a project stores them.

    For images that are scored, not stored (``finetune --held-out``, ``evaluate``,
    ``info``): a temporary project gives them exactly the form a round trains on. With
    ``skipped`` (a list: ``evaluate``, ``info``), a pair whose image or label image
    cannot be read (corrupt, cut short) is skipped with a note and added to it as
    ``(name, reason)``: one bad file refused the whole folder (README check h_readme1,
    M2). Without (a round's images kept aside, which must check it: review h_rev30, H2),
    and for a setting that does not fit (the channel, the axes), it is refused.
    """
    import tempfile

    from ..core.finetune import CorrectionStore

    with tempfile.TemporaryDirectory(prefix="nuclei-unet-") as scratch:
        return _store_pairs(CorrectionStore(scratch), found, quiet=quiet, axes=axes,
                            channel=channel, verb="read", origins=origins, skipped=skipped)


def _store_pairs(store: Any, found: Any, *, quiet: bool, axes: str | None,
                 channel: int | None, verb: str, origins: dict | None = None,
                 skipped: list | None = None) -> list[Any]:
    """Store the pairs of ``found`` (``core.finetune.own.pair_up``) in ``store``.

    What of the folder is not used (images without labels, labels without images) is
    said first. With ``skipped`` (a list), a pair whose file cannot be read is skipped
    (said, and listed there) instead of refusing them all.
    """
    from ..core.finetune import LABELS_SUFFIX, add_labelled_image
    from ..core.finetune.own import BINARY_NOTE, UnreadableFile
    from ..core.stacks import ImageFileError, open_stack
    from .predict_own import unreadable_file

    alone = [p.name for p in found.unlabelled]
    if alone:
        note(f"not used, no label image beside them: {first_names(alone)} (name each "
             f"one's labels NAME{LABELS_SUFFIX}.tif)", quiet=quiet)
    orphans = [p.name for p in found.orphans]
    if orphans:
        note(f"not used, no image beside them: {first_names(orphans)} (copy the image "
             f"each was made from beside it, e.g. {_image_of(orphans[0])})", quiet=quiet)
    ids, stored, single = [], {c.id for c in store.list()}, []
    for image, labels in found.pairs:
        copies = _removed_count(store)
        try:
            chosen = channel
            if channel is not None and "C" not in open_stack(image, axes).axes:
                chosen = None  # one channel: used as it is, as predict does (h_cli1, M3)
                single.append(image.name)
            added = add_labelled_image(store, image, labels, axes=axes, channel=chosen)
        except (UnreadableFile, ImageFileError, OSError) as exc:
            if skipped is None or not (isinstance(exc, UnreadableFile)
                                       or unreadable_file(image, exc, axes)):
                raise
            reason = " ".join(str(exc).split())
            skipped.append((f"{image.name} + {labels.name}", reason))
            note(f"skipped {image.name} + {labels.name}: {reason}", quiet=quiet)
            continue
        ids += [c.id for c in added]
        if origins is not None:  # its ids lose accents and other letters (h_cli3, M7)
            origins.update({c.id: (image.name, plane) for plane, c in enumerate(added)})
        nuclei = (counted(added[0].n_nuclei, "nucleus", "nuclei") if len(added) == 1 else
                  ", ".join(str(c.n_nuclei) for c in added) + " nuclei")
        replaced = sum(c.id in stored for c in added)
        copied = _removed_count(store) > copies  # only labels that differ are copied
        again = "" if not replaced else (
            ", the same labels as its earlier correction" if not copied  # not "replacing"
            else ", replacing its earlier correction" if replaced == 1  # (CLI check h_cli2)
            else f", replacing {replaced} earlier corrections") + (
            " (a copy of the earlier one is kept in the project's 'removed' folder)"
            if copied else "")
        note(f"{image.name} + {labels.name}: {counted(len(added), 'plane')} {verb}{again} "
             f"({nuclei})", quiet=quiet)
        if any(c.note.endswith(BINARY_NOTE) for c in added):
            note(f"note: {labels.name} is a binary mask (one value for every nucleus): its "
                 "separate regions were counted as nuclei, so touching nuclei count as one. "
                 "Give a label image with one number per nucleus for exact counts (Fiji: "
                 "Analyze Particles, Show: Count Masks).", quiet=quiet)
        if not any(c.n_nuclei for c in added):
            note(f"note: {labels.name} holds no nucleus: a round learns from it that "
                 f"{image.name} shows none. Is it the right file?", quiet=quiet)
    if single:
        note(f"note: --channel {channel} does not apply to {first_names(single)}, of one "
             f"channel: {'it is' if len(single) == 1 else 'they are'} used as "
             f"{'it is' if len(single) == 1 else 'they are'}.", quiet=quiet)
    return store.load_samples(ids)


#: The command's training options and the TrainConfig fields they set.
_OPTION_FIELDS = (("epochs", "epochs"), ("steps", "steps_per_epoch"), ("lr", "learning_rate"),
                  ("seed", "seed"), ("device", "device"), ("threads", "num_threads"))


def _check_overrides(overrides: dict[str, Any]) -> None:
    """Refuse a bad training option by its name, before the corrections are stored.

    They were refused inside the round, after the corrections had gone to ``--out``,
    in the words of the code ("TrainConfig.epochs must be ...": review h_rev15, M9).
    """
    from ..core.config import ConfigError, TrainConfig
    from ..core.finetune import FINETUNE_DEFAULTS

    try:
        TrainConfig().replace(**{**FINETUNE_DEFAULTS, **overrides})
    except ConfigError as exc:
        text = str(exc)
        for option, field in _OPTION_FIELDS:
            text = text.replace(f"TrainConfig.{field} ", f"--{option} ")
        raise ConfigError(text.replace("must be None or ", "must be ")) from None
    if overrides.get("device") not in (None, "auto"):  # a device missing here, said before
        from ..core.device import resolve_device  # a new project is made (h_rev24, L4)

        resolve_device(overrides["device"])


def _refuse_shared_images(corrections: list[Any], held_out: list[Any], where: Any) -> None:
    """Refuse ``--held-out`` images that are also corrections: "kept aside" would lie.

    The same image under the same id, or the same pixels under another name
    (review h_rev15, M10).
    """
    import hashlib

    def key(sample: Any) -> str:
        import numpy as np

        image = np.ascontiguousarray(sample.image)
        return hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()

    trained = {s.id: s.id for s in corrections} | {key(s): s.id for s in corrections}
    matches = ((s.id, trained.get(s.id) or trained.get(key(s))) for s in held_out)
    shared = [(held, trained_as) for held, trained_as in matches if trained_as]
    if shared:
        from ..core.finetune import FinetuneError

        same = [a if a == b else f"{a} (the same image as correction {b})" for a, b in shared]
        raise FinetuneError(  # which correction, by name (CLI check h_cli1, L10)
            f"{first_names(same)} of --held-out {where} "
            f"{'is' if len(shared) == 1 else 'are'} also among the corrections trained on: "
            "images kept aside must be others, or their scores say nothing about images the "
            "round has not seen. Give --held-out a folder of other corrected images.")


def _changes_table(changes: Any) -> str:
    rows = [["id", "modality", "IoU before", "IoU after", "change", "nuclei", "predicted"]]
    for change in changes:
        rows.append([change.id, change.modality, f"{change.iou_before:.3f}",
                     f"{change.iou_after:.3f}", f"{change.iou_gain:+.3f}", str(change.n_true),
                     f"{change.n_pred_before} -> {change.n_pred_after}"])
    return format_table(rows, align_numbers=False)


def _refuse_another_start(out: str, given: str, base: Any) -> None:
    """Refuse a MODEL other than the model of the project ``out`` already is.

    A round judges itself against the model it starts from: ``finetune default`` into a
    project at v001 made current a v003 that scored below v001 on the same corrections
    (CLI check h_cli1, M2).
    """
    from ..core.finetune import FinetuneError, ModelVersions
    from ..core.finetune.versions import VERSIONS_DIR, _is_default_model

    if not (Path(out) / VERSIONS_DIR).is_dir():
        return
    current = ModelVersions(out).current()
    if current is None:
        return
    from ..core.checkpoint import default_model_path
    from ..core.checkpoint_commit import weights_path
    from ..core.model_cache import file_identity

    def weights(model: Any) -> Path:  # 'default' or its path; run/best, run/best.json
        return default_model_path() if _is_default_model(model) else weights_path(model)

    mine, given_file = weights(current.model), weights(base)
    if mine == given_file:
        return
    ours = file_identity(mine)[0]  # by content: v000 holds a copy of its file
    if ours is not None and ours == file_identity(given_file)[0]:
        return
    raise FinetuneError(
        f"{out} is a fine-tuning project whose model is {current.name} now, and MODEL "
        f"{given} is another: the round would start from {given} and be judged against it "
        f"only, so a new version could replace {current.name} while scoring below it. Give "
        f"MODEL latest (or {out}) to go on from {current.name}, or another --out for a new "
        f"project that starts from {given}.")


#: A correction the model already segments this well (IoU before the round) was most
#: likely not edited: the unedited prediction, given as a correction.
UNEDITED_IOU = 0.98


def _note_unedited(rows: Any, *, quiet: bool) -> None:
    """Name the corrections the model already segmented almost exactly before the round.

    The dock says "not edited" of such a plane; the command line said nothing of a
    round on unedited predictions (IoU 0.987 before; CLI check h_cli1, L8).
    """
    same = [r.id for r in rows if r.iou_before >= UNEDITED_IOU]
    if same:
        note(f"note: the model segmented {first_names(same)} almost exactly as corrected "
             f"(IoU {UNEDITED_IOU:g} or more before the round): were they edited? A round "
             "learns from what you changed, not from the model's own labels.", quiet=quiet)


def run(args: argparse.Namespace) -> int:
    """Fine-tune a model on corrections; print the new version and the scores (:func:`_run`).

    A project folder this command made and left holding only its round lock (it failed
    before storing anything) is removed.
    """
    from ..core.finetune.rounds import ROUND_LOCK_NAME

    out = Path(args.out)
    new_project = not out.exists()
    try:
        return _run(args, new_project)
    except BaseException:
        try:
            if new_project and [p.name for p in out.iterdir()] == [ROUND_LOCK_NAME]:
                (out / ROUND_LOCK_NAME).unlink()
                out.rmdir()
        except OSError:
            pass
        raise


def _refuse_a_repeat(args: argparse.Namespace, base: Any, corrections: list, overrides: dict,
                     original: list | None, held_out: list | None,
                     evaluation: list | None) -> str:
    """The round's inputs key; refused when the round would only make the newest version again.

    The README's "a next round, from it" after a round not made current trained the same
    weights again, 20 s and a version folder each time, where the Retrain dock says so
    (README check h_readme1, M5).
    """
    from ..core.finetune import FinetuneError, ModelVersions
    from ..core.finetune.repeat import repeated_round, round_key, samples_fingerprint

    key = round_key(base, samples_fingerprint(corrections), overrides, args.ratio,
                    [s.id for s in original or []], getattr(args, "diameter", 0.0),
                    more={"held_out": samples_fingerprint(held_out),
                          "eval": samples_fingerprint(evaluation),
                          "replay": not args.no_replay})
    again = repeated_round(ModelVersions(args.out).list(), key)
    if again is not None:
        raise FinetuneError(
            f"Nothing changed since the round that made {again.name} (the same corrections, "
            f"starting model and settings): a round is seeded, so another one would make "
            f"{again.name} again, which was not made current. Add or correct images, keep one "
            "aside (--held-out), or change --epochs, --lr or --seed.")
    return key


def _run(args: argparse.Namespace, new_project: bool) -> int:
    """Fine-tune a model on corrections; print the new version and the scores.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``corrections``, ``out``, ``data``, ``eval_data``, ``held_out``,
        ``no_replay``, ``ratio``, ``epochs``, ``steps``, ``lr``, ``seed``, ``threads``,
        ``device``, ``quiet``.
    new_project : bool
        Whether ``--out`` did not exist as the command started.

    Returns
    -------
    int
        0 when a version was saved (made current or not: the message says which), 130
        when stopped with Ctrl-C (nothing saved).
    """
    from ..core.finetune import FinetuneError, ModelVersions, finetune
    from ..core.progress import drive

    overrides: dict[str, Any] = {}
    for option, field in _OPTION_FIELDS:
        if getattr(args, option) is not None:
            overrides[field] = getattr(args, option)
    _check_overrides(overrides)  # before any correction is stored in --out
    ratio = args.ratio
    if ratio is not None and not 0.0 < ratio <= 1.0:
        raise FinetuneError(
            f"--ratio is the share of training crops taken from the corrections and must be "
            f"in (0, 1], got {ratio}."
        )
    base: Any = args.model
    if base != "latest":
        from ..core.finetune.versions import resolve_model_folder

        base = resolve_model_folder(base)  # a project, a version or a run folder
    if base == "latest":
        base = ModelVersions(args.out).current()
        if base is None:
            raise FinetuneError(f"No model version in {args.out} yet; give a checkpoint or "
                                "'default' as MODEL for the first round.")
    else:
        _refuse_another_start(args.out, args.model, base)
    options = finetune_options(getattr(args, "diameter", 0.0), base)
    if isinstance(base, (str, Path)) and str(base) != "default":
        from ..core.checkpoint import load_checkpoint

        # a broken base model is refused before any correction is stored in the project
        load_checkpoint(base, device="cpu")

    from ..core.finetune.rounds import round_lock

    # held from before its pairs are stored (review h_rev25, B6) to the round's end: a
    # command refused once its pairs were stored had replaced a correction of the
    # project while another round ran (CLI check h_cli2, M1)
    with round_lock(args.out), StopRequest(None, what="fine-tuning", quiet=args.quiet,
                                           then="(nothing of this round is kept)") as stop:
        axes, channel = getattr(args, "axes", None), getattr(args, "channel", None)
        corrections = _load_corrections(args.corrections, quiet=args.quiet, project=args.out,
                                        axes=axes, channel=channel)
        corrections += _project_others(args, corrections)
        # a project's images kept aside in the GUI: the --out project's too (a pairs
        # folder's were read from the folder and the kept-aside one trained on: h_rev24, M1)
        aside = _kept_aside(args.corrections) | _kept_aside(args.out)
        kept = [s for s in corrections if s.id in aside]
        corrections = [s for s in corrections if s.id not in aside]
        if kept:
            note(f"{counted(len(kept), 'correction')} kept aside: scored before and after, "
                 "not trained on", quiet=args.quiet)
            if not corrections:
                raise FinetuneError(
                    f"Every correction of {args.corrections} is kept aside: a round needs at "
                    "least one to learn from (take one out of 'kept aside' in the Retrain "
                    "dock).")
        if not corrections:
            raise FinetuneError(
                f"No corrected image could be used in {args.corrections} (the notes above say "
                "why each was skipped): nothing to fine-tune on.")
        original = None
        if args.data:
            original = load_samples(open_dataset(args.data, quiet=args.quiet), quiet=args.quiet)
        elif args.no_replay and not args.quiet:
            note("No --data and --no-replay: training on the corrections alone (the model may "
                 "get worse on other kinds of images).")
        evaluation = held_out = None
        if args.eval_data:
            evaluation = _load_corrections(args.eval_data, quiet=args.quiet, axes=axes,
                                           channel=channel)
        if args.held_out:
            held_out = _load_corrections(args.held_out, quiet=args.quiet, axes=axes,
                                         channel=channel)
            try:
                _refuse_shared_images(corrections, held_out, args.held_out)
            except FinetuneError:  # a project this command made holds nothing of it
                if new_project:  # (its corrections stayed: CLI check h_cli1, L10)
                    import shutil

                    shutil.rmtree(args.out, ignore_errors=True)
                raise
        if kept:
            held_out = [*(held_out or []), *kept]
        key = _refuse_a_repeat(args, base, corrections, overrides, original, held_out,
                               evaluation)
        with TrainReporter(quiet=args.quiet) as reporter:
            result = drive(
                finetune(base, corrections, original=original, ratio=ratio,
                         config_overrides=overrides, out_dir=args.out, should_stop=stop,
                         eval_samples=evaluation, held_out=held_out,
                         replay=not args.no_replay, segment_options=options,
                         inputs_key=key),
                reporter,
            )
    if result.cancelled:
        note("Fine-tuning stopped: no new version saved and the base model is unchanged. The "
             f"corrections stay in {args.out} for the next round.", quiet=args.quiet)
        return stop.exit_status
    version = result.version
    state = "made current" if result.adopted else "NOT made current"
    print(f"New model version {version.name} ({state}): {result.checkpoint}")
    print(f"Corrected images ({len(result.corrected)}), mean IoU "
          f"{result.mean_iou('corrected', 'before'):.3f} -> "
          f"{result.mean_iou('corrected', 'after'):.3f}:")
    print(_changes_table(result.corrected))
    if result.evaluation:
        print(f"Evaluation images ({len(result.evaluation)}), mean IoU "
              f"{result.mean_iou('evaluation', 'before'):.3f} -> "
              f"{result.mean_iou('evaluation', 'after'):.3f}")
    for which, title in (("held_out", "Images kept aside"),
                         ("regression", "Built-in regression set")):
        if getattr(result, which):
            print(f"{title} ({len(getattr(result, which))}), mean IoU "
                  f"{result.mean_iou(which, 'before'):.3f} -> "
                  f"{result.mean_iou(which, 'after'):.3f}")
    print(result.reason)
    if not result.adopted:  # the Retrain dock says how; here, the version's own path
        print("To use it anyway (for images like these corrections), give its file as the "
              f"model: nuclei-unet predict {shlex.quote(str(result.checkpoint))} IMAGES "
              "--out RESULTS")
    _note_unedited(result.corrected, quiet=args.quiet)
    note(f"round took {result.elapsed_s:.1f} s ({result.n_original} replay/original samples mixed "
         f"in, {100 * result.ratio:.0f}% corrections)", quiet=args.quiet)
    return 0
