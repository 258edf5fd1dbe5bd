"""The words every front end uses for the trainer's events: finish reasons, durations, percentages, and
one line per event. Plain text only (no Textual, no Rich), so the headless printer, the dashboard's
widgets and the tests all say the same thing."""

from __future__ import annotations

import shlex
from pathlib import Path

from .core import events as ev
from .core.durations import format_duration, rough_duration
from .core.runs import FAILED, UNFINISHED, RunRecord
from .core.train.config import DEFAULT_RUN_DIR
from .core.train.stopping import FINISH_WORDS, EpochBudget, ImageBudget, StopRequest, TimeLimit

# Each stop rule's own words, by Finished reason (the rules live in core/train/stopping.py).
FINISH_REASONS = FINISH_WORDS


def percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def epochs_run_words(e: ev.Finished) -> str:
    """``4 epochs``; ``4 epochs and part of epoch 5`` where the run ended inside an epoch whose weights
    were then scored the best (so that "best at epoch 5" after "4 epochs" adds up)."""
    said = f"{e.epochs_run} epoch{'s' if e.epochs_run != 1 else ''}"
    return said + (f" and part of epoch {e.best_epoch}" if e.best_epoch > e.epochs_run else "")


def patience_words(patience: int | None) -> str:
    """A run's patience: ``5`` epochs, or ``off`` (no early stop: a time limit's run uses its time)."""
    return "off" if patience is None else str(patience)


def run_eta(
    epoch_eta_s: float,
    epoch_s: float,
    epochs_after: int,
    time_left_s: float | None,
    early_stop_after: int | None,
    image_budget_s: float | None = None,
) -> str:
    """The whole run's ETA, by the rule that ends it: ``run ETA ~6 min (its epoch budget)``.

    ``epoch_eta_s``: the rest of this epoch; ``epoch_s``: one whole epoch; ``epochs_after``: the epoch budget
    left after this one; ``time_left_s``: of the time limit (None without one). The budget and the clock
    are certain, so the sooner of them is the ETA (a tie goes to the budget, as in the countdown's
    ``StopRules.ends_by``); so is the image budget (``image_budget_s``: its images left at this epoch's
    pace). Patience is not: a new best puts an early stop off. When one could come sooner
    (``early_stop_after`` epochs after this one, if no new best), the ETA is said as a bound.
    """
    budget_s = epoch_eta_s + max(0, epochs_after) * epoch_s
    end_s, rule = budget_s, EpochBudget.name
    if image_budget_s is not None and image_budget_s < end_s:
        end_s, rule = image_budget_s, ImageBudget.name
    if time_left_s is not None and time_left_s < end_s:
        end_s, rule = time_left_s, TimeLimit.name
    if early_stop_after is not None and epoch_eta_s + max(0, early_stop_after) * epoch_s < end_s:
        return f"run ETA ≤ ~{rough_duration(end_s)} ({rule}; sooner on an early stop)"
    return f"run ETA ~{rough_duration(end_s)} ({rule})"


def characters(char_accuracy: float | None, char_error_rate: float | None) -> str:
    """``char 97.1%`` for a per-position model, ``CER 2.3%`` for a CTC one (its codes vary in length)."""
    if char_error_rate is not None:
        return f"CER {percent(char_error_rate)}"
    return f"char {percent(char_accuracy)}"


def describe_batch(e: ev.BatchProgress) -> str:
    return (
        f"epoch {e.epoch} batch {e.batch}/{e.batches}  loss {e.loss:.4f}  acc {percent(e.accuracy)}  "
        f"{characters(e.char_accuracy, e.char_error_rate)}  {e.images_per_s:,.0f} img/s  "
        f"eta {format_duration(e.eta_s)}"
    )


def describe_event(event: ev.TrainerEvent) -> str | None:
    """One line (or a few) for an event; None for events not worth a line (batches: :func:`describe_batch`)."""
    match event:
        case ev.RunStarted():
            e = event
            resumed = f", resuming at epoch {e.start_epoch}" if e.start_epoch > 1 else ""
            where, batch = e.device, f"batch {e.batch_size}"
            if e.processes > 1:  # torchrun: one run on several processes, each with its own share
                where = f"{e.processes} processes ({e.backend}, {e.device.partition(':')[0]})"
                batch += f" a process ({e.batch_size * e.processes} a step)"
            return (
                f"dataset {e.dataset}: {e.train_count} train / {e.val_count} val / {e.test_count} test, "
                f"{e.spec.lengths} characters from {e.spec.charset!r}\n"
                f"model {e.preset} ({e.spec.decoder}, {e.parameters:,} parameters) on {where}, {batch}, "
                f"lr {e.learning_rate:g}, amp {'on' if e.amp else 'off'}, patience {patience_words(e.patience)}, "
                f"up to {e.max_epochs} epochs{resumed}\nrun folder {e.run_dir}"
            )
        case ev.EpochEnd():
            e = event
            return (
                f"epoch {e.epoch}: train loss {e.train_loss:.4f} acc {percent(e.train_accuracy)} | "
                f"val loss {e.val_loss:.4f} acc {percent(e.val_accuracy)} "
                f"({characters(e.val_char_accuracy, e.val_char_error_rate)}) | "
                f"{e.seconds:.1f}s, {e.images_per_s:,.0f} img/s, lr {e.learning_rate:.2e}"
                + pseudo_label_words(e)
            )
        case ev.NewBest():
            return f"  new best: validation accuracy {percent(event.val_accuracy)} at epoch {event.epoch}"
        case ev.Countdown():
            e = event
            return f"  best {percent(e.best_accuracy)} at epoch {e.best_epoch}; {e.summary()}"
        case ev.BatchSizeReduced():
            return None  # the trainer's Notice already says it
        case ev.Notice():
            return f"[{event.level}] {event.message}"
        case ev.StateChanged():
            return f"[{event.state}]"
        case ev.Finished():
            e = event
            why = FINISH_REASONS.get(e.reason, e.reason)
            lines = [
                f"finished: {why} after {epochs_run_words(e)} in {format_duration(e.elapsed_s)} "
                f"({e.images_seen:,} images seen)",
                f"best validation accuracy {percent(e.best_val_accuracy)} at epoch {e.best_epoch}"
                if e.best_epoch
                else "no epoch ended: nothing validated yet",
            ]
            if e.test_accuracy is not None:
                lines.append(
                    f"test accuracy {percent(e.test_accuracy)} "
                    f"({characters(e.test_char_accuracy, e.test_char_error_rate)})"
                )
            if e.best_checkpoint:
                lines.append(f"best checkpoint {e.best_checkpoint}")
            if e.reason == StopRequest.reason and e.last_checkpoint:
                lines.append(f"resume with: {resume_command(e.last_checkpoint)} (from {e.last_checkpoint})")
            return "\n".join(lines)
        case ev.Failed():
            where = f" (details in {event.log_path})" if event.log_path else ""
            return f"error: {event.message}{where}"
    return None


# A run's figures, one cell each: the runs screen's table and `captcha-tui runs` without a terminal.
RUN_COLUMNS = ("run", "preset", "data", "epochs", "best val", "at", "test", "images", "time", "ended")


def run_ending(record: RunRecord) -> str:
    """How a run ended: its stop rule's words, ``failed`` or ``unfinished`` (still training, or killed)."""
    if record.status in (FAILED, UNFINISHED):
        return record.status
    return FINISH_REASONS.get(record.status, record.status)


def run_cells(record: RunRecord) -> tuple[str, ...]:
    def unknown(value, text: str) -> str:
        return "n/a" if value is None else text

    return (
        record.name,
        record.preset or "?",
        record.data or "?",
        str(len(record.epochs)),
        percent(record.best_val_accuracy),
        unknown(record.best_epoch, str(record.best_epoch)),
        percent(record.test_accuracy),
        unknown(record.images_seen, f"{record.images_seen or 0:,}"),
        unknown(record.training_s, format_duration(record.training_s or 0.0)),
        # ⚠: some of its files are missing or damaged (record.problems says which)
        run_ending(record) + (" ⚠" if record.problems else ""),
    )


def pseudo_label_words(e: ev.EpochEnd) -> str:
    """ " | 1,234 pseudo-labels (97% right on held-out)": the epoch's self-training, or nothing."""
    if e.pseudo_labels is None:
        return ""
    right = "" if e.pseudo_agreement is None else f" ({percent(e.pseudo_agreement)} right on held-out)"
    return f" | {e.pseudo_labels:,} pseudo-labels{right}"


def resume_command(last_checkpoint: str | Path) -> str:
    """The command that carries on the run of ``last_checkpoint``: its folder named where it is not the
    default one (a new run beside an earlier one goes to ``runs/default-2``)."""
    folder = Path(last_checkpoint).parent
    out = "" if folder == DEFAULT_RUN_DIR else f" --out {shlex.quote(str(folder))}"
    return f"captcha-tui train --resume{out}"
