"""On a machine with a CUDA GPU: train on it in the app and watch the real NVML panels."""

from __future__ import annotations

import asyncio

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.hardware import HardwareSampler
from captcha_tui.tui.widgets.device_panels import DevicePanels

from .helpers import SIZE, make_app, screen_text, training_config, wait_until


@pytest.mark.cuda
def test_training_on_cuda_shows_the_gpu_and_torch_memory(prepared_dataset, tmp_path):
    config = training_config(prepared_dataset, tmp_path / "run", device="cuda:0", epochs=60, threads=None)
    app = make_app(config, sampler=HardwareSampler(device="cuda:0"), monitor_interval=0.1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            panels = app.train_screen.query_one(DevicePanels)

            def torch_memory_shown() -> bool:
                sample = panels.sample
                return sample is not None and sample.torch is not None and "torch alloc" in screen_text(app)

            await wait_until(pilot, torch_memory_shown, timeout=120, what="torch memory in the GPU panel")
            sample = panels.sample
            assert sample.nvml_status is None, sample.nvml_status
            names = [gpu.name for gpu in sample.gpus]
            assert torch.cuda.get_device_name(0) in names
            text = screen_text(app)
            assert "cuda:0 ·" in text and "GiB" in text and "util" in text
            print(text)
            await wait_until(pilot, lambda: not app.training, timeout=300, what="the run to end")
            assert isinstance(app.last_result, ev.Finished), app.last_result

    asyncio.run(scenario())
