"""One run on several processes (torchrun, gloo on the CPU): how ranks share an epoch, agree to stop, add up
their scores and leave rank 0 to print and write; and what a rank dying mid-epoch leaves behind.

The end-to-end tests run the real launcher, ``python -m torch.distributed.run --standalone
--nproc-per-node 2``, on ``dist_driver.py`` (``python -m captcha_tui`` plus a recorder of each rank's
share, and a kill switch), the tiny preset on one thread a process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from captcha_tui import cli
from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.dataset import load_dataset
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.train import TrainConfig, Trainer
from captcha_tui.core.train.config import ConfigError
from captcha_tui.core.train.distributed import process_device, rank_share
from captcha_tui.core.train.stopping import EpochBudget, Standing, StopRequest, StopRules, TimeLimit
from tests.helpers import assert_rank_0_wrote_one_run, history_rows

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("dist_driver.py")
RUN_TIMEOUT = 180  # seconds for a whole two-process run, on a busy two-core machine
KILL_BOUND = 120  # seconds within which a run whose rank died must have ended


# ---- sharing an epoch -------------------------------------------------------------------------------------


def _epoch_shares(n: int, size: int, world: int) -> list[list[int]]:
    """Walk one epoch as the loop does and return what each rank trained on, in order."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shares: list[list[int]] = [[] for _ in range(world)]
    position = 0
    while position < n:
        steps = [rank_share(order, position, size, rank, world) for rank in range(world)]
        counts = {len(index) for index, _ in steps}
        assert len(counts) == 1, f"ranks step on different numbers of images at {position}: {counts}"
        assert len({consumed for _, consumed in steps}) == 1
        if counts.pop() < 2 and position > 0:
            break  # the loop's own rule: a leftover too small to train on
        for rank, (index, _) in enumerate(steps):
            shares[rank] += index.tolist()
        position += steps[0][1]
        # Whatever the number of ranks, what has been trained is a prefix of the permutation.
        trained = sorted(i for share in shares for i in share)
        assert trained == sorted(order[: len(trained)].tolist())
    return shares


@pytest.mark.parametrize(("n", "size", "world"), [(240, 100, 2), (241, 40, 2), (100, 7, 3), (23, 5, 4)])
def test_ranks_take_disjoint_equal_shares_that_cover_the_epoch(n, size, world):
    shares = _epoch_shares(n, size, world)
    assert len({len(share) for share in shares}) == 1  # equal counts: the all-reduces pair up
    seen = [i for share in shares for i in share]
    assert len(seen) == len(set(seen))  # disjoint
    # Covering: at most the last step's remainder (under world images), or a too-small last step, is left.
    assert n - len(seen) < 2 * world
    assert set(seen) <= set(range(n))


def test_one_process_takes_the_plain_slice():
    order = torch.randperm(50)
    for position in (0, 10, 45):
        index, consumed = rank_share(order, position, 20, 0, 1)
        assert torch.equal(index, order[position : position + 20])
        assert consumed == len(index)


# ---- agreeing to stop -------------------------------------------------------------------------------------


def test_a_stop_on_any_rank_stops_every_rank_at_the_same_rule():
    request = threading.Event()
    rules = StopRules(EpochBudget(5), time=TimeLimit(10.0), request=StopRequest(request))
    out_of_time = Standing(epoch=1, best_epoch=1, best_accuracy=0.5, images_seen=100, session_s=11.0)
    in_time = Standing(epoch=1, best_epoch=1, best_accuracy=0.5, images_seen=100, session_s=9.0)

    def peer(theirs: Standing, ask):
        """agree as another rank standing at ``theirs`` makes it: either rank's verdicts, rule by rule."""

        def agree(fired: list[bool]) -> list[bool]:
            said: list[list[bool]] = []
            ask(theirs, lambda verdicts: said.append(verdicts) or verdicts)
            return [mine or other for mine, other in zip(fired, said[0], strict=True)]

        return agree

    assert rules.before_batch(in_time) is None  # alone, this rank would carry on into a dead all-reduce
    assert rules.before_batch(in_time, peer(out_of_time, rules.before_batch)) is rules.time
    assert rules.after_epoch(in_time, peer(out_of_time, rules.after_epoch)) is rules.time
    assert rules.before_batch(in_time, peer(in_time, rules.before_batch)) is None
    request.set()  # both fire somewhere: every rank picks the same one, the first in the rules' order
    assert rules.before_batch(in_time, peer(out_of_time, rules.before_batch)) is rules.request


# ---- devices and the command line under torchrun -------------------------------------------------------


def test_one_named_device_cannot_serve_several_processes():
    assert process_device("cpu", 3) == torch.device("cpu")
    for spec in ("cuda:1", "mps"):
        with pytest.raises(ConfigError, match="each process takes cuda:LOCAL_RANK"):
            process_device(spec, 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks a GPU where there is one")
def test_auto_is_the_cpu_without_a_gpu():
    assert process_device("auto", 1) == torch.device("cpu")


@pytest.mark.cuda
def test_each_local_rank_takes_its_own_gpu():
    count = torch.cuda.device_count()
    assert process_device("cuda", count - 1) == torch.device("cuda", count - 1)
    with pytest.raises(Exception, match="no GPU of its own"):
        process_device("cuda", count)


def test_the_dashboard_is_refused_under_torchrun(monkeypatch, capsys, prepared_dataset, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code = cli.main(["train", "--data", str(prepared_dataset), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "process 1: torchrun started several processes" in err
    assert "--headless" in err
    assert not (tmp_path / "run").exists()


def _headless_tiny(data, out, *extra: str) -> list[str]:
    return ["train", "--headless", "--data", str(data), "--out", str(out), "--preset", "tiny", *extra]


def test_a_stray_world_size_without_the_launchers_other_variables_says_so(
    monkeypatch, capsys, prepared_dataset, tmp_path
):
    """WORLD_SIZE left over from another tool's environment, with no RANK: a usage error in words
    (it was ``error: KeyError: 'RANK'`` with a traceback in error.log)."""
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = cli.main(_headless_tiny(prepared_dataset, tmp_path / "run", "--device", "cpu"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "WORLD_SIZE=2 says this is one of several training processes" in err
    assert "RANK, MASTER_ADDR, MASTER_PORT are not set" in err and "unset WORLD_SIZE" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "error.log").exists()


@pytest.mark.parametrize("seconds", ["inf", "nan", "0", "1e9"])
def test_dist_timeout_out_of_range_is_a_usage_error(capsys, prepared_dataset, tmp_path, seconds):
    code = cli.main(
        _headless_tiny(prepared_dataset, tmp_path / "run", "--device", "cpu:2", "--dist-timeout", seconds)
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--dist-timeout must be a number of seconds from 0 to 604,800" in err
    assert "OverflowError" not in err


# ---- end to end, two processes ----------------------------------------------------------------------------


def _torchrun(
    args: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [str(DRIVER), "train", "--headless", "--device", "cpu", "--preset", "tiny", "--threads", "1"]
    return subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture
def dist_env(cli_env) -> dict[str, str]:
    return dict(cli_env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), cli_env.get("PYTHONPATH")])))


def test_two_processes_train_one_run(prepared_dataset, tmp_path, dist_env):
    run_dir = tmp_path / "run"
    result = _torchrun(
        ["--epochs", "2", "--data", str(prepared_dataset), "--out", str(run_dir)],
        dict(dist_env, SHARD_RECORD=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "on 2 processes (gloo, cpu), batch 100 a process (200 a step)" in out
    # Rank 0 alone prints: each line once.
    assert "captcha-tui: error" not in result.stderr
    assert_rank_0_wrote_one_run(run_dir, out)  # rank 0 alone prints and writes

    # The checkpoint is the plain model's: it loads and reads on this one process.
    assert not any(key.startswith("module.") for key in load_checkpoint(run_dir / "best.pt").model)
    data = load_dataset(prepared_dataset)
    predicted = Predictor.load(run_dir / "best.pt").predict_arrays(data.images["test"][:3])
    assert len(predicted) == 3

    # Each rank trained on its own half of every epoch, in a new order each epoch.
    records = [json.loads((tmp_path / f"shard-r{rank}.json").read_text()) for rank in (0, 1)]
    n = data.count("train")
    for epoch in range(2):
        mine, theirs = records[0]["shares"][epoch], records[1]["shares"][epoch]
        assert len(mine) == len(theirs) == n // 2
        assert not set(mine) & set(theirs)
        assert set(mine) | set(theirs) == set(range(n))
    assert records[0]["shares"][0] != records[0]["shares"][1]

    # An epoch's scores are both ranks' sums added up, the same on each; the history holds those.
    for epoch, row in enumerate(history_rows(run_dir)):
        own = [record["tallies"][epoch] for record in records]
        assert [t["images"] for t in own] == [n // 2, n // 2]
        assert own[0]["after"] == own[1]["after"]
        images, loss_sum = own[0]["after"]
        assert images == n
        assert loss_sum == pytest.approx(own[0]["loss_sum"] + own[1]["loss_sum"], rel=1e-5)
        assert row["train_loss"] == pytest.approx(loss_sum / n, rel=1e-5)


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_ends_the_run_resumably(prepared_dataset, tmp_path, one_thread, dist_env):
    """Rank 1 dies (SIGKILL) before the second mini-batch of epoch 2: rank 0 sees its peer gone in the
    next collective, saves what both ranks completed and says so; torchrun ends the run. Its last.pt
    resumes on one process, and that run's on two again."""
    run_dir = tmp_path / "run"
    started = time.monotonic()
    result = _torchrun(
        ["--epochs", "3", "--batch-size", "40", "--data", str(prepared_dataset), "--out", str(run_dir)],
        dict(dist_env, KILL_AT="1:2:2"),
        timeout=KILL_BOUND,  # a hang fails the test here
    )
    took = time.monotonic() - started
    assert result.returncode != 0
    assert took < KILL_BOUND
    errors = [line for line in result.stderr.splitlines() if line.startswith("captcha-tui: error:")]
    assert len(errors) == 1, result.stderr  # rank 0's; rank 1 died without a word
    assert "another training process of this run stopped" in errors[0]
    assert f"{run_dir / 'last.pt'} keeps the run so far: resume with --resume" in errors[0]
    # torchrun's own report names the rank that died.
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s+exitcode\s*:\s*-9", result.stderr), result.stderr
    assert (run_dir / "error.log").is_file()

    # last.pt holds epoch 1 and the first step of epoch 2: 40 images on each of the 2 ranks.
    last = load_checkpoint(run_dir / "last.pt")
    assert (last.trainer["epoch"], last.trainer["position"]) == (1, 80)
    assert [row["epoch"] for row in last.history] == [1]

    # It resumes on one process, from the image where the two stopped.
    events: list = []
    config = TrainConfig(
        data=prepared_dataset, out=run_dir, preset="tiny", epochs=2, device="cpu", threads=1, resume=True
    )
    finished = Trainer(config, events.append).run()
    assert isinstance(finished, ev.Finished), finished
    assert any(
        "resumed from" in e.message and "image 80" in e.message for e in events if isinstance(e, ev.Notice)
    )
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2]

    # And the other way round: that one-process run resumes on two.
    result = _torchrun(
        ["--epochs", "3", "--resume", "--data", str(prepared_dataset), "--out", str(run_dir)], dist_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("resumed from") == 1
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2, 3]
