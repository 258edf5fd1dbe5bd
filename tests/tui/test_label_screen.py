"""The label screen driven with Pilot, with a real tiny checkpoint and real generated captchas."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, Static

from captcha_tui.cli import main
from captcha_tui.core.labelling import FIRST_CHUNK, MODEL_BATCH
from captcha_tui.core.labels import label_from_name, read_label_file, read_label_table
from captcha_tui.core.predictor import Predictor
from captcha_tui.tui.screens.label import LabelScreen
from captcha_tui.tui.screens.path_prompt import PathPrompt
from captcha_tui.tui.widgets import captcha_image
from captcha_tui.tui.widgets.captcha_image import CaptchaImage

from ..core.test_labelling import _refuse_writes_under
from .helpers import SIZE, make_app, screen_text, training_config, wait_for_exit, wait_until

# textual-image 0.12 still calls Pillow's deprecated Image.getdata.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")


def _folder(files: list[Path], folder: Path) -> dict[str, str]:
    """Copy captchas under names without their codes; returns {name: true code}."""
    folder.mkdir(parents=True, exist_ok=True)
    codes = {}
    for i, source in enumerate(files):
        shutil.copyfile(source, folder / f"cap{i:04d}.png")
        codes[f"cap{i:04d}.png"] = label_from_name(source.name)
    return codes


def _app(prepared_dataset, tmp_path, folder: Path, model: Path | None):
    """Half cells, as most terminals get: what the screen draws ahead."""
    config = training_config(prepared_dataset, tmp_path / "run")
    return make_app(config, start_screen="label", model=model, label_dir=folder, image_renderer="halfcell")


def _screen(app) -> LabelScreen:
    assert isinstance(app.screen, LabelScreen), type(app.screen)
    return app.screen


async def _ready(pilot) -> LabelScreen:
    """The label screen once every image is scored."""
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, LabelScreen)
            and app.screen.session is not None
            and not app.screen.session.scoring
        ),
        what="the images to be ranked",
    )
    return app.screen


def _shown(screen: LabelScreen) -> str:
    return screen.query_one(CaptchaImage).path.name


def _input(screen: LabelScreen) -> Input:
    return screen.query_one("#label-input", Input)


def _text(screen: LabelScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def _rows(folder: Path) -> list[str]:
    return (folder / "labels.csv").read_text(encoding="utf-8").splitlines()


def _key(key: str) -> events.Key:
    """A key as a terminal sends it: a character, "\n" for Enter, or a name like "ctrl+z"."""
    if key == "\n":
        return events.Key("enter", "\r")
    if key.startswith("ctrl+"):
        return events.Key(key, chr(ord(key[-1]) - ord("a") + 1))
    return events.Key(key, key)


async def _burst(pilot, keys: str | list[str], folder: Path, rows: int = 1) -> None:
    """Hand every key to the driver at once, as a fast typist's terminal would; wait for the ``rows``
    rows they write."""
    before = len(_rows(folder)) if (folder / "labels.csv").exists() else 1
    for key in keys:
        pilot.app._driver.send_message(_key(key))
    await wait_until(
        pilot,
        lambda: (folder / "labels.csv").exists() and len(_rows(folder)) >= before + rows,
        what=repr(keys),
    )
    await pilot.pause()  # the keys after the last row's


def test_accept_correct_skip_and_unreadable_least_confident_first(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    folder = tmp_path / "mine"
    _folder(captcha_files[:12], folder)
    best = tiny_run / "best.pt"
    predictor = Predictor.load(best)
    readings = {path.name: predictor.predict_image(path) for path in folder.glob("*.png")}
    order = sorted(readings, key=lambda name: (readings[name].confidence, name))
    app = _app(prepared_dataset, tmp_path, folder, best)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            box = _input(screen)
            assert box.has_focus and "model tiny" in _text(screen, "#label-status")
            # A checkpoint that read little of its validation split says so, and what may read better.
            status = _text(screen, "#label-status")
            assert "validation 0.0% (reads little: --model base may read better)" in status, status
            assert "--model base may read better" in screen_text(pilot.app)  # on screen, not cut off
            assert "answered 0 / 12" in _text(screen, "#label-progress")
            seen = []

            # 1. Enter accepts the model's reading as it stands.
            seen.append(_shown(screen))
            assert box.value == readings[seen[-1]].code
            assert f"│ {readings[seen[-1]].code[0]} │" in screen_text(app)  # the boxed reading, per char
            await pilot.press("enter")
            assert _rows(folder) == ["path,label,note", f"{seen[-1]},{readings[seen[-1]].code},"]

            # 2. Typing slowly, key by key, over the selected reading replaces it.
            seen.append(_shown(screen))
            for key in "wxyz":
                await pilot.press(key)
                await pilot.pause(0.05)
            assert box.value == "wxyz"
            await pilot.press("enter")
            assert _rows(folder)[-1] == f"{seen[-1]},wxyz,"

            # 3. The same in one burst, Enter included.
            seen.append(_shown(screen))
            await _burst(pilot, "kmnp\n", folder)
            assert _rows(folder)[-1] == f"{seen[-1]},kmnp,"

            # 4. An arrow key keeps the reading, to fix one character.
            seen.append(_shown(screen))
            await pilot.press("end", "backspace", "a", "enter")
            fixed = readings[seen[-1]].code[:-1] + "a"
            assert _rows(folder)[-1] == f"{seen[-1]},{fixed},"

            # 5. Ctrl+S and Tab skip: nothing written.
            seen.append(_shown(screen))
            await pilot.press("ctrl+s")
            seen.append(_shown(screen))
            await pilot.press("tab")
            assert len(_rows(folder)) == 5

            # 6. Ctrl+R: unreadable, recorded with an empty label.
            seen.append(_shown(screen))
            await pilot.press("ctrl+r")
            assert _rows(folder)[-1] == f"{seen[-1]},,unreadable"

            # The next image is drawn before it is asked for.
            upcoming = str(screen.session.queue.peek(1)[0].path)
            await wait_until(
                pilot, lambda: any(key[0] == upcoming for key in captcha_image._drawn), what="drawing ahead"
            )

            # 7. An empty answer is refused, nothing written, the image stays.
            current = _shown(screen)
            await pilot.press("ctrl+a", "ctrl+k", "enter")
            assert "nothing typed" in _text(screen, "#label-message")
            assert len(_rows(folder)) == 6 and _shown(screen) == current

            assert seen == order[: len(seen)]  # least confident first
            accepted = 1 + sum(
                label == readings[name].code
                for name, label in zip(seen[1:4], ["wxyz", "kmnp", fixed], strict=True)
            )
            progress = _text(screen, "#label-progress")
            assert "answered 5 / 12: 4 labelled · 1 unreadable" in progress
            assert "this session: 4 labelled" in progress and "1 unreadable · 2 skipped" in progress
            assert f"{accepted}/4 = {accepted / 4:.1%}" in progress

    asyncio.run(scenario())
    labels = read_label_file(folder / "labels.csv")
    assert len(labels) == 5 and list(labels.values()).count("") == 1


def test_a_relaunch_after_a_crash_carries_on_and_never_duplicates_a_row(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    folder = tmp_path / "mine"
    _folder(captcha_files[:6], folder)
    # Two answers, then a crash in the middle of writing the third: no line end after it.
    crashed = "path,label,note\ncap0000.png,abcd,\ncap0001.png,,unreadable\ncap0002.pn"
    (folder / "labels.csv").write_text(crashed, encoding="utf-8")
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            names = {c.name for c in screen.session.scan.unlabelled}
            assert names == {"cap0002.png", "cap0003.png", "cap0004.png", "cap0005.png"}
            assert "answered 2 / 6" in _text(screen, "#label-progress")
            first = _shown(screen)
            await pilot.press("q", "r", "s", "t", "enter")  # over the selected reading
            return first

    first = asyncio.run(scenario())
    text = (folder / "labels.csv").read_text(encoding="utf-8")
    assert text.startswith(crashed)  # never rewritten
    assert text[len(crashed) :] == f",\n{first},qrst,\n"  # the cut row closed, the answer on its own line
    table = read_label_table(folder / "labels.csv")
    assert table.ends_with_newline
    whole = [row.path.name for row in table.rows if row.label or row.note]
    assert len(whole) == len(set(whole)) == 3

    again = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def relaunch():
        async with again.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert first not in {c.name for c in screen.session.scan.unlabelled}
            assert "answered 3 / 6" in _text(screen, "#label-progress")
            while screen.session.current is not None:
                await pilot.press("enter")
            assert "every image" in _text(screen, "#label-status")
            assert _input(screen).disabled

    asyncio.run(relaunch())
    names = [row.path.name for row in read_label_table(folder / "labels.csv").rows if row.label or row.note]
    assert sorted(names) == [f"cap{i:04d}.png" for i in range(6)]


def test_a_read_only_folder_is_said_and_nothing_is_saved(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch
):
    folder = tmp_path / "mine"
    _folder(captcha_files[:3], folder)
    _refuse_writes_under(folder, monkeypatch)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: "cannot save" in _text(screen, "#label-status"), what="refusal")
            status = _text(screen, "#label-status")
            assert f"cannot save answers in {folder}" in status and "read-only file system" in status
            assert "nothing is asked" in _text(screen, "#label-message")
            assert _input(screen).disabled
            await pilot.press("enter", "ctrl+r", "ctrl+z", "ctrl+s")
            assert "answered 0 / 3" in _text(screen, "#label-progress")

    asyncio.run(scenario())
    assert not (folder / "labels.csv").exists()


def test_a_write_failing_later_keeps_the_image_and_says_so(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch
):
    folder = tmp_path / "mine"
    _folder(captcha_files[:3], folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            first = _shown(screen)
            await pilot.press("enter")
            current = _shown(screen)
            _refuse_writes_under(folder, monkeypatch, code=errno.ENOSPC)  # the disk filled up meanwhile
            await pilot.press("enter")
            message = _text(screen, "#label-message")
            assert message.startswith(f"{current}: not saved") and "the disk is full" in message
            assert _shown(screen) == current and "answered 1 / 3" in _text(screen, "#label-progress")
            await pilot.press("ctrl+z")  # an undo that cannot be saved changes nothing either
            message = _text(screen, "#label-message")
            assert message.startswith(f"{first}: not saved") and "the disk is full" in message
            assert _shown(screen) == current and "answered 1 / 3" in _text(screen, "#label-progress")
            monkeypatch.undo()
            await pilot.press("enter")
            assert _shown(screen) != current and _text(screen, "#label-message") == f"{current}: saved"

    asyncio.run(scenario())
    assert len(_rows(folder)) == 3


def test_without_a_model_the_input_starts_empty(prepared_dataset, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    codes = _folder(captcha_files[:3], folder)
    (folder / "broken.png").write_text("not an image\n")
    app = _app(prepared_dataset, tmp_path, folder, tmp_path / "none.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            status = _text(screen, "#label-status")
            assert f"no model at {tmp_path / 'none.pt'}" in status and "starts empty" in status
            assert _input(screen).value == ""
            progress = _text(screen, "#label-progress")
            assert "1 image cannot be read" in progress and "broken.png: not an image" in progress
            assert "answered 0 / 3" in progress
            name = _shown(screen)
            await _burst(pilot, codes[name] + "\n", folder)
            assert _rows(folder)[-1] == f"{name},{codes[name]},"
            assert "accepted unchanged" not in _text(screen, "#label-progress")  # nothing to estimate

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "missing", "no such folder"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no images in"),
    ],
)
def test_a_wrong_folder_is_said(prepared_dataset, tmp_path, make, words):
    folder = make(tmp_path)
    app = _app(prepared_dataset, tmp_path, folder, None)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: words in _text(screen, "#label-status"), what=words)
            assert _input(screen).disabled

    asyncio.run(scenario())


def test_l_asks_for_a_folder_and_opens_the_label_screen(prepared_dataset, tiny_run, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    _folder(captcha_files[:2], folder)
    config = training_config(prepared_dataset, tmp_path / "run")
    app = make_app(config, model=tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            assert app.screen is app.train_screen
            await pilot.press("l")
            assert isinstance(app.screen, PathPrompt)
            app.screen.query_one(Input).value = str(folder)
            await pilot.press("enter")
            screen = await _ready(pilot)
            assert screen.folder == folder and _shown(screen).startswith("cap")
            await pilot.press("escape")
            assert app.screen is app.train_screen

    asyncio.run(scenario())


def test_the_label_command_checks_its_input(captcha_files, tmp_path, capsys):
    folder = tmp_path / "mine"
    _folder(captcha_files[:1], folder)
    for argv, words in (
        (["label", str(tmp_path / "missing")], "no such folder"),
        (["label", str(folder / "cap0000.png")], "not a folder"),
        (["label", str(folder), "--model", str(tmp_path / "none.pt")], "checkpoint not found"),
        (["label", str(folder)], "needs a terminal"),  # pytest's stdin is no terminal
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("captcha-tui: error:") and words in err, (argv, err)
    assert os.listdir(folder) == ["cap0000.png"]


def _footer(app) -> str:
    return screen_text(app).splitlines()[-1]


def _ranked(folder: Path, model: Path) -> list[str]:
    """The folder's images in the order the screen asks about them, with the model's readings."""
    predictor = Predictor.load(model)
    readings = {path.name: predictor.predict_image(path) for path in folder.glob("*.png")}
    return sorted(readings, key=lambda name: (readings[name].confidence, name)), readings


def test_ctrl_u_clears_the_line_as_in_any_text_field(prepared_dataset, tiny_run, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    _folder(captcha_files[:4], folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            box = _input(screen)
            await wait_until(pilot, lambda: "^r unreadable" in _footer(app), what="the footer")
            assert "^z undo" in _footer(app) and "^u" not in _footer(app)
            first = _shown(screen)

            # Slowly: Ctrl+U clears the selected reading, then what was typed; nothing is saved.
            await pilot.press("ctrl+u")
            assert box.value == "" and _shown(screen) == first
            for key in "wx":
                await pilot.press(key)
                await pilot.pause(0.05)
            await pilot.press("ctrl+u")
            assert box.value == "" and _shown(screen) == first
            assert not (folder / "labels.csv").exists()
            for key in "wxyz":
                await pilot.press(key)
                await pilot.pause(0.05)
            await pilot.press("enter")
            assert _rows(folder) == ["path,label,note", f"{first},wxyz,"]

            # In one burst: each Ctrl+U clears what came before it, not the keys typed after it.
            second = _shown(screen)
            await _burst(pilot, ["ctrl+u", *"ab", "ctrl+u", *"kmnp", "\n"], folder)
            assert _rows(folder)[-1] == f"{second},kmnp,"
            assert len(_rows(folder)) == 3  # no image marked unreadable on the way

    asyncio.run(scenario())


def test_ctrl_z_undoes_the_last_answer_and_asks_again(prepared_dataset, tiny_run, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    _folder(captcha_files[:3], folder)
    model = tiny_run / "best.pt"
    (a, b, c), readings = _ranked(folder, model)
    app = _app(prepared_dataset, tmp_path, folder, model)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            box = _input(screen)
            progress = lambda: _text(screen, "#label-progress")  # noqa: E731

            # Slowly, key by key. An answer undone: a row retracts it, and its image is asked again.
            await pilot.press("enter")
            assert _shown(screen) == b
            await pilot.press("ctrl+z")
            assert _rows(folder)[1:] == [f"{a},{readings[a].code},", f"{a},,undone"]
            assert _shown(screen) == a and box.value == readings[a].code
            assert _text(screen, "#label-message") == f"{a}: undone, answer it again"
            assert "answered 0 / 3: 0 labelled" in progress() and "this session: 0 labelled" in progress()
            for key in "wxyz":
                await pilot.press(key)
                await pilot.pause(0.05)
            await pilot.press("enter")
            assert _rows(folder)[-1] == f"{a},wxyz," and _shown(screen) == b  # b was put back in line

            # An unreadable mark undone; a skip undone (nothing was written for it, nothing is).
            await pilot.press("ctrl+r")
            assert _rows(folder)[-1] == f"{b},,unreadable" and _shown(screen) == c
            await pilot.press("ctrl+z")
            assert _rows(folder)[-1] == f"{b},,undone" and _shown(screen) == b
            assert "answered 1 / 3: 1 labelled · 0 unreadable" in progress()
            await pilot.press("ctrl+s")
            assert _shown(screen) == c
            await pilot.press("ctrl+z")
            assert _shown(screen) == b and len(_rows(folder)) == 6
            await pilot.press("enter")
            assert _rows(folder)[-1] == f"{b},{readings[b].code}," and _shown(screen) == c

            # In one burst: the last image answered, then undone at once, before anything else.
            await _burst(pilot, [*"efgh", "\n", "ctrl+z"], folder, rows=2)
            assert _rows(folder)[-2:] == [f"{c},efgh,", f"{c},,undone"]
            await wait_until(pilot, lambda: not box.disabled, what="the input back")
            assert _shown(screen) == c and box.value == readings[c].code
            # And again, answering it the second time in the same burst.
            await _burst(pilot, ["\n", "ctrl+z", *"qrst", "\n"], folder, rows=3)
            assert _rows(folder)[-3:] == [f"{c},{readings[c].code},", f"{c},,undone", f"{c},qrst,"]
            assert "every image" in _text(screen, "#label-status") and box.disabled
            assert "answered 3 / 3: 3 labelled · 0 unreadable" in progress()
            assert "this session: 3 labelled" in progress()

            # Back to the first answer, one undo at a time, then nothing left to undo.
            for _ in range(3):
                await pilot.press("ctrl+z")
            assert _shown(screen) == a and not box.disabled and box.has_focus
            rows = len(_rows(folder))
            await pilot.press("ctrl+z")
            assert _text(screen, "#label-message") == "nothing to undo" and len(_rows(folder)) == rows

    asyncio.run(scenario())
    table = read_label_table(folder / "labels.csv")
    assert [row.note for row in table.rows].count("undone") == 7
    # The last row wins: every image is unlabelled again, and a new session asks about all three.
    assert set(read_label_file(folder / "labels.csv").values()) == {""}
    again = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def relaunch():
        async with again.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert {c.name for c in screen.session.scan.unlabelled} == {a, b, c}
            assert "answered 0 / 3" in _text(screen, "#label-progress")

    asyncio.run(relaunch())


def test_the_two_counters_agree(prepared_dataset, tiny_run, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    _folder(captcha_files[:8], folder)
    # One image marked unreadable in an earlier session, one labelled.
    (folder / "labels.csv").write_text("path,label,note\ncap0000.png,,unreadable\ncap0001.png,abcd,\n")
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert "answered 2 / 8: 1 labelled · 1 unreadable" in _text(screen, "#label-progress")
            await pilot.press("enter", "ctrl+s")
            await _burst(pilot, [*"kmnp", "\n"], folder)
            await pilot.press("ctrl+r", "enter")
            progress = _text(screen, "#label-progress")
            # 3 labels, 1 skip, 1 unreadable: "labelled" means the same in both lines.
            assert "answered 6 / 8: 4 labelled · 2 unreadable" in progress
            assert "this session: 3 labelled" in progress and "1 unreadable · 1 skipped" in progress

    asyncio.run(scenario())


def test_escape_leaves_the_app_when_the_label_command_started_it(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    folder = tmp_path / "mine"
    _folder(captcha_files[:2], folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            await wait_until(pilot, lambda: "esc quit" in _footer(app), what="the footer")
            assert "esc back" not in _footer(app)
            await pilot.press("escape")
            await wait_for_exit(app)
            assert app.screen is screen  # never the dashboard

    asyncio.run(scenario())
    assert app.return_code == 0


def test_the_label_command_offers_no_dashboard_keys_once_every_image_is_answered(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    """`captcha-tui label DIR` with a dataset beside it: after the last answer, s (the first letter of the
    next code typed out of habit) started a training run nobody saw, into runs/default-2."""
    folder = tmp_path / "mine"
    _folder(captcha_files[:2], folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            for _ in range(2):
                screen.action_answer()
                await pilot.pause(0.1)
            await wait_until(pilot, lambda: screen.session.current is None, what="every image answered")
            await pilot.pause(0.2)
            for key in "sdrpl":
                await pilot.press(key)
            await pilot.pause(0.3)
            footer = _footer(app)
            assert not app.training and app.trainer is None, footer
            for shown in ("s start", "d device", "l label", "r resume"):
                assert shown not in footer, footer
            assert "esc quit" in footer and app.screen is screen

    asyncio.run(scenario())
    assert not (tmp_path / "run").exists() and not (tmp_path / "run-2").exists()


def test_a_model_that_breaks_off_reading_leaves_no_image_unasked(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch
):
    """The model fails in its second chunk (onnxruntime, memory…): the screen says so, and the images it
    had not read are still asked, unread, instead of a ranking line that never ends."""
    folder = tmp_path / "mine"
    _folder(captcha_files[:80], folder)
    first_chunk_passes = FIRST_CHUNK // MODEL_BATCH
    passes = []
    read = Predictor.predict_arrays

    def failing_second_time(self, arrays):
        passes.append(len(arrays))
        if len(passes) == first_chunk_passes + 1:
            raise RuntimeError("out of memory")
        return read(self, arrays)

    monkeypatch.setattr(Predictor, "predict_arrays", failing_second_time)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert "reading stopped (out of memory): the rest are asked unread" in _text(
                screen, "#label-status"
            )
            session = screen.session
            assert session.scored == 80 and len(session.queue.items()) + 1 == 80  # and the one on show
            unread = [c for c in session.queue.items() if c.prediction is None]
            assert len(unread) == 80 - FIRST_CHUNK  # unscored after every scored one
            assert session.current.prediction is not None

    asyncio.run(scenario())
