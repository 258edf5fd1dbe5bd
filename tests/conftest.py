"""Shared fixtures: a few hundred real captchas, a dataset prepared from them and a tiny trained run.

Everything is made once per session and kept small, so the whole suite stays fast on two cores. The
fixtures are read-only: a test that changes files copies them first. Tests marked ``cuda`` are skipped
where PyTorch sees no CUDA GPU.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from captcha_tui.core.dataset import prepare
from captcha_tui.core.generator import generate
from captcha_tui.core.train import TrainConfig, Trainer

CAPTCHA_COUNT = 300

# On the suite's worker processes (pytest-xdist), one PyTorch thread each: two workers of two threads on
# two cores spin on each other's cores (OpenMP waits busily) and run slower than one thread each.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    # The longest end-to-end tests first: on the suite's worker processes they then run beside the short
    # ones instead of being a lone tail at the end.
    items.sort(key=lambda item: "slow" not in item.keywords)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Train on one CPU thread (faster than two busy ones for the tiny model) and restore it after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def captcha_dir(tmp_path_factory) -> Path:
    """``CAPTCHA_COUNT`` generated captchas named ``NNNNN-code.png`` (4 characters, default charset)."""
    folder = tmp_path_factory.mktemp("captchas")
    generate(folder, CAPTCHA_COUNT, seed=11, workers=1)
    return folder


@pytest.fixture(scope="session")
def captcha_files(captcha_dir) -> list[Path]:
    return sorted(captcha_dir.glob("*.png"))


@pytest.fixture(scope="session")
def prepared_dataset(captcha_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "dataset"
    prepare(captcha_dir, out, workers=1, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_run(prepared_dataset, tmp_path_factory) -> Path:
    """A finished one-epoch run of the tiny preset: a run folder with best.pt, last.pt, history.jsonl."""
    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    before = torch.get_num_threads()
    try:
        config = TrainConfig(
            data=prepared_dataset, out=run_dir, preset="tiny", epochs=1, device="cpu", threads=1
        )
        result = Trainer(config).run()
    finally:
        torch.set_num_threads(before)
    assert (run_dir / "best.pt").is_file(), result
    return run_dir


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of :func:`tiny_run`'s folder, free to change."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for ``python -m captcha_tui.cli`` subprocesses: one thread, unbuffered, no colours."""
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )


@pytest.fixture(scope="session")
def three_runs(prepared_dataset, tmp_path_factory) -> tuple[Path, dict]:
    """A folder of three finished tiny runs that differ in preset, epochs and learning rate (for the runs
    screen and ``core.runs``): (the folder, {run name: its Finished event})."""
    root = tmp_path_factory.mktemp("runs")
    settings = {
        "a-tiny": dict(preset="tiny", epochs=1),
        "b-ctc": dict(preset="crnn-tiny", epochs=2, lr=0.002),
        "c-tiny-lr": dict(preset="tiny", epochs=2, lr=0.003),
    }
    before = torch.get_num_threads()
    finished = {}
    try:
        for name, overrides in settings.items():
            config = TrainConfig(data=prepared_dataset, out=root / name, device="cpu", threads=1, **overrides)
            finished[name] = Trainer(config).run()
            assert (root / name / "best.pt").is_file(), finished[name]
    finally:
        torch.set_num_threads(before)
    return root, finished
