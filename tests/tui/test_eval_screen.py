"""The eval screen with a real (tiny, one-epoch) checkpoint and real generated captchas."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading

import pytest
from textual.widgets import DataTable, Input, Static

from captcha_tui.core.decoding import ReadOptions
from captcha_tui.core.predictor import PathResult, Predictor
from captcha_tui.tui.messages import PredictionsReady
from captcha_tui.tui.screens.eval import MAX_ROWS_PER_REQUEST, READ_CHUNK, EvalScreen
from captcha_tui.tui.widgets.captcha_image import CaptchaImage
from captcha_tui.tui.widgets.code_view import CodeView

from .helpers import SIZE, make_app, screen_text, training_config, wait_for_exit, wait_until

# textual-image 0.12 still calls Pillow's deprecated Image.getdata.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")


def _text(screen: EvalScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def _eval_app(prepared_dataset, model, tmp_path):
    """The app opened on the eval screen with ``model``, as `captcha-tui eval` opens it."""
    return make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="eval", model=model)


async def _model_loaded(pilot, screen: EvalScreen) -> None:
    await wait_until(pilot, lambda: "model tiny" in _text(screen, "#model-info"), what="the model")


async def _read(pilot, screen: EvalScreen, request: str) -> str:
    """Type a request into the path prompt, press Enter, return the inline message once it answers."""
    box = screen.query_one("#image-path", Input)
    box.focus()
    box.value = request
    await pilot.press("enter")
    await wait_until(pilot, lambda: not _text(screen, "#eval-message").startswith("reading"), what=request)
    return _text(screen, "#eval-message")


def test_predicts_files_and_folders_and_reports_bad_input(
    prepared_dataset, tiny_run, captcha_dir, captcha_files, tmp_path
):
    best = tiny_run / "best.pt"
    image = captcha_files[0]
    expected = Predictor.load(best).predict_image(image).code
    empty = tmp_path / "empty"
    empty.mkdir()
    text_file = tmp_path / "00001-abcd.png"
    text_file.write_text("this is not an image\n")
    truncated = tmp_path / "00002-abcd.png"
    truncated.write_bytes(image.read_bytes()[:120])
    app = _eval_app(prepared_dataset, best, tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            assert app.screen is screen
            await _model_loaded(pilot, screen)

            message = await _read(pilot, screen, str(image))
            assert message == f"read {expected} from {image.name}"
            assert screen.query_one(CodeView).code == expected
            assert f"│ {expected[0]} │" in screen_text(app)  # the big boxed characters
            assert screen.query_one(DataTable).row_count == 1

            message = await _read(pilot, screen, str(captcha_dir))
            assert f"read {len(captcha_files):,} images" in message and "accuracy" in message
            assert screen.query_one(DataTable).row_count == 1 + len(captcha_files)

            bad_inputs = {
                str(tmp_path / "missing.png"): "no such file or folder",
                str(empty): "no images in this folder",
                str(text_file): "not an image",
                str(truncated): "truncated",
            }
            for request, reason in bad_inputs.items():
                message = await _read(pilot, screen, request)
                assert reason in message, (request, message)
                assert screen.query_one("#eval-message").has_class("-error")
            assert screen.query_one(DataTable).row_count == 1 + len(captcha_files)

            message = await _read(pilot, screen, str(captcha_files[1]))  # still works
            assert message.startswith("read ") and screen.query_one(DataTable).row_count == 2 + len(
                captcha_files
            )
            assert not screen.query_one("#eval-message").has_class("-error")

    asyncio.run(scenario())


def test_a_missing_or_corrupt_checkpoint_is_reported_inline(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((tiny_run / "best.pt").read_bytes()[:500])
    good = tmp_path / "good.pt"
    shutil.copy(tiny_run / "best.pt", good)
    # Opened from the dashboard (e): Escape goes back to it, and e comes back to the same screen.
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), model=tmp_path / "none.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("e")
            screen = app.eval_screen
            info = lambda: _text(screen, "#model-info")  # noqa: E731
            await wait_until(pilot, lambda: "checkpoint not found" in info(), what="the missing checkpoint")
            message = await _read(pilot, screen, str(captcha_files[0]))
            assert "no model to read with" in message

            await pilot.press("escape")  # leave the path prompt…
            assert app.screen is app.train_screen
            await pilot.press("e")  # …and come back: the screen kept its state
            assert app.screen is screen
            screen.query_one(DataTable).focus()
            await pilot.press("m")  # m jumps to the checkpoint box
            checkpoint = screen.query_one("#checkpoint", Input)
            assert checkpoint.has_focus
            checkpoint.value = str(corrupt)
            await pilot.press("enter")
            await wait_until(pilot, lambda: "corrupt" in info(), what="the corrupt checkpoint")

            checkpoint.focus()
            checkpoint.value = str(good)
            await pilot.press("enter")
            await wait_until(pilot, lambda: "model tiny" in info(), what="the good checkpoint")
            assert "validation 0.0% (reads little: --model base may read better)" in info()
            message = await _read(pilot, screen, str(captcha_files[0]))
            assert message.startswith("read ")

            # Switching to a damaged checkpoint keeps the model read with until then, and says so.
            checkpoint.focus()
            checkpoint.value = str(corrupt)
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: "cannot use" in _text(screen, "#eval-message"), what="the refused switch"
            )
            said = _text(screen, "#eval-message")
            assert f"cannot use {corrupt}" in said and f"still reading with {good}" in said, said
            assert "model tiny" in info() and checkpoint.value == str(good) and screen.checkpoint == good
            message = await _read(pilot, screen, str(captcha_files[0]))
            assert message.startswith("read ")

            # A checkpoint rewritten on disk (as training does to best.pt) is loaded again.
            good.write_bytes(corrupt.read_bytes())
            later = good.stat().st_mtime + 5
            os.utime(good, (later, later))
            message = await _read(pilot, screen, str(captcha_files[0]))
            assert "no model to read with" in message and "corrupt" in message

    asyncio.run(scenario())


def test_tab_completes_paths(prepared_dataset, tiny_run, captcha_dir, tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    shutil.copy(next(captcha_dir.glob("*.png")), folder / "00000-abcd.png")
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            box = app.eval_screen.query_one("#image-path", Input)
            box.focus()
            box.value = f"{folder}/00"
            await pilot.press("0", "tab")
            assert box.value == f"{folder}/00000-abcd.png"

    asyncio.run(scenario())


def test_a_path_typed_after_a_read_replaces_the_one_read(prepared_dataset, tiny_run, captcha_files, tmp_path):
    first, second = captcha_files[0], captcha_files[1]
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            message = lambda: _text(screen, "#eval-message")  # noqa: E731
            await _model_loaded(pilot, screen)
            box = screen.query_one("#image-path", Input)
            box.focus()
            for key in str(first):  # typed a key at a time, then Enter
                await pilot.press(key)
                await pilot.pause(0.01)
            await pilot.press("enter")
            await wait_until(pilot, lambda: message().endswith(f"from {first.name}"), what="the first read")
            assert box.value == str(first)  # kept on show…

            await pilot.press(*str(second), "enter")  # …and a path pasted in one burst replaces it
            await wait_until(pilot, lambda: message().endswith(f"from {second.name}"), what="the second read")
            assert box.value == str(second) and not screen.query_one("#eval-message").has_class("-error")

            await pilot.press("end", "x")  # an arrow key or End drops the selection: typing edits the path
            assert box.value == f"{second}x"

    asyncio.run(scenario())


def test_a_request_that_reads_nothing_clears_the_previous_result(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    image = captcha_files[0]
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            await _model_loaded(pilot, screen)
            await _read(pilot, screen, str(image))
            code_view, picture = screen.query_one(CodeView), screen.query_one(CaptchaImage)
            assert code_view.code is not None and picture.path == image
            assert "╭───╮" in screen_text(app) and "label " in str(code_view.content)

            message = await _read(pilot, screen, str(tmp_path / "missing.png"))
            assert "no such file or folder" in message
            assert code_view.code is None and picture.path is None
            assert "╭───╮" not in screen_text(app)  # the old code's boxed characters are gone…
            assert str(code_view.content).startswith("nothing read")  # …and so are its label and mark
            assert not screen.query_one("#prediction-row").has_class("-stale")
            assert screen.query_one(DataTable).row_count == 1  # the history keeps the good read

    asyncio.run(scenario())


def test_reads_with_an_exported_onnx_model(prepared_dataset, tiny_run, captcha_files, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from captcha_tui.core.export import export_onnx

    model = export_onnx(tiny_run / "best.pt", tmp_path / "best.onnx")
    expected = Predictor.load(tiny_run / "best.pt").predict_image(captcha_files[0]).code
    app = _eval_app(prepared_dataset, model, tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            await _model_loaded(pilot, screen)
            assert "best.onnx" in _text(screen, "#model-info")
            message = await _read(pilot, screen, str(captcha_files[0]))
            assert message == f"read {expected} from {captcha_files[0].name}"

    asyncio.run(scenario())


def test_read_only_and_length_constrain_what_is_read(prepared_dataset, tiny_run, captcha_files, tmp_path):
    image = captcha_files[0]
    digits = "23456789"
    predictor = Predictor.load(tiny_run / "best.pt")
    expected = predictor.predict(image, ReadOptions(charset=digits)).code
    assert set(expected) <= set(digits) and len(expected) == 4
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            await _model_loaded(pilot, screen)
            await _read(pilot, screen, str(image))
            unconstrained = screen.query_one(CodeView).code

            # Typed key by key into the field; Enter there reads the last request again with it.
            screen.query_one("#read-charset", Input).focus()
            for key in digits:
                await pilot.press(key)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.query_one(CodeView).code == expected, what="digits only")
            assert _text(screen, "#eval-message") == f"read {expected} from {image.name}"
            assert screen.focused is screen.query_one("#image-path", Input)
            assert unconstrained is not None

            # A length this per-position model cannot read: said in one line, nothing read.
            screen.query_one("#read-length", Input).focus()
            await pilot.press("5", "enter")
            await wait_until(
                pilot, lambda: screen.query_one(CodeView).code is None, what="the refused length"
            )
            message = _text(screen, "#eval-message")
            assert "exactly 4 characters" in message and screen.query_one("#eval-message").has_class("-error")

            screen.query_one("#read-length", Input).value = "4"
            await _read(pilot, screen, str(image))
            assert screen.query_one(CodeView).code == expected

    asyncio.run(scenario())


def _footer(app) -> str:
    return screen_text(app).splitlines()[-1]


def test_a_folder_read_shows_progress_and_escape_stops_it_keeping_the_rows_read(
    prepared_dataset, tiny_run, captcha_dir, captcha_files, tmp_path, monkeypatch
):
    assert len(captcha_files) > 2 * READ_CHUNK  # the read takes several chunks
    # The real reader, held after its first chunk until the test has seen the progress and pressed Escape:
    # the read is "partway" whatever this machine's speed, with no sleep to race it.
    gate = threading.Event()
    real_chunks = Predictor.read_chunks

    def held_after_the_first_chunk(self, *args, **kwargs):
        for index, chunk in enumerate(real_chunks(self, *args, **kwargs)):
            if index == 1:
                assert gate.wait(60), "the test never let the read go on"
            yield chunk

    monkeypatch.setattr(Predictor, "read_chunks", held_after_the_first_chunk)
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            message = lambda: _text(screen, "#eval-message")  # noqa: E731
            await _model_loaded(pilot, screen)
            # `captcha-tui eval` opened it: no dashboard to go back to (the footer is drawn after the model)
            await wait_until(pilot, lambda: "esc quit" in _footer(app), what="the footer")
            box = screen.query_one("#image-path", Input)
            box.value = str(captcha_dir)
            await pilot.press("enter")

            # Before the end: a counter of the files read, with the accuracy so far.
            progress = f" {READ_CHUNK} of {len(captcha_files)} images · accuracy so far "
            await wait_until(pilot, lambda: progress in message(), what="the progress line")
            assert message().startswith(f"reading {captcha_dir}… ━")
            assert "esc stop reading" in _footer(app) and "esc quit" not in _footer(app)

            await pilot.press("escape")  # stops the read, and stays on the screen
            assert app.screen is screen and message() == "stopping…"
            gate.set()
            stopped = f"stopped after {2 * READ_CHUNK} of {len(captcha_files)} images from {captcha_dir}"
            await wait_until(pilot, lambda: message().startswith(stopped), what="the stopped read")
            assert " · accuracy " in message() and "(whole code)" in message()
            # The chunk that was being read when Escape came is kept with the one before it.
            assert screen.query_one(DataTable).row_count == 2 * READ_CHUNK == len(screen.results)
            assert [r.path for r in screen.results] == captcha_files[: 2 * READ_CHUNK]
            await wait_until(pilot, lambda: "esc quit" in _footer(app), what="the footer's Escape")

            await pilot.press("escape")  # nothing being read: Escape leaves, as the label command's does
            await wait_for_exit(app)
            assert app.screen is screen  # never the dashboard

    asyncio.run(scenario())
    assert app.return_code == 0


def test_counts_and_accuracy_have_thousands_separators(prepared_dataset, tiny_run, captcha_files, tmp_path):
    # Real predictions of a few files, given to the screen as a read of 1,200 (reading that many for real
    # would only make the test slower): what it says about them is what is tested.
    predictor = Predictor.load(tiny_run / "best.pt")
    read = predictor.predict_paths(captcha_files[:12])
    results = [PathResult(r.path, r.prediction, label=r.prediction.code) for r in read] * 100
    results[0] = PathResult(read[0].path, read[0].prediction, label="????")  # one wrong
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            screen.post_message(PredictionsReady("many", results, []))
            await wait_until(
                pilot, lambda: _text(screen, "#eval-message").startswith("read "), what="the answer"
            )
            assert _text(screen, "#eval-message") == (
                "read 1,200 images from many · accuracy 1,199/1,200 = 99.9% (whole code)"
                f" · table shows the first {MAX_ROWS_PER_REQUEST:,}"
            )

    asyncio.run(scenario())


def test_the_rows_of_a_new_request_are_scrolled_into_view(
    prepared_dataset, tiny_run, captcha_dir, captcha_files, tmp_path
):
    glob = f"{captcha_dir}/0001*.png"
    matched = [path for path in captcha_files if path.name.startswith("0001")]
    assert len(matched) == 10
    app = _eval_app(prepared_dataset, tiny_run / "best.pt", tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            await _model_loaded(pilot, screen)
            await _read(pilot, screen, str(captcha_dir))  # a full table first: the new rows go below it
            table = screen.query_one(DataTable)
            assert table.row_count == len(captcha_files) > table.size.height

            message = await _read(pilot, screen, glob)
            assert message.startswith(f"read 10 images from {glob}")
            await pilot.pause()
            shown = screen_text(app)
            assert [path.name for path in matched if path.name in shown] == [path.name for path in matched]
            assert table.cursor_row == len(captcha_files)  # on the request's first row

    asyncio.run(scenario())


def test_the_eval_commands_own_options_reach_the_screen(tiny_run, captcha_files, monkeypatch):
    """`captcha-tui eval --model M --charset C --length N --device D` with no paths: the screen opens with
    the constraints typed in and reads on that device (they were dropped before)."""
    from captcha_tui import cli
    from captcha_tui.tui.app import CaptchaApp

    image = captcha_files[0]
    digits = "23456789"
    expected = Predictor.load(tiny_run / "best.pt").predict(image, ReadOptions(digits, 4)).code
    args = cli.build_parser().parse_args(
        [
            "eval",
            "--model",
            str(tiny_run / "best.pt"),
            "--charset",
            digits,
            "--length",
            "4",
            "--device",
            "cpu",
        ]
    )
    seen = {}

    async def read_once(pilot) -> None:
        screen = pilot.app.eval_screen
        await _model_loaded(pilot, screen)
        seen["inputs"] = (
            screen.query_one("#read-charset", Input).value,
            screen.query_one("#read-length", Input).value,
        )
        seen["device"] = screen.device
        await _read(pilot, screen, str(image))
        seen["code"] = screen.query_one(CodeView).code
        await pilot.press("escape")

    run = CaptchaApp.run
    monkeypatch.setattr(
        CaptchaApp, "run", lambda app: run(app, headless=True, size=SIZE, auto_pilot=read_once)
    )
    assert cli._run_app(args, None, autostart=False, screen="eval") == 0
    assert seen == {"inputs": (digits, "4"), "device": "cpu", "code": expected}
