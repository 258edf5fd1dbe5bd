"""Training-time augmentation, on the device, on (N, H, W, C) uint8 batches.

Which one a run gets depends on how many training images it has (:func:`augmentation_for`):

- ``shift``: a few pixels of placement jitter. Enough for generated data, whose generator already varies
  fonts, rotation and size on every image, and cheap.
- ``warp``: a random affine transform per image (rotation, scale, shear, shift) and a random contrast,
  brightness and colour gain. For a few hundred captchas labelled by hand, where every epoch shows the
  same images again: measured with ``bench fine-tune`` (docs/performance.md), it is what makes 240
  training images go far, and it needs no extra library.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHIFT, WARP = "shift", "warp"
# Below this many training images a run gets ``warp``: a labelled set of the user's own captchas, not a
# generated one (the default generated set has 48,000).
SMALL_SET = 5_000

# ``warp``'s ranges, drawn uniformly per image.
ROTATION_DEG = 8.0
SCALE = (0.85, 1.05)  # mostly smaller: zooming in would cut off edge characters
STRETCH = 0.08  # extra horizontal scale, either way
SHEAR = 0.2  # horizontal shear (tan of the angle)
SHIFT_X, SHIFT_Y = 0.05, 0.1  # fractions of the half-width / half-height
CONTRAST = (0.7, 1.3)
BRIGHTNESS = 0.12  # of the full range, either way
COLOUR_GAIN = 0.12  # per channel, either way


def augmentation_for(train_images: int) -> str:
    """``warp`` for a small (hand-labelled) training set, ``shift`` for a generated one."""
    return WARP if train_images < SMALL_SET else SHIFT


def augment(images: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == WARP:
        return random_warp(images)
    if kind == SHIFT:
        return random_shift(images)
    raise ValueError(f"unknown augmentation {kind!r}")


def random_shift(images: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Move each image by up to ``max_shift`` pixels each way, repeating the edge pixels. One gather."""
    n, height, width, _ = images.shape
    device = images.device
    dy = torch.randint(-max_shift, max_shift + 1, (n, 1), device=device)
    dx = torch.randint(-max_shift, max_shift + 1, (n, 1), device=device)
    rows = (torch.arange(height, device=device) + dy).clamp_(0, height - 1)  # (N, H)
    cols = (torch.arange(width, device=device) + dx).clamp_(0, width - 1)  # (N, W)
    return images[torch.arange(n, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def random_warp(images: torch.Tensor) -> torch.Tensor:
    """A random affine transform and colour change per image; uint8 in, uint8 out (same shape).

    Edges repeat outwards (``border``), as in :func:`random_shift`, so no black corners appear that real
    captchas never have."""
    n, height, width, _ = images.shape
    device = images.device
    angle = _uniform(n, -ROTATION_DEG, ROTATION_DEG, device) * (math.pi / 180)
    scale = _uniform(n, *SCALE, device)
    sx = scale * _uniform(n, 1 - STRETCH, 1 + STRETCH, device)
    shear = _uniform(n, -SHEAR, SHEAR, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    aspect = width / height  # affine_grid works in [-1, 1] on both axes: rotate in pixel proportions
    # The grid maps output to input coordinates, so this is the inverse of the transform the image sees.
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos / sx
    theta[:, 0, 1] = (-sin / aspect + shear) / sx
    theta[:, 1, 0] = sin * aspect / scale
    theta[:, 1, 1] = cos / scale
    theta[:, 0, 2] = _uniform(n, -SHIFT_X, SHIFT_X, device)
    theta[:, 1, 2] = _uniform(n, -SHIFT_Y, SHIFT_Y, device)
    x = images.permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, *CONTRAST, device).view(n, 1, 1, 1)
    gain = torch.empty(n, x.shape[1], 1, 1, device=device).uniform_(1 - COLOUR_GAIN, 1 + COLOUR_GAIN)
    brightness = _uniform(n, -BRIGHTNESS, BRIGHTNESS, device).view(n, 1, 1, 1) * 255
    x = ((x - mean) * contrast + mean) * gain + brightness
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
