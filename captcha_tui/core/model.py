"""Model presets: the reference's ResNet-18, cheaper networks for CPUs, and CTC readers for any length.

A per-position preset maps a (N, 3, H, W) batch to (N, length, classes) logits, one group per character
position, trained with cross-entropy per position. The reference instead put a softmax on each group and
trained with BCELoss against one-hot targets: that saturates (tiny gradients once a wrong class is
confident) and learns markedly slower, so we do not.

A CTC preset keeps the image's width as a sequence: it maps the batch to (N, T, classes + 1) logits, one
distribution per column step over the charset plus a blank (the last index), and is trained with CTC
loss; decoding collapses repeats and drops blanks (``decoding.py``), so one model reads codes of any
length up to what its T steps can hold.

A slots preset has a per-position preset's backbone and head, with one more class per position: it maps
the batch to (N, max_length, classes + 1) logits, the last class of each slot meaning "the code has
ended". A code of k characters fills slots 0..k-1 and the end class the rest; it is trained with
cross-entropy per slot like a per-position model, and reads codes of any length up to max_length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .spec import CodeSpec

# Inputs are uint8 images; the model normalises them itself so a checkpoint carries everything needed.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


DEFAULT_LR = 3e-3  # peak learning rate of the per-position presets, and the most a small set gets
DEFAULT_BATCH_SIZE = 100  # the mini-batch of every preset that does not name its own


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    head: str  # "pool": global average pool (reference); "flatten": keep where each feature is
    # 2: the first convolution reads every pixel and halves the map, so the rest costs a quarter.
    stem_stride: int = 1
    # (width, height) the network works at; images of another size are resized on the way in, so a preset
    # behaves the same on any dataset. None: whatever size the dataset has.
    input_size: tuple[int, int] | None = None
    decoder: str = "positional"  # or "ctc", "slots": see the module docstring
    # CTC presets: stages after the first halve only the height, from this stage on, so the width keeps
    # enough columns (time steps) for long codes.
    keep_width_from: int | None = None
    recurrent: int = 0  # CTC presets: hidden size of a bidirectional GRU over the steps (0: none)
    # Peak learning rate of the one-cycle schedule (train --lr overrides it). CTC presets learn markedly
    # faster at twice the per-position rate (docs/performance.md, "learning rate").
    lr: float = DEFAULT_LR
    # Mini-batch of a run that does not give --batch-size.
    batch_size: int = DEFAULT_BATCH_SIZE


CTC_LR = 6e-3  # measured on crnn-fast: 4 minutes at 1.5e-3, 3e-3, 6e-3, 1e-2 read 33%, 38%, 54%, 47%

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "resnet18",
            "the reference's ResNet-18: 3×3 stride-1 stem, 4 stages of 2 BasicBlocks, 64→512, avg-pool head",
            (64, 128, 256, 512),
            (2, 2, 2, 2),
            "pool",
        ),
        Preset(
            "fast",
            "a small ResNet (32→256, one block a stage) on full 120×50 images, stride-2 stem, positional head:"
            " the CPU default",
            (32, 64, 128, 256),
            (1, 1, 1, 1),
            "flatten",
            stem_stride=2,
            input_size=(120, 50),
        ),
        Preset(
            "tiny",
            "a very small ResNet for tests and smoke runs",
            (8, 16, 24, 32),
            (1, 1, 1, 1),
            "flatten",
            stem_stride=2,
        ),
        Preset(
            "slots-fast",
            "fast's network with an end class in each of its per-position outputs: reads codes of several"
            " lengths (up to the longest trained on)",
            (32, 64, 128, 256),
            (1, 1, 1, 1),
            "flatten",
            stem_stride=2,
            input_size=(120, 50),
            decoder="slots",
        ),
        Preset(
            "slots-tiny",
            "a very small slots reader (codes of several lengths, an end class per slot) for tests",
            (8, 16, 24, 32),
            (1, 1, 1, 1),
            "flatten",
            stem_stride=2,
            decoder="slots",
        ),
        Preset(
            "crnn",
            "a small ResNet (32→256) that keeps 30 columns of a 120×50 image, a bidirectional GRU and CTC:"
            " reads codes of any length up to 15",
            (32, 64, 128, 256),
            (1, 1, 1, 1),
            "ctc",
            stem_stride=2,
            input_size=(120, 50),
            decoder="ctc",
            keep_width_from=2,
            recurrent=128,
            lr=CTC_LR,
        ),
        Preset(
            "crnn-fast",
            "a narrow ResNet (16→128) that keeps 15 columns of a 120×50 image, a bidirectional GRU and CTC:"
            " the CPU default for codes of several lengths, reads up to 15 characters (8 if all repeat)",
            (16, 32, 64, 128),
            (1, 1, 1, 1),
            "ctc",
            stem_stride=2,
            input_size=(120, 50),
            decoder="ctc",
            keep_width_from=3,
            recurrent=96,
            lr=CTC_LR,
            # Twice the steps per image seen: 4–6 characters from scratch read 92.6% after 150,000 images
            # at 50 against 90.9% at 100 (97.07% against 96.87% after 550,000), for 13% fewer images a
            # second (docs/performance.md).
            batch_size=50,
        ),
        Preset(
            "crnn-tiny",
            "a very small CTC reader for tests and smoke runs",
            (8, 16, 24, 32),
            (1, 1, 1, 1),
            "ctc",
            stem_stride=2,
            decoder="ctc",
            keep_width_from=1,
            recurrent=16,
            lr=CTC_LR,
        ),
    )
}
DEFAULT_PRESET = "fast"
DEFAULT_CTC_PRESET = "crnn-fast"
WIDE_CTC_PRESET = "crnn"  # twice the time steps, for long codes: what `train` picks when they need it


def default_preset_rule() -> str:
    """:func:`default_preset` in words, for help texts (the longest code the fast CTC preset holds is
    the one for 120×50 images)."""
    longest = (time_steps(DEFAULT_CTC_PRESET, (120, 50)) + 1) // 2
    return (
        f"{DEFAULT_PRESET} for codes of one length, {DEFAULT_CTC_PRESET} for several, "
        f"{WIDE_CTC_PRESET} for codes longer than {longest}"
    )


def batch_size_rule() -> str:
    """Which mini-batch a run takes without --batch-size, in words, for help texts."""
    own = ", ".join(
        f"{p.batch_size} for {p.name}" for p in PRESETS.values() if p.batch_size != DEFAULT_BATCH_SIZE
    )
    return f"the preset's: {own}, {DEFAULT_BATCH_SIZE} for the others"


def run_batch_size(preset: str, requested: int | None) -> int:
    """The mini-batch a run trains with: what was asked for, else the preset's."""
    return requested if requested is not None else PRESETS[preset].batch_size


def default_preset(spec: CodeSpec) -> str:
    """The preset ``train`` picks with no ``--preset``: per-position for one length, CTC for several:
    the fast one where its steps hold any code of the longest length (all neighbours repeated, up to 8
    characters), else the wider one."""
    if spec.fixed_length:
        return DEFAULT_PRESET
    worst = 2 * spec.max_length - 1
    return DEFAULT_CTC_PRESET if worst <= time_steps(DEFAULT_CTC_PRESET, spec.image_size) else WIDE_CTC_PRESET


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a shortcut, as in ResNet-18."""

    def __init__(self, channels_in: int, channels_out: int, stride: int | tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride not in (1, (1, 1)) or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CaptchaNet(nn.Module):
    def __init__(self, preset: Preset, spec: CodeSpec):
        super().__init__()
        length, classes, image_size = spec.max_length, spec.classes, spec.image_size
        if preset.decoder != spec.decoder:
            raise ValueError(
                f"preset {preset.name!r} is a {preset.decoder} model, but the spec asks for {spec.decoder}"
            )
        self.decoder = preset.decoder
        self.length, self.classes = length, classes
        # Outputs per position: a slots model has an end class after the charset's.
        outputs = classes + 1 if preset.decoder == "slots" else classes
        self.outputs = outputs
        self.input_size = preset.input_size
        self.memory_format = torch.contiguous_format
        width0 = preset.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, width0, 3, preset.stem_stride, 1, bias=False),
            nn.BatchNorm2d(width0),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width0
        strides = _stage_strides(preset)
        for stage, (width, blocks) in enumerate(zip(preset.widths, preset.blocks, strict=True)):
            for block in range(blocks):
                stride = strides[stage] if stage > 0 and block == 0 else (1, 1)
                stages.append(BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*stages)
        width, height = preset.input_size or image_size
        cells_high = _downsampled(height, [s[0] for s in strides])
        self.steps = time_steps(preset.name, image_size)  # CTC: time steps (columns) per image
        if preset.decoder == "ctc":
            # Each column's features (all rows) become one step; the GRU lets a step see its neighbours,
            # which CTC needs to place each character once.
            features = channels * cells_high
            self.project = nn.Sequential(nn.Dropout(0.2), nn.Linear(features, 256), nn.ReLU(inplace=True))
            self.recurrent = (
                nn.GRU(256, preset.recurrent, batch_first=True, bidirectional=True)
                if preset.recurrent
                else None
            )
            self.head = nn.Linear(2 * preset.recurrent if preset.recurrent else 256, classes + 1)
        elif preset.head == "pool":
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, length * outputs)
            )
        else:
            # Keep the (coarse) layout: which column a feature sits in says which character it belongs to.
            cells = self.steps * cells_high
            self.head = nn.Sequential(
                nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels * cells, length * outputs)
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: (N, 3, H, W), uint8 pixels or floats already normalised. Returns (N, length, classes)
        logits for a per-position model, (N, steps, classes + 1) for a CTC one (blank last), (N, length,
        classes + 1) for a slots one (end last)."""
        x = (
            (images.float() * (1.0 / 255.0) - PIXEL_MEAN) * (1.0 / PIXEL_STD)
            if images.dtype == torch.uint8
            else images
        )
        if self.input_size is not None and (x.shape[-1], x.shape[-2]) != self.input_size:
            width, height = self.input_size
            x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        x = x.contiguous(memory_format=self.memory_format)  # free when the layout already matches
        x = self.stages(self.stem(x))
        if self.decoder == "ctc":
            x = self.project(x.permute(0, 3, 1, 2).flatten(2))  # (N, steps, channels × rows)
            if self.recurrent is not None:
                x = self.recurrent(x)[0]
            return self.head(x)
        return self.head(x).view(-1, self.length, self.outputs)

    def set_channels_last(self, enabled: bool) -> CaptchaNet:
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        return self.to(memory_format=self.memory_format)


def _stage_strides(preset: Preset) -> list[tuple[int, int]]:
    """(height, width) stride of the stem, then of each stage's first block."""
    strides = [(preset.stem_stride, preset.stem_stride)]
    for stage in range(1, len(preset.widths)):
        keep = preset.keep_width_from is not None and stage >= preset.keep_width_from
        strides.append((2, 1) if keep else (2, 2))
    return strides


def time_steps(preset: str, image_size: tuple[int, int]) -> int:
    """Columns of the last feature map for images of ``image_size``: a CTC preset's time steps, the most
    characters it can emit per image (fewer when neighbours repeat)."""
    spec = PRESETS[preset]
    width = (spec.input_size or image_size)[0]
    return _downsampled(width, [s[1] for s in _stage_strides(spec)])


def ctc_steps_needed(code: str) -> int:
    """Time steps CTC needs to emit ``code``: one per character, plus a blank between repeated neighbours."""
    return len(code) + sum(a == b for a, b in zip(code, code[1:], strict=False))


def _downsampled(size: int, strides: list[int]) -> int:
    for stride in strides:
        size = (size - 1) // stride + 1  # a 3×3 convolution with padding 1
    return size


def build_model(preset: str, spec: CodeSpec) -> CaptchaNet:
    """The preset's network for what ``spec`` describes (charset, code length, image size)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return CaptchaNet(PRESETS[preset], spec)


def preset_spec(preset: str, spec: CodeSpec) -> CodeSpec:
    """``spec`` with the decoder that ``preset`` uses (a dataset's spec names the one its codes need)."""
    return spec.replace(decoder=PRESETS[preset].decoder)


def prefers_channels_last(preset: str, device: torch.device) -> bool:
    """Measured on 2-core CPUs (docs/performance.md): channels-last speeds `fast` (32→256) up ~2.5× and
    `crnn-fast` (16→128) 1.23×, and slows the 8-channel test presets (up to 4× on the Intel Xeon); on
    CUDA it is what cuDNN's fastest (tensor-core) kernels want."""
    return device.type == "cuda" or min(PRESETS[preset].widths) >= 16


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def to_model_input(batch_nhwc: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) view. A permute, no copy: the result is already channels-last."""
    return batch_nhwc.permute(0, 3, 1, 2)
