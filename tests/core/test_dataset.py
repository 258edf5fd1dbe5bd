"""prepare() and load_dataset(): the split, the manifest, and every kind of bad input counted, not fatal."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captcha_tui.core import dataset as ds
from captcha_tui.core.dataset import (
    DATASET_FILES,
    MANIFEST,
    SPLITS,
    DatasetError,
    DatasetExists,
    load_dataset,
    prepare,
    split_counts,
)
from captcha_tui.core.generator import DEFAULT_CHARSET
from captcha_tui.core.spec import CodeSpec

from .test_images import _png_with_size


def _copy(files: list[Path], folder: Path, rename=lambda name: name) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(f, folder / rename(f.name))) for f in files]


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {
        f"{split}_{kind}": np.load(folder / f"{split}_{kind}.npy", allow_pickle=False)
        for split in SPLITS
        for kind in ("images", "labels")
    }


# ---- the basics -----------------------------------------------------------------------------------------


def test_split_is_80_10_10_and_reproducible(captcha_dir, prepared_dataset, tmp_path) -> None:
    data = load_dataset(prepared_dataset)
    assert {s: data.count(s) for s in SPLITS} == {"train": 240, "val": 30, "test": 30}
    again = prepare(captcha_dir, tmp_path / "again", workers=1, seed=0)
    assert again.counts == {"train": 240, "val": 30, "test": 30} and again.total == 300
    first, second = _arrays(prepared_dataset), _arrays(tmp_path / "again")
    assert all(np.array_equal(first[k], second[k]) for k in first)
    other = _arrays(Path(prepare(captcha_dir, tmp_path / "other", workers=1, seed=1).out_dir))
    assert not np.array_equal(first["train_labels"], other["train_labels"])
    assert sorted(map(bytes, np.concatenate([first[f"{s}_labels"] for s in SPLITS]))) == sorted(
        map(bytes, np.concatenate([other[f"{s}_labels"] for s in SPLITS]))
    )


def test_a_stable_split_keeps_every_image_in_its_split_as_the_folder_grows(captcha_files, tmp_path) -> None:
    """The label screen's rounds pack a growing folder again and again, each fine-tuned from the last: no
    image may move from one split to another (a trained-on image scored as unseen), whatever the seed."""

    def splits(folder: Path) -> dict[str, set[bytes]]:
        arrays = _arrays(folder)
        return {split: {row.tobytes() for row in arrays[f"{split}_images"]} for split in SPLITS}

    folder = tmp_path / "answers"
    _copy(captcha_files[:60], folder)
    small = prepare(folder, tmp_path / "first", workers=1, seed=1, stable_split=True)
    _copy(captcha_files[60:], folder)
    grown = prepare(folder, tmp_path / "second", workers=1, seed=2, stable_split=True)
    first, second = splits(tmp_path / "first"), splits(tmp_path / "second")
    for split in SPLITS:
        assert first[split] <= second[split], split
    assert sum(small.counts.values()) == 60 and sum(grown.counts.values()) == 300
    assert 0.7 < grown.counts["train"] / 300 < 0.9 and all(grown.counts[s] >= 15 for s in ("val", "test"))
    assert json.loads((tmp_path / "second" / MANIFEST).read_text())["split"] == "by content"
    # The shuffled split (the default) moves images between splits when the folder grows.
    prepare(folder, tmp_path / "shuffled", workers=1, seed=2)
    assert json.loads((tmp_path / "shuffled" / MANIFEST).read_text())["split"] == "shuffled"
    assert not splits(tmp_path / "shuffled")["test"] >= first["test"]


@pytest.mark.parametrize("count", [3, 4, 5, 8])
def test_a_stable_split_of_a_few_images_leaves_no_split_empty(count) -> None:
    for start in range(0, 400, 8):  # many draws of digests: some would leave a split empty
        digests = [f"{(start + i) * 2654435761 % 2**32:08x}" + "0" * 24 for i in range(count)]
        split = ds._stable_splits(digests)
        assert set(split) == {"train", "val", "test"}, (start, split)
        assert split == ds._stable_splits(digests)


@pytest.mark.parametrize(
    ("total", "counts"),
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (10, (8, 1, 1)), (300, (240, 30, 30))],
)
def test_split_counts(total, counts) -> None:
    assert split_counts(total) == counts


def test_manifest_and_no_pickle(captcha_dir, prepared_dataset) -> None:
    manifest = json.loads((prepared_dataset / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == ds.FORMAT
    spec = manifest["spec"]
    assert spec["min_length"] == spec["max_length"] == 4 and spec["decoder"] == "positional"
    assert set(spec["charset"]) <= set(DEFAULT_CHARSET)
    assert spec["charset"] == "".join(sorted(spec["charset"]))
    assert spec["image_size"] == [120, 50]  # the generator's own size: nothing lost to resizing
    assert manifest["counts"] == {"train": 240, "val": 30, "test": 30}
    assert manifest["seed"] == 0
    assert manifest["source"] == str(captcha_dir.resolve())
    assert manifest["skipped"] == {} and spec["keep_case"] is False
    assert {p.name for p in prepared_dataset.iterdir()} == DATASET_FILES
    arrays = _arrays(prepared_dataset)  # allow_pickle=False: plain arrays only
    assert arrays["train_images"].shape == (240, 50, 120, 3) and arrays["train_images"].dtype == np.uint8
    assert arrays["train_labels"].shape == (240, 4) and arrays["train_labels"].dtype == np.uint8
    assert int(arrays["train_labels"].max()) < len(spec["charset"])
    mapped = load_dataset(prepared_dataset, mmap=True)
    assert isinstance(mapped.images["train"], np.memmap)
    assert mapped.spec == CodeSpec.from_dict(spec) and mapped.spec.image_size == (120, 50)


def test_labels_decode_back_to_the_file_names(captcha_files, tmp_path) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    data = load_dataset(tmp_path / "out")
    codes = {"".join(data.spec.charset[i] for i in row) for s in SPLITS for row in data.labels[s]}
    assert codes == {f.stem.split("-")[1] for f in captcha_files[:10]}


def test_gif_encoded_png_is_read_by_content(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:5], folder)
    with Image.open(captcha_files[5]) as img:
        img.save(folder / captcha_files[5].name, format="GIF")
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.total == 6 and report.skipped == {}


def test_progress_is_reported(captcha_dir, tmp_path) -> None:
    seen = []
    prepare(
        captcha_dir, tmp_path / "out", workers=1, on_progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (300, 300)


def test_worker_processes_give_the_same_dataset(captcha_dir, prepared_dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ds, "POOL_MIN_FILES", 0)
    monkeypatch.setattr(ds, "CHUNK", 150)
    prepare(captcha_dir, tmp_path / "pooled", workers=2, seed=0)
    first, second = _arrays(prepared_dataset), _arrays(tmp_path / "pooled")
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_a_dying_worker_is_a_clear_error(captcha_dir, tmp_path, monkeypatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    class DeadPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, *args, **kwargs):
            raise BrokenProcessPool("killed")

    monkeypatch.setattr(ds, "POOL_MIN_FILES", 0)
    monkeypatch.setattr(ds, "ProcessPoolExecutor", DeadPool)
    with pytest.raises(DatasetError, match="--workers 1"):
        prepare(captcha_dir, tmp_path / "out", workers=2)
    assert not (tmp_path / "out").exists()


def test_a_script_without_a_main_guard_is_told_what_to_add(captcha_dir, tmp_path) -> None:
    # A real spawned pool: each worker imports the script, which starts the work again and dies of it.
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import sys\n"
        "from captcha_tui.core import dataset\n"
        "dataset.POOL_MIN_FILES = 0\n"
        "dataset.CHUNK = 100\n"
        f"dataset.prepare({str(captcha_dir)!r}, {str(tmp_path / 'out')!r}, workers=2)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr.splitlines()[-1], done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


# ---- bad files: counted by reason, never fatal -------------------------------------------------------------


def test_bad_images_are_counted_and_the_rest_prepared(captcha_files, tmp_path) -> None:
    folder = tmp_path / "mixed"
    good = _copy(captcha_files[:30], folder)
    (folder / "10001-aaaa.png").write_bytes(b"")
    (folder / "10002-bbbb.png").write_text("not an image")
    (folder / "10003-cccc.png").write_bytes(good[0].read_bytes()[:200])
    (folder / "10004-dddd.png").mkdir()  # a folder named like an image is simply walked into
    (folder / "sub").mkdir()
    shutil.copyfile(captcha_files[30], folder / "sub" / captcha_files[30].name)  # subfolders count
    (folder / ".hidden-eeee.png").write_text("skipped silently")
    (folder / "ö 验证码 10005-abcd.png").write_bytes(good[1].read_bytes())
    with Image.open(good[2]) as img:
        img.save(folder / "10006-fghj.png", format="GIF")
    (folder / "10007-kmnp.png").write_bytes(_png_with_size(100_000, 100_000))
    (folder / "10008-qrst.png").write_bytes(_png_with_size(7_000, 7_000))
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.skipped == {
        "empty file (0 bytes)": 1,
        "not an image (unrecognised format)": 1,
        "truncated or corrupt image data": 1,
        "declares an image too large to be a captcha (decompression bomb?)": 2,
        "duplicate of another file": 1,  # the non-ASCII copy of good[1]
    }
    assert report.examples["empty file (0 bytes)"].endswith("10001-aaaa.png")
    assert report.total == 30 + 1 + 1  # 30 good, the one in sub/, the GIF; the duplicate once
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["skipped"] == report.skipped


def test_the_labels_of_skipped_files_add_no_character_or_length(captcha_files, tmp_path) -> None:
    """A broken file's (or a duplicate's) label used to widen the inferred charset and lengths: outputs
    for characters no image of the set shows, and a CTC model for a set of one length."""
    folder = tmp_path / "in"
    good = _copy(captcha_files[:20], folder)
    (folder / "10001-01ilo.png").write_text("not an image")  # characters and a length no good code has
    (folder / "10002-OOOOOO.png").write_bytes(good[0].read_bytes()[:200])  # cut short
    shutil.copyfile(good[1], folder / "10003-1lo0i.png")  # a copy of an image kept under another name
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.total == 20 and sum(report.skipped.values()) == 3
    assert set(report.spec.charset) == set("".join(f.stem.split("-")[1] for f in captcha_files[:20]))
    assert (report.spec.min_length, report.spec.max_length, report.spec.decoder) == (4, 4, "positional")
    data = load_dataset(tmp_path / "out")
    codes = {data.spec.decode(row) for split in ("train", "val", "test") for row in data.labels[split]}
    assert codes == {f.stem.split("-")[1] for f in captcha_files[:20]}


def test_label_problems_are_counted(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:20], folder)
    _copy(captcha_files[20:22], folder, lambda n: n.split("-")[0] + ".png")  # no code
    _copy(captcha_files[22:25], folder, lambda n: n.replace(".png", "x.png"))  # 5 characters
    _copy(captcha_files[25:26], folder, lambda n: n.split("-")[0] + "-ab.png")  # 2 characters
    _copy(captcha_files[26:28], folder, lambda n: n.split("-")[0] + "-10ol.png")  # 0, 1, o, l: not in charset
    _copy(captcha_files[:3], folder, lambda n: "copy-" + n.split("-")[1])  # the same bytes again
    report = prepare(folder, tmp_path / "out", workers=1, charset=DEFAULT_CHARSET, length=4)
    assert report.skipped == {
        "no code in file name (expected NNNNN-CODE.ext)": 2,
        "wrong code length (expected 4)": 4,
        "character outside the charset": 2,
        "duplicate of another file": 3,
    }
    assert report.total == 20 and report.spec.charset == DEFAULT_CHARSET


def test_a_label_with_white_space_is_skipped_not_fatal(captcha_files, tmp_path) -> None:
    """A screenshot named `Screenshot 2024-05-01 at 10.22.31.png` in the folder, or a labels.csv row
    `p6.png,t5 43dc`: its label put a space into the inferred charset and refused the whole set."""
    folder = tmp_path / "in"
    _copy(captcha_files[:20], folder)
    _copy(captcha_files[20:21], folder, lambda n: "Screenshot 2024-05-01 at 10.22.31.png")
    _copy(captcha_files[21:22], folder, lambda n: "00021-ab\u200bc.png")  # a zero-width space
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.skipped == {"label holds white space or unprintable characters": 2}
    assert report.total == 20 and " " not in report.spec.charset
    listed = tmp_path / "listed"
    files = _copy(captcha_files[:12], listed, lambda n: n.split("-")[0] + ".png")
    rows = [f"{f.name},{captcha_files[i].stem.split('-')[1]}" for i, f in enumerate(files[:11])]
    rows.append(f"{files[11].name},t5 43dc")
    (listed / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = prepare(listed, tmp_path / "out2", workers=1)
    assert report.total == 11 and report.skipped == {"label holds white space or unprintable characters": 1}


def test_inferred_charset_ignores_codes_of_the_wrong_length(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:20], folder)
    _copy(captcha_files[20:21], folder, lambda n: "x-01IL0O.png")  # characters no generated code has
    report = prepare(folder, tmp_path / "out", workers=1, length=4)
    assert report.spec.max_length == 4
    assert set(report.spec.charset) == set("".join(f.stem.split("-")[1] for f in captcha_files[:20]))
    assert report.skipped == {"wrong code length (expected 4)": 1}


def test_every_length_found_is_kept_and_counted(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:6], folder)
    _copy(captcha_files[6:9], folder, lambda n: n.replace(".png", "").rsplit("-", 1)[0] + "-abcdef.png")
    _copy(captcha_files[9:10], folder, lambda n: "y-xy.png")
    report = prepare(folder, tmp_path / "out", workers=1)
    assert (report.spec.min_length, report.spec.max_length, report.spec.decoder) == (2, 6, "ctc")
    assert report.lengths == {2: 1, 4: 6, 6: 3}
    data = load_dataset(tmp_path / "out")
    codes = sorted(data.spec.decode(row) for s in SPLITS for row in data.labels[s])
    assert "xy" in codes and "abcdef" in codes and data.labels["train"].shape[1] == 6
    within = prepare(folder, tmp_path / "within", workers=1, length=(4, 6))
    assert within.lengths == {4: 6, 6: 3} and within.skipped == {"wrong code length (expected 4–6)": 1}


def test_codes_too_long_for_a_ctc_model_are_skipped(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:4], folder)
    _copy(captcha_files[4:5], folder, lambda n: "z-" + "ab" * 16 + ".png")  # 32 characters: 30 steps
    report = prepare(folder, tmp_path / "out", workers=1, length=(1, 40))
    assert report.skipped == {"code too long to read: a CTC model has 30 time steps": 1}


def test_images_of_other_sizes_are_resized_to_the_most_common(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:5], folder)
    for path in captcha_files[5:7]:
        Image.open(path).resize((160, 60)).save(folder / path.name)
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.spec.image_size == (120, 50)
    assert report.resized == 2 and report.source_sizes == {(120, 50): 5, (160, 60): 2}
    bigger = prepare(folder, tmp_path / "big", workers=1, size=(160, 60))
    assert bigger.spec.image_size == (160, 60) and bigger.resized == 5
    assert load_dataset(tmp_path / "big").images["train"].shape[1:] == (60, 160, 3)


def test_an_empty_label_is_skipped_and_counted(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:4], folder)
    names = sorted(p.name for p in folder.iterdir())
    rows = [f"{names[0]},"] + [f"{n},{n.split('-')[1][:4]}" for n in names[1:]]
    (folder / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.skipped == {"empty label": 1} and report.total == 3


def test_upper_case_is_lowered_unless_kept(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(
        captcha_files[:10],
        folder,
        lambda n: n.split("-")[0] + "-" + n.split("-")[1].upper().replace("PNG", "png"),
    )
    lowered = prepare(folder, tmp_path / "lower", workers=1)
    assert (
        lowered.spec.charset == lowered.spec.charset.lower()
        and not load_dataset(tmp_path / "lower").spec.keep_case
    )
    kept = prepare(folder, tmp_path / "kept", workers=1, keep_case=True)
    letters = [c for c in kept.spec.charset if c.isalpha()]
    assert letters and all(c.isupper() for c in letters)
    assert load_dataset(tmp_path / "kept").spec.keep_case


def test_labels_csv_and_tsv(captcha_files, tmp_path) -> None:
    for name, sep in (("labels.csv", ","), ("labels.tsv", "\t")):
        folder = tmp_path / name.replace(".", "_")
        files = _copy(captcha_files[:12], folder, lambda n: "img " + n.split("-")[0] + ".png")
        rows = [
            f"{f.name}{sep}{captcha_files[i].stem.split('-')[1].upper()}" for i, f in enumerate(files[:10])
        ]
        rows.append(f"gone.png{sep}abcd")  # listed, but no such file
        (folder / name).write_text(f"file{sep}label\n" + "\n".join(rows) + "\n", encoding="utf-8")
        report = prepare(folder, tmp_path / f"out_{sep == ','}", workers=1)
        assert report.total == 10
        assert report.skipped == {f"not listed in {name}": 2, f"listed in {name} but not found": 1}


def test_broken_label_file_is_a_clear_error(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:3], folder)
    (folder / "labels.csv").write_text("a.png,abcd\njust-a-name\n")
    with pytest.raises(DatasetError, match="labels.csv line 2"):
        prepare(folder, tmp_path / "out", workers=1)
    (folder / "labels.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="cannot read"):
        prepare(folder, tmp_path / "out", workers=1)


# ---- nothing usable: a clear DatasetError ------------------------------------------------------------------


def test_missing_and_non_folders(tmp_path, captcha_files) -> None:
    with pytest.raises(DatasetError, match="not found"):
        prepare(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DatasetError, match="not a folder"):
        prepare(captcha_files[0], tmp_path / "out")


def test_empty_folder(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no labelled images.*captcha-tui generate"):
        prepare(tmp_path / "empty", tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_only_unlabelled_files(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:3], tmp_path / "in", lambda n: n.split("-")[0] + ".png")
    with pytest.raises(DatasetError, match="no labelled images"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1)


def test_no_usable_images(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"0000{i}-abcd.png").write_text(f"fake {i}")
    (folder / "00009-abcd.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"no usable images .*3 × not an image.*1 × empty file"):
        prepare(folder, tmp_path / "out", workers=1)


def test_no_code_of_the_asked_length(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:3], tmp_path / "in")
    with pytest.raises(DatasetError, match="wrong code length"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1, length=6)
    with pytest.raises(DatasetError, match="at least 1"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1, length=-1)


def test_repeated_charset(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:3], tmp_path / "in")
    with pytest.raises(DatasetError, match=r"charset repeats characters \(.a.\)"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1, charset="abcA")  # lowered: a twice


# ---- the output folder: nothing lost -------------------------------------------------------------------------


def test_out_equal_to_the_image_folder_is_refused(tmp_path, captcha_files) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:5], folder)
    for out in (folder, tmp_path):  # the image folder itself, or a folder that contains it
        with pytest.raises(DatasetError, match="choose another --out"):
            prepare(folder, out, workers=1)
    assert len(list(folder.iterdir())) == 5


def test_out_with_other_files_is_refused(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:5], tmp_path / "in")
    precious = tmp_path / "Documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(DatasetError, match="thesis.txt"):
        prepare(tmp_path / "in", precious, workers=1)
    assert (precious / "thesis.txt").read_text() == "years of work"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        prepare(tmp_path / "in", tmp_path / "afile", workers=1)


def test_out_inside_the_image_folder_is_not_scanned(tmp_path, captcha_files) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:10], folder)
    prepare(folder, folder / "dataset", workers=1)
    report = prepare(folder, folder / "dataset", workers=1, replace=True)  # again, over the previous one
    assert report.total == 10 and report.skipped == {}


def test_a_previous_dataset_is_replaced_and_survives_a_failed_write(
    tmp_path, captcha_files, monkeypatch
) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    _copy(captcha_files[10:30], tmp_path / "in2")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    before = _arrays(tmp_path / "out")
    real_save = np.save

    def full_disk(file, arr, *args, **kwargs):
        if "val_" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, arr, *args, **kwargs)

    monkeypatch.setattr(ds.np, "save", full_disk)
    with pytest.raises(DatasetError, match="the disk is full; nothing was changed"):
        prepare(tmp_path / "in2", tmp_path / "out", workers=1, replace=True)
    after = _arrays(tmp_path / "out")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in2", "out"]  # no staging left
    monkeypatch.setattr(ds.np, "save", real_save)
    assert prepare(tmp_path / "in2", tmp_path / "out", workers=1, replace=True).total == 20
    assert load_dataset(tmp_path / "out").count("train") == 16


def test_a_failed_swap_puts_the_previous_dataset_back(tmp_path, captcha_files, monkeypatch) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    before = _arrays(tmp_path / "out")
    real_rename = Path.rename

    def rename(self, target):
        if self.name.endswith(".partial"):
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(DatasetError, match="Input/output error; nothing was changed"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1, seed=5, replace=True)
    monkeypatch.undo()
    after = _arrays(tmp_path / "out")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_an_interrupted_swap_is_cleaned_up_by_the_next_prepare(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    (tmp_path / "out").rename(tmp_path / ".out.old")  # as if killed between the two renames
    with pytest.raises(DatasetError, match="interrupted"):
        load_dataset(tmp_path / "out")
    with pytest.raises(DatasetExists, match=r"set aside in .*\.out\.old by an interrupted prepare"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1)  # the previous dataset is still there
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "in"]
    prepare(tmp_path / "in", tmp_path / "out", workers=1, replace=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert load_dataset(tmp_path / "out").count("train") == 8


def test_an_existing_dataset_is_replaced_only_when_asked(tmp_path, captcha_files, monkeypatch) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    _copy(captcha_files[10:30], tmp_path / "in2")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def no_walk(*args, **kwargs):
        raise AssertionError("the images were searched before refusing")

    with monkeypatch.context() as patched:
        patched.setattr(ds, "find_image_files", no_walk)
        with pytest.raises(DatasetExists) as refused:
            prepare(tmp_path / "in2", tmp_path / "out", workers=1)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'out'} already holds a dataset (10 images from ")
    assert str((tmp_path / "in").resolve()) in message and "8 train / 1 val / 1 test" in message
    assert "4 characters from '" in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in2", "out"]
    assert prepare(tmp_path / "in2", tmp_path / "out", workers=1, replace=True).total == 20
    assert load_dataset(tmp_path / "out").manifest["source"] == str((tmp_path / "in2").resolve())


def test_a_damaged_dataset_is_still_a_dataset(tmp_path, captcha_files) -> None:
    _copy(captcha_files[:10], tmp_path / "in")
    prepare(tmp_path / "in", tmp_path / "out", workers=1)
    (tmp_path / "out" / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetExists, match="manifest is missing or unreadable"):
        prepare(tmp_path / "in", tmp_path / "out", workers=1)
    assert prepare(tmp_path / "in", tmp_path / "out", workers=1, replace=True).total == 10
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder holds no dataset: filled without asking
    assert prepare(tmp_path / "in", empty, workers=1).total == 10


def test_subfolders_are_searched_and_counted(tmp_path, captcha_files) -> None:
    top = tmp_path / "in"
    _copy(captcha_files[:5], top)
    _copy(captcha_files[5:8], top / "old")
    _copy(captcha_files[8:10], top / "old" / "deeper")
    _copy(captcha_files[10:12], top / ".hidden")  # hidden folders are not searched
    report = prepare(top, tmp_path / "out", workers=1)
    assert report.total == 10
    assert list(report.folders.items()) == [(top, 5), (top / "old", 3), (top / "old" / "deeper", 2)]


# ---- load_dataset on damaged folders ----------------------------------------------------------------------


def _with_spec(manifest: dict, **changes) -> str:
    spec = {k: v for k, v in {**manifest["spec"], **changes}.items() if v is not None}
    return json.dumps({**manifest, "spec": spec})


def _damaged(prepared_dataset, tmp_path) -> Path:
    return Path(shutil.copytree(prepared_dataset, tmp_path / "data"))


def test_load_missing(tmp_path) -> None:
    with pytest.raises(DatasetError, match="captcha-tui prepare"):
        load_dataset(tmp_path / "none")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: "{not json", "unreadable manifest"),
        (lambda m: json.dumps([1, 2]), "not a captcha-tui dataset"),
        (lambda m: json.dumps({**m, "format": "other/1"}), "not a captcha-tui dataset"),
        (lambda m: _with_spec(m, image_size=None), "image size"),
        (lambda m: _with_spec(m, max_length="4"), "max length '4' is not a whole number"),
        (lambda m: _with_spec(m, charset=""), "charset"),
        (lambda m: _with_spec(m, charset=m["spec"]["charset"][:5]), "beyond its 5-character charset"),
        (lambda m: _with_spec(m, min_length=5, max_length=5), "labels do not match"),
        (lambda m: _with_spec(m, image_size=[60, 24]), "not \\(N, 24, 60, 3\\)"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "spec"} | {"length": "4"}), "code length"),
    ],
)
def test_load_damaged_manifest(prepared_dataset, tmp_path, change, message) -> None:
    folder = _damaged(prepared_dataset, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(change(manifest))
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder)


@pytest.mark.parametrize("mmap", [False, True])
def test_load_truncated_arrays(prepared_dataset, tmp_path, mmap) -> None:
    folder = _damaged(prepared_dataset, tmp_path)
    data = (folder / "train_images.npy").read_bytes()
    (folder / "train_images.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="damaged.*prepare it again"):
        load_dataset(folder, mmap=mmap)
    (folder / "val_labels.npy").unlink()
    with pytest.raises(DatasetError, match="damaged"):
        load_dataset(folder, mmap=mmap)


def test_pickled_arrays_are_refused(prepared_dataset, tmp_path) -> None:
    folder = _damaged(prepared_dataset, tmp_path)
    np.save(folder / "test_labels.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="damaged"):
        load_dataset(folder)


def test_splits_too_small_to_measure_are_warned_with_a_useful_size(captcha_files, tmp_path, capsys) -> None:
    from captcha_tui.cli import main

    folder = tmp_path / "in"
    _copy(captcha_files[:3], folder)
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.counts == {"train": 1, "val": 1, "test": 1}
    warnings = report.warnings()
    assert len(warnings) == 3
    assert warnings[0].startswith("the validation split has only 1 image: its accuracy moves 100% per image")
    assert "300 labelled images or more give it 30" in warnings[0]
    assert warnings[2].startswith("only 1 training image:")
    # The command line says it; a set of the default 300 generated captchas is not warned about.
    assert main(["prepare", str(folder), "--out", str(tmp_path / "again"), "--workers", "1"]) == 0
    assert capsys.readouterr().out.count("warning: ") == 3
    assert prepare(captcha_files[0].parent, tmp_path / "full", workers=1).warnings() == []


def test_the_label_screens_notes_are_reasons_and_the_last_row_wins(captcha_files, tmp_path) -> None:
    folder = tmp_path / "in"
    _copy(captcha_files[:6], folder)
    names = sorted(p.name for p in folder.iterdir())
    code = {n: n.split("-")[1][:4] for n in names}
    rows = [
        "path,label,note",
        *(f"{n},{code[n]}," for n in names[:3]),
        f"{names[3]},,unreadable",
        f"{names[4]},{code[names[4]]},",
        f"{names[4]},,undone",  # answered, then undone: unlabelled again
        f"{names[5]},,unreadable",
        f"{names[5]},,undone",
        f"{names[5]},{code[names[5]]},",  # marked, undone, then labelled
        f"{names[0]},,undone",
        f"{names[0]},{code[names[0]]},",
    ]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    report = prepare(folder, tmp_path / "out", workers=1)
    assert report.total == 4
    assert report.skipped == {"marked unreadable": 1, "answer undone, not labelled again": 1}
    assert Path(report.examples["marked unreadable"]).name == names[3]
    assert Path(report.examples["answer undone, not labelled again"]).name == names[4]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names synced files through /proc (Linux)")
def test_the_new_dataset_is_on_disk_before_the_previous_one_is_deleted(captcha_files, tmp_path, monkeypatch):
    """A power cut during a replace keeps one whole dataset: every new file is synced before the swap."""
    folder = _copy(captcha_files[:20], tmp_path / "images")[0].parent
    prepare(folder, tmp_path / "set", workers=1)
    synced, order = [], []
    fsync = ds.os.fsync
    monkeypatch.setattr(
        ds.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd))
    )
    rename = Path.rename
    monkeypatch.setattr(
        Path, "rename", lambda self, target: (order.append((len(synced), self.name)), rename(self, target))[1]
    )
    prepare(folder, tmp_path / "set", workers=1, replace=True)
    staged = {Path(p).name for p in synced if Path(p).parent.name == ".set.partial"}
    assert staged == DATASET_FILES
    assert order[0] == (len(synced), "set")  # the previous dataset moved aside only after every sync
