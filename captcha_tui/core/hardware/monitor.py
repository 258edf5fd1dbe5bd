"""The monitor thread: samples every ``interval`` seconds off the UI thread and hands each sample on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from .sampler import HardwareSampler
from .samples import NO_HOST_READINGS, Sample


class Monitor:
    """Samples on its own daemon thread every ``interval`` seconds and hands each Sample to ``on_sample``.

    ``on_sample`` runs on the monitor thread, so it must be quick and thread-safe (a UI should only queue
    the sample). If it raises, the message rides along in the next sample's ``errors``.
    """

    def __init__(
        self,
        on_sample: Callable[[Sample], None],
        sampler: HardwareSampler | None = None,
        interval: float = 1.0,
    ) -> None:
        self.on_sample = on_sample
        self.sampler = sampler if sampler is not None else HardwareSampler()
        self.interval = interval
        self.latest: Sample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Monitor:
        if self.running:
            return self
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="hardware-monitor", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (at most ``timeout``: a hung NVML call can't hold the app)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        pending: str | None = None  # a callback failure, reported with the next sample
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    sample = self.sampler.sample()
                except Exception as exc:  # the sampler shouldn't raise; if it does, say so and go on
                    sample = Sample(
                        time.time(), (), None, NO_HOST_READINGS, None, errors=(f"sampler failed: {exc!r}",)
                    )
                if pending is not None:
                    sample = replace(sample, errors=(*sample.errors, pending))
                    pending = None
                self.latest = sample
                try:
                    self.on_sample(sample)
                except Exception as exc:
                    pending = f"on_sample failed: {exc!r}"
                # Event.wait, not sleep, so stop() wakes us at once; subtract the time sampling took.
                stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            self.sampler.close()
