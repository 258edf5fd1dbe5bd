"""Pack a folder of labelled images into a dataset folder, and load it back.

A dataset folder holds, per split, ``{split}_images.npy`` (N, H, W, 3) uint8 and ``{split}_labels.npy``
(N, length) uint8 character indices, plus ``manifest.json``. No pickle anywhere: arrays load with
``allow_pickle=False`` and can be memory-mapped. Stored as uint8 they are 4× smaller than float32, and
(N, H, W, C) is already the channels-last layout convolutions like best.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .checkpoint import sync_folder
from .images import (
    MODEL_IMAGE_SIZE,
    ImageError,
    decode_rgb,
    is_image_name,
    peek_size,
    read_bytes,
    to_model_array,
)
from .labels import (
    LABEL_FILES,
    NOTE_REASONS,
    LabelError,
    find_label_file,
    infer_charset,
    label_from_name,
    normalise,
    read_label_rows,
)
from .model import WIDE_CTC_PRESET, ctc_steps_needed, time_steps
from .oserrors import describe_os_error, missing
from .spec import MAX_CHARSET, PAD, CodeSpec, SpecError

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
# Everything a dataset folder holds: only a folder with nothing else in it is ever replaced.
DATASET_FILES = frozenset(
    [MANIFEST] + [f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels")]
)
FORMAT = "captcha-tui-dataset/1"
CHUNK = 256
# Worker processes start fresh ("spawn") and import the package, about a second each: below this many
# files decoding in this process is quicker.
POOL_MIN_FILES = 2048

ProgressCallback = Callable[[int, int], None]


class DatasetError(ValueError):
    """A dataset that cannot be made or loaded; ``str()`` says what to do."""


class DatasetExists(DatasetError):
    """``prepare`` into a folder that already holds a dataset, without ``replace=True``: nothing was read
    or changed. ``description`` says what is there (where from, how many, which codes)."""

    def __init__(self, out_dir: Path, description: str):
        super().__init__(f"{out_dir} already holds a dataset ({description})")
        self.out_dir = out_dir
        self.description = description


# Below these, prepare warns (issue 25: a 3-image dataset of 1 / 1 / 1 was made without a word). 30 scored
# images put accuracy in steps of about 3%; a fine-tune of the base model learns from a few hundred.
MIN_SCORED_SPLIT = 30
MIN_TRAIN = 100


@dataclass(frozen=True)
class PrepareReport:
    out_dir: Path
    counts: dict[str, int]
    spec: CodeSpec
    skipped: dict[str, int]  # reason -> files
    examples: dict[str, str]  # reason -> one file it happened to
    seconds: float
    folders: dict[Path, int]  # folder the images came from (the image folder or one below) -> images packed
    lengths: dict[int, int] = field(default_factory=dict)  # code length -> images packed
    source_sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (width, height) before resizing

    @property
    def resized(self) -> int:
        """Images packed that had another size than the dataset's."""
        return sum(n for size, n in self.source_sizes.items() if size != self.spec.image_size)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def warnings(self) -> list[str]:
        """What is too small to be useful, with the size that would be (the split is 80/10/10)."""
        found = []
        for split, name in (("val", "validation"), ("test", "test")):
            n = self.counts.get(split, 0)
            if n < MIN_SCORED_SPLIT:
                found.append(
                    f"the {name} split has only {n} image{'s' if n != 1 else ''}: its accuracy moves "
                    f"{1 / max(n, 1):.0%} per image, too coarse to choose an epoch or to trust; "
                    f"{MIN_SCORED_SPLIT * 10:,} labelled images or more give it {MIN_SCORED_SPLIT}"
                )
        train = self.counts.get("train", 0)
        if train < MIN_TRAIN:
            found.append(
                f"only {train} training image{'s' if train != 1 else ''}: a model needs a few hundred to "
                f"learn a new style from (fine-tuning the base model: --init base), {MIN_TRAIN:,} at least"
            )
        return found


@dataclass
class Dataset:
    path: Path
    manifest: dict
    spec: CodeSpec
    images: dict[str, np.ndarray] = field(repr=False)
    labels: dict[str, np.ndarray] = field(repr=False)  # (N, max_length) indices, PAD after the code

    def count(self, split: str) -> int:
        return int(self.labels[split].shape[0])

    @property
    def charset_inferred(self) -> bool:
        """Whether its charset was inferred from the labels (not `prepare --charset`); a set packed before
        this was recorded is taken as given (its charset is then kept as it is)."""
        return bool(self.manifest.get("charset_inferred", False))

    def with_charset(self, charset: str) -> Dataset:
        """The same images with their labels as indices into ``charset``, which holds every character of
        this set's (a fine-tune keeps the characters its model reads, :meth:`Trainer._keep_characters`)."""
        old = self.spec.charset
        if set(old) - set(charset):
            raise ValueError(f"{charset!r} lacks characters of {old!r}")
        if len(charset) > MAX_CHARSET:  # before the uint8 lookup, whose 255 is PAD
            raise SpecError(f"its charset has {len(charset)} characters; at most {MAX_CHARSET} are supported")
        lookup = np.full(256, PAD, dtype=np.uint8)
        lookup[: len(old)] = [charset.index(c) for c in old]
        labels = {split: lookup[np.asarray(array)] for split, array in self.labels.items()}
        return replace(self, spec=self.spec.replace(charset=charset), labels=labels)


def find_image_files(image_dir: Path, exclude: Path | None = None) -> list[Path]:
    """Every file under ``image_dir`` (sorted; hidden ones, label files and ``exclude`` left out)."""
    files = []
    for root, dirs, names in os.walk(image_dir):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and (exclude is None or not _same_path(Path(root) / d, exclude))
        )
        for name in names:
            if name.startswith(".") or name in LABEL_FILES:
                continue
            files.append(Path(root) / name)
    return sorted(files)


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# Per file: (array or None, reason, content hash, (width, height) before resizing).
Decoded = tuple[np.ndarray | None, str, str, tuple[int, int]]


def _decode_chunk(args: tuple[list[str], tuple[int, int]]) -> list[Decoded]:
    """Worker: decode a chunk of files."""
    paths, size = args
    out: list[Decoded] = []
    for path in paths:
        try:
            data = read_bytes(path)
        except ImageError as exc:
            out.append((None, exc.category, "", (0, 0)))
            continue
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        try:
            picture = decode_rgb(data)
            out.append((to_model_array(picture, size), "", digest, picture.size))
        except ImageError as exc:
            out.append((None, exc.category, digest, (0, 0)))
    return out


def decode_images(
    paths: list[Path],
    size: tuple[int, int],
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[Decoded]:
    """Each file decoded and resized to ``size`` (in worker processes for many), in order."""
    chunks = [([str(p) for p in paths[i : i + CHUNK]], size) for i in range(0, len(paths), CHUNK)]
    workers = workers or os.cpu_count() or 1
    results: list = []
    if workers == 1 or len(chunks) <= 1 or len(paths) < POOL_MIN_FILES:
        for chunk in map(_decode_chunk, chunks):
            results.extend(chunk)
            if on_progress:
                on_progress(len(results), len(paths))
        return results
    # "spawn", as the generator: forking a process that holds threads (the TUI, torch) can deadlock.
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            for chunk in pool.map(_decode_chunk, chunks):
                results.extend(chunk)
                if on_progress:
                    on_progress(len(results), len(paths))
    except BrokenProcessPool:
        # From Python, the usual cause is a script that starts the work at import: each spawned worker
        # imports the script first, starts the work again and dies of it.
        raise DatasetError(
            "a decoding process died: out of memory, or a Python script that does not put its work under "
            '`if __name__ == "__main__":` (worker processes import it); try again with fewer workers '
            "(--workers 1)"
        ) from None
    return results


def split_counts(total: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """80/10/10 by default; with 3 or more images validation and test get at least one each."""
    val = int(round(total * fractions[1]))
    test = int(round(total * fractions[2]))
    if total >= 3:
        val, test = max(val, 1), max(test, 1)
    train = total - val - test
    return train, val, test


def prepare(
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    charset: str | None = None,
    length: int | tuple[int, int] | None = None,
    keep_case: bool = False,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    replace: bool = False,
    stable_split: bool = False,
) -> PrepareReport:
    """Turn a folder of labelled images, its subfolders included, into a dataset folder; bad files are
    skipped and counted. A dataset already in ``out_dir`` is replaced only with ``replace=True``; without it
    :class:`DatasetExists` is raised before any image is read.

    ``stable_split``: each image's split follows from its content alone (by its digest), so that a
    folder packed again as it grows keeps every image where it was: a model fine-tuned on one packing is
    never scored on images it trained on in the next (the label screen's rounds). About 80/10/10 then,
    instead of exactly (:func:`_stable_splits`); ``seed`` only orders the images within their split.

    ``length``: one length or a (shortest, longest) range to keep; None keeps every length found. Images
    are resized to ``size`` (width, height), by default the most common size among them."""
    started = time.perf_counter()
    image_dir, out_dir = Path(image_dir), Path(out_dir)
    lengths = _check_arguments(image_dir, out_dir, length)
    _check_out_dir(out_dir, replace)
    skipped = _Skipped()
    labelled = _find_labelled_images(image_dir, out_dir, keep_case, skipped)
    size = size or _common_size(labelled)
    labelled = _keep_encodable(labelled, _choose_spec(labelled, charset, lengths, keep_case, size), skipped)
    images, codes, sources, sizes, digests = _decode_unique(
        labelled, size, workers, on_progress, skipped, image_dir
    )
    # What was inferred (charset, lengths) is inferred again from the images kept: the label of a broken
    # file or a duplicate must not add a character (an output) or a length the set does not hold.
    spec = _choose_spec(list(zip(sources, codes, strict=True)), charset, lengths, keep_case, size)
    labels = [spec.encode(code) for code in codes]
    image_array, label_array, bounds = _split(images, labels, seed, digests if stable_split else None)
    manifest = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "counts": {s: b - a for s, (a, b) in bounds.items()},
        "seed": seed,
        "split": "by content" if stable_split else "shuffled",
        "source": str(image_dir.resolve()),
        "charset_inferred": charset is None,
        "skipped": dict(skipped.counts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_dataset(out_dir, image_array, label_array, bounds, manifest, replace)
    return PrepareReport(
        out_dir=out_dir,
        counts=manifest["counts"],
        spec=spec,
        skipped=dict(skipped.counts),
        examples=skipped.examples,
        seconds=time.perf_counter() - started,
        folders=_count_by_folder(sources),
        lengths=dict(sorted(Counter(int((np.asarray(row) != PAD).sum()) for row in labels).items())),
        source_sizes=dict(Counter(sizes).most_common()),
    )


@dataclass
class _Skipped:
    """Files left out, counted by reason, with the first file each reason happened to."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, path: Path, reason: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, str(path))


def _check_arguments(
    image_dir: Path, out_dir: Path, length: int | tuple[int, int] | None
) -> tuple[int, int] | None:
    """The length range asked for, once the folders are known to be usable."""
    if not image_dir.exists():
        raise DatasetError(f"image folder not found: {missing(image_dir)}")
    if not image_dir.is_dir():
        raise DatasetError(f"not a folder: {image_dir}")
    lengths = (length, length) if isinstance(length, int) else length
    if lengths is not None and (lengths[0] < 1 or lengths[1] < lengths[0]):
        raise DatasetError(f"code length must be at least 1 (got {length})")
    source, target = image_dir.resolve(), out_dir.resolve()
    if source == target or target in source.parents:
        raise DatasetError(
            f"the dataset folder {out_dir} would replace the images in {image_dir}: choose another --out"
        )
    return lengths


def _find_labelled_images(
    image_dir: Path, out_dir: Path, keep_case: bool, skipped: _Skipped
) -> list[tuple[Path, str]]:
    """(file, normalised code) for every labelled file in ``image_dir`` and below: labels from the
    folder's labels.csv/.tsv if it has one, else from the file names."""
    label_file = find_label_file(image_dir)
    try:
        listed = read_label_rows(label_file) if label_file else None
    except LabelError as exc:
        raise DatasetError(str(exc)) from None
    labelled: list[tuple[Path, str]] = []
    found: set[Path] = set()
    for path in find_image_files(image_dir, exclude=out_dir):
        if listed is not None:
            found.add(path.resolve())
            row = listed.get(path.resolve())
            if row is None:
                skipped.add(path, "not listed in " + label_file.name)
                continue
            # The label screen's notes say why a row has no label (marked unreadable, undone); an empty
            # label with no such note is left to the spec check ("empty label").
            if not row.label and row.note in NOTE_REASONS:
                skipped.add(path, NOTE_REASONS[row.note])
                continue
            code = row.label
        else:
            code = label_from_name(path.name)
            if code is None:
                skipped.add(path, "no code in file name (expected NNNNN-CODE.ext)")
                continue
        if any(c.isspace() or not c.isprintable() for c in code):
            # One such label would put the character into the inferred charset and refuse the whole set.
            skipped.add(path, "label holds white space or unprintable characters")
            continue
        labelled.append((path, normalise(code, keep_case)))
    if listed is not None:
        for path in sorted(set(listed) - found):
            skipped.add(path, f"listed in {label_file.name} but not found")
    if not labelled:
        raise DatasetError(
            f"no labelled images in {image_dir}: name files like 00042-k3x9.png or add a labels.csv "
            "(or run `captcha-tui generate` to make a set)"
        )
    return labelled


# Image sizes are read from the headers of at most this many files (a quick look, not a decode) to find
# the most common one.
SIZE_SAMPLE = 2000


def _common_size(labelled: list[tuple[Path, str]]) -> tuple[int, int]:
    """The most common (width, height) among (a sample of) the images; ties go to the larger."""
    step = max(1, len(labelled) // SIZE_SAMPLE)
    sizes: Counter[tuple[int, int]] = Counter()
    for path, _ in labelled[::step]:
        size = peek_size(path)
        if size is not None:
            sizes[size] += 1
    if not sizes:
        return MODEL_IMAGE_SIZE
    return max(sizes, key=lambda size: (sizes[size], size[0] * size[1]))


def _choose_spec(
    labelled: list[tuple[Path, str]],
    charset: str | None,
    lengths: tuple[int, int] | None,
    keep_case: bool,
    size: tuple[int, int],
) -> CodeSpec:
    """The spec asked for, with the lengths (every one found) and charset inferred where not given. One
    length gives a per-position spec; several, a CTC one."""
    codes = [code for _, code in labelled if code]
    low, high = lengths or (min(map(len, codes), default=1), max(map(len, codes), default=1))
    if charset is None:
        # Characters seen only in codes of other lengths would inflate the inferred charset.
        charset = infer_charset([c for c in codes if low <= len(c) <= high]) or infer_charset(codes)
    try:
        return CodeSpec(
            normalise(charset, keep_case),
            low,
            high,
            tuple(size),
            keep_case=keep_case,
            decoder="positional" if low == high else "ctc",
        )
    except SpecError as exc:
        raise DatasetError(f"cannot use these settings: {exc}") from None


def _keep_encodable(
    labelled: list[tuple[Path, str]], spec: CodeSpec, skipped: _Skipped
) -> list[tuple[Path, str]]:
    kept = []
    # A CTC model emits at most one character per time step, and needs a blank between repeated
    # neighbours: codes that cannot fit the steps of the widest model `train` picks could never be read.
    steps = time_steps(WIDE_CTC_PRESET, spec.image_size) if spec.decoder == "ctc" else None
    for path, code in labelled:
        try:
            spec.check(code)
        except LabelError as exc:
            skipped.add(path, str(exc))
            continue
        if steps is not None and ctc_steps_needed(code) > steps:
            skipped.add(path, f"code too long to read: a CTC model has {steps} time steps")
            continue
        kept.append((path, code))
    return kept


def _decode_unique(
    labelled: list[tuple[Path, str]],
    size: tuple[int, int],
    workers: int | None,
    on_progress: ProgressCallback | None,
    skipped: _Skipped,
    image_dir: Path,
) -> tuple[list[np.ndarray], list[str], list[Path], list[tuple[int, int]], list[str]]:
    """Decode on every core, resized to ``size``: (images, codes, their files, their sizes before
    resizing, their files' digests), each image once whatever its copies."""
    decoded = decode_images([p for p, _ in labelled], size, workers, on_progress)
    images, codes, sources, sizes, digests, seen = [], [], [], [], [], set()
    for (path, code), (array, reason, digest, original) in zip(labelled, decoded, strict=True):
        if array is None:
            skipped.add(path, reason)
        elif digest in seen:
            skipped.add(path, "duplicate of another file")
        else:
            seen.add(digest)
            images.append(array)
            codes.append(code)
            sources.append(path)
            sizes.append(original)
            digests.append(digest)
    if not images:
        reasons = "; ".join(f"{n} × {r}" for r, n in skipped.counts.most_common(3))
        raise DatasetError(f"no usable images in {image_dir} ({reasons})")
    return images, codes, sources, sizes, digests


def _split(
    images: list[np.ndarray], labels: list[list[int]], seed: int, digests: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
    """Shuffled arrays and each split's (start, stop) in them: a reproducible 80/10/10 split, or, given
    the images' ``digests``, the split each one's content picks (:func:`_stable_splits`)."""
    order = np.random.default_rng(seed).permutation(len(images))
    if digests is None:
        n_train, n_val, _ = split_counts(len(images))
    else:
        split_of = _stable_splits(digests)
        rank = {"train": 0, "val": 1, "test": 2}
        # A stable sort: within each split the seed's order is kept.
        order = np.asarray(sorted(order, key=lambda i: rank[split_of[i]]), dtype=np.int64)
        n_train, n_val = sum(s == "train" for s in split_of), sum(s == "val" for s in split_of)
    image_array = np.stack(images)[order]
    label_array = np.asarray(labels, dtype=np.uint8)[order]
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, len(images)),
    }
    return image_array, label_array, bounds


def _stable_splits(digests: list[str]) -> list[str]:
    """Each image's split from its digest alone: the first 32 bits as a fraction, under 0.1 test, under 0.2
    validation, the rest training. With 3 or more images none is left empty: an empty split takes the
    image of a split of several whose fraction is nearest its range (only in small sets: at 50 images the
    test split is empty about once in 200)."""
    fraction = [int(digest[:8], 16) / 2**32 for digest in digests]
    split = ["test" if f < 0.1 else "val" if f < 0.2 else "train" for f in fraction]
    middle = {"test": 0.05, "val": 0.15, "train": 0.6}
    if len(split) >= 3:
        for name in ("train", "test", "val"):
            if name not in split:
                donors = [i for i, s in enumerate(split) if split.count(s) > 1]
                split[min(donors, key=lambda i: abs(fraction[i] - middle[name]))] = name
    return split


def _count_by_folder(paths: list[Path]) -> dict[Path, int]:
    """Files per folder, the fullest first."""
    counts = Counter(path.parent for path in paths)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))


def _check_out_dir(out_dir: Path, replace: bool) -> None:
    """Nothing but an earlier dataset is ever replaced, and that only when asked to."""
    _check_replaceable(out_dir)
    if replace:
        return
    description = describe_existing_dataset(out_dir)
    if description:
        raise DatasetExists(out_dir, description)


def describe_existing_dataset(path: str | Path) -> str | None:
    """What a dataset folder holds, in a phrase (``60,000 images from /data/captchas: 48,000 train / …``);
    None when there is no dataset there, not even the one an interrupted ``prepare`` set aside."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if path.is_dir() and any((path / name).exists() for name in DATASET_FILES):
        where = ""
    elif (old / MANIFEST).is_file():
        path, where = old, f", set aside in {old} by an interrupted prepare"
    else:
        return None
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        spec = CodeSpec.read(manifest)
        counts = {split: int(manifest["counts"][split]) for split in SPLITS}
    except (OSError, ValueError, KeyError, TypeError, SpecError):
        return f"one whose manifest is missing or unreadable{where}"
    charset = spec.charset if len(spec.charset) <= 20 else f"{spec.charset[:20]}…"
    return (
        f"{sum(counts.values()):,} images from {manifest.get('source', 'an unknown folder')}: "
        f"{counts['train']:,} train / {counts['val']:,} val / {counts['test']:,} test, "
        f"{spec.lengths} characters from {charset!r}{where}"
    )


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to overwrite a folder that is not an earlier dataset: its files would be lost."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DatasetError(f"{out_dir} is a file, not a folder: choose another --out")
    try:
        names = {entry.name for entry in out_dir.iterdir()}
    except OSError as exc:
        raise DatasetError(f"cannot read {out_dir}: {describe_os_error(exc)}") from None
    others = sorted(names - DATASET_FILES)
    if others:
        raise DatasetError(
            f"{out_dir} already holds other files ({', '.join(others[:3])}{', …' if len(others) > 3 else ''}) "
            "that replacing it would delete: choose an empty or new folder with --out"
        )


def _sync_folder(folder: Path) -> None:
    """fsync every file of ``folder``, then the folder itself."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    sync_folder(folder)


def _write_dataset(
    out_dir: Path, images: np.ndarray, labels: np.ndarray, bounds: dict, manifest: dict, replace: bool
) -> None:
    """Write into a sibling temporary folder, then swap it in, so a failure never leaves half a dataset."""
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    old = out_dir.with_name(f".{out_dir.name}.old")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for split, (start, stop) in bounds.items():
            np.save(staging / f"{split}_images.npy", images[start:stop])
            np.save(staging / f"{split}_labels.npy", labels[start:stop])
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _sync_folder(staging)  # on disk before the previous dataset is deleted: a power cut keeps one of them
        _check_out_dir(out_dir, replace)  # again: the folder may have changed while decoding
        if out_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            try:
                staging.rename(out_dir)
            except OSError:
                old.rename(out_dir)  # put the previous dataset back
                raise
        else:
            staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)  # also what an interrupted earlier swap left
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatasetError(
            f"cannot write the dataset to {out_dir}: {describe_os_error(exc)}; nothing was changed there"
        ) from None
    except DatasetError:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _holds_images(folder: Path, look_at: int = 200) -> bool:
    """Whether any of the first ``look_at`` entries of ``folder`` is an image file, by its name (a
    quick look, for a message: 60,000 images are not listed)."""
    try:
        with os.scandir(folder) as entries:
            for _, entry in zip(range(look_at), entries, strict=False):
                if is_image_name(entry.name):
                    return True
    except OSError:
        return False
    return False


def load_dataset(path: str | Path, mmap: bool = False) -> Dataset:
    """Load a dataset folder made by :func:`prepare`; raises :class:`DatasetError` saying what to do."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        old = path.with_name(f".{path.name}.old")
        if (old / MANIFEST).is_file():
            raise DatasetError(
                f"no dataset at {path}, but an interrupted `prepare` left the previous one in {old}: "
                f"rename it back to {path.name}, or prepare again"
            )
        if path.is_dir() and _holds_images(path):  # the image folder given where the packed set goes
            raise DatasetError(
                f"{path} holds images, not a packed dataset: pack them with `captcha-tui prepare {path} "
                f"--out DATASET_DIR`, then train with --data DATASET_DIR"
            )
        raise DatasetError(
            f"no dataset at {missing(path)}: make one with `captcha-tui prepare IMAGE_DIR --out {path}` "
            "(or `captcha-tui generate` first for the built-in captchas)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"unreadable manifest {manifest_path}: {exc}; prepare the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{manifest_path} is not a captcha-tui dataset manifest ({FORMAT})")
    try:
        spec = CodeSpec.read(manifest)
    except SpecError as exc:
        raise DatasetError(f"{manifest_path} is damaged ({exc}); prepare the dataset again") from None
    images, labels = {}, {}
    try:
        for split in SPLITS:
            images[split] = np.load(
                path / f"{split}_images.npy", mmap_mode="r" if mmap else None, allow_pickle=False
            )
            labels[split] = np.load(
                path / f"{split}_labels.npy", mmap_mode="r" if mmap else None, allow_pickle=False
            )
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"dataset {path} is damaged ({exc}); prepare it again") from None
    width, height = spec.image_size
    for split in SPLITS:
        if images[split].shape[1:] != (height, width, 3) or images[split].dtype != np.uint8:
            raise DatasetError(
                f"dataset {path}: {split} images have shape {images[split].shape}, not (N, {height}, {width}, 3)"
            )
        if (
            labels[split].shape != (images[split].shape[0], spec.max_length)
            or labels[split].dtype.kind != "u"
        ):
            raise DatasetError(f"dataset {path}: {split} labels do not match its images")
        used = labels[split][labels[split] != PAD]
        if used.size and int(used.max()) >= spec.classes:
            raise DatasetError(
                f"dataset {path}: {split} labels use characters beyond its {spec.classes}-character charset"
            )
    if images["train"].shape[0] == 0:
        raise DatasetError(f"dataset {path} has no training images")
    return Dataset(path=path, manifest=manifest, spec=spec, images=images, labels=labels)
