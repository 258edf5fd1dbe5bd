"""The hand-off from the training thread to the UI thread.

The trainer calls :meth:`EventBuffer.put` from its own thread for every event; the UI drains the buffer
on a timer. Only the newest :class:`BatchProgress` is kept (older ones are already out of date), every
other event is queued in order, so however fast batches arrive the UI sees at most one update per drain.
"""

from __future__ import annotations

import threading

from ..core import events as ev


class EventBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[ev.TrainerEvent] = []
        self._latest_batch: ev.BatchProgress | None = None
        self.received = 0  # events put so far, batch reports included (to compare with UI updates)

    def put(self, event: ev.TrainerEvent) -> None:
        """Called from the training thread: never blocks for long, never touches the UI."""
        with self._lock:
            self.received += 1
            if isinstance(event, ev.BatchProgress):
                self._latest_batch = event
            else:
                self._events.append(event)

    def drain(self) -> tuple[tuple[ev.TrainerEvent, ...], ev.BatchProgress | None]:
        """Everything since the last drain: (other events in order, newest batch report or None)."""
        with self._lock:
            events, self._events = tuple(self._events), []
            batch, self._latest_batch = self._latest_batch, None
        return events, batch
