"""One optimisation step, and the scores of a split: what the loop repeats, and what ``bench speed``
times on its own."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..dataset import Dataset
from ..devices import resolve_amp
from ..model import to_model_input
from ..objectives import Objective, character_errors

EVAL_BATCH = 1000


class Tally:
    """Loss × images, whole codes right and characters right: summed on the device, read back only when
    reported, so a GPU is not synced on every batch."""

    def __init__(self, device: torch.device, by_cer: bool = False):
        self.sums = torch.zeros(3, device=device)
        self.images = 0
        self.by_cer = by_cer  # codes of varying length (CTC, slots): scored by the character error rate
        self.errors = self.characters = 0  # by_cer: edit distances of the batches sampled at reports

    def add(self, stats: torch.Tensor, images: int) -> None:
        self.sums += stats
        self.images += images

    def add_errors(self, errors: int, characters: int) -> None:
        self.errors += errors
        self.characters += characters

    def means(self, length: int) -> Scores:
        """Loss, whole-code accuracy, and character accuracy (per-position models) or the character
        error rate of the sampled batches (codes of varying length); one device sync."""
        loss, right, chars = self.sums.tolist()
        images = max(self.images, 1)
        if self.by_cer:
            cer = self.errors / self.characters if self.characters else None
            return Scores(loss / images, right / images, None, cer)
        return Scores(loss / images, right / images, chars / (images * length), None)

    def clear(self) -> None:
        self.sums.zero_()
        self.images = 0
        self.errors = self.characters = 0


@dataclass(frozen=True)
class Scores:
    """A split's (or a stretch of batches') loss and accuracies. Per-position models report character
    accuracy; CTC models, whose codes vary in length, the character error rate (edit distance ÷ characters)."""

    loss: float
    accuracy: float
    char_accuracy: float | None
    char_error_rate: float | None


def train_step(
    model, optimizer, images, targets, autocast=None, scaler=None, objective=None, label_smoothing=0.0
):
    """One optimisation step on ``objective``'s loss (default: per-position cross-entropy with
    ``label_smoothing``). Returns (logits, loss), not synced."""
    objective = objective or Objective(None, label_smoothing)
    with autocast or contextlib.nullcontext():
        logits = model(images)
        loss = objective.loss(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return logits, loss


def to_device(data: Dataset, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(data.images[split]).to(device)
    labels = torch.from_numpy(data.labels[split].astype("int64")).to(device)
    return images, labels


def mixed_precision(enabled: bool | None, device: torch.device):
    """An autocast context (bf16 where the hardware has it, else fp16 with a grad scaler) or (None, None).

    ``enabled=None`` decides by the hardware (:func:`resolve_amp`)."""
    if not resolve_amp(enabled, device):
        return None, None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16), None
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16), None


@torch.inference_mode()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, autocast=None, objective=None) -> Scores:
    """A split's loss, whole-code accuracy and character accuracy (or CER, for codes of varying length),
    in chunks."""
    objective = objective or Objective(None)
    by_cer = objective.varying_length
    if len(images) == 0:
        return Scores(0.0, 0.0, None if by_cer else 0.0, 0.0 if by_cer else None)
    sums = torch.zeros(3, device=images.device)
    decoded_all = []
    for start in range(0, len(images), EVAL_BATCH):
        x = to_model_input(images[start : start + EVAL_BATCH])
        y = labels[start : start + EVAL_BATCH]
        with autocast or contextlib.nullcontext():
            logits = model(x)
        decoded = objective.decode(logits)
        sums[0] += objective.summed_loss(logits, y)
        sums[1] += objective.hits(decoded, y).sum()
        sums[2] += (decoded[:, : y.shape[1]] == y).sum()
        if by_cer:
            decoded_all.append(decoded)
    loss, right, chars = sums.tolist()
    n = len(images)
    if by_cer:
        errors, characters = character_errors(torch.cat(decoded_all), labels)
        return Scores(loss / n, right / n, None, errors / max(characters, 1))
    return Scores(loss / n, right / n, chars / (n * labels.shape[1]), None)
