"""One run on several processes from one command (``train --device cpu:2``: the launcher of launch.py,
gloo on the CPU): what it trains and writes, what a process dying and Ctrl+C leave, and the device lists
refused before anything starts. The tiny preset, one thread a process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from captcha_tui import cli
from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.dataset import load_dataset
from captcha_tui.core.devices import parse_device_list
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.train import TrainConfig, Trainer
from captcha_tui.core.train import launch as launch_module
from captcha_tui.core.train.config import ConfigError
from captcha_tui.core.train.distributed import process_device
from captcha_tui.core.train.launch import LaunchedRun, Outcome, ToQueue, _keep_output_of_failure
from tests.helpers import assert_rank_0_wrote_one_run, history_rows

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("launch_driver.py")
RUN_TIMEOUT = 180  # seconds for a whole two-process run, on a busy two-core machine
KILL_BOUND = 120  # seconds within which a run whose process died must have ended
LAUNCHER_KILL_TIMEOUT = 30  # seconds torch's launcher waits for its processes to end after a signal


@pytest.fixture
def launch_env(cli_env) -> dict[str, str]:
    return dict(cli_env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), cli_env.get("PYTHONPATH")])))


def _train_command(args: list[str]) -> list[str]:
    base = [sys.executable, str(DRIVER), "train", "--headless", "--device", "cpu:2", "--preset", "tiny"]
    return base + ["--threads", "1", *args]


def _train(args: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        _train_command(args), env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_one_command_trains_one_run_on_two_processes(prepared_dataset, tmp_path, launch_env):
    run_dir = tmp_path / "run"
    result = _train(["--epochs", "2", "--data", str(prepared_dataset), "--out", str(run_dir)], launch_env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "on 2 processes (gloo, cpu), batch 100 a process (200 a step)" in out
    assert "error" not in result.stderr.lower(), result.stderr  # and the launcher says nothing
    assert_rank_0_wrote_one_run(run_dir, out)  # rank 0 alone prints and writes
    best = load_checkpoint(run_dir / "best.pt")
    assert not any(key.startswith("module.") for key in best.model)
    images = load_dataset(prepared_dataset).images["test"][:3]
    assert len(Predictor.load(run_dir / "best.pt").predict_arrays(images)) == 3  # on this one process


def test_a_process_killed_mid_epoch_ends_the_run_in_one_line_resumably(
    prepared_dataset, tmp_path, launch_env
):
    run_dir = tmp_path / "run"
    args = ["--epochs", "3", "--batch-size", "40", "--data", str(prepared_dataset), "--out", str(run_dir)]
    started = time.monotonic()
    result = _train(args, dict(launch_env, KILL_AT="1:2:2"), timeout=KILL_BOUND)
    assert time.monotonic() - started < KILL_BOUND
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("captcha-tui: error:")]
    # The launcher's line names the process that died; rank 0 may also say its peer went away.
    assert any(
        "process 1 of 2 (cpu) was killed by SIGKILL; the other processes were stopped" in line
        for line in errors
    ), result.stderr
    # No launcher log, table or traceback: the run's own error lines only.
    assert all(line.startswith("captcha-tui: error:") for line in result.stderr.splitlines()), result.stderr

    last = load_checkpoint(run_dir / "last.pt")
    assert last.trainer["epoch"] >= 1  # epoch 1 at least; rank 0 may have saved epoch 2's first step too
    events: list = []
    config = TrainConfig(
        data=prepared_dataset, out=run_dir, preset="tiny", epochs=3, device="cpu", threads=1, resume=True
    )
    assert isinstance(Trainer(config, events.append).run(), ev.Finished)
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2, 3]


def test_ctrl_c_stops_every_process_with_a_resumable_last_pt(prepared_dataset, tmp_path, launch_env):
    run_dir = tmp_path / "run"
    args = ["--epochs", "50", "--batch-size", "10", "--data", str(prepared_dataset), "--out", str(run_dir)]
    process = subprocess.Popen(
        _train_command(args),
        env=launch_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        for line in process.stdout:
            if line.startswith("epoch 1:"):
                break
        os.kill(process.pid, signal.SIGINT)  # to the launching command only: it passes it on
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=KILL_BOUND)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, out + err
    # Well inside the launcher's 30 s before it kills processes that have not ended (what held Ctrl+C up
    # for half a minute when each process waited for its return value to be collected).
    assert took < LAUNCHER_KILL_TIMEOUT - 10, took
    assert re.search(r"^finished: .*stop", out, re.MULTILINE), out
    last = load_checkpoint(run_dir / "last.pt")
    assert last.trainer["epoch"] >= 1
    assert last.trainer["epoch"] < 50
    assert "Traceback" not in err, err
    # Nor the launcher's log lines ("W1207 12:00:00 … Received 2 death signal, shutting down workers").
    assert not re.search(r"^[DIWE]\d{4} ", err, re.MULTILINE), err


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("cuda:0,cuda:0", "lists cuda:0 more than once"),
        ("cpu,cuda:0", "cpu cannot be one item of a list"),
        ("cuda:0,,cuda:1", "has an empty item"),
    ],
)
def test_a_bad_device_list_is_refused_before_anything_starts(
    device, words, prepared_dataset, tmp_path, capsys
):
    code = cli.main(
        [
            "train",
            "--headless",
            "--device",
            device,
            "--data",
            str(prepared_dataset),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_every_gpu_without_cuda_is_refused_with_what_to_do(prepared_dataset, tmp_path, capsys):
    code = cli.main(
        [
            "train",
            "--headless",
            "--device",
            "cuda:all",
            "--data",
            str(prepared_dataset),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert "cuda:all was asked for" in capsys.readouterr().err


def test_each_process_takes_its_item_of_the_list(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert process_device("cpu:2", 1) == torch.device("cpu")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="lists 2 devices, but 3 processes were started"):
        process_device("cpu:2", 0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_train_one_run_over_nccl(prepared_dataset, tmp_path, launch_env):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "captcha_tui", "train", "--headless", "--device", "cuda:0,cuda:1"]
    command += ["--preset", "tiny", "--epochs", "2", "--data", str(prepared_dataset), "--out", str(run_dir)]
    result = subprocess.run(
        command, env=launch_env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on 2 processes (nccl, cuda:0)" in result.stdout
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2]


def test_the_processes_output_is_kept_and_named_only_where_one_failed(tmp_path):
    kept, removed = tmp_path / "failed", tmp_path / "ended-well"
    for folder in (kept, removed):
        folder.mkdir()
        (folder / "stderr.log").write_text("Traceback ...")
    failed = _keep_output_of_failure(Outcome(1, "process 1 of 2 (cuda:1) was killed by SIGKILL"), str(kept))
    assert failed == Outcome(
        1, f"process 1 of 2 (cuda:1) was killed by SIGKILL (each process's output: {kept})"
    )
    assert (kept / "stderr.log").is_file()
    assert _keep_output_of_failure(Outcome(130), str(removed)) == Outcome(130) and not removed.exists()


def _put_then_exit_at_once(sink: ToQueue, count: int) -> None:
    put = sink()
    for index in range(count):
        put((index, "x" * 1000))
    sink.flush()
    os._exit(130)  # as an interrupted process ends: no clean-up, the queue's feeder thread killed


def test_a_process_that_exits_at_once_after_an_interrupt_still_delivers_every_event():
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_put_then_exit_at_once, args=(ToQueue(queue), 500))
    process.start()
    received = [queue.get(timeout=60)[0] for _ in range(500)]
    process.join(timeout=60)
    assert process.exitcode == 130
    assert received == list(range(500))


def _send_then_die_holding_the_queue(sink: ToQueue) -> None:
    sink()(ev.Notice("epoch 1 of 2"))
    sink.flush()
    sink.queue._wlock.acquire()  # as a process killed (kill -9) while its events were being sent
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_killed_while_sending_an_event_does_not_hang_the_front_end(monkeypatch, tmp_path):
    """The dashboard's run (LaunchedRun) must end even when a killed process left the event queue's lock
    held: it used to end its reader with a marker sent through that queue, which never arrived."""
    import multiprocessing
    import threading

    def fake_launch(config, devices, make_sink, stop, output):
        spawn = multiprocessing.get_context("spawn")  # as the launcher's processes are made
        process = spawn.Process(target=_send_then_die_holding_the_queue, args=(make_sink,))
        process.start()
        process.join(timeout=60)
        assert process.exitcode == -signal.SIGKILL
        return Outcome(1, "process 0 was killed (SIGKILL)")

    monkeypatch.setattr(launch_module, "launch", fake_launch)
    events, results = [], []
    run = LaunchedRun(TrainConfig(out=tmp_path), parse_device_list("cpu:2"), events.append)
    thread = threading.Thread(target=lambda: results.append(run.run()), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "LaunchedRun.run() hung after a process died holding the queue"
    assert isinstance(results[0], ev.Failed) and results[0].message == "process 0 was killed (SIGKILL)"
    assert [e.message for e in events] == ["epoch 1 of 2", "process 0 was killed (SIGKILL)"]
