from __future__ import annotations

import pytest
import torch

from captcha_tui.core.model import PRESETS, build_model, count_parameters, to_model_input


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_maps_images_to_per_position_logits(preset):
    model = build_model(preset, length=5, classes=20).eval()
    images = torch.randint(0, 256, (3, 24, 56, 3), dtype=torch.uint8)
    with torch.inference_mode():
        logits = model(to_model_input(images))
    assert logits.shape == (3, 5, 20)
    assert torch.isfinite(logits).all()


def test_resnet18_follows_the_reference_layout():
    model = build_model("resnet18", 4, 36)
    stem = model.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert len(model.stages) == 8  # four stages of two BasicBlocks
    assert [block.conv2.out_channels for block in model.stages] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert isinstance(model.head[0], torch.nn.AdaptiveAvgPool2d)
    assert model.head[-1].out_features == 4 * 36
    # ResNet-18 body plus this head: about 11.2 million parameters.
    assert 11_000_000 < count_parameters(model) < 11_500_000


def test_cheaper_presets_are_much_cheaper():
    big = count_parameters(build_model("resnet18", 4, 31))
    assert count_parameters(build_model("fast", 4, 31)) < big / 4
    assert count_parameters(build_model("tiny", 4, 31)) < big / 50


def test_input_layout_is_a_view_not_a_copy():
    images = torch.zeros(2, 24, 56, 3, dtype=torch.uint8)
    nchw = to_model_input(images)
    assert nchw.shape == (2, 3, 24, 56) and nchw.data_ptr() == images.data_ptr()
    assert nchw.is_contiguous(memory_format=torch.channels_last)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        build_model("vgg", 4, 31)
