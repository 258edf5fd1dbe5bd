"""TensorBoard event files for a run (``train --log-dir DIR``), written by TensorBoard's own writer.

It listens to the trainer's events as the dashboard and the headless printer do, so every front end gets
the same files: per-epoch scalars (losses, accuracies, character error rate, learning rate, speed) and the
batch figures at the rate the trainer reports them (at most ~10 a second; no extra host-device sync).
The x axis is images seen, so runs of different set sizes and batch sizes line up.
"""

from __future__ import annotations

from pathlib import Path

from . import events as ev

NEEDS_TENSORBOARD = (
    "--log-dir writes TensorBoard files: pip install 'captcha-tui[tensorboard]' "
    "(from a source checkout: pip install '.[tensorboard]')"
)


class TensorBoardLog:
    """An event sink that writes ``log_dir``'s event files; raises ImportError with
    :data:`NEEDS_TENSORBOARD` where TensorBoard is not installed."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise ImportError(NEEDS_TENSORBOARD) from None
        self._writer = SummaryWriter(log_dir=str(log_dir))
        self._train_count = 0  # images an epoch, from RunStarted

    def _images_at(self, epoch: float) -> int:
        return round(epoch * self._train_count)

    def __call__(self, event: ev.TrainerEvent) -> None:
        w = self._writer
        match event:
            case ev.RunStarted():
                self._train_count = event.train_count
                w.add_text(
                    "run",
                    f"{event.preset} on {event.device}, {event.train_count:,} training images, batch "
                    f"{event.batch_size}, lr {event.learning_rate:g}, data {event.dataset}",
                )
            case ev.BatchProgress():
                step = self._images_at(event.epoch - 1 + event.batch / max(event.batches, 1))
                w.add_scalar("batch/loss", event.loss, step)
                w.add_scalar("batch/accuracy", event.accuracy, step)
                if event.char_error_rate is not None:
                    w.add_scalar("batch/char_error_rate", event.char_error_rate, step)
                w.add_scalar("batch/images_per_s", event.images_per_s, step)
            case ev.EpochEnd():
                step = self._images_at(event.epoch)
                for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"):
                    w.add_scalar(f"epoch/{name}", getattr(event, name), step)
                for name in (
                    "val_char_accuracy",
                    "val_char_error_rate",
                    "images_per_s",
                    "pseudo_labels",
                    "pseudo_agreement",
                ):
                    value = getattr(event, name)
                    if value is not None:
                        w.add_scalar(f"epoch/{name}", value, step)
                w.flush()  # an epoch is worth seeing at once in a TensorBoard that is watching
            case ev.Finished():
                if event.test_accuracy is not None:
                    w.add_scalar("test/accuracy", event.test_accuracy, self._images_at(event.epochs_run))
                w.close()
            case ev.Failed():
                w.close()
