from __future__ import annotations

import pytest
import torch

from captcha_tui.core.model import (
    PIXEL_MEAN,
    PIXEL_STD,
    PRESETS,
    batch_size_rule,
    build_model,
    count_parameters,
    ctc_steps_needed,
    default_preset,
    prefers_channels_last,
    preset_spec,
    run_batch_size,
    time_steps,
    to_model_input,
)
from captcha_tui.core.spec import CodeSpec
from tests.helpers import spec_for


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p].decoder == "positional"))
def test_every_preset_maps_images_to_per_position_logits(preset):
    model = build_model(preset, spec_for(5, 20)).eval()
    images = torch.randint(0, 256, (3, 50, 120, 3), dtype=torch.uint8)  # the default packed size
    with torch.inference_mode():
        logits = model(to_model_input(images))
    assert logits.shape == (3, 5, 20)
    assert torch.isfinite(logits).all()


def test_resnet18_follows_the_reference_layout():
    model = build_model("resnet18", spec_for(4, 36))
    stem = model.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert len(model.stages) == 8  # four stages of two BasicBlocks
    assert [block.conv2.out_channels for block in model.stages] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert isinstance(model.head[0], torch.nn.AdaptiveAvgPool2d)
    assert model.head[-1].out_features == 4 * 36
    # ResNet-18 body plus this head: about 11.2 million parameters.
    assert 11_000_000 < count_parameters(model) < 11_500_000


def test_cheaper_presets_are_much_cheaper():
    big = count_parameters(build_model("resnet18", spec_for(4, 31)))
    assert count_parameters(build_model("fast", spec_for(4, 31))) < big / 4
    assert count_parameters(build_model("tiny", spec_for(4, 31))) < big / 50


def test_input_layout_is_a_view_not_a_copy():
    images = torch.zeros(2, 24, 56, 3, dtype=torch.uint8)
    nchw = to_model_input(images)
    assert nchw.shape == (2, 3, 24, 56) and nchw.data_ptr() == images.data_ptr()
    assert nchw.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_where_it_was_measured_faster():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # 16 channels and up: crnn-fast 1.23×, fast ~2.5× on 2-core CPUs; the 8-channel test presets are not.
    assert prefers_channels_last("fast", cpu) and prefers_channels_last("crnn-fast", cpu)
    assert not prefers_channels_last("tiny", cpu) and not prefers_channels_last("crnn-tiny", cpu)
    assert all(prefers_channels_last(p, cuda) for p in PRESETS)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        build_model("vgg", spec_for(4, 31))


def test_fast_reads_full_size_images_through_a_stride_two_stem():
    model = build_model("fast", spec_for(4, 31, (120, 50)))
    assert model.stem[0].stride == (2, 2)
    # 120×50 → 60×25 (stem) → 30×13 → 15×7 → 8×4 cells of 256 features, each kept in place by the head.
    assert model.head[-1].in_features == 256 * 8 * 4


def test_a_preset_with_its_own_input_size_resizes_other_images_to_it():
    # A dataset packed at the reference's 56×24 still trains the same `fast` network: the model scales
    # images up to the 120×50 it was built for, so its head and its checkpoints do not depend on the data.
    small = build_model("fast", spec_for(4, 31, (56, 24))).eval()
    full = build_model("fast", spec_for(4, 31, (120, 50))).eval()
    full.load_state_dict(small.state_dict())
    images = torch.randint(0, 256, (2, 24, 56, 3), dtype=torch.uint8)
    with torch.inference_mode():
        upscaled = torch.nn.functional.interpolate(
            to_model_input(images).float(), size=(50, 120), mode="bilinear", antialias=True
        )
        expected = full((upscaled / 255.0 - PIXEL_MEAN) / PIXEL_STD)
        assert torch.allclose(small(to_model_input(images)), expected, atol=1e-4)


def test_presets_without_an_input_size_work_at_the_datasets_size():
    assert PRESETS["resnet18"].input_size is None
    model = build_model("tiny", spec_for(4, 31, (40, 16))).eval()
    # 40×16 → 20×8 → 10×4 → 5×2 → 3×1 cells of 32 features.
    assert model.head[-1].in_features == 32 * 3 * 1
    with torch.inference_mode():
        assert model(to_model_input(torch.zeros(1, 16, 40, 3, dtype=torch.uint8))).shape == (1, 4, 31)


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p].decoder == "ctc"))
def test_ctc_presets_map_images_to_a_sequence_over_the_width(preset):
    spec = CodeSpec("abcdefghij", 4, 6, (120, 50), decoder="ctc")
    model = build_model(preset, spec).eval()
    with torch.inference_mode():
        logits = model(to_model_input(torch.randint(0, 256, (2, 50, 120, 3), dtype=torch.uint8)))
    assert logits.shape == (2, model.steps, 11)  # ten characters and the blank
    assert model.steps == time_steps(preset, (120, 50)) and model.steps >= 2 * 6  # room for repeats


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p].decoder == "slots"))
def test_slots_presets_map_images_to_slots_with_an_end_class(preset):
    spec = CodeSpec("abcdefghij", 4, 6, (120, 50), decoder="slots")
    model = build_model(preset, spec).eval()
    with torch.inference_mode():
        logits = model(to_model_input(torch.randint(0, 256, (2, 50, 120, 3), dtype=torch.uint8)))
    assert logits.shape == (2, 6, 11)  # six slots: ten characters and the end
    assert torch.isfinite(logits).all()


def test_slots_fast_is_fast_with_one_more_output_per_position():
    fast, slots = PRESETS["fast"], PRESETS["slots-fast"]
    assert (slots.widths, slots.blocks, slots.head, slots.stem_stride, slots.input_size, slots.lr) == (
        fast.widths,
        fast.blocks,
        fast.head,
        fast.stem_stride,
        fast.input_size,
        fast.lr,
    )
    positional = build_model("fast", CodeSpec.fixed("abcdefghij", 6, (120, 50)))
    spec = CodeSpec("abcdefghij", 4, 6, (120, 50), decoder="slots")
    extra = count_parameters(build_model("slots-fast", spec)) - count_parameters(positional)
    assert extra == 6 * (positional.head[-1].in_features + 1)  # one output row (and bias) per slot
    assert preset_spec("slots-fast", CodeSpec("ab", 4, 6, (1, 1), decoder="ctc")).decoder == "slots"


def test_crnn_keeps_thirty_columns_whatever_the_image_size():
    spec = CodeSpec("abc", 2, 5, (200, 64), decoder="ctc")
    model = build_model("crnn", spec)
    assert model.steps == 30 == time_steps("crnn", (200, 64))
    assert time_steps("crnn-tiny", (200, 64)) == 100  # no fixed input size: the width decides


def test_a_preset_refuses_a_spec_for_the_other_decoder():
    with pytest.raises(ValueError, match="'crnn' is a ctc model"):
        build_model("crnn", spec_for(4, 10))
    assert preset_spec("crnn", spec_for(4, 10)).decoder == "ctc"
    assert default_preset(spec_for(4, 10)) == "fast"
    assert default_preset(CodeSpec("ab", 4, 6, (1, 1), decoder="ctc")) == "crnn-fast"


def test_codes_that_may_not_fit_the_fast_ctc_model_get_the_wide_one():
    # crnn-fast has 15 steps: any code of 8 characters fits (7 repeats need 7 blanks), one of 9 may not.
    assert time_steps("crnn-fast", (120, 50)) == 15
    assert ctc_steps_needed("aaaaaaaa") == 15
    assert default_preset(CodeSpec("ab", 4, 8, (120, 50), decoder="ctc")) == "crnn-fast"
    assert default_preset(CodeSpec("ab", 4, 9, (120, 50), decoder="ctc")) == "crnn"


def test_ctc_steps_needed_counts_a_blank_between_repeats():
    assert ctc_steps_needed("abcd") == 4
    assert ctc_steps_needed("aa11") == 6
    assert ctc_steps_needed("aaa") == 5


def test_crnn_fast_takes_mini_batches_of_50_and_the_help_says_so():
    assert run_batch_size("crnn-fast", None) == 50 and run_batch_size("crnn-fast", 7) == 7
    assert run_batch_size("fast", None) == run_batch_size("crnn", None) == 100
    assert batch_size_rule() == "the preset's: 50 for crnn-fast, 100 for the others"
