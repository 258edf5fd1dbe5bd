"""Learning from the user's unlabelled captchas too: self-training, and generated captchas mixed in.

A user's folder holds thousands of captchas, of which they label a few hundred. ``train --unlabelled DIR``
makes each epoch of three parts:

- the labelled training images, repeated so that they stay at least a third of the epoch;
- **pseudo-labelled** images of DIR: what the model itself reads in them, kept only where it is confident
  (every character at least ``threshold`` probable). They are read anew as the run goes on
  (each time it has trained on twice as many images as there are unlabelled ones), so the set grows
  and corrects itself as the model improves. They are read as they are and trained on under the
  run's augmentation (random warps and colour changes for a small set): the weak/strong pairing of
  FixMatch and Noisy Student, at the cost of a forward pass over DIR now and then rather than one a
  step, which a CPU cannot spare;
- with ``--generated N``, captchas of the built-in style, drawn once at the start with the run's charset,
  lengths and image size, so that the model keeps reading that style (PaddleOCR's fine-tuning guide mixes
  general data into a small real set this way). They are off by default: in a 300-label fine-tune they
  cost the user's own style 12 points at an equal number of images seen (docs/performance.md).

How far the pseudo-labels can be trusted is measured on the held-out (validation) labels: the share of
them the model reads confidently, and how often those confident reads agree with the label.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..dataset import Dataset, DatasetError, decode_images, find_image_files
from ..decoding import ctc_emitted
from ..generator import CaptchaStyle, random_code, render_captcha
from ..images import to_model_array
from ..model import to_model_input
from ..objectives import Objective
from ..oserrors import missing
from ..spec import PAD, CodeSpec

PSEUDO_THRESHOLD = 0.9  # the least probability of each character of a kept pseudo-label
# Pseudo-labels are used at the least confidence where the held-out reads that confident are right this
# often, over at least this many of them (trusted_threshold).
TRUSTED = 0.9
LEAST_EVIDENCE = 3
UNLABELLED_LIMIT = 20_000  # images of DIR kept in memory (chosen at random beyond it)
LABELLED_SHARE = 1 / 3  # the least share of each epoch that is the user's own labelled images
# The pool is read anew once the run has trained on this many times its size since the last reading: a
# reading costs about a third of training on as many images, so this keeps it near a sixth of the time
# (reading it before every epoch, with a few hundred labels, took as long as the training itself).
REREAD_AFTER = 2
READ_BATCH = 500


@dataclass(frozen=True)
class PseudoLabelReport:
    """One refresh of the pseudo-labels: what is in use, and how far confident reads can be trusted."""

    used: int  # pseudo-labelled images in this epoch
    pool: int  # unlabelled images in all
    threshold: float | None  # the confidence they have at least; None: none trusted yet
    val_confident: int  # validation images read with at least that confidence
    val_agreeing: int  # of which the read equals the label
    val_total: int

    @property
    def agreement(self) -> float | None:
        """How often a confident read agrees with the held-out label (None: no confident read)."""
        return self.val_agreeing / self.val_confident if self.val_confident else None

    def describe(self) -> str:
        if self.threshold is None:
            checked = (
                f"{self.val_agreeing} of the {self.val_confident} it reads confidently are right"
                if self.val_confident
                else "it reads none of them confidently"
            )
            return (
                f"no pseudo-labels yet: the model's confident reads are not trusted until they are right "
                f"{TRUSTED:.0%} of the time on the {self.val_total} held-out labels ({checked})"
            )
        share = f"{self.used:,} of {self.pool:,} unlabelled images pseudo-labelled (confidence ≥ {self.threshold:.2g})"
        if not self.val_total:
            return share
        agreement = "" if self.agreement is None else f", {self.agreement:.0%} of them right"
        return (
            f"{share}; on the {self.val_total} held-out labels it reads {self.val_confident} as "
            f"confidently{agreement}"
        )


def load_unlabelled(
    folder: Path, data: Dataset, limit: int = UNLABELLED_LIMIT, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """The images of ``folder`` (recursively) at the dataset's image size, without those that are already
    in the dataset (any split: the held-out labels must stay held out). Returns (N, H, W, 3) uint8 and
    notes for the user. Raises :class:`DatasetError` when none can be used."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"--unlabelled {missing(folder)}: no such folder")
    files = find_image_files(folder)
    notes = []
    if len(files) > limit:
        files = sorted(random.Random(seed).sample(files, limit))
        notes.append(
            f"--unlabelled {folder}: {limit:,} of its images chosen at random (the most kept in memory)"
        )
    size = data.spec.image_size
    decoded = decode_images(files, size)
    arrays = [array for array, _reason, _digest, _size in decoded if array is not None]
    unreadable = len(decoded) - len(arrays)
    labelled = {_digest(image) for split in data.images.values() for image in split}
    kept = [array for array in arrays if _digest(array) not in labelled]
    if unreadable:
        notes.append(f"--unlabelled {folder}: {unreadable:,} files are not readable images, skipped")
    if len(arrays) - len(kept):
        notes.append(
            f"--unlabelled {folder}: {len(arrays) - len(kept):,} images are in the labelled dataset already, skipped"
        )
    if not kept:
        raise DatasetError(f"--unlabelled {folder}: no images to learn from (found {len(files):,} files)")
    height, width = size[1], size[0]
    return np.stack(kept).reshape(len(kept), height, width, 3), notes


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def generated_images(spec: CodeSpec, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` captchas of the built-in style with ``spec``'s charset and lengths, drawn at the built-in
    size and resized to ``spec``'s: (N, H, W, 3) uint8 images and (N, max_length) PAD-padded labels."""
    style = CaptchaStyle()
    charset = spec.charset.lower() if not spec.keep_case else spec.charset
    images = np.empty((count, spec.image_size[1], spec.image_size[0], 3), dtype=np.uint8)
    labels = np.full((count, spec.max_length), PAD, dtype=np.uint8)
    for index in range(count):
        rng = random.Random(f"unlabelled-mix:{seed}:{index}")
        code = random_code(rng, (spec.min_length, spec.max_length), charset)
        images[index] = to_model_array(render_captcha(code, rng, style), spec.image_size)
        labels[index, : len(code)] = [spec.charset.index(c) for c in code]
    return images, labels


def code_confidence(objective: Objective, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy codes (N, max_length + 1, PAD-padded as the objective decodes them) and each code's
    confidence: the least probability among its characters (0 for a code of a length the model may not
    read). On the device, no host sync."""
    spec = objective.spec
    decoded = objective.decode(logits)
    probs = logits.float().softmax(-1)
    best, chosen = probs.max(-1)
    if spec.decoder == "ctc":
        emit = ctc_emitted(chosen, logits.shape[-1] - 1)
        confidence = torch.where(emit, best, torch.ones_like(best)).amin(1)
    else:
        confidence = best.amin(1)
    lengths = (decoded[:, : spec.max_length] != PAD).sum(1)
    fits = (decoded[:, spec.max_length] == PAD) & (lengths >= spec.min_length) & (lengths <= spec.max_length)
    return decoded[:, : spec.max_length], torch.where(fits, confidence, torch.zeros_like(confidence))


@torch.inference_mode()
def read_all(
    model: torch.nn.Module, images: torch.Tensor, objective: Objective, autocast=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's greedy read (N, max_length) and its confidence (N,) (:func:`code_confidence`). The
    model is left in eval mode: the caller restores training mode."""
    model.eval()
    codes, confidence = [], []
    for start in range(0, len(images), READ_BATCH):
        with autocast or torch.autocast(images.device.type, enabled=False):
            logits = model(to_model_input(images[start : start + READ_BATCH]))
        read, sure = code_confidence(objective, logits)
        codes.append(read)
        confidence.append(sure)
    if not codes:
        empty = torch.zeros(0, objective.spec.max_length, dtype=torch.long, device=images.device)
        return empty, torch.zeros(0, device=images.device)
    return torch.cat(codes), torch.cat(confidence)


def trusted_threshold(confidence: torch.Tensor, right: torch.Tensor, floor: float) -> float | None:
    """The least confidence (at least ``floor``) at which the held-out reads that confident are right at
    least TRUSTED of the time, over at least LEAST_EVIDENCE of them; None where there is no such level.

    A model fine-tuned from another style starts out confidently wrong: the base model reads hundreds of
    another generator's captchas with every character over 0.9 probable, and none of them right. The
    held-out labels are what says when its confident reads can be trained on."""
    keep = confidence >= floor
    confidence, right = confidence[keep], right[keep]
    order = confidence.argsort(descending=True)
    confidence, right = confidence[order], right[order].float()
    precision = right.cumsum(0) / torch.arange(1, len(right) + 1, device=right.device)
    # A level takes every read as confident as it: only the last of equally confident reads ends one.
    ends_level = torch.ones_like(right, dtype=torch.bool)
    ends_level[:-1] = confidence[1:] < confidence[:-1]
    good = torch.nonzero((precision >= TRUSTED) & ends_level).flatten()
    good = good[good >= LEAST_EVIDENCE - 1]
    if not len(good):
        return None
    if int(good[-1]) == len(right) - 1:  # trusted down to the least confident read: down to the floor
        return floor
    return float(confidence[good[-1]])


class SelfTraining:
    """The unlabelled pool, the generated captchas and the current pseudo-labels of one run."""

    def __init__(
        self,
        unlabelled: torch.Tensor | None,
        generated: tuple[torch.Tensor, torch.Tensor] | None,
        threshold: float = PSEUDO_THRESHOLD,
    ):
        self.unlabelled = unlabelled
        self.generated = generated
        self.threshold = threshold
        self.last: PseudoLabelReport | None = None
        self._current: tuple[torch.Tensor, torch.Tensor] | None = None  # rows of the pool kept, their reads
        self._read_at = 0  # images the run had trained on at the last reading
        # The epoch's images and labels, built at each reading and kept until the next one.
        self._epoch: tuple[torch.Tensor, torch.Tensor] | None = None

    def due(self, images_seen: int) -> bool:
        """Whether the pool is to be read anew, the run having trained on ``images_seen`` images."""
        if self.unlabelled is None:
            return False
        return self._current is None or images_seen - self._read_at >= REREAD_AFTER * len(self.unlabelled)

    def epoch_set(
        self,
        model: torch.nn.Module,
        objective: Objective,
        labelled: tuple[torch.Tensor, torch.Tensor],
        held_out: tuple[torch.Tensor, torch.Tensor],
        autocast=None,
        images_seen: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, PseudoLabelReport | None]:
        """The images and labels of the next epoch: labelled (repeated), pseudo-labelled and generated;
        and what the pseudo-labels are (None without unlabelled images)."""
        if self.due(images_seen):
            self._pseudo_label(model, objective, held_out, autocast)
            self._read_at = images_seen
            self._epoch = None
        if self._epoch is None:  # the first epoch, or the pool was read anew
            self._epoch = self._compose(labelled)
        return *self._epoch, self.last

    def _compose(self, labelled: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled images (repeated), the pseudo-labelled ones and the generated ones, in one set."""
        x, y = labelled
        parts_x, parts_y = [], []
        if self._current is not None:
            index, pseudo = self._current
            parts_x.append(self.unlabelled[index])
            parts_y.append(pseudo.to(y.dtype))
        if self.generated is not None:
            parts_x.append(self.generated[0])
            parts_y.append(self.generated[1])
        others = sum(len(part) for part in parts_x)
        # The user's own labels stay at least LABELLED_SHARE of the epoch, however many others there are.
        repeats = max(1, math.ceil(others * LABELLED_SHARE / ((1 - LABELLED_SHARE) * max(len(x), 1)) - 1e-9))
        return torch.cat([x] * repeats + parts_x), torch.cat([y] * repeats + parts_y)

    def _pseudo_label(self, model, objective, held_out, autocast) -> PseudoLabelReport:
        """Read the unlabelled pool, and the held-out images to see how far such reads can be trusted:
        keep the reads at least as confident as :func:`trusted_threshold` says (none where it says none).
        With no held-out images the threshold is taken on trust."""
        was_training = model.training
        val_x, val_y = held_out
        try:
            codes, confidence = read_all(model, self.unlabelled, objective, autocast)
            val_codes, val_confidence = read_all(model, val_x, objective, autocast)
        finally:
            model.train(was_training)
        right = (val_codes == val_y.to(val_codes.dtype)).all(1)
        threshold = trusted_threshold(val_confidence, right, self.threshold) if len(val_x) else self.threshold
        index = (
            torch.nonzero(confidence >= threshold).flatten()
            if threshold is not None
            else torch.zeros(0, dtype=torch.long, device=codes.device)
        )
        self._current = index, codes[index]
        sure = val_confidence >= (threshold if threshold is not None else self.threshold)
        self.last = PseudoLabelReport(
            used=len(index),
            pool=len(self.unlabelled),
            threshold=threshold,
            val_confident=int(sure.sum()),
            val_agreeing=int((sure & right).sum()),
            val_total=len(val_x),
        )
        return self.last
