"""The captcha-tui app: owns the training run, the data pipeline and the hardware monitor; screens render.

Threads and what they may do:

* the training worker (a Textual thread worker) runs ``Trainer.run``; the trainer's ``on_event`` only puts
  events into an :class:`EventBuffer`. A 0.1 s timer on the UI thread drains it and posts one
  :class:`TrainingUpdate` to the training screen, so the UI gets at most ten updates a second whatever
  the batch rate;
* the hardware :class:`Monitor` thread samples about once a second and only posts :class:`HardwareSampled`;
* the data worker (generate + prepare) only posts :class:`DataProgress`.

How a worker ended (the run's Finished/Failed, the dataset made or not) comes back as the worker's result,
handled in :meth:`CaptchaApp.on_worker_state_changed` on the UI thread.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing import resource_tracker
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from ..core import events as ev
from ..core.base_model import default_model
from ..core.dataset import DatasetError, prepare
from ..core.decoding import ReadOptions
from ..core.devices import DeviceError, DeviceInfo, DeviceList, device_name, list_devices, parse_device_list
from ..core.generator import DEFAULT_COUNT, generate
from ..core.hardware import HardwareSampler, Monitor, Sample
from ..core.learning import LearnSettings
from ..core.train import BEST, TrainConfig, Trainer
from ..core.train.config import with_saved_recipe
from ..core.train.launch import LaunchedRun
from ..core.train.stopping import StopRequest
from .dataset_info import DatasetSummary, read_dataset_summary
from .event_buffer import EventBuffer
from .messages import DataProgress, HardwareSampled, TrainingUpdate
from .run_info import RunSummary, read_run_summary
from .screens.device_picker import DevicePicker
from .screens.eval import EvalScreen
from .screens.label import LabelScreen
from .screens.path_prompt import PathPrompt
from .screens.run_view import RunView
from .screens.runs import RunsScreen
from .screens.train import TrainScreen
from .widgets.path_completion import PathInput

FLUSH_INTERVAL_S = 0.1  # at most ten UI updates a second from the trainer
TRAIN_THREAD_NAME = "captcha-train"  # the worker thread's name while it runs the trainer
# The dashboard's own keys: the runs screens only read run folders, so these are off there (s would start
# a run from a table of old ones), and so is every screen of an app started on one (`captcha-tui label`:
# s typed after the last image would start a run nobody sees).
DASHBOARD_ACTIONS = frozenset(
    {
        "start_training",
        "stop_training",
        "resume_training",
        "pause_training",
        "continue_training",
        "pick_device",
        "open_label",
    }
)
GENERATE_SEED = 0
FINISHED_STATES = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


class DataCancelled(Exception):
    """Raised from a progress callback to stop generate/prepare when the app quits."""


def wall_clock() -> str:
    return time.strftime("%H:%M:%S")


def compact_heap() -> None:
    """Collect the garbage now and leave every object still alive out of later collections (gc.freeze).

    A full collection walks every tracked object, and Textual plus torch's lazy imports at the start of a
    run (sympy, dynamo) make some 350,000 of them. Each pass held the UI thread, and the GIL, for 100-500
    ms of CPU on two busy cores, and opening and closing a screen while training made garbage for one
    every one to three seconds: the slowest key presses were the ones that met a pass. With those
    objects frozen a pass costs a tenth. Unfreezing first lets this pass free whatever was frozen since
    and has died in a cycle, so nothing stays frozen past the next compaction.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def start_process_pool_helper() -> None:
    """Start multiprocessing's resource tracker now, before Textual captures stderr.

    The first process pool starts that helper process and hands it ``sys.stderr.fileno()``. Inside a
    running Textual app stderr is a capture object whose fileno() is -1, so generate/prepare with
    several workers would fail with "bad value(s) in fds_to_keep". Started early, it is simply reused.
    """
    try:
        if sys.stderr is None or sys.stderr.fileno() < 0:
            return  # already inside an app: the data worker will report the failure if it comes
    except (AttributeError, OSError, ValueError):
        return
    resource_tracker.ensure_running()


class CaptchaApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "captcha-tui"
    BINDINGS = [
        # Each key is in the footer only while it acts (check_action); s and p say what they do now.
        Binding(
            "s", "start_training", "start", tooltip="Start training (after a stop: carry on from last.pt)"
        ),
        Binding("s", "stop_training", "stop", tooltip="Stop training and save a resumable last.pt"),
        Binding("r", "resume_training", "resume", tooltip="Carry on with the run folder's last.pt"),
        Binding("p", "pause_training", "pause", tooltip="Pause training (p again carries on)"),
        Binding("p", "continue_training", "continue", tooltip="Carry on with the paused training"),
        Binding("d", "pick_device", "device", tooltip="Choose the device to train on"),
        # Priority: run as the key arrives, before the keys typed after it (a path typed ahead, a
        # paste) are handed to the screen it leaves.
        Binding("e", "open_eval", "eval", tooltip="Read captchas with the best checkpoint", priority=True),
        Binding("l", "open_label", "label", tooltip="Label a folder of your own captchas"),
        Binding("h", "open_runs", "runs", tooltip="Every run folder beside this one: compare them, open one"),
        Binding("q", "quit", "quit", tooltip="Quit (a running training saves last.pt first)"),
    ]

    def __init__(
        self,
        config: TrainConfig | None = None,
        image_dir: Path = Path("data/captchas"),
        *,
        autostart: bool = False,
        start_screen: str = "train",
        model: Path | None = None,
        sampler: HardwareSampler | None = None,
        devices: list[DeviceInfo] | None = None,
        generate_count: int = DEFAULT_COUNT,
        data_workers: int | None = None,
        clock: Callable[[], str] = wall_clock,
        monitor_interval: float | None = 1.0,
        image_renderer: str = "auto",
        eval_device: str = "cpu",
        eval_options: ReadOptions | None = None,
        label_dir: Path | None = None,
        runs_dir: Path | None = None,
        label_learn: LearnSettings | None = None,
        given_options: Collection[str] | None = None,
    ) -> None:
        """``given_options``: the train options typed on the command line, by field name; ``r`` resumes
        the run folder's last run with its own data and recipe (config.json) for the others, as
        `train --resume` does (None: ``config`` is all as asked, as from Python).

        Everything after ``image_dir`` but that is a seam for tests and demos:

        ``sampler`` (e.g. over a FakeNvmlBackend), ``devices`` for the picker (else listed on first use),
        ``generate_count`` images for ``g``, ``clock`` for the event log's times, ``monitor_interval``
        None to run no monitor thread, ``image_renderer`` "auto"/"halfcell"/"unicode"/"none".
        """
        super().__init__()
        self.config = config or TrainConfig()
        self.image_dir = Path(image_dir)
        self.autostart = autostart
        self.start_screen = start_screen
        # No model named: the run folder's best.pt, else the base model shipped in the package.
        self.eval_checkpoint = Path(model) if model else default_model(Path(self.config.out), BEST)[0]
        self.generate_count = generate_count
        self.data_workers = data_workers
        self.image_renderer = image_renderer
        self.eval_device = eval_device
        self.eval_options = eval_options  # eval --charset / --length: the eval screen starts with them
        self.label_dir = label_dir  # the folder start_screen="label" opens
        self.label_learn = label_learn  # how the label screen's model learns (None: the defaults)
        self.given_options = None if given_options is None else frozenset(given_options)
        # The folder of run folders h lists: start_screen="runs"'s, else the one the run folder is in.
        self.runs_dir = Path(runs_dir) if runs_dir is not None else Path(self.config.out).parent
        self.devices = devices
        self.dataset: DatasetSummary | None = None
        # Shown as damaged (a manifest that cannot be read): the one kind of dataset g and o may replace.
        self.damaged_dataset = False
        self.trainer: Trainer | LaunchedRun | None = None  # LaunchedRun: one run on several devices
        self._started_config: TrainConfig | None = None  # what the last trainer was started with
        self.last_result: ev.Finished | ev.Failed | None = None
        self.last_run: RunSummary | None = None  # what the run folder held when the app started
        self.train_screen = TrainScreen(clock)
        self.eval_screen: EvalScreen | None = None
        self.event_buffer = EventBuffer()
        self._train_worker: Worker | None = None
        self._data_worker: Worker | None = None
        self._data_cancel = threading.Event()
        self._sampler = sampler if sampler is not None else HardwareSampler()
        self._monitor = Monitor(self._on_hardware_sample, self._sampler, monitor_interval or 1.0)
        self._run_monitor = monitor_interval is not None
        self._quitting = False
        self._stopping = False  # a stop was asked of the running trainer
        self._fresh_checkpoint: Path | None = None  # a new best.pt the eval screen hasn't picked up
        self._lent_to_a_run = (
            False  # the eval screen reads with a run's best.pt, opened from the runs screens
        )
        self._listing_devices = False
        self.device_picker: DevicePicker | None = None  # while one is open
        if data_workers != 1:
            start_process_pool_helper()

    # ---- start-up and shut-down ---------------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(self.train_screen)
        self._flush_timer = self.set_interval(FLUSH_INTERVAL_S, self.flush_training_events, pause=True)
        self._show_config()
        self._check_dataset()
        self._read_last_run(Path(self.config.out))
        if self._run_monitor:
            self._monitor.start()
        self.call_after_refresh(compact_heap)  # the screens are built: freeze what start-up made
        if self.start_screen == "eval":
            await self.action_open_eval(standalone=True)
        elif self.start_screen == "label" and self.label_dir is not None:
            self.open_label(self.label_dir, standalone=True)
        elif self.start_screen == "runs":
            await self.push_screen(RunsScreen(self.runs_dir, standalone=True))
        elif self.autostart and self.dataset is not None:
            self.start_training()

    def on_unmount(self) -> None:
        self._data_cancel.set()
        self._monitor.stop()

    async def action_quit(self) -> None:
        """Stop a running job first (training saves a resumable last.pt), then exit once it has ended."""
        if self._quitting:
            self.notify("still saving, one moment…", timeout=2)
            return
        self._quitting = True
        if self.training:
            self._request_stop("quitting: saving a resumable checkpoint first…")
        if self.making_data:
            self._data_cancel.set()
        self._exit_when_idle()

    def _exit_when_idle(self) -> None:
        if self._quitting and not self.training and not self.making_data:
            self._monitor.stop()
            code = 1 if isinstance(self.last_result, ev.Failed) else 0
            self.exit(code, return_code=code)

    # ---- state -------------------------------------------------------------------------------------------

    @property
    def training(self) -> bool:
        return self._train_worker is not None and self._train_worker.state not in FINISHED_STATES

    @property
    def making_data(self) -> bool:
        return self._data_worker is not None and self._data_worker.state not in FINISHED_STATES

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys that would do nothing right now: the footer shows only those that act. Whoever
        changes what this reads calls ``refresh_bindings``."""
        return self._acts(action, self.screen)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette (Ctrl+P) offers the app's keys that act on ``screen`` (the one it was opened
        from), with their key, besides Textual's own commands (quit among them)."""
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.action != "quit" and self._acts(binding.action, screen):
                yield SystemCommand(
                    f"{binding.description.capitalize()} ({binding.key})",
                    binding.tooltip,
                    partial(self.run_action, binding.action),
                )

    def _acts(self, action: str, screen: Screen) -> bool:
        """Whether the app's ``action`` does something on ``screen`` now."""
        if isinstance(screen, ModalScreen) and action in (
            "start_training",
            "stop_training",
            "resume_training",
            "pause_training",
            "continue_training",
            "pick_device",
            "open_eval",
            "open_label",
            "open_runs",
        ):
            return False
        on_runs = isinstance(screen, (RunsScreen, RunView))
        if (on_runs or self.start_screen != "train") and action in DASHBOARD_ACTIONS:
            return False
        busy = self.training or self.making_data
        running = self.training and not self._stopping  # a stopping run can only finish
        paused = self.trainer is not None and self.trainer.paused
        can_pause = getattr(self.trainer, "can_pause", True)  # not a run on several devices
        if action == "start_training":
            return not busy and self.dataset is not None
        if action == "stop_training":
            return running
        if action == "resume_training":
            return not busy and self._resumable() and self._has_dataset(self._resumed_config())
        if action == "pause_training":
            return running and not paused and can_pause
        if action == "continue_training":
            return running and paused
        if action == "open_eval":
            if on_runs:  # e reads with the run's best.pt there, so only a run with one offers it
                return screen.run_checkpoint is not None
            return screen is not self.eval_screen
        if action == "open_runs":  # one runs screen at a time (e from it opens the eval screen above it)
            return not any(isinstance(shown, RunsScreen) for shown in self.screen_stack)
        if action == "open_label":
            return not isinstance(screen, LabelScreen)
        if action == "generate_data":
            return not busy and self.dataset is None
        if action == "prepare_folder":
            return not busy
        return True

    def _resolved_device(self) -> str:
        return device_name(self.config.device)

    def _show_config(self) -> None:
        device = self._resolved_device()
        # Torch memory of the training device, read by the monitor: this process's, so none for a run
        # on several devices (its processes hold it).
        self._sampler.device = None if "," in device else device
        self.train_screen.show_config(self.config, device)

    def _check_dataset(self) -> None:
        try:
            self.dataset = read_dataset_summary(self.config.data)
        except DatasetError as exc:
            self.dataset = None
            # An empty folder needs no explanation; a damaged one does.
            problem = str(exc) if (Path(self.config.data) / "manifest.json").exists() else None
            self.damaged_dataset = problem is not None
            self.train_screen.show_missing_dataset(
                self.config.data, self.image_dir, self.generate_count, problem
            )
        else:
            self.train_screen.show_dataset(self.dataset)
            self.train_screen.set_state("idle")
        self.refresh_bindings()

    # ---- training ------------------------------------------------------------------------------------------

    def action_start_training(self) -> None:
        self.start_training()

    def action_stop_training(self) -> None:
        if self.training:
            self._request_stop("stopping: saving a resumable checkpoint…")

    def action_resume_training(self) -> None:
        self.start_training(resume=True)

    def _resumable(self) -> bool:
        """There is a last.pt to carry on from, with epochs left to train."""
        if isinstance(self.last_result, ev.Finished):
            return (
                self.last_result.reason == StopRequest.reason and self.last_result.last_checkpoint is not None
            )
        run = self.last_run
        return run is not None and run.has_last and len(run.epochs) < self._resumed_config().epochs

    def _has_dataset(self, config: TrainConfig) -> bool:
        """The dashboard's dataset is there, or ``config`` trains on another (a resumed run's own), which
        the trainer checks as `train --resume` does."""
        return self.dataset is not None or Path(config.data) != Path(self.config.data)

    def _resumed_config(self) -> TrainConfig:
        """What ``r`` resumes the run folder's last run with: the dashboard's config, with that run's own
        data and recipe where they were not typed (a run of 40 epochs is not cut to the default 15)."""
        config = replace(self.config, resume=True, init=None)
        if self.last_run is None or self.given_options is None:
            return config
        return with_saved_recipe(config, self.last_run.recipe, self.given_options)

    @work(thread=True, exclusive=True, group="last-run", exit_on_error=False)
    def _read_last_run(self, run_dir: Path) -> RunSummary | None:
        return read_run_summary(run_dir)

    def _last_run_read(self, summary: RunSummary | None) -> None:
        if summary is None or self.trainer is not None or self.last_result is not None:
            return  # nothing there, or a run of this session already fills the dashboard
        self.last_run = summary
        self.train_screen.show_last_run(summary, self._resumed_config().epochs)

    def action_pause_training(self) -> None:
        if self.trainer is not None and self.training:
            self.trainer.pause()
            self.refresh_bindings()  # p now carries on

    def action_continue_training(self) -> None:
        if self.trainer is not None and self.training:
            self.trainer.resume()
            self.refresh_bindings()

    def start_training(self, resume: bool = False) -> None:
        """``resume``: carry on with last.pt, as ``captcha-tui train --resume`` does."""
        if self.training:
            return
        if self.making_data:
            self.notify("the dataset is still being made", severity="warning")
            return
        # After a stop (s or q) the next start carries on from last.pt instead of starting over, with what
        # that run trained on (a run r resumed has its own data and recipe), on the device chosen now.
        stopped = isinstance(self.last_result, ev.Finished) and self.last_result.reason == StopRequest.reason
        config = self.config
        if stopped:  # a fine-tune carries on from its own last.pt (which names its --init)
            config = replace(self._started_config or config, resume=True, init=None, device=config.device)
        elif resume:
            config = self._resumed_config()
        if not self._has_dataset(config):
            self.notify(f"no dataset at {self.config.data}: press g or o first", severity="warning")
            return
        self._started_config = config
        try:
            devices = parse_device_list(config.device)
        except DeviceError as exc:
            if "," in config.device:  # a list this machine cannot train on: nothing to start
                self.last_result = ev.Failed(message=str(exc), usage=True)
                self.train_screen.apply_event(self.last_result)
                return
            devices = DeviceList((config.device,))  # one device: the trainer says what is wrong with it
        if devices.several:
            # Its processes are spawned and watched from the worker thread; rank 0's events come back
            # over a queue into the same buffer.
            self.trainer = LaunchedRun(config, devices, self.event_buffer.put)
        else:
            self.trainer = Trainer(config, on_event=self.event_buffer.put)
        self._stopping = False
        self._flush_timer.resume()
        self._train_worker = self._run_trainer(self.trainer)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _run_trainer(self, trainer: Trainer | LaunchedRun) -> ev.Finished | ev.Failed:
        # Named while it trains, so anyone (tests, py-spy) can tell a training thread from an idle one.
        thread = threading.current_thread()
        idle_name, thread.name = thread.name, TRAIN_THREAD_NAME
        try:
            return trainer.run()
        finally:
            thread.name = idle_name

    def _request_stop(self, message: str) -> None:
        if self.trainer is not None:
            self.trainer.request_stop()
        self._stopping = True
        self.refresh_bindings()  # no stop or pause keys while it saves
        self.train_screen.set_state("stopping")
        self.train_screen.log_line(message, "yellow")

    def flush_training_events(self) -> None:
        """Runs on the UI thread every FLUSH_INTERVAL_S: one message with whatever arrived since."""
        events, batch = self.event_buffer.drain()
        if events or batch is not None:
            self.train_screen.post_message(TrainingUpdate(events, batch))
        started = next((event for event in events if isinstance(event, ev.RunStarted)), None)
        if started is not None:
            # A new run beside an earlier one goes to a folder of its own: s (after a stop) and r carry on
            # that one, and the session's exit names it.
            self.config = replace(self.config, out=Path(started.run_dir))
            if self._started_config is not None:
                self._started_config = replace(self._started_config, out=Path(started.run_dir))
            # The run's imports, data and model are in: freeze them too. No collection first (it would
            # hold the GIL for a few hundred ms as the run starts); the run's end compacts the heap.
            gc.freeze()

    # ---- the hardware monitor -------------------------------------------------------------------------------

    def _on_hardware_sample(self, sample: Sample) -> None:
        """Runs on the monitor thread: hand the sample over, touch nothing else."""
        self.train_screen.post_message(HardwareSampled(sample))

    # ---- first run: making the dataset -------------------------------------------------------------------------

    def action_generate_data(self) -> None:
        if self.dataset is not None:
            self.notify(f"there already is a dataset at {self.config.data}", severity="warning")
            return
        self._start_data(self.image_dir, self.generate_count)

    async def action_prepare_folder(self) -> None:
        if self.dataset is not None:
            # Replacing a usable dataset loses it (and the runs trained on it can no longer resume): not
            # something one key should do.
            self.notify(
                f"there already is a dataset at {self.config.data} ({self.dataset.total:,} images); to "
                f"replace it: captcha-tui prepare FOLDER --out {self.config.data} --force",
                severity="warning",
                timeout=10,
            )
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._start_data(path, None)

        prompt = PathPrompt(
            "prepare an image folder",
            f"A folder of labelled captchas (00042-k3x9.png or a labels.csv); "
            f"it becomes the dataset in {self.config.data}.",
            str(self.image_dir),
        )
        # As for e: a path typed right after the o goes into the prompt (replacing the suggestion).
        await self.push_screen(prompt, chosen)
        prompt.query_one(PathInput).focus_now()

    def _start_data(self, source: Path, generate_count: int | None) -> None:
        if self.training or self.making_data:
            self.notify("busy: wait for the current job to end", severity="warning")
            return
        self._data_cancel.clear()
        self.train_screen.start_dataset(generate_count is not None, source)
        # Only a dataset shown as damaged is replaced; one that appears meanwhile is refused by prepare.
        self._data_worker = self._make_dataset(source, generate_count, replace=self.damaged_dataset)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="data", exit_on_error=False)
    def _make_dataset(
        self, source: Path, generate_count: int | None, replace: bool
    ) -> tuple[DatasetSummary, int]:
        screen, cancel = self.train_screen, self._data_cancel

        def progress(stage: str) -> Callable[[int, int], None]:
            def report(done: int, total: int) -> None:
                if cancel.is_set():
                    raise DataCancelled("cancelled")
                screen.post_message(DataProgress(stage, done, total))

            return report

        if generate_count:
            generate(
                source,
                generate_count,
                GENERATE_SEED,
                workers=self.data_workers,
                on_progress=progress("generate"),
            )
        report = prepare(
            source,
            self.config.data,
            workers=self.data_workers,
            on_progress=progress("prepare"),
            replace=replace,
        )
        return read_dataset_summary(self.config.data), sum(report.skipped.values())

    # ---- devices ---------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="devices", exit_on_error=False)
    def _list_devices(self) -> list[DeviceInfo]:
        return list_devices()

    def action_pick_device(self) -> None:
        if self.devices is None and not self._listing_devices:
            # Listed on first use: asking CUDA for free memory starts a CUDA context, worth it only now.
            # The picker opens at once and says it is looking (a toast would cover it).
            self._listing_devices = True
            self._list_devices()
        refuse = None
        if self.training:
            refuse = "training is running: stop it (s) first, then pick another device"
        self.device_picker = DevicePicker(self.devices, self._resolved_device(), refuse)
        self.push_screen(self.device_picker, self._device_chosen)

    def _device_chosen(self, name: str | None) -> None:
        self.device_picker = None
        if name is None or name == self._resolved_device():
            return
        self.config = replace(self.config, device=name)
        self._show_config()
        several = f" (one run, a process on each of {name.count(',') + 1})" if "," in name else ""
        self.train_screen.log_line(f"device set to {name} for the next run{several}")

    # ---- eval --------------------------------------------------------------------------------------------------

    async def action_open_eval(self, standalone: bool = False) -> None:
        """``standalone``: started by `captcha-tui eval`, so Escape leaves the app (as for label).

        From the runs screens, the eval screen reads with the run's best.pt; Escape comes back there."""
        run_checkpoint = getattr(self.screen, "run_checkpoint", None)
        if self.eval_screen is None:
            self.eval_screen = EvalScreen(
                run_checkpoint or self.eval_checkpoint,
                self.eval_device,
                self.image_renderer,
                standalone,
                self.eval_options,
            )
            self.install_screen(self.eval_screen, name="eval")
        elif run_checkpoint is not None:
            if run_checkpoint != self.eval_screen.checkpoint:
                self.eval_screen.use_checkpoint(run_checkpoint)
        elif self._fresh_checkpoint is not None or self._lent_to_a_run:
            # From the dashboard: its own checkpoint again, after a run's (or the new best.pt).
            self.eval_screen.use_checkpoint(self._fresh_checkpoint or self.eval_checkpoint)
        if run_checkpoint is None:
            self._fresh_checkpoint = None
        self._lent_to_a_run = run_checkpoint is not None
        if self.screen is not self.eval_screen:
            # Awaited, and the focus set at once: keys that came in right after the e go to the path
            # field, not to a screen still being built.
            await self.push_screen("eval")
            if self.eval_screen.focused is None:
                self.eval_screen.query_one("#image-path", PathInput).focus_now()

    # ---- labelling -----------------------------------------------------------------------------------------

    def action_open_label(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.open_label(path)

        self.push_screen(
            PathPrompt(
                "label a folder",
                "A folder of your own captchas: each answer goes into its labels.csv at once.",
                str(self.label_dir or self.image_dir),
            ),
            chosen,
        )

    def open_label(self, folder: Path, standalone: bool = False) -> None:
        """``standalone``: started by `captcha-tui label`, so Escape leaves the app, not to a dashboard the
        user never asked for."""
        # A fresh screen each time: the folder's labels.csv, not the screen, holds the answers so far.
        self.label_dir = folder
        self.push_screen(
            LabelScreen(
                folder,
                self.eval_checkpoint,
                self.eval_device,
                self.image_renderer,
                standalone,
                learn=self.label_learn,
            )
        )

    # ---- runs ------------------------------------------------------------------------------------------------

    def action_open_runs(self) -> None:
        # A fresh screen each time: it reads the folders again, the run training now included.
        self.push_screen(RunsScreen(self.runs_dir))

    # ---- workers ending ----------------------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state not in FINISHED_STATES:
            return
        if worker is self._train_worker:
            self._training_ended(worker)
        elif worker is self._data_worker:
            self._dataset_ended(worker)
        elif worker.group == "last-run":
            self._last_run_read(worker.result)
        elif worker.group == "devices":
            self.devices = worker.result or [DeviceInfo("cpu", "CPU")]
            self._listing_devices = False
            if self.device_picker is not None and self.device_picker.listing:
                self.device_picker.show_devices(self.devices)
        self.refresh_bindings()
        self._exit_when_idle()

    def _training_ended(self, worker: Worker) -> None:
        self.flush_training_events()  # the last events (Finished or Failed) right away
        self._flush_timer.pause()
        self.trainer, self._stopping = None, False
        compact_heap()  # let the finished run's objects go
        result = worker.result
        if isinstance(result, (ev.Finished, ev.Failed)):
            self.last_result = result
        elif worker.error is not None:  # trainer.run never raises; this would be a bug in the app
            self.last_result = ev.Failed(f"the training worker crashed: {worker.error!r}")
            self.train_screen.apply_event(self.last_result)
        if isinstance(result, ev.Finished) and result.best_checkpoint:
            self.eval_checkpoint = self._fresh_checkpoint = Path(result.best_checkpoint)

    def _dataset_ended(self, worker: Worker) -> None:
        if worker.state == WorkerState.SUCCESS:
            self.dataset, skipped = worker.result
            self.train_screen.show_dataset_made(self.dataset, skipped)
            return
        error = worker.error
        if isinstance(error, DataCancelled) or error is None:
            problem = "making the dataset was cancelled"
        else:
            problem = f"making the dataset failed: {error}"
        self.train_screen.show_missing_dataset(self.config.data, self.image_dir, self.generate_count, problem)
        self.train_screen.log_line(problem, "red")


@dataclass(frozen=True)
class AppExit:
    """How a dashboard session ended, for the terminal it leaves."""

    code: int
    result: ev.Finished | ev.Failed | None  # the session's last training run; None if it trained none
    run_dir: Path


def run_app(
    config: TrainConfig | None,
    image_dir: Path,
    autostart: bool,
    screen: str,
    model: Path | None,
    label_dir: Path | None = None,
    runs_dir: Path | None = None,
    label_learn: LearnSettings | None = None,
    eval_device: str = "cpu",
    eval_options: ReadOptions | None = None,
    given_options: Collection[str] | None = None,
) -> AppExit:
    """The CLI's entry point: run the dashboard until the user quits."""
    app = CaptchaApp(
        config,
        image_dir,
        autostart=autostart,
        start_screen=screen,
        model=model,
        eval_device=eval_device,
        eval_options=eval_options,
        label_dir=label_dir,
        runs_dir=runs_dir,
        label_learn=label_learn,
        given_options=given_options,
    )
    app.run()
    return AppExit(app.return_code or 0, app.last_result, Path(app.config.out))
