"""The monitor thread: delivers samples, survives failures, stops promptly."""

from __future__ import annotations

import threading
import time

from captcha_tui.core.hardware import HardwareSampler, Monitor, Sample
from tests.fake_nvml import FakeNvmlBackend, fake_gpus


def test_monitor_delivers_and_stops_promptly():
    got: list[Sample] = []
    two = threading.Event()

    def on_sample(sample: Sample) -> None:
        got.append(sample)
        if len(got) >= 2:
            two.set()

    backend = FakeNvmlBackend(fake_gpus(1))
    monitor = Monitor(on_sample, HardwareSampler(backend, env={}), interval=0.05)
    with monitor:
        assert two.wait(5.0)
        assert monitor._thread is not threading.current_thread() and monitor.running
    assert not monitor.running
    assert len(got) >= 2 and all(len(s.gpus) == 1 for s in got)
    assert got[1].time >= got[0].time and monitor.latest is got[-1]
    assert not backend.initialized  # NVML shut down with the thread

    # A long interval must not delay stop(): the wait is an Event, not a sleep.
    slow = Monitor(lambda s: None, HardwareSampler(FakeNvmlBackend(), env={}), interval=60.0).start()
    time.sleep(0.05)
    t0 = time.monotonic()
    slow.stop()
    assert not slow.running and time.monotonic() - t0 < 1.0


def test_monitor_survives_a_failing_callback_and_sampler():
    got: list[Sample] = []
    done = threading.Event()

    def on_sample(sample: Sample) -> None:
        got.append(sample)
        if len(got) == 1:
            raise ValueError("ui fell over")
        if len(got) >= 3:
            done.set()

    class Exploding(HardwareSampler):
        calls = 0

        def sample(self) -> Sample:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("bug")
            return super().sample()

    with Monitor(on_sample, Exploding(FakeNvmlBackend(), env={}), interval=0.01) as monitor:
        assert done.wait(5.0)
    assert not monitor.running
    assert "on_sample failed: ValueError('ui fell over')" in got[1].errors
    assert "sampler failed: RuntimeError('bug')" in got[1].errors and got[1].gpus == ()
    assert got[2].errors == () and len(got[2].gpus) == 1
