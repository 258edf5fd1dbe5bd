"""What training minimises and how a batch is scored, for each kind of model.

Per-position models: cross-entropy per character position (with label smoothing). CTC models: CTC loss
over the time steps, scored by greedy decoding on the device. Slots models: cross-entropy per slot (with
label smoothing), the end class the target of every slot after the code, scored by the decoding of
``decoding.py``. All report whole-code hits per image; models of varying-length codes (CTC, slots) also,
on the host at the reporting rate, a character error rate (edit distance over characters ÷ characters),
and per-position ones their character accuracy. The trainer and the bench call these and never look at
the decoder kind themselves.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .decoding import ctc_greedy_batch, ctc_hits, error_counts, slots_batch
from .spec import PAD, CodeSpec


class Objective:
    """The per-position objective; :class:`CtcObjective` and :class:`SlotsObjective` override what differs."""

    # Scored by the character error rate (codes of varying length) rather than by character accuracy.
    varying_length = False

    def __init__(self, spec: CodeSpec, label_smoothing: float = 0.0):
        self.spec, self.label_smoothing = spec, label_smoothing

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch; ``targets`` (N, max_length) indices, PAD after each code."""
        return F.cross_entropy(
            logits.float().flatten(0, 1), targets.flatten(), label_smoothing=self.label_smoothing
        )

    def summed_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss summed over the batch's images, without smoothing (for validation)."""
        per_char = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
        return per_char / targets.shape[1]

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, max_length + 1) codes on the device, PAD-padded; a last column that is not PAD marks a
        code longer than any target (always wrong)."""
        best = logits.argmax(-1)
        return F.pad(best, (0, 1), value=PAD)

    def hits(self, decoded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Whole code right, per image (bool, on the device)."""
        return ctc_hits(decoded, targets)


class CtcObjective(Objective):
    varying_length = True

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # CTC wants (T, N, classes + 1) log-probabilities in float32 (it has no bf16 kernel).
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        lengths = (targets != PAD).sum(1)
        steps = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
        # The pad value must be a valid class index for the kernel; CTC never reads past each length.
        padded = targets.masked_fill(targets == PAD, 0)
        # "mean" divides by each code's length, so long and short codes weigh the same per character.
        # zero_infinity: a code that cannot fit the steps gives no gradient instead of an inf loss (the
        # trainer refuses such codes up front; this only guards the odd augmented batch).
        return F.ctc_loss(
            log_probs, padded, steps, lengths, blank=self.spec.classes, reduction="mean", zero_infinity=True
        )

    def summed_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, targets) * logits.shape[0]

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        return ctc_greedy_batch(logits, self.spec.max_length)


class SlotsObjective(Objective):
    """Cross-entropy per slot over the charset and the end class (the last index), which every PAD is."""

    varying_length = True

    def _targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.masked_fill(targets == PAD, self.spec.classes)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().loss(logits, self._targets(targets))

    def summed_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().summed_loss(logits, self._targets(targets))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        return slots_batch(logits, self.spec.min_length, self.spec.max_length)


def objective_for(spec: CodeSpec, label_smoothing: float = 0.0) -> Objective:
    """Label smoothing applies to per-position and slots models only (CTC's targets are alignments, not
    classes)."""
    if spec.decoder == "ctc":
        return CtcObjective(spec)
    if spec.decoder == "slots":
        return SlotsObjective(spec, label_smoothing)
    return Objective(spec, label_smoothing)


def character_errors(decoded: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(edit distance summed, characters) of a batch, on the host: call it at the reporting rate only."""
    width = targets.shape[1]
    return error_counts(decoded[:, :width].cpu().numpy(), targets.cpu().numpy().astype(np.int64))
