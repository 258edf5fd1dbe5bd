"""What the terminal says once the dashboard exits: how its run ended and where the run's files are."""

from __future__ import annotations

from captcha_tui import cli
from captcha_tui.core import events as ev
from captcha_tui.core.train import Trainer
from captcha_tui.tui.app import CaptchaApp
from captcha_tui.tui.widgets.batch_panel import BatchPanel
from captcha_tui.words import FINISH_REASONS

from .helpers import SIZE, send_keys, training_config, wait_until


def test_quitting_a_run_from_the_dashboard_prints_its_outcome(
    prepared_dataset, tmp_path, capsys, monkeypatch, one_thread
):
    """``captcha-tui train`` on a terminal: the app runs headless here, q is pressed during training."""
    run_dir = tmp_path / "run"
    args = cli.build_parser().parse_args(
        ["train", "--data", str(prepared_dataset), "--out", str(run_dir), "--preset", "tiny"]
        + ["--epochs", "50", "--batch-size", "10", "--device", "cpu", "--threads", "1"]
    )

    async def quit_while_training(pilot) -> None:
        panel = pilot.app.train_screen.query_one(BatchPanel)
        await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
        await send_keys(pilot, "q")

    run = CaptchaApp.run
    monkeypatch.setattr(
        CaptchaApp, "run", lambda app: run(app, headless=True, size=SIZE, auto_pilot=quit_while_training)
    )
    code = cli._run_app(args, cli._train_config(args), autostart=True)

    out = capsys.readouterr().out
    assert code == 0
    assert f"finished: {FINISH_REASONS['stopped']} after" in out  # the headless printer's words
    assert f"resume with: captcha-tui train --resume --out {run_dir} (from {run_dir / 'last.pt'})" in out
    assert f"run folder {run_dir}: " in out and "last.pt" in out and "train.log" in out


def test_a_failed_run_is_reported_and_a_session_without_training_prints_nothing(prepared_dataset, tmp_path):
    config = training_config(prepared_dataset, tmp_path / "run", device="cuda:7")
    failed = Trainer(config).run()
    assert isinstance(failed, ev.Failed)
    lines = cli.outcome_lines(failed, tmp_path / "run")
    assert lines[0].startswith("error: cuda:7 was asked for")
    assert f"details in {failed.log_path}" in lines[0]
    assert cli.outcome_lines(None, tmp_path / "run") == []
