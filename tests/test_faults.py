"""Faults, injected: nothing lost, nothing crashes, nothing unsafe loaded.

Training faults (out of memory, an interrupt, a crash or a full disk during a save, a bug in the training
step) and bad input on the command line. Images, labels and checkpoints on their own are covered in
``tests/core``. Subprocesses run ``python -m captcha_tui.cli`` on one thread with the tiny preset.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import tomllib
import torch

from captcha_tui import cli
from captcha_tui.core import checkpoint as ck
from captcha_tui.core import events as ev
from captcha_tui.core import train as train_package
from captcha_tui.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from captcha_tui.core.train import TrainConfig, Trainer
from tests.helpers import events_of, history_rows

PY = sys.executable
STEP_TIMEOUT = 60  # seconds for one subprocess step; the whole file takes far less


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(data=data, out=out, preset="tiny", epochs=1, device="cpu", threads=1)
    settings.update(overrides)
    return TrainConfig(**settings)


def _train(config: TrainConfig, step_hook=None) -> tuple[ev.Finished | ev.Failed, list]:
    events: list = []
    result = Trainer(config, events.append, step_hook=step_hook).run()
    return result, events


def _strays(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---- out of memory ------------------------------------------------------------------------------------------


def test_out_of_memory_halves_the_batch_and_carries_on(prepared_dataset, tmp_path, one_thread) -> None:
    calls = []

    def hook(epoch: int, batch: int, size: int) -> None:
        calls.append((epoch, batch, size))
        if size > 25:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    result, events = _train(_config(prepared_dataset, tmp_path / "run"), hook)
    assert isinstance(result, ev.Finished), result
    assert calls[:4] == [(1, 1, 100), (1, 1, 50), (1, 1, 25), (1, 2, 25)]  # the same batch, retried
    assert [(e.old, e.new) for e in events_of(events, ev.BatchSizeReduced)] == [(100, 50), (50, 25)]
    warnings = [e.message for e in events_of(events, ev.Notice) if e.level == "warning"]
    assert any("out of memory" in m and "100 → 50" in m for m in warnings)
    assert result.images_seen == 240  # every image trained on once
    assert load_checkpoint(tmp_path / "run" / "last.pt").trainer["batch_size"] == 25


def test_out_of_memory_even_at_one_image_fails_clearly(prepared_dataset, tmp_path, one_thread) -> None:
    def hook(epoch: int, batch: int, size: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    result, events = _train(_config(prepared_dataset, tmp_path / "run"), hook)
    assert isinstance(result, ev.Failed)
    assert "out of memory" in result.message and "mini-batch of 1" in result.message
    assert [e.new for e in events_of(events, ev.BatchSizeReduced)] == [50, 25, 12, 6, 3, 1]
    assert (tmp_path / "run" / "error.log").is_file()


@pytest.mark.cuda
def test_a_real_cuda_out_of_memory_is_survived(prepared_dataset, tmp_path) -> None:
    """On a GPU: the allocator's own error, not a stand-in, takes the same path."""

    def hook(epoch: int, batch: int, size: int) -> None:
        if size > 25:
            torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a pebibyte: a real CUDA OOM

    result, events = _train(_config(prepared_dataset, tmp_path / "run", device="cuda"), hook)
    assert isinstance(result, ev.Finished), result
    reduced = events_of(events, ev.BatchSizeReduced)
    assert [(e.old, e.new) for e in reduced] == [(100, 50), (50, 25)]
    assert all(e.device.startswith("cuda") for e in reduced)


# ---- a bug in the training step -----------------------------------------------------------------------------


def _boom(epoch: int, batch: int, size: int) -> None:
    if batch == 2:
        raise RuntimeError("boom in the training step")


def test_an_exception_in_training_is_a_failed_event_with_a_log(
    prepared_dataset, tmp_path, one_thread
) -> None:
    result, events = _train(_config(prepared_dataset, tmp_path / "run"), _boom)
    assert isinstance(result, ev.Failed) and events[-1] is result
    assert result.message == "RuntimeError: boom in the training step"
    assert "Traceback" in result.traceback and "_boom" in result.traceback
    log = Path(result.log_path)
    assert log == tmp_path / "run" / "error.log"
    assert "boom in the training step" in log.read_text() and "_boom" in log.read_text()


def test_headless_cli_exits_non_zero_on_a_training_exception(
    prepared_dataset, tmp_path, monkeypatch, capsys, one_thread
) -> None:
    class Broken(Trainer):
        def __init__(self, config, on_event=None, step_hook=None):
            super().__init__(config, on_event, step_hook=_boom)

    monkeypatch.setattr(train_package, "Trainer", Broken)  # cli imports it from there when it runs
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code = cli.main(
        ["train", "--headless", "--data", str(prepared_dataset), "--out", str(tmp_path / "run")]
        + ["--preset", "tiny", "--epochs", "1", "--device", "cpu", "--threads", "1"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "error: RuntimeError: boom in the training step" in err and "error.log" in err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


# ---- disk full, read-only folder -------------------------------------------------------------------------------


def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("torch.save", errno.ENOSPC, "could not save best.pt: the disk is full"),
        ("os.replace", errno.ENOSPC, "could not save best.pt: the disk is full"),
        ("os.replace", errno.EROFS, "could not save best.pt: the folder is on a read-only file system"),
        ("os.fsync", errno.EIO, "could not save best.pt: Input/output error"),
        ("tempfile.mkstemp", errno.EROFS, "cannot write a checkpoint in .*: the folder is on a read-only"),
        ("tempfile.mkstemp", errno.EACCES, "cannot write a checkpoint in .*: permission denied"),
    ],
)
def test_failed_save_keeps_the_previous_file(run_copy, monkeypatch, target, code, message) -> None:
    path = run_copy / "best.pt"
    before = path.read_bytes()
    module, name = target.split(".")
    monkeypatch.setattr(getattr(ck, module), name, _raise(code))
    with pytest.raises(CheckpointError, match=message) as caught:
        save_checkpoint(path, {"meta": {}, "model": {}})
    assert "previous file is unchanged" in str(caught.value) or "cannot write" in str(caught.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _strays(run_copy) == []
    assert load_checkpoint(path).meta.epoch == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_for_real(run_copy) -> None:
    before = (run_copy / "best.pt").read_bytes()
    os.chmod(run_copy, 0o500)
    try:
        with pytest.raises(CheckpointError, match="permission denied .*--out"):
            save_checkpoint(run_copy / "best.pt", {"meta": {}, "model": {}})
    finally:
        os.chmod(run_copy, 0o700)
    assert (run_copy / "best.pt").read_bytes() == before and _strays(run_copy) == []


def test_disk_filling_up_while_torch_writes(run_copy, monkeypatch) -> None:
    """A write that fails half-way reaches us as torch's RuntimeError; the OSError behind it is reported."""
    import io

    class FillsUp(io.RawIOBase):
        def __init__(self, fd: int):
            self.fd, self.written = fd, 0

        def writable(self) -> bool:
            return True

        def fileno(self) -> int:
            return self.fd

        def write(self, data) -> int:
            self.written += len(data)
            if self.written > 50_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.write(self.fd, data)

        def close(self) -> None:
            if not self.closed:
                os.close(self.fd)
            super().close()

    monkeypatch.setattr(ck.os, "fdopen", lambda fd, mode: io.BufferedWriter(FillsUp(fd)))
    path = run_copy / "best.pt"
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="the disk is full .*free some space"):
        save_checkpoint(path, {"meta": {}, "model": {"w": torch.zeros(100_000)}})
    assert path.read_bytes() == before and _strays(run_copy) == []


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only")])
def test_trainer_fails_clearly_when_a_save_fails(
    prepared_dataset, run_copy, monkeypatch, one_thread, code, words
):
    # The run carried on in its own folder (a new run would go beside it), so each save replaces a file.
    before = {name: (run_copy / name).read_bytes() for name in ("best.pt", "last.pt")}
    monkeypatch.setattr(ck.torch, "save", _raise(code))
    result, events = _train(_config(prepared_dataset, run_copy, resume=True, epochs=2))
    assert isinstance(result, ev.Failed)
    assert re.match(r"could not save (best|last)\.pt: ", result.message) and words in result.message
    assert "Traceback" in result.traceback and (run_copy / "error.log").is_file()
    assert events_of(events, ev.EpochEnd)  # it failed at the first save, after an epoch
    monkeypatch.undo()
    assert {name: (run_copy / name).read_bytes() for name in before} == before and _strays(run_copy) == []


def test_resume_from_a_damaged_checkpoint_fails_clearly(prepared_dataset, run_copy, one_thread) -> None:
    last = run_copy / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    result, _ = _train(_config(prepared_dataset, run_copy, resume=True, epochs=2))
    assert isinstance(result, ev.Failed)
    assert "last.pt is truncated or corrupt" in result.message


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_damaged_best_pt_refuses_the_resume_and_says_how_to_go_on(
    prepared_dataset, run_copy, one_thread
) -> None:
    best = run_copy / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    before = {name: data for name, data in _files(run_copy).items() if name != "error.log"}
    result, events = _train(_config(prepared_dataset, run_copy, resume=True, epochs=2))
    assert isinstance(result, ev.Failed) and not events_of(events, ev.RunStarted)
    assert "best.pt is truncated or corrupt" in result.message and "last.pt is sound" in result.message
    assert f"mv {best} {best}.damaged" in result.message
    # Refused before this session started: the run's files as they were, its train.log's ending too.
    assert {name: data for name, data in _files(run_copy).items() if name != "error.log"} == before
    best.rename(run_copy / "best.pt.damaged")  # as the message says: then it resumes
    result, events = _train(_config(prepared_dataset, run_copy, resume=True, epochs=2))
    assert isinstance(result, ev.Finished), result
    assert events_of(events, ev.RunStarted)[0].start_epoch == 2


def test_a_run_without_its_last_pt_is_not_overwritten_by_resume(prepared_dataset, run_copy, one_thread):
    """``--resume`` on a folder whose run lost its last.pt (removed to save space): refused, where it used
    to start a new run there over that run's best.pt."""
    (run_copy / "last.pt").unlink()
    before = _files(run_copy)
    result, events = _train(_config(prepared_dataset, run_copy, resume=True, epochs=2))
    assert isinstance(result, ev.Failed) and result.usage
    assert f"{run_copy} holds a run but no last.pt" in result.message
    assert "train without --resume to start a new run (it goes beside this one)" in result.message
    assert _files(run_copy) == before and not events_of(events, ev.RunStarted)


@pytest.mark.parametrize("left", [(), ("config.json", "train.log")], ids=["empty", "killed-before-a-save"])
def test_resume_where_nothing_was_trained_starts_a_new_run(prepared_dataset, tmp_path, one_thread, left):
    """An empty folder, or a run killed (kill -9) before its first save, which left its config and log
    only: nothing to lose, so ``--resume`` starts the run there (a script's "resume or start")."""
    run = tmp_path / "new"
    run.mkdir()
    for name in left:
        (run / name).write_text("{}\n" if name.endswith(".json") else "")
    result, events = _train(_config(prepared_dataset, run, resume=True))
    assert isinstance(result, ev.Finished), result
    assert any("nothing to resume in" in e.message for e in events_of(events, ev.Notice))
    assert (run / "best.pt").is_file() and result.best_checkpoint == str(run / "best.pt")


# ---- kill -9 in the middle of a save ----------------------------------------------------------------------------

SLOW_SAVE = textwrap.dedent(
    """
    import sys, time
    import torch
    from captcha_tui.core import checkpoint as ck

    path, phase = sys.argv[1], sys.argv[2]
    if phase == "writing":  # killed while torch.save is half-way through the temporary file
        def save(obj, handle, *args, **kwargs):
            handle.write(b"PK\\x03\\x04" + bytes(8192))
            handle.flush()
            print("saving", flush=True)
            time.sleep(60)
        ck.torch.save = save
    else:  # killed after the data is written and synced, just before the rename
        real_fsync = ck.os.fsync
        def fsync(fd):
            real_fsync(fd)
            print("saving", flush=True)
            time.sleep(60)
        ck.os.fsync = fsync
    ck.save_checkpoint(path, {"meta": {}, "model": {"w": torch.zeros(1000)}})
    print("saved?!", flush=True)
    """
)


@pytest.mark.parametrize("phase", ["writing", "renaming"])
def test_kill_9_during_a_save_keeps_the_previous_file(run_copy, cli_env, phase) -> None:
    path = run_copy / "best.pt"
    before = path.read_bytes()
    child = subprocess.Popen(
        [PY, "-c", SLOW_SAVE, str(path), phase], stdout=subprocess.PIPE, text=True, env=cli_env
    )
    try:
        assert child.stdout.readline().strip() == "saving"
        child.send_signal(signal.SIGKILL)
        assert child.wait(STEP_TIMEOUT) == -signal.SIGKILL
    finally:
        child.kill()
        child.stdout.close()
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta.epoch == 1
    strays = _strays(run_copy)
    assert len(strays) == 1 and strays[0].startswith(".best.pt.")  # the one leftover a crash can leave
    save_checkpoint(path, {"meta": {}, "model": {}})  # and the next save is not disturbed by it


# ---- interrupts: Ctrl+C and SIGTERM save a resumable checkpoint ---------------------------------------------------


def _train_cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [PY, "-m", "captcha_tui.cli", "train", "--headless", "--data", str(data), "--out", str(out)] + [
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--threads",
        "1",
        *extra,
    ]


def _interrupt(command: list[str], env: dict, signum: int) -> tuple[int, str]:
    """Run ``command``; once it has finished an epoch, send ``signum``. Returns (exit code, output)."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    timer = threading.Timer(STEP_TIMEOUT, child.kill)  # a hung child fails the test instead of hanging it
    timer.start()
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if line.startswith("epoch 1:"):
                child.send_signal(signum)
        return child.wait(), "".join(lines)
    finally:
        timer.cancel()
        child.kill()
        child.stdout.close()


def _history(run_dir: Path) -> list[int]:
    return [row["epoch"] for row in history_rows(run_dir)]


def test_sigterm_saves_and_resume_continues(prepared_dataset, tmp_path, cli_env) -> None:
    run_dir = tmp_path / "run"
    code, output = _interrupt(
        _train_cli(prepared_dataset, run_dir, "--epochs", "50", "--batch-size", "20"), cli_env, signal.SIGTERM
    )
    assert code == 128 + signal.SIGTERM, output  # 143: a shell's `train && eval` stops there
    assert "SIGTERM: saving a resumable checkpoint" in output and "stopped by request" in output
    assert "Traceback" not in output
    last = load_checkpoint(run_dir / "last.pt")
    epoch, position = last.trainer["epoch"], last.trainer["position"]
    assert 1 <= epoch < 50 and 0 <= position < 240
    assert [row["epoch"] for row in last.history] == list(range(1, epoch + 1))
    assert _history(run_dir) == list(range(1, epoch + 1))
    assert _strays(run_dir) == []

    until = epoch + 2
    done = subprocess.run(
        _train_cli(prepared_dataset, run_dir, "--resume", "--epochs", str(until)),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=STEP_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    where = f"at epoch {epoch + 1}" + (f", image {position}" if position else "")
    assert f"resumed from {run_dir / 'last.pt'} {where}" in done.stdout
    assert f"resuming at epoch {epoch + 1}" in done.stdout
    assert "epoch 1:" not in done.stdout  # it did not start over
    assert _history(run_dir) == list(range(1, until + 1))  # numbering continues, nothing lost
    assert load_checkpoint(run_dir / "last.pt").trainer["epoch"] == until


def test_ctrl_c_saves_a_resumable_checkpoint(prepared_dataset, tmp_path, cli_env) -> None:
    run_dir = tmp_path / "run"
    code, output = _interrupt(_train_cli(prepared_dataset, run_dir, "--epochs", "50"), cli_env, signal.SIGINT)
    assert code == 130, output  # as the shell reports a command Ctrl+C ended, and as several processes do
    assert (
        "SIGINT: saving a resumable checkpoint" in output
        and "resume with: captcha-tui train --resume" in output
    )
    assert "KeyboardInterrupt" not in output
    assert load_checkpoint(run_dir / "last.pt").trainer["epoch"] >= 1


# ---- bad input on the command line: exit code 2 and a message that says what to do --------------------------------


def _usage_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("banana", "unknown device 'banana': use auto, cpu, cuda, cuda:N or mps"),
        ("cuda:7", "cuda:7 was asked for"),
        ("mps", "use --device cpu"),
    ],
)
def test_unusable_devices(capsys, prepared_dataset, tmp_path, device, words) -> None:
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    err = _usage_error(
        capsys,
        ["train", "--headless", "--data", str(prepared_dataset), "--out", str(tmp_path), "--device", device],
    )
    assert words in err


def test_cuda_without_cuda(capsys, prepared_dataset, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    err = _usage_error(
        capsys,
        ["train", "--headless", "--data", str(prepared_dataset), "--out", str(tmp_path), "--device", "cuda"],
    )
    assert "cuda was asked for" in err and "--device cpu" in err


@pytest.mark.cuda
def test_a_cuda_index_beyond_the_gpus(capsys, prepared_dataset, tmp_path) -> None:
    err = _usage_error(
        capsys,
        [
            "train",
            "--headless",
            "--data",
            str(prepared_dataset),
            "--out",
            str(tmp_path),
            "--device",
            "cuda:99",
        ],
    )
    assert "CUDA device(s) are visible" in err


def test_batch_size_zero(capsys, prepared_dataset, tmp_path) -> None:
    err = _usage_error(
        capsys,
        ["train", "--headless", "--data", str(prepared_dataset), "--out", str(tmp_path), "--device", "cpu"]
        + ["--batch-size", "0"],
    )
    assert "batch size must be at least 1 (got 0)" in err


def test_missing_dataset(capsys, tmp_path) -> None:
    err = _usage_error(
        capsys,
        ["train", "--headless", "--data", str(tmp_path / "none"), "--out", str(tmp_path), "--device", "cpu"],
    )
    assert "no dataset at" in err and "captcha-tui prepare" in err


def test_a_path_typed_with_a_stray_space_is_pointed_out(capsys, prepared_dataset, tmp_path) -> None:
    """`--data "data/dataset "`, a path pasted with its trailing space: the message showed the path as
    if it were right. It now quotes it and says why it is not there."""
    stray = f"{prepared_dataset} "
    err = _usage_error(
        capsys, ["train", "--headless", "--data", stray, "--out", str(tmp_path), "--device", "cpu"]
    )
    assert f"no dataset at {stray!r} (it ends with a space: a stray one?)" in err
    err = _usage_error(capsys, ["eval", "--model", f" {tmp_path}/best.pt", str(prepared_dataset)])
    assert "checkpoint not found: ' " in err and "(it starts with a space: a stray one?)" in err
    err = _usage_error(capsys, ["prepare", f"{tmp_path}\t", "--out", str(tmp_path / "set")])
    assert "(it ends with a space: a stray one?)" in err
    err = _usage_error(capsys, ["runs", f"{tmp_path} "])
    assert "no such folder: " in err and "(it ends with a space: a stray one?)" in err
    # A path without stray spaces reads as before.
    err = _usage_error(capsys, ["eval", "--model", str(tmp_path / "best.pt"), str(prepared_dataset)])
    assert f"checkpoint not found: {tmp_path / 'best.pt'} (train one first" in err


def test_resume_of_a_folder_that_does_not_exist_is_refused_naming_the_runs_there(
    capsys, prepared_dataset, tmp_path
) -> None:
    """`train --resume --out runs/nnoe`, a typo: it started a new run of 15 epochs there, hours long."""
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "history.jsonl").write_text("")
    (runs / "not-a-run").mkdir()
    argv = ["train", "--headless", "--resume", "--out", str(runs / "nnoe"), "--device", "cpu"]
    err = _usage_error(capsys, [*argv, "--data", str(prepared_dataset)])
    assert f"cannot resume: no run folder {runs / 'nnoe'}; runs in {runs}: a, b;" in err
    assert "train without --resume to start a new run" in err
    assert not (runs / "nnoe").exists()
    # Said before a missing dataset: the folder is the likelier typo.
    assert "no run folder" in _usage_error(capsys, [*argv, "--data", str(tmp_path / "none")])
    # The trainer refuses it too (the dashboard, Python).
    result, _ = _train(_config(prepared_dataset, runs / "nnoe", resume=True))
    assert isinstance(result, ev.Failed) and result.usage and "no run folder" in result.message
    assert not (runs / "nnoe").exists()


def test_eval_with_a_missing_checkpoint(capsys, captcha_files, tmp_path) -> None:
    err = _usage_error(capsys, ["eval", str(captcha_files[0]), "--model", str(tmp_path / "best.pt")])
    assert "checkpoint not found" in err and "captcha-tui train" in err


def test_eval_with_a_malicious_checkpoint(capsys, captcha_files, tmp_path) -> None:
    from tests.core.test_checkpoint import Payload

    marker, model = tmp_path / "pwned", tmp_path / "best.pt"
    torch.save({"format": ck.FORMAT, "meta": {}, "model": Payload(marker)}, model)
    err = _usage_error(capsys, ["eval", str(captcha_files[0]), "--model", str(model)])
    assert "refused best.pt" in err and not marker.exists()


def test_eval_reads_the_good_images_and_names_the_bad(capsys, captcha_files, tiny_run, tmp_path) -> None:
    folder = tmp_path / "mixed ö"
    folder.mkdir()
    shutil.copyfile(captcha_files[0], folder / "ö 验证码 00001-abcd.png")
    (folder / "broken.png").write_text("no pixels here")
    (folder / "empty.png").write_bytes(b"")
    code = cli.main(
        ["eval", str(folder), str(tmp_path / "nowhere.png"), "--model", str(tiny_run / "best.pt")]
    )
    out, err = capsys.readouterr()
    assert code == 1  # the good one read and printed; the status says some were not
    assert "broken.png: error: not an image" in out and "empty.png: error: empty file (0 bytes)" in out
    assert "ö 验证码 00001-abcd.png: " in out and "nowhere.png: no such file or folder" in err


def test_prepare_bad_folders(capsys, captcha_files, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    err = _usage_error(capsys, ["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "data")])
    assert "no labelled images" in err
    err = _usage_error(capsys, ["prepare", str(tmp_path / "none"), "--out", str(tmp_path / "data")])
    assert "image folder not found" in err
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(captcha_files[0], folder / captcha_files[0].name)
    err = _usage_error(capsys, ["prepare", str(folder), "--out", str(folder)])
    assert "choose another --out" in err and (folder / captcha_files[0].name).is_file()


def test_output_that_goes_away_stops_the_run_resumably_instead_of_failing_it(
    prepared_dataset, tmp_path, cli_env
) -> None:
    """`train --headless … | head -4`, or a closed ssh pipe: the next line written raised BrokenPipeError,
    the run failed and `runs` listed it so. Now it stops as on Ctrl+C, with a resumable last.pt."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        _train_cli(prepared_dataset, run_dir, "--epochs", "50", "--batch-size", "20"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    lines = [process.stdout.readline() for _ in range(4)]  # as head -4 reads, then closes the pipe
    while lines[-1] and b"epoch 1:" not in lines[-1]:  # an epoch done: a last.pt to resume from
        lines.append(process.stdout.readline())
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=STEP_TIMEOUT) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    last = load_checkpoint(run_dir / "last.pt")
    assert 1 <= last.trainer["epoch"] < 50
    finished = [line for line in (run_dir / "train.log").read_text().splitlines() if " Finished " in line]
    assert len(finished) == 1 and '"reason": "stopped"' in finished[0]
    assert " Failed " not in (run_dir / "train.log").read_text()


def test_ctrl_c_while_the_command_loads_ends_without_a_traceback(cli_env) -> None:
    """Ctrl+C in the second or two torch takes to load printed a KeyboardInterrupt traceback from inside
    Python's import machinery: the script (pyproject's entry) now starts from a light one that catches it.
    The Ctrl+C is raised by the import of the command line itself, where a real one would land."""
    entry = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "scripts"
    ]["captcha-tui"]
    module, function = entry.split(":")
    simulate = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        f"from {module} import {function}\n"
        f"sys.exit({function}())\n"
    )
    done = subprocess.run([sys.executable, "-c", simulate], env=cli_env, capture_output=True, text=True)
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == "interrupted"


def test_the_package_loads_torch_only_when_its_api_is_used(cli_env) -> None:
    check = "import sys, captcha_tui; assert 'torch' not in sys.modules; captcha_tui.Predictor; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", check], env=cli_env, capture_output=True).returncode == 0
