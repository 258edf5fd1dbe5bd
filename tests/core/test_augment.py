from __future__ import annotations

import numpy as np
import pytest
import torch

from captcha_tui.core import augment
from captcha_tui.core import events as ev
from captcha_tui.core.generator import render_captcha
from captcha_tui.core.train import TrainConfig, Trainer
from tests.helpers import events_of


def _captchas(n: int = 8) -> torch.Tensor:
    import random

    rng = random.Random(3)
    return torch.from_numpy(np.stack([np.asarray(render_captcha("k3x9", rng)) for _ in range(n)]))


def test_a_small_set_is_warped_and_a_generated_one_shifted():
    assert augment.augmentation_for(240) == augment.WARP
    assert augment.augmentation_for(augment.SMALL_SET - 1) == augment.WARP
    assert augment.augmentation_for(augment.SMALL_SET) == augment.SHIFT
    assert augment.augmentation_for(48_000) == augment.SHIFT
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.augment(_captchas(1), "blur")


def test_warp_keeps_shape_and_type_and_changes_every_image():
    images = _captchas()
    torch.manual_seed(0)
    out = augment.random_warp(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    changed = (out.int() - images.int()).abs().flatten(1).float().mean(1)
    assert (changed > 2).all(), changed  # every image moved or changed colour, by more than rounding
    torch.manual_seed(0)
    assert torch.equal(augment.random_warp(images), out), "the run's seed decides the warps"


def test_warp_with_every_range_closed_is_the_identity(monkeypatch):
    for name, value in {
        "ROTATION_DEG": 0.0,
        "SCALE": (1.0, 1.0),
        "STRETCH": 0.0,
        "SHEAR": 0.0,
        "SHIFT_X": 0.0,
        "SHIFT_Y": 0.0,
        "CONTRAST": (1.0, 1.0),
        "BRIGHTNESS": 0.0,
        "COLOUR_GAIN": 0.0,
    }.items():
        monkeypatch.setattr(augment, name, value)
    images = _captchas(3)
    assert (augment.random_warp(images).int() - images.int()).abs().max() <= 1


def test_a_quarter_turn_keeps_pixel_proportions(monkeypatch):
    """Rotation happens in pixels, not in the [-1, 1] square of a wide image: a 90° turn of a centred
    horizontal bar gives a vertical bar of the same length, not a stretched one."""
    monkeypatch.setattr(augment, "ROTATION_DEG", 90.0)
    monkeypatch.setattr(augment, "CONTRAST", (1.0, 1.0))
    monkeypatch.setattr(augment, "BRIGHTNESS", 0.0)
    monkeypatch.setattr(augment, "COLOUR_GAIN", 0.0)
    for name in ("STRETCH", "SHEAR", "SHIFT_X", "SHIFT_Y"):
        monkeypatch.setattr(augment, name, 0.0)
    monkeypatch.setattr(augment, "SCALE", (1.0, 1.0))
    monkeypatch.setattr(augment, "_uniform", lambda n, low, high, device: torch.full((n,), float(high)))
    image = torch.zeros(1, 50, 120, 3, dtype=torch.uint8)
    image[0, 24:26, 40:80] = 255  # 40 pixels wide, 2 high, centred
    out = augment.random_warp(image)[0, :, :, 0]
    rows, cols = torch.nonzero(out > 128, as_tuple=True)
    assert 36 <= int(rows.max() - rows.min()) + 1 <= 44, "40 pixels tall after the turn"
    assert int(cols.max() - cols.min()) + 1 <= 4


def test_a_small_training_set_gets_warps_and_says_so(prepared_dataset, tmp_path, monkeypatch):
    seen = []
    real = augment.random_warp
    monkeypatch.setattr(augment, "random_warp", lambda images: seen.append(len(images)) or real(images))
    events = []
    config = TrainConfig(data=prepared_dataset, out=tmp_path / "run", preset="tiny", epochs=1, device="cpu")
    assert isinstance(Trainer(config, events.append).run(), ev.Finished)
    notices = [n.message for n in events_of(events, ev.Notice)]
    assert any("randomly rotated, scaled, sheared and recoloured" in n for n in notices), notices
    assert sum(seen) == events_of(events, ev.RunStarted)[0].train_count

    seen.clear()
    events = []
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path / "plain", preset="tiny", epochs=1, device="cpu", augment=False
    )
    assert isinstance(Trainer(config, events.append).run(), ev.Finished)
    assert not seen and not any("rotated" in n.message for n in events_of(events, ev.Notice))
