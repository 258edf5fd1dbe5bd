"""One run on several devices of this machine from one command (``--device cuda:0,cuda:1``, ``cuda:all``,
``cpu:N``): this process starts one training process per device and waits for them.

The processes are started by torch's own launcher, :func:`torch.distributed.launcher.api.elastic_launch`
(the engine under torchrun) with a standalone rendezvous on a free local port, rather than by
``torch.multiprocessing.spawn``: it watches the processes, ends the others as soon as one fails, and says
which one failed and how (:class:`ChildFailedError`), which spawn would leave to us. Its entry point is a
function, not a command line: the processes are spawned (not exec'd), so the :class:`TrainConfig` reaches
them as it is (not re-rendered as options) and a front end can hand rank 0 a queue for its events and
every rank a stop flag.

Each process learns its place from the launcher's environment (RANK, LOCAL_RANK, WORLD_SIZE) and joins the
group as under torchrun (distributed.py); ``config.device`` is the list, and process LOCAL_RANK takes
its LOCAL_RANK-th device.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import events as ev
from ..devices import DeviceList
from .config import TrainConfig

EventSink = Callable[[ev.TrainerEvent], None]
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
RELAY_POLL_S = 0.1  # how often the front end's event reader looks whether the processes have ended
RELAY_DRAIN_S = 10.0  # how long it may take, once they have, to hand on the events still queued


@dataclass(frozen=True)
class Outcome:
    """How a launched run ended: the command's exit status, and one line on a process that failed
    (None when every process ended well, or when the failing one said its own words)."""

    exit_code: int
    message: str | None = None


@dataclass(frozen=True)
class ToQueue:
    """``make_sink`` for a front end in the launching process: events go into ``queue`` (a
    multiprocessing queue of the spawn context), read there."""

    queue: Any

    def __call__(self) -> EventSink:
        return self.queue.put

    def flush(self) -> None:
        """Wait until every event put is in the pipe (its feeder thread dies with an immediate exit)."""
        self.queue.close()
        self.queue.join_thread()


def process_config(config: TrainConfig, devices: DeviceList) -> TrainConfig:
    """The config every process trains with: the device list (each takes its own item) and, on the CPU,
    the cores shared out, so that N processes do not each start a thread per core."""
    threads = config.threads
    if not devices.on_cuda and threads is None:
        threads = max(1, (os.cpu_count() or 1) // devices.processes)
    return replace(config, device=str(devices), threads=threads)


def launch(
    config: TrainConfig,
    devices: DeviceList,
    make_sink: Callable[[], EventSink],
    stop: Any | None = None,
    output: str = "terminal",
) -> Outcome:
    """Train ``config`` on ``devices`` (several), one process each, and wait for them to end.

    ``make_sink``: a picklable zero-argument callable, called in each process, that returns where that
    process's events go (rank 0 reports the run; the others only their own fatal error). ``stop``: a
    multiprocessing Event (spawn context) that, once set, stops every process at the next mini-batch
    with a resumable last.pt. Ctrl+C or SIGTERM to this process does the same (the launcher passes the
    signal on). ``output``: ``terminal`` (the processes print where this one does) or ``files`` (into a
    temporary folder: a front end's screen must not be written over). Blocks; call it from a worker
    thread in a front end."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    logs = log_dir = None
    if output == "files":
        log_dir = tempfile.mkdtemp(prefix="captcha-tui-processes-")
        logs = DefaultLogsSpecs(log_dir=log_dir, redirects=Std.ALL)

    launch_config = one_machine(devices, logs)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    quiet = _quiet_launcher()
    try:
        elastic_launch(launch_config, run_process)(process_config(config, devices), make_sink, stop)
        outcome = Outcome(0)
    except ChildFailedError as failed:
        outcome = _failure(failed, devices)
    except SignalException:
        # The launcher passed the signal on: the processes saved last.pt and said so, rank 0 printing.
        outcome = Outcome(EXIT_INTERRUPTED)
    finally:
        quiet.close()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():  # the launcher's own handlers outlive it otherwise
                signal.signal(sig, handler)
    return _keep_output_of_failure(outcome, log_dir) if log_dir is not None else outcome


def one_machine(devices: DeviceList, logs: Any = None):
    """The launcher's settings for one process per device of this machine, as ``torchrun --standalone``
    would start them. ``logs``: where their output goes (None: where this process's does)."""
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=devices.processes,
        run_id=f"captcha-tui-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # standalone, as torchrun --standalone: a free port of this machine
        max_restarts=0,  # a failed process ends the run (resumable from last.pt), it does not restart it
        start_method="spawn",
        logs_specs=logs,
    )


def _keep_output_of_failure(outcome: Outcome, log_dir: str) -> Outcome:
    """The processes' output files: kept, and named, where a process failed (its traceback is there);
    removed otherwise, where the run's own events said everything."""
    if outcome.message is None:
        shutil.rmtree(log_dir, ignore_errors=True)
        return outcome
    return replace(outcome, message=f"{outcome.message} (each process's output: {log_dir})")


def _failure(failed, devices: DeviceList) -> Outcome:
    """The first process that failed, in one line: the launcher's own report is a table with a traceback
    section that only says where to read about tracebacks."""
    rank, failure = failed.get_first_failure()
    where = f"process {rank} of {devices.processes} ({devices.names[failure.local_rank]})"
    if failure.exitcode < 0:
        return Outcome(
            1,
            f"{where} was killed by {failure.signal_name()}; the other processes were stopped "
            "(a last.pt in the run folder resumes the run: --resume)",
        )
    if failure.exitcode == EXIT_USAGE:
        return Outcome(EXIT_USAGE)  # the process said what to change; nothing to add
    return Outcome(1, f"{where} ended with exit status {failure.exitcode}; the other processes were stopped")


class _Quiet:
    def __init__(self, loggers: list[tuple[logging.Logger, int]]):
        self._loggers = loggers

    def close(self) -> None:
        for logger, level in self._loggers:
            logger.setLevel(level)


def _quiet_launcher() -> _Quiet:
    """The launcher logs every start, stop and signal as warnings: the run's own lines say what matters."""
    prefixes = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")
    # Each of the launcher's modules sets its own logger's level (LOGLEVEL, else WARNING), so quieting
    # the parents is not enough: every logger under them that exists by now, too.
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
    ]
    loggers = [logging.getLogger(name) for name in {*prefixes, *names}]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    return _Quiet(saved)


def run_process(config: TrainConfig, make_sink: Callable[[], EventSink], stop: Any | None) -> None:
    """One training process (the launcher's entry point): train, and end with the status a single
    process's `train --headless` would have (0, 2 for a usage error, 1 for a failure)."""
    from .loop import Trainer

    _quiet_launcher()  # the process's own copy of the loggers
    trainer = Trainer(config, make_sink())
    signals = 0

    def on_signal(signum, frame):  # noqa: ARG001
        # The terminal's Ctrl+C reaches every process, and the launcher passes it on again: the second
        # is not the user insisting. The launcher sends SIGKILL itself if a process does not end.
        nonlocal signals
        signals += 1
        if signals == 1:
            trainer.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    if stop is not None:  # a front end's stop: every rank asks, the first mini-batch after stops them all
        threading.Thread(target=lambda: stop.wait() and trainer.request_stop(), daemon=True).start()
    result = trainer.run()
    if isinstance(result, ev.Failed):
        raise SystemExit(EXIT_USAGE if result.usage else 1)
    if signals:
        # The launcher, shutting down on the signal, no longer collects return values, and its process
        # wrapper waits for it to before exiting: a clean return would hold Ctrl+C up for the launcher's
        # 30 s kill timeout. last.pt is saved and the run's lines printed: end now, as interrupted.
        if isinstance(make_sink, ToQueue):
            make_sink.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


class LaunchedRun:
    """A run on several devices, driven from a front end as a :class:`Trainer` is: :meth:`run` (blocking,
    in a worker thread) launches the processes and hands rank 0's events to ``on_event`` in this process,
    in order; :meth:`request_stop` stops every process at the next mini-batch with a resumable last.pt.

    There is no pause: a rank that waits leaves the others blocked in their next collective, which ends
    the run once ``dist_timeout_s`` passes. The processes' own output goes to files in a temporary folder,
    not to the front end's terminal."""

    paused = False
    can_pause = False

    def __init__(self, config: TrainConfig, devices: DeviceList, on_event: EventSink):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # the launcher spawns: its queues must match
        self.config, self.devices = config, devices
        self._sink = on_event
        self._queue = context.Queue()
        self._stop = context.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def pause(self) -> None:  # noqa: D102 - not offered (see the class)
        pass

    def resume(self) -> None:  # noqa: D102
        pass

    def run(self) -> ev.Finished | ev.Failed:
        """Train to the end; never raises. Returns the run's last event (also passed on)."""
        ended: list[ev.Finished | ev.Failed] = []
        launched = threading.Event()  # set once every process has ended: what is in the queue is all

        # No end-of-events marker through the queue: a process killed while sending holds the queue's
        # write lock for ever, and a marker put after it would never arrive (the front end hung).
        def relay() -> None:
            while True:
                try:
                    event = self._queue.get(timeout=RELAY_POLL_S)
                except queue.Empty:
                    if launched.is_set():
                        return
                    continue
                if isinstance(event, (ev.Finished, ev.Failed)):
                    ended.append(event)
                self._sink(event)

        reader = threading.Thread(target=relay, name="captcha-launch-events", daemon=True)
        reader.start()
        try:
            outcome = launch(self.config, self.devices, ToQueue(self._queue), self._stop, output="files")
        except Exception as exc:  # noqa: BLE001 - the launcher itself failed (a port, a spawn): say so
            outcome = Outcome(1, f"could not start the training processes: {type(exc).__name__}: {exc}")
        finally:
            launched.set()
            # Bounded: a message cut off by a kill would block the reader's read for ever (it is a daemon).
            reader.join(timeout=RELAY_DRAIN_S)
        if outcome.message is not None:
            failed = ev.Failed(message=outcome.message)
            self._sink(failed)
            return failed
        if ended:
            return ended[-1]
        failed = ev.Failed(message=f"the training processes ended with exit status {outcome.exit_code}")
        self._sink(failed)
        return failed
