"""A scripted, deterministic training run and hardware samples: for the snapshot tests and screenshots.

Nothing here trains. The events are what a run of the fast preset on a GPU plausibly reports half-way
through (best 0.973 at epoch 12, six epochs since), and the samples come from the fake NVML backend at
fixed ticks with a fixed host, so the same pictures come out on any machine.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from captcha_tui.core import events as ev
from captcha_tui.core.generator import DEFAULT_CHARSET
from captcha_tui.core.hardware import (
    HardwareSampler,
    HostSample,
    Sample,
    TorchMemorySample,
)
from captcha_tui.core.images import MODEL_IMAGE_SIZE
from captcha_tui.core.model import build_model, count_parameters
from captcha_tui.core.spec import CodeSpec
from captcha_tui.core.train.stopping import EpochBudget, Patience, Standing, StopRules
from captcha_tui.core.units import GiB
from captcha_tui.tui.dataset_info import DatasetSummary
from captcha_tui.tui.messages import HardwareSampled, TrainingUpdate
from tests.fake_nvml import FakeNvmlBackend

DEMO_TRAIN, DEMO_VAL, DEMO_TEST = 16_000, 2_000, 2_000
DEMO_BATCHES = 160
EPOCHS_DONE = 18
BEST_EPOCH = 12
PATIENCE = 20
MAX_EPOCHS = 40


def fixed_clock() -> str:
    """The event log's time on every line, so pictures don't depend on when they were taken."""
    return "14:02:17"


def ticking_clock(start_s: int = 14 * 3600 + 2 * 60 + 17, step_s: int = 7):
    """A clock that moves on by ``step_s`` each time it is read: lifelike times, same on every run."""
    calls = iter(range(10**9))

    def clock() -> str:
        seconds = start_s + step_s * next(calls)
        return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    return clock


def _curve(epoch: int, top: float, speed: float) -> float:
    return top * (1 - math.exp(-speed * epoch))


def _val_accuracy(epoch: int) -> float:
    # Rises to 0.973 at epoch 12, then hovers just below it: the plateau early stopping watches for.
    if epoch <= BEST_EPOCH:
        return round(0.973 * _curve(epoch, 1.0, 0.45) / _curve(BEST_EPOCH, 1.0, 0.45), 4)
    return round(0.968 - 0.004 * math.sin(epoch), 4)


def run_events() -> list[ev.TrainerEvent]:
    """RunStarted, then EPOCHS_DONE epochs with their bests, checkpoints and countdowns."""
    spec = CodeSpec.fixed(DEFAULT_CHARSET, 4, MODEL_IMAGE_SIZE)
    parameters = count_parameters(build_model("fast", spec))
    events: list[ev.TrainerEvent] = [
        ev.RunStarted(
            dataset="data/dataset",
            train_count=DEMO_TRAIN,
            val_count=DEMO_VAL,
            test_count=DEMO_TEST,
            spec=spec,
            preset="fast",
            device="cuda:0",
            batch_size=100,
            learning_rate=3e-3,
            amp=True,
            patience=PATIENCE,
            max_epochs=MAX_EPOCHS,
            start_epoch=1,
            batches_per_epoch=DEMO_BATCHES,
            run_dir="runs/default",
            parameters=parameters,
        )
    ]
    best = -1.0
    rules = StopRules(EpochBudget(MAX_EPOCHS), patience=Patience(PATIENCE))  # the trainer's countdown
    for epoch in range(1, EPOCHS_DONE + 1):
        val = _val_accuracy(epoch)
        train = min(0.995, round(_curve(epoch, 1.0, 0.4) + 0.01 * epoch / EPOCHS_DONE, 4))
        events.append(
            ev.EpochEnd(
                epoch=epoch,
                train_loss=round(2.2 * math.exp(-0.35 * epoch) + 0.02, 4),
                train_accuracy=train,
                train_char_accuracy=min(0.999, train + 0.03),
                val_loss=round(2.0 * math.exp(-0.3 * epoch) + 0.05, 4),
                val_accuracy=val,
                val_char_accuracy=min(0.999, val + 0.02),
                seconds=3.1,
                images_per_s=5160.0,
                learning_rate=3e-3,
            )
        )
        if val > best:
            events.append(ev.NewBest(epoch, val, best if best >= 0 else None))
            events.append(ev.CheckpointSaved("runs/default/best.pt", "best", epoch))
            best = val
        events.append(ev.CheckpointSaved("runs/default/last.pt", "last", epoch))
        best_accuracy = 0.973 if epoch >= BEST_EPOCH else val
        at = Standing(epoch, min(epoch, BEST_EPOCH), best_accuracy, images_seen=0, session_s=0.0, epoch_s=3.1)
        events.append(rules.countdown(at))
        if epoch == 7:
            events.append(ev.BatchSizeReduced(100, 50, 7, 41, "cuda:0"))
            events.append(ev.Notice("out of memory on cuda:0: mini-batch 100 → 50, retrying", "warning"))
    return events


def batch_reports(count: int = 60) -> list[ev.BatchProgress]:
    """The newest batch reports of epoch 19, enough to fill the sparklines."""
    reports = []
    for i in range(count):
        batch = 20 + i
        loss = 0.09 + 0.03 * math.sin(i * 0.7) + 0.015 * math.cos(i * 1.9)
        accuracy = 0.955 + 0.02 * math.sin(i * 0.5 + 1)
        reports.append(
            ev.BatchProgress(
                epoch=EPOCHS_DONE + 1,
                batch=batch,
                batches=DEMO_BATCHES,
                loss=round(loss, 4),
                accuracy=round(accuracy, 4),
                char_accuracy=round(min(0.999, accuracy + 0.03), 4),
                images_per_s=5240.0,
                eta_s=(DEMO_BATCHES - batch) * 100 / 5240.0,
                batch_size=50,
            )
        )
    return reports


DEMO_PID = 4242  # the pictures show the same process list whoever makes them


def hardware_samples(count: int = 40, gpus: int = 2) -> list[Sample]:
    """Fake GPUs at ticks 0..count-1, a fixed host, and torch memory on cuda:0 (the training device)."""
    backend = FakeNvmlBackend.with_gpus(gpus)
    backend.auto_advance = False
    backend.set_process_memory(0, DEMO_PID, int(2.6 * GiB))
    # A fixed owner and command line: the pictures must not show whoever runs them.
    sampler = HardwareSampler(
        backend=backend, device="cuda:0", env={}, pid=DEMO_PID, who=lambda pid: ("alice", "captcha-tui train")
    )
    torch_memory = TorchMemorySample(
        "cuda:0", allocated=int(1.1 * GiB), reserved=int(2.0 * GiB), peak=int(1.7 * GiB)
    )
    samples = []
    for tick in range(count):
        backend.tick = tick
        sample = sampler.sample()
        host = HostSample(
            cpu_percent=round(18 + 6 * math.sin(tick * 0.4), 1),
            cpu_count=16,
            memory_used=int((21.5 + 0.2 * math.sin(tick * 0.2)) * GiB),
            memory_total=64 * GiB,
            process_rss=int(3.4 * GiB),
            process_cpu_percent=104.0,
        )
        # CUDA order as if CUDA saw both cards, whatever this machine's CUDA says.
        gpu_samples = tuple(replace(gpu, index=gpu.nvml_index) for gpu in sample.gpus)
        samples.append(replace(sample, time=0.0, gpus=gpu_samples, host=host, torch=torch_memory, errors=()))
    sampler.close()
    return samples


def play_training_demo(app) -> None:
    """Post the scripted run and samples to a mounted CaptchaApp's training screen (then let it settle)."""
    app.dataset = DatasetSummary(
        Path("data/dataset"),
        DEMO_TRAIN,
        DEMO_VAL,
        DEMO_TEST,
        CodeSpec.fixed(DEFAULT_CHARSET, 4, MODEL_IMAGE_SIZE),
    )
    app.refresh_bindings()
    screen = app.train_screen
    screen.post_message(TrainingUpdate(tuple(run_events()), None))
    for report in batch_reports():
        screen.post_message(TrainingUpdate((), report))
    for sample in hardware_samples():
        screen.post_message(HardwareSampled(sample))
