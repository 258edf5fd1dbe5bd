"""Labelling sessions on real captchas with a real tiny checkpoint: the order, the label file, relaunches."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import pytest

from captcha_tui.core import labelling
from captcha_tui.core.dataset import prepare
from captcha_tui.core.labelling import (
    HEADER,
    UNDONE,
    UNREADABLE,
    LabelFile,
    LabellingError,
    LabellingSession,
    LabelQueue,
    scan_folder,
    score,
)
from captcha_tui.core.labels import label_from_name, read_label_file, read_label_table
from captcha_tui.core.predictor import Predictor

HEADER_LINE = ",".join(HEADER) + "\n"


def _folder(files: list[Path], folder: Path) -> dict[str, str]:
    """Copy captchas under names without their codes; returns {name: true code}."""
    folder.mkdir(parents=True, exist_ok=True)
    codes = {}
    for i, source in enumerate(files):
        name = f"cap{i:04d}.png"
        shutil.copyfile(source, folder / name)
        codes[name] = label_from_name(source.name)
    return codes


def _session(folder: Path, predictor: Predictor | None = None, chunk: int = 256) -> LabellingSession:
    session = LabellingSession(scan_folder(folder))
    for part in score(session.scan.unlabelled, predictor, chunk):
        session.add(part)
    return session


def _lines(folder: Path) -> list[str]:
    return (folder / "labels.csv").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def predictor(tiny_run) -> Predictor:
    return Predictor.load(tiny_run / "best.pt")


def test_least_confident_first(captcha_files, predictor, tmp_path) -> None:
    _folder(captcha_files[:40], tmp_path)
    confidence = {
        path.name: predictor.predict_image(path).confidence for path in sorted(tmp_path.glob("*.png"))
    }
    assert len(set(confidence.values())) > 30  # a real model: an order worth checking

    def in_order(names) -> list[str]:
        return sorted(names, key=lambda name: (confidence[name], name))

    for chunk in (256, 7):
        session = _session(tmp_path, predictor, chunk)
        shown = [session.current.name]
        while session.skip() is not None:
            shown.append(session.current.name)
        # On show first: the least confident of the first chunk (scored before the rest); after it,
        # the least confident of everything left, whatever chunk it came in.
        first_chunk = [f"cap{i:04d}.png" for i in range(min(chunk, 40))]
        assert shown[0] == in_order(first_chunk)[0]
        assert shown[1:] == in_order(set(confidence) - {shown[0]})
        assert session.current is None and session.tally.skipped == 40


def test_the_first_image_is_the_least_confident_of_what_is_scored_so_far(
    captcha_files, predictor, tmp_path
) -> None:
    _folder(captcha_files[:20], tmp_path)
    session = LabellingSession(scan_folder(tmp_path))
    chunks = list(score(session.scan.unlabelled, predictor, chunk=10))
    assert session.add(chunks[0]) is True  # an image is on show after the first chunk
    assert session.current == min(chunks[0].candidates, key=lambda c: c.rank)
    assert session.scoring
    assert session.add(chunks[1]) is False  # the one on show stays
    assert not session.scoring


def test_each_answer_is_in_the_file_and_synced_before_the_next_image(
    captcha_files, predictor, tmp_path, monkeypatch
) -> None:
    codes = _folder(captcha_files[:6], tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(labelling.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    session = _session(tmp_path, predictor)
    assert not (tmp_path / "labels.csv").exists()  # nothing is written before the first answer

    first = session.current
    session.answer(first.reading)  # accepted as read
    assert _lines(tmp_path) == ["path,label,note", f"{first.name},{first.reading},"]
    assert synced, "the row was not synced"

    second = session.current
    right = codes[second.name]
    session.answer(f"  {right.upper()} ")  # typed over: stripped, kept as typed
    assert _lines(tmp_path)[-1] == f"{second.name},{right.upper()},"

    third = session.current
    session.skip()
    assert len(_lines(tmp_path)) == 3  # a skip writes nothing

    fourth = session.current
    session.mark_unreadable()
    assert _lines(tmp_path)[-1] == f"{fourth.name},,{UNREADABLE}"
    assert len(synced) >= 3

    for bad in ("", "   ", "ab cd"):
        with pytest.raises(LabellingError):
            session.answer(bad)
    assert len(_lines(tmp_path)) == 4 and session.current not in (first, second, third, fourth)

    tally = session.tally
    assert (tally.labelled, tally.skipped, tally.unreadable) == (2, 1, 1)
    # Accepted once; the second counts as unchanged only if the model read it right (case aside).
    right_second = second.reading == right
    assert tally.accepted == 1 + right_second and tally.corrected == 1 - right_second
    assert tally.model_accuracy == tally.accepted / 2
    assert session.done == 3 and session.total == 6


def test_a_relaunch_asks_only_about_the_rest_and_never_writes_a_row_twice(
    captcha_files, predictor, tmp_path
) -> None:
    _folder(captcha_files[:8], tmp_path)
    session = _session(tmp_path, predictor)
    answered = []
    for _ in range(3):
        answered.append(session.current.name)
        session.answer("abcd")
    skipped = session.current.name
    session.skip()
    unreadable = session.current.name
    session.mark_unreadable()

    again = _session(tmp_path, predictor)
    remaining = {c.name for c in again.scan.unlabelled}
    assert remaining.isdisjoint([*answered, unreadable]) and skipped in remaining
    assert len(remaining) == 4 and again.done == 4
    # "labelled": given a label; the unreadable one is answered, but not labelled.
    assert (again.scan.labelled, again.scan.unreadable, again.labelled, again.unreadable) == (3, 1, 3, 1)
    while again.current is not None:
        again.answer("wxyz")
    rows = _lines(tmp_path)[1:]
    assert len(rows) == 8 and len({row.split(",")[0] for row in rows}) == 8
    assert _session(tmp_path, predictor).current is None  # all answered


@pytest.mark.parametrize(
    ("tail", "asked_again"),
    [
        ("cap0001.png,wxyz", False),  # a whole row, just no line end (say, edited by hand)
        ("cap0001.pn", True),  # cut inside the path
        ("cap0001.png", True),  # cut before the label
        ('cap0001.png,"wx', True),  # cut inside a quoted label: that label must not count
    ],
)
def test_a_last_line_cut_short_never_merges_with_the_next_row(
    captcha_files, tmp_path, tail, asked_again
) -> None:
    _folder(captcha_files[:3], tmp_path)
    (tmp_path / "labels.csv").write_text(HEADER_LINE + "cap0000.png,abcd,\n" + tail, encoding="utf-8")
    before = (tmp_path / "labels.csv").read_bytes()
    assert len(read_label_file(tmp_path / "labels.csv")) == 1 + (not asked_again)  # prepare reads it

    session = _session(tmp_path)
    names = {c.name for c in session.scan.unlabelled}
    assert ("cap0001.png" in names) is asked_again and "cap0000.png" not in names
    session.answer("efgh")
    after = (tmp_path / "labels.csv").read_bytes()
    assert after.startswith(before)  # appended to, never rewritten
    labels = read_label_file(tmp_path / "labels.csv")
    assert labels[(tmp_path / session.scan.unlabelled[0].path.name).resolve()] == "efgh"
    if asked_again:
        assert labels.get((tmp_path / "cap0001.png").resolve(), "") in ("", "efgh")
    else:
        assert labels[(tmp_path / "cap0001.png").resolve()] == "wxyz"
    table = read_label_table(tmp_path / "labels.csv")
    assert table.ends_with_newline and table.cut is None
    assert all(len(label) in (0, 4) for label in labels.values())  # no merged or cut-short label counts


def test_prepare_skips_unreadable_images_as_marked_unreadable(captcha_files, tmp_path) -> None:
    folder = tmp_path / "mine"
    codes = _folder(captcha_files[:30], folder)
    session = _session(folder)  # no model: the input starts empty, the user types every code
    assert session.current.reading == ""
    unreadable = []
    while session.current is not None:
        if len(unreadable) < 2:
            unreadable.append(session.current.name)
            session.mark_unreadable()
        else:
            session.answer(codes[session.current.name])
    assert session.tally.typed == 28 and session.tally.model_accuracy is None
    report = prepare(folder, tmp_path / "dataset", workers=1)
    assert report.total == 28
    assert report.skipped == {"marked unreadable": 2}
    assert Path(report.examples["marked unreadable"]).name in unreadable


def test_undo_appends_a_row_that_retracts_the_answer_and_asks_again(
    captcha_files, predictor, tmp_path
) -> None:
    codes = _folder(captcha_files[:6], tmp_path)
    session = _session(tmp_path, predictor)
    with pytest.raises(LabellingError, match="nothing to undo"):
        session.undo()

    first = session.current
    session.answer(codes[first.name])
    second = session.current
    session.mark_unreadable()
    third = session.current
    session.skip()
    fourth = session.current
    before = (tmp_path / "labels.csv").read_bytes()
    assert session.done == 2 and session.labelled == 1 and session.unreadable == 1

    # Newest first: the skip (nothing written), the unreadable mark, the label.
    assert session.undo() is third and session.current is third and session.tally.skipped == 0
    assert (tmp_path / "labels.csv").read_bytes() == before
    assert session.undo() is second and session.tally.unreadable == 0
    assert session.undo() is first and session.tally.labelled == 0 and session.done == 0
    after = (tmp_path / "labels.csv").read_bytes()
    assert after.startswith(before)  # appended to, never rewritten
    assert _lines(tmp_path)[-2:] == [f"{second.name},,{UNDONE}", f"{first.name},,{UNDONE}"]
    with pytest.raises(LabellingError, match="nothing to undo"):
        session.undo()

    # The images that were on show come back, in order; the first one is answered again.
    session.answer("wxyz")
    assert {session.current, *session.queue.peek(len(session.queue))} >= {second, third, fourth}
    again = scan_folder(tmp_path)
    remaining = {c.name for c in again.unlabelled}
    assert first.name not in remaining and {second.name, third.name, fourth.name} <= remaining
    assert (again.labelled, again.unreadable) == (1, 0)
    labels = read_label_file(tmp_path / "labels.csv")  # the last row wins
    assert labels[first.path.resolve()] == "wxyz" and labels[second.path.resolve()] == ""

    # prepare: the undone image is not labelled, and says so.
    while session.current is not None:
        if session.current is second:
            session.skip()
        else:
            session.answer(codes[session.current.name])
    report = prepare(tmp_path, tmp_path / "dataset", workers=1)
    assert report.total == 5 and report.skipped == {"answer undone, not labelled again": 1}
    assert Path(report.examples["answer undone, not labelled again"]).name == second.name


def test_an_undo_that_cannot_be_saved_changes_nothing(captcha_files, tmp_path, monkeypatch) -> None:
    _folder(captcha_files[:3], tmp_path)
    session = _session(tmp_path)
    first = session.current
    session.answer("abcd")
    shown = session.current
    _refuse_writes_under(tmp_path, monkeypatch, code=errno.ENOSPC)
    with pytest.raises(LabellingError, match="not saved: .*the disk is full"):
        session.undo()
    assert session.current is shown and session.tally.typed == 1 and session.done == 1
    monkeypatch.undo()
    assert session.undo() is first and _lines(tmp_path)[-1] == f"{first.name},,{UNDONE}"


def test_an_existing_tsv_is_appended_to_in_its_own_format(captcha_files, tmp_path) -> None:
    _folder(captcha_files[:3], tmp_path)
    (tmp_path / "labels.tsv").write_text("file\tlabel\ncap0000.png\tabcd\n", encoding="utf-8")
    session = _session(tmp_path)
    assert session.label_file.path.name == "labels.tsv" and session.done == 1
    session.answer("efgh")
    assert (tmp_path / "labels.tsv").read_text().splitlines()[
        -1
    ] == f"{session.scan.unlabelled[0].name}\tefgh\t"
    assert not (tmp_path / "labels.csv").exists()


def test_bad_folders_and_files_get_one_line_reasons(captcha_files, predictor, tmp_path) -> None:
    with pytest.raises(LabellingError, match="no such folder"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(LabellingError, match="not a folder"):
        scan_folder(captcha_files[0])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(LabellingError, match="no images in"):
        scan_folder(tmp_path / "empty")

    folder = tmp_path / "mixed"
    _folder(captcha_files[:3], folder)
    (folder / "text.png").write_text("not an image\n")
    (folder / "cut.png").write_bytes(captcha_files[0].read_bytes()[:100])
    (folder / ".hidden.png").write_bytes(captcha_files[0].read_bytes())
    for model in (predictor, None):
        session = _session(folder, model)
        assert session.scan.images == 5 and session.total == 3
        reasons = {c.name: reason for c, reason in session.broken}
        assert set(reasons) == {"text.png", "cut.png"}
        assert "not an image" in reasons["text.png"] and "truncated" in reasons["cut.png"]

    (folder / "labels.csv").write_bytes(b"\xff\xfe\x00garbage")
    before = (folder / "labels.csv").read_bytes()
    with pytest.raises(LabellingError, match="cannot use .*labels.csv.*left as it is"):
        scan_folder(folder)
    assert (folder / "labels.csv").read_bytes() == before


def _refuse_writes_under(folder: Path, monkeypatch, code: int = errno.EROFS) -> None:
    """``os.open`` for writing fails under ``folder`` as on a read-only file system (root ignores modes)."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR) and Path(path).resolve().is_relative_to(folder.resolve()):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(labelling.os, "open", fake_open)


def test_a_read_only_folder_is_said_and_nothing_pretends_to_be_saved(
    captcha_files, tmp_path, monkeypatch
) -> None:
    _folder(captcha_files[:3], tmp_path)
    _refuse_writes_under(tmp_path, monkeypatch)
    session = _session(tmp_path)
    assert "cannot save answers in" in session.scan.cannot_save
    assert "read-only file system" in session.scan.cannot_save
    shown = session.current
    with pytest.raises(LabellingError, match="not saved: .*read-only"):
        session.answer("abcd")
    assert session.current is shown and session.tally.labelled == 0 and session.done == 0
    assert not (tmp_path / "labels.csv").exists() and not list(tmp_path.glob(".labels-probe-*"))


def test_a_write_that_fails_half_way_is_repaired_before_the_next_row(
    captcha_files, tmp_path, monkeypatch
) -> None:
    _folder(captcha_files[:3], tmp_path)
    session = _session(tmp_path)
    session.answer("abcd")
    real_write = os.write

    def half_then_full_disk(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(labelling.os, "write", half_then_full_disk)
    shown = session.current
    with pytest.raises(LabellingError, match="not saved: .*the disk is full"):
        session.answer("efgh")
    assert session.current is shown
    monkeypatch.undo()
    session.answer("efgh")
    table = read_label_table(tmp_path / "labels.csv")
    assert table.ends_with_newline
    labels = read_label_file(tmp_path / "labels.csv")
    assert labels[shown.path.resolve()] == "efgh"
    # The half row is closed with an empty label: a path that is not there, or the image asked again.
    assert {label for path, label in labels.items() if not path.exists()} <= {""}
    row = f"{shown.name},efgh,\n"
    half = row[: len(row) // 2]
    assert "," not in half  # (with these names the cut falls inside the path)
    assert _lines(tmp_path)[2:] == [f"{half},", row.strip("\n")]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_folder_for_real(captcha_files, tmp_path) -> None:
    _folder(captcha_files[:2], tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o500)
    try:
        assert "permission denied" in scan_folder(tmp_path / "ro").cannot_save
    finally:
        os.chmod(tmp_path / "ro", 0o700)


def test_queue_and_label_file_alone(tmp_path) -> None:
    queue = LabelQueue()
    assert queue.pop() is None and len(queue) == 0
    label_file = LabelFile(tmp_path / "labels.csv")
    assert label_file.answered == set() and label_file.problem_saving() is None
    assert not (tmp_path / "labels.csv").exists() and list(tmp_path.iterdir()) == []


def test_scoring_pauses_and_shows_the_first_images_early(captcha_files, predictor, tmp_path) -> None:
    _folder(captcha_files[:70], tmp_path)
    candidates = scan_folder(tmp_path).unlabelled
    pauses = []
    chunks = list(score(candidates, predictor, chunk=256, pause=lambda: pauses.append(1)))
    # A short first chunk (the first image shows sooner), then whole chunks.
    assert [len(c.candidates) for c in chunks] == [labelling.FIRST_CHUNK, 70 - labelling.FIRST_CHUNK]
    model_passes = -(-labelling.FIRST_CHUNK // labelling.MODEL_BATCH) + 1
    assert len(pauses) == 70 + model_passes  # before each image and each model pass
    assert list(score([], predictor)) == []


def test_the_queue_peeks_at_the_next_few_in_order(tmp_path) -> None:
    import random

    from captcha_tui.core.labelling import Candidate
    from captcha_tui.core.predictor import Prediction

    rng = random.Random(3)
    queue = LabelQueue()
    candidates = [
        Candidate(tmp_path / f"{i}.png", f"{i}.png", i, Prediction("ab", (rng.random(), rng.random())))
        for i in range(200)
    ]
    queue.add(candidates)
    in_order = sorted(candidates, key=lambda c: c.rank)
    for taken in range(5):
        for count in (1, 2, 3):
            assert queue.peek(count) == in_order[taken : taken + count]
        assert queue.pop() == in_order[taken]


def test_sub_folders_hidden_files_and_links(captcha_files, tmp_path) -> None:
    folder = tmp_path / "mine"
    _folder(captcha_files[:2], folder / "sub")
    _folder(captcha_files[2:3], folder / ".hidden")
    shutil.copyfile(captcha_files[3], folder / "top.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "link.png").symlink_to(folder / "sub" / "cap0000.png")
    session = _session(folder)
    assert sorted(c.name for c in session.scan.unlabelled) == [
        "link.png",
        "sub/cap0000.png",
        "sub/cap0001.png",
        "top.png",
    ]
    while session.current is not None and session.current.name != "sub/cap0000.png":
        session.skip()
    session.answer("abcd")
    assert _lines(folder)[-1] == "sub/cap0000.png,abcd,"
    # The link points at the image just answered: by resolved path it is answered too.
    assert sorted(c.name for c in scan_folder(folder).unlabelled) == ["sub/cap0001.png", "top.png"]


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("ab cd", "holds a space"),
        ("ab\x07cd", "cannot be shown"),
        ("x" * 31, "31 characters: longer than any model here reads (30 at most)"),
        ("   ", "nothing typed"),
    ],
)
def test_an_answer_no_model_could_learn_is_refused_and_nothing_saved(captcha_files, tmp_path, typed, said):
    """A 52-character paste or a control character was saved as a label; prepare then skipped it, or put
    the character into the set's charset."""
    _folder(captcha_files[:2], tmp_path)
    session = _session(tmp_path)
    shown = session.current
    with pytest.raises(LabellingError, match=re.escape(said)):
        session.answer(typed)
    assert session.current is shown and not (tmp_path / "labels.csv").exists()
    session.answer('é€x,"')  # characters a user's captchas may hold are theirs to type
    assert (tmp_path / "labels.csv").exists()
