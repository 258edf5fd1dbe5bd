"""A real two-epoch run of the tiny preset, with the events it emitted (shared by the trainer tests)."""

from __future__ import annotations

import pytest
import torch

from captcha_tui.core.train import TrainConfig, Trainer


@pytest.fixture(scope="session")
def trained_run(prepared_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "run"
    events: list = []
    before = torch.get_num_threads()
    try:
        config = TrainConfig(
            data=prepared_dataset, out=run_dir, preset="tiny", epochs=2, device="cpu", threads=1
        )
        Trainer(config, events.append).run()
    finally:
        torch.set_num_threads(before)
    return run_dir, events
