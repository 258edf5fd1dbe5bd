"""The reference script's training recipe, rebuilt for ``captcha-tui bench speed --reference``.

"The reference", wherever captcha-tui says it, is the script this project grew from: a blog article's
ResNet-18 captcha trainer, whose recipe and published figures were the baseline to beat. Its published
speed was measured on another machine, so the only fair comparison is to time its recipe here, in the same
process and run as our presets. This module is that recipe, written from its description (none of its
code):

- ResNet-18: a 3×3 stride-1 stem (convolution, BatchNorm, ReLU) with no max-pool, four stages of two
  BasicBlocks (64, 128, 256, 512 channels; stages 2–4 halve the map), global average pooling and one
  linear layer with ``length × classes`` outputs;
- a softmax over each character's group of outputs, trained with BCELoss against one-hot targets;
- Adam at its default learning rate (1e-3), float32, contiguous (NCHW) tensors, mini-batches of 100;
- inputs are 56×24 float images already scaled to 0..1 (it stores float tensors, not bytes).

It deliberately does not reuse :mod:`captcha_tui.core.model`: a change to our presets must never move the
baseline they are compared with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SIZE = (56, 24)  # (width, height) the reference shrinks every captcha to
WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
LEARNING_RATE = 1e-3  # Adam's default, which the reference keeps
BATCH_SIZE = 100
CHUNK = 800  # the training share (80%) of one of its 1,000-image files


class ReferenceBlock(nn.Module):
    """ResNet's BasicBlock: two 3×3 convolutions with BatchNorm, plus a shortcut (1×1 when the shape
    changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )
            if stride != 1 or channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ReferenceResNet18(nn.Module):
    """(N, 3, H, W) floats in 0..1 → (N, length × classes) probabilities, a softmax per character."""

    def __init__(self, length: int, classes: int):
        super().__init__()
        self.length, self.classes = length, classes
        self.stem = nn.Sequential(
            nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False), nn.BatchNorm2d(WIDTHS[0]), nn.ReLU()
        )
        blocks, channels = [], WIDTHS[0]
        for stage, width in enumerate(WIDTHS):
            for block in range(BLOCKS_PER_STAGE):
                blocks.append(ReferenceBlock(channels, width, 2 if stage > 0 and block == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, length * classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x))).flatten(1)
        groups = self.fc(x).view(-1, self.length, self.classes)
        return torch.softmax(groups, dim=2).flatten(1)


def one_hot_targets(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(N, length) class indices → (N, length × classes) float one-hot rows, as BCELoss wants them."""
    return F.one_hot(labels, classes).flatten(1).float()


def reference_loss(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCELoss (mean over every output) of the per-group softmax against one-hot targets."""
    return F.binary_cross_entropy(probabilities, targets)


def reference_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)


def reference_step(model: nn.Module, optimizer: torch.optim.Optimizer, images, targets) -> torch.Tensor:
    """One training step of the reference: forward, BCE, backward, Adam, clear the gradients. Returns the
    loss, not synced. (The reference also scores every mini-batch with a host sync; like the presets' bench,
    this times the optimisation step alone.)"""
    loss = reference_loss(model(images), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss


def to_reference_input(images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) → the reference's stored form: contiguous float (N, 3, H, W) in 0..1. Done once,
    before timing, as the reference does in its prepare step."""
    return (images_nhwc_uint8.permute(0, 3, 1, 2).float() / 255.0).contiguous()
