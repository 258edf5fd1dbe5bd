"""The label screen's model learns while the user labels (core.learning), driven with Pilot: real generated
captchas, a real tiny checkpoint and real (short) fine-tunes of it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import Static

from captcha_tui.cli import main
from captcha_tui.core import learning
from captcha_tui.core.labels import label_from_name
from captcha_tui.core.learning import LearnSettings
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.train import Trainer
from captcha_tui.tui.screens.label import LabelScreen
from captcha_tui.tui.widgets.captcha_image import CaptchaImage

from .helpers import SIZE, make_app, training_config, wait_for_exit, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")

EARLIER = 10  # images labelled in an earlier session (the least a fine-tune starts from)
IMAGES = 30
# Small and short: the tiny model, a few generated captchas, the folder's images as the unlabelled pool.
# A tiny model's round is kept whether or not it reads more of the two held-out answers (the test of that
# judgement fixes its outcome).
QUICK = dict(time_limit_s=2.0, generated=20, unlabelled_limit=50, batch_size=16, only_if_better=False)


def _folder(files: list[Path], folder: Path) -> dict[str, str]:
    """``IMAGES`` captchas under names without their codes, the first ``EARLIER`` labelled in labels.csv
    as an earlier session left them; returns {name: true code}."""
    folder.mkdir(parents=True)
    codes = {}
    for i, source in enumerate(files[:IMAGES]):
        shutil.copyfile(source, folder / f"cap{i:04d}.png")
        codes[f"cap{i:04d}.png"] = label_from_name(source.name)
    rows = [f"{name},{code}," for name, code in list(codes.items())[:EARLIER]]
    (folder / "labels.csv").write_text("path,label,note\n" + "\n".join(rows) + "\n")
    return codes


def _app(prepared_dataset, tmp_path, folder: Path, model: Path, **learn):
    config = training_config(prepared_dataset, tmp_path / "run")
    settings = LearnSettings(**{"every": 0, **QUICK, **learn})
    return make_app(
        config,
        start_screen="label",
        model=model,
        label_dir=folder,
        image_renderer="halfcell",
        label_learn=settings,
    )


async def _ready(pilot) -> LabelScreen:
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, LabelScreen)
            and app.screen.session is not None
            and not app.screen.session.scoring
            and app.screen.predictor is not None
        ),
        what="the images to be ranked",
    )
    return app.screen


def _text(screen: LabelScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def _rows(folder: Path) -> list[str]:
    return (folder / "labels.csv").read_text(encoding="utf-8").splitlines()


def _user_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


async def _enter(pilot, folder: Path, times: int = 1) -> None:
    """Accept the reading shown ``times`` times, as a terminal sends Enter (``pilot.press`` would wait for
    the process to idle, which it never does while a fine-tune computes); wait for the rows."""
    screen = pilot.app.screen
    for _ in range(times):
        before = len(_rows(folder))
        await pilot.pause(0.05)
        screen.action_answer()
        await wait_until(pilot, lambda n=before + 1: len(_rows(folder)) == n, what="the answer's row")


async def _key(pilot, key: str, character: str) -> None:
    from textual import events

    pilot.app._driver.send_message(events.Key(key, character))
    await pilot.pause(0.1)


async def _until_learnt(pilot, screen: LabelScreen, reader: int = 1) -> None:
    await wait_until(
        pilot,
        lambda: screen.reader == reader and not screen.learning and screen._rerank_progress is None,
        timeout=120,
        what="the fine-tune and the re-ranking",
    )


def test_ctrl_t_learns_while_answers_keep_being_saved_then_the_queue_is_ranked_by_the_new_model(
    prepared_dataset, tiny_run, captcha_files, tmp_path
):
    folder = tmp_path / "mine"
    codes = _folder(captcha_files, folder)
    files_before = _user_files(folder)
    earlier = _rows(folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt", time_limit_s=4.0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert "reading with" in _text(screen, "#label-learn")
            assert "Ctrl+T" in _text(screen, "#label-learn")
            await _key(pilot, "ctrl+t", "\x14")
            # The key is handled once the app gets to it: on a busy machine that can take over 0.1 s.
            await wait_until(pilot, lambda: screen.learning, timeout=30, what="Ctrl+T to start a fine-tune")
            # Answers go on being saved, one row each, while the fine-tune runs.
            answered = []
            while screen.learning and len(answered) < 4:
                answered.append(screen.query_one(CaptchaImage).path.name)
                await _enter(pilot, folder)
            assert answered and _rows(folder)[: len(earlier)] == earlier
            assert [row.split(",")[0] for row in _rows(folder)[len(earlier) :]] == answered
            await _until_learnt(pilot, screen)

            # The header names the new model; it reads from its own run folder in the hidden work folder.
            learn_line = _text(screen, "#label-learn")
            assert f"reading with the model fine-tuned on {EARLIER}" in learn_line, learn_line
            assert "learnt from" in learn_line
            best = screen.checkpoint
            assert best.name == "best.pt" and folder / ".captcha-tui" / "learn" in best.parents
            assert "round-001" in _text(screen, "#label-status")

            # Every image waiting was read again by the new model, and the queue follows its confidence.
            new = Predictor.load(best)
            waiting = screen.session.queue.items()
            assert waiting
            for candidate in waiting:
                assert candidate.prediction.code == new.predict_image(candidate.path).code
            least = min(waiting, key=lambda c: (new.predict_image(c.path).confidence, c.order))
            await _enter(pilot, folder)
            assert screen.query_one(CaptchaImage).path.name == least.name
            # The agreement line now counts answers to the new model's readings.
            await _enter(pilot, folder)
            assert "agreed with" in _text(screen, "#label-learn") and "of your last 1 answers" in _text(
                screen, "#label-learn"
            )

    asyncio.run(scenario())
    # The user's images and labels are as they were, but for the appended rows.
    assert _user_files(folder) == files_before
    rows = _rows(folder)
    assert rows[: len(earlier)] == earlier
    names = [row.split(",")[0] for row in rows[len(earlier) :]]
    assert len(set(names)) == len(names) and set(names) <= set(codes)


def test_every_n_answers_starts_a_fine_tune_on_its_own(prepared_dataset, tiny_run, captcha_files, tmp_path):
    folder = tmp_path / "mine"
    _folder(captcha_files, folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt", every=3)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            assert "every 3 answers (next after 3 more)" in _text(screen, "#label-learn")
            await _enter(pilot, folder, 2)
            assert not screen.learning and "next after 1 more" in _text(screen, "#label-learn")
            await _enter(pilot, folder)
            assert screen.learning
            await _until_learnt(pilot, screen)
            assert f"fine-tuned on {EARLIER + 3} answers" in _text(screen, "#label-learn")

    asyncio.run(scenario())
    # Packed so that each answer keeps its split in every later round (each fine-tunes the one before).
    (manifest,) = folder.rglob("manifest.json")
    assert json.loads(manifest.read_text())["split"] == "by content"


def test_a_round_that_reads_fewer_held_out_answers_is_not_kept(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch
):
    """The judgement is real code on real models (tests/core/test_learning.py); here it is fixed to
    "worse", as a fine-tune of the base on ten answers of its own style was: the screen goes on with the
    model it had, says why, and the round's folder goes."""
    folder = tmp_path / "mine"
    _folder(captcha_files, folder)
    judged = []

    def worse(before, after, dataset, device="cpu"):
        judged.append((Path(before), Path(after)))
        return learning.Comparison(2, (2, 8), (0, 3), 8)

    monkeypatch.setattr(learning, "compare_on_held_out", worse)
    model = tiny_run / "best.pt"
    app = _app(prepared_dataset, tmp_path, folder, model, only_if_better=True, every=50)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            shown = {c.name: c.prediction.code for c in screen.session.queue.items()}
            await _key(pilot, "ctrl+t", "\x14")
            await wait_until(pilot, lambda: screen.learning, timeout=30, what="Ctrl+T to start a fine-tune")
            await wait_until(pilot, lambda: not screen.learning, timeout=120, what="the round to end")
            await pilot.pause(0.2)
            line = _text(screen, "#label-learn")
            assert (
                "the fine-tuned model was not kept: 0 of 2 held-out answers read (the model before: 2)"
                in line
            )
            assert "it learns again after 50 more answers" in line and "learning failed" not in line
            assert screen.reader == 0 and screen.checkpoint == model  # still the model it had
            assert {c.name: c.prediction.code for c in screen.session.queue.items()}.items() <= shown.items()

    asyncio.run(scenario())
    ((before, after),) = judged
    assert before == model and after.name == "best.pt"
    assert not after.parent.exists()  # the round it did not keep is deleted


class Boom(Trainer):
    def run(self):
        raise RuntimeError("boom in the trainer")


class CorruptsItsCheckpoint(Trainer):
    def run(self):
        result = super().run()
        best = Path(self.config.out) / "best.pt"
        if best.exists():
            best.write_bytes(b"not a checkpoint")
        return result


@pytest.mark.parametrize(
    ("trainer", "said"),
    [(Boom, "RuntimeError: boom in the trainer"), (CorruptsItsCheckpoint, "cannot read its model")],
    ids=["the trainer raises", "a corrupt checkpoint"],
)
def test_a_crash_in_the_worker_loses_no_answer_and_is_said(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch, trainer, said
):
    monkeypatch.setattr(learning, "Trainer", trainer)
    folder = tmp_path / "mine"
    _folder(captcha_files, folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            first = screen.checkpoint
            screen.action_learn()
            answered = []
            while screen.learning and len(answered) < 4:
                answered.append(screen.query_one(CaptchaImage).path.name)
                await _enter(pilot, folder)
            await wait_until(
                pilot, lambda: "learning failed" in _text(screen, "#label-learn"), what="the failure"
            )
            line = _text(screen, "#label-learn")
            assert said in line and "still reading with" in line, line
            assert screen.reader == 0 and screen.checkpoint == first and screen.predictor is not None
            # The screen works on with the model it had: the reading is typed in, Enter saves it.
            box = screen.query_one("#label-input")
            assert box.value == screen.session.current.reading != ""
            answered.append(screen.session.current.name)
            await _enter(pilot, folder)
            assert [r.split(",")[0] for r in _rows(folder)[EARLIER + 1 :]] == answered

    asyncio.run(scenario())


def test_quitting_while_it_trains_stops_the_trainer(
    prepared_dataset, tiny_run, captcha_files, tmp_path, monkeypatch
):
    outcomes = []

    class Recording(Trainer):
        def run(self):
            outcomes.append(super().run())
            return outcomes[-1]

    monkeypatch.setattr(learning, "Trainer", Recording)
    folder = tmp_path / "mine"
    _folder(captcha_files, folder)
    app = _app(prepared_dataset, tmp_path, folder, tiny_run / "best.pt", time_limit_s=600.0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _ready(pilot)
            screen.action_learn()
            await wait_until(
                pilot, lambda: "epoch" in _text(screen, "#label-learn"), what="training to start"
            )
            await _key(pilot, "escape", "\x1b")
            await wait_for_exit(app)

    asyncio.run(scenario())  # returns once the worker's thread has ended: asyncio.run waits for it
    assert [o.reason for o in outcomes] == ["stopped"]
    assert (folder / "labels.csv").read_text().count("\n") == EARLIER + 1


def test_the_label_command_checks_its_learning_options(captcha_files, tmp_path, capsys):
    folder = tmp_path / "mine"
    _folder(captcha_files, folder)
    for argv, words in (
        (["--learn-every", "-1"], "--learn-every takes 0 (off) or more answers"),
        (["--learn-time-limit", "0"], "--learn-time-limit takes a positive number of seconds"),
    ):
        assert main(["label", str(folder), *argv]) == 2
        err = capsys.readouterr().err
        assert words in err, (argv, err)
