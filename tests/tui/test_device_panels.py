"""Device panels fed by the real Monitor thread over the fake NVML backend."""

from __future__ import annotations

import asyncio

import pynvml

from captcha_tui.core.hardware import HardwareSampler
from captcha_tui.tui.widgets.device_panels import DevicePanels
from captcha_tui.tui.widgets.host_panel import HostPanel
from tests.fake_nvml import FakeNvmlBackend

from .helpers import SIZE, make_app, screen_text, training_config, wait_until


def _app(prepared_dataset, tmp_path, backend):
    sampler = HardwareSampler(backend=backend, device="cpu")
    return make_app(
        training_config(prepared_dataset, tmp_path / "run"), sampler=sampler, monitor_interval=0.05
    )


def test_gpu_panels_show_readings_missing_fields_and_a_lost_gpu(prepared_dataset, tmp_path):
    backend = FakeNvmlBackend.with_gpus(2, unsupported=["temperature"])
    app = _app(prepared_dataset, tmp_path, backend)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panels = app.train_screen.query_one(DevicePanels)

            def both_shown() -> bool:
                return all(
                    (p := panels.gpu_panel(i)) is not None and p.is_mounted and len(p.utilization) >= 2
                    for i in (0, 1)
                )

            await wait_until(pilot, both_shown, what="two GPU panels with a utilization history")
            await wait_until(pilot, lambda: "NVIDIA RTX A4000" in screen_text(app), what="the panels drawn")
            text = screen_text(app)
            assert "NVIDIA GeForce RTX 4090" in text
            assert "/24.0 GiB" in text and "/16.0 GiB" in text  # memory used/total
            assert "temperature: not supported" in text
            assert " W" in text  # power draw/limit still read

            backend.lose_gpu(1)
            await wait_until(pilot, lambda: "GPU is lost" in screen_text(app), what="the lost GPU's error")
            first = panels.gpu_panel(0)
            readings = len(first.utilization)
            await wait_until(pilot, lambda: len(first.utilization) > readings, what="GPU 0 to keep updating")
            assert app.is_running
            assert "NVIDIA RTX A4000" in screen_text(app)  # the lost card keeps its name

    asyncio.run(scenario())


def test_without_nvml_the_host_panel_shows_cpu_and_memory(prepared_dataset, tmp_path):
    backend = FakeNvmlBackend.with_gpus(1)
    backend.fail_init(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    app = _app(prepared_dataset, tmp_path, backend)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panels = app.train_screen.query_one(DevicePanels)
            await wait_until(pilot, lambda: panels.sample is not None, what="a hardware sample")
            await wait_until(pilot, lambda: "CPU · host" in screen_text(app), what="the host panel drawn")
            host = app.train_screen.query_one(HostPanel)
            assert host.display and host.host is not None
            text = screen_text(app)
            assert "GPU monitor off: NVML library not found" in text
            assert "CPU · host" in text and "cores" in text and "this process" in text
            assert panels.gpu_panel(0) is None

    asyncio.run(scenario())


def test_the_gpu_panel_lists_who_holds_the_card_and_marks_this_run(prepared_dataset, tmp_path):
    import os

    backend = FakeNvmlBackend.with_gpus(2)
    backend.set_process_memory(0, os.getpid(), 2 * 1024**3)
    backend.set_process_memory(0, 4_194_400, 1024**3)  # not ours to inspect: user and command n/a
    backend.set_error(1, "processes", pynvml.NVML_ERROR_NOT_SUPPORTED)
    app = _app(prepared_dataset, tmp_path, backend)

    async def scenario():
        async with app.run_test(size=(160, 60)) as pilot:
            await wait_until(pilot, lambda: "◀ this run" in screen_text(app), what="the process list")
            text = screen_text(app)
            ours = next(line for line in text.splitlines() if "◀ this run" in line)
            assert f"{os.getpid()}" in ours and "2.0 GiB" in ours
            other = next(line for line in text.splitlines() if "4194400" in line)
            assert "n/a" in other and "1.0 GiB" in other and "this run" not in other
            assert "processes: not supported" in text  # card 1: said in words, never an error
            assert "no processes on this card" not in text

    asyncio.run(scenario())


def test_a_run_on_several_gpus_marks_each_card_it_trains_on(prepared_dataset, tmp_path):
    backend = FakeNvmlBackend.with_gpus(4)
    sampler = HardwareSampler(backend=backend, device=None)
    config = training_config(prepared_dataset, tmp_path / "run", device="cuda:0,cuda:2")
    app = make_app(config, sampler=sampler, monitor_interval=0.05)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panels = app.train_screen.query_one(DevicePanels)
            await wait_until(
                pilot,
                lambda: all(panels.gpu_panel(i) is not None and panels.gpu_panel(i).gpu for i in range(4)),
                what="four GPU panels",
            )

            def marked() -> list[int]:
                return [i for i in range(4) if "◀ training" in str(panels.gpu_panel(i).border_title)]

            # The first samples may be drawn before the screen knows the run's devices: the next ones mark.
            await wait_until(pilot, lambda: marked() != [], what="the cards trained on marked")
            for _ in range(3):  # and they stay the same over the samples that follow
                await pilot.pause(0.06)
                assert marked() == [0, 2]
            assert sampler.device is None  # the processes hold the torch memory, not the app

    asyncio.run(scenario())
