"""``bench speed --reference``: the reference recipe is what it claims to be, and the ratios divide what was timed."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from captcha_tui.bench import reference, speed
from captcha_tui.cli import main
from captcha_tui.core.generator import DEFAULT_CHARSET

CLASSES = len(DEFAULT_CHARSET)


def test_the_reference_model_has_the_reference_layout(one_thread):
    model = reference.ReferenceResNet18(4, CLASSES)
    stem = model.stem[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == (
        3,
        64,
        (3, 3),
        (1, 1),
        (1, 1),
    )
    assert isinstance(model.stem[1], nn.BatchNorm2d) and isinstance(model.stem[2], nn.ReLU)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    blocks = list(model.stages)
    assert len(blocks) == 8 and all(isinstance(b, reference.ReferenceBlock) for b in blocks)
    assert [b.body[0].out_channels for b in blocks] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [b.body[0].stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    # 1×1 projections exactly where a stage changes the shape; identity elsewhere.
    assert [isinstance(b.shortcut, nn.Identity) for b in blocks] == [
        True,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
    ]
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and model.pool.output_size == 1
    assert (model.fc.in_features, model.fc.out_features) == (512, 4 * CLASSES)

    width, height = reference.IMAGE_SIZE
    assert (width, height) == (56, 24)
    features = model.stages(model.stem(torch.zeros(2, 3, height, width)))
    assert features.shape == (2, 512, 3, 7)  # 24×56 halved three times
    out = model.eval()(torch.rand(2, 3, height, width))
    assert out.shape == (2, 4 * CLASSES)
    groups = out.view(2, 4, CLASSES)
    assert torch.allclose(groups.sum(-1), torch.ones(2, 4))  # a softmax over each character's group
    assert not torch.allclose(out.sum(-1), torch.ones(2))  # …not over all outputs


def test_the_reference_trains_with_bce_on_one_hot_targets_and_adam(one_thread):
    labels = torch.tensor([[0, 1, 2, 30], [5, 5, 5, 5]])
    targets = reference.one_hot_targets(labels, CLASSES)
    assert targets.shape == (2, 4 * CLASSES) and targets.dtype == torch.float32
    assert targets[0].nonzero().flatten().tolist() == [0, CLASSES + 1, 2 * CLASSES + 2, 3 * CLASSES + 30]
    assert targets.sum().item() == 8

    torch.manual_seed(0)
    model = reference.ReferenceResNet18(4, CLASSES)
    probabilities = model(torch.rand(2, 3, 24, 56))
    by_hand = -(targets * probabilities.log() + (1 - targets) * (1 - probabilities).log()).mean()
    loss = reference.reference_loss(probabilities, targets)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    # Not the cross-entropy our presets train with, which would be several times larger here.
    cross_entropy = -(targets * probabilities.log()).sum() / 8
    assert loss.item() < cross_entropy.item() / 10

    optimizer = reference.reference_optimizer(model)
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["lr"] == 1e-3 and optimizer.param_groups[0]["weight_decay"] == 0
    before = model.fc.weight.detach().clone()
    reference.reference_step(model, optimizer, torch.rand(2, 3, 24, 56), targets)
    assert not torch.equal(before, model.fc.weight)  # a real step…
    assert all(p.grad is None for p in model.parameters())  # …that leaves no gradients behind


def test_reference_input_is_contiguous_float_in_unit_range():
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).repeat(1, 24, 56, 1)  # (1, H, W, 3)
    x = reference.to_reference_input(pixels)
    assert x.shape == (1, 3, 24, 56) and x.dtype == torch.float32 and x.is_contiguous()
    assert x[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.2, 1.0])


def _logging_recipe(name: str, log: list, images: int = 2) -> speed.Recipe:
    """A stand-in recipe that only records which passes ran, in order."""

    def predict_batch(start: int, end: int) -> torch.Tensor:
        log.append(("predict", name))
        return torch.zeros(min(end, images) - start, 4, CLASSES)

    return speed.Recipe(
        row={"preset": name},
        images=images,
        batch_size=images,  # one mini-batch a pass
        train_batch=lambda start: log.append(("train", name)),
        predict_batch=predict_batch,
        flops_per_image=1e9,
    )


def test_recipes_are_timed_in_alternating_rounds():
    log: list = []
    rows = speed.time_recipes(
        torch.device("cpu"), [_logging_recipe("reference", log), _logging_recipe("fast", log)], repeats=3
    )
    warm_up = [("train", "reference"), ("predict", "reference")] + [("predict", "reference")] * 3
    warm_up += [("train", "fast"), ("predict", "fast")] + [("predict", "fast")] * 3
    assert log[: len(warm_up)] == warm_up
    timed = log[len(warm_up) :]
    # Each round times one pass of every recipe back to back, so a change of load hits them alike.
    assert (
        timed[:12]
        == [("train", "reference"), ("train", "fast")] * 3
        + [
            ("predict", "reference"),
            ("predict", "fast"),
        ]
        * 3
    )
    assert [len(r["train_rounds"]) for r in rows] == [3, 3]
    assert [r["preset"] for r in rows] == ["reference", "fast"]


def test_ratios_are_per_round_and_pair_each_preset_with_the_reference_on_its_device(monkeypatch):
    # Known rates in, known ratios out. fast ÷ reference by round: 2.5, 3.0, 2.0 → median 2.5 (the ratio of
    # the medians would be 120/50 = 2.4); tiny: 0.5, 0.5, 0.55 → 0.5. Prediction: 3.0 and 0.5 every round.
    rounds = {
        "reference": ([40.0, 50.0, 60.0], [100.0, 100.0, 100.0]),
        "fast": ([100.0, 150.0, 120.0], [300.0, 300.0, 300.0]),
        "tiny": ([20.0, 25.0, 33.0], [50.0, 50.0, 50.0]),
    }
    built = []

    def fake_preset_recipe(device, preset, images, labels, batch_size, amp):
        built.append((preset, images.shape[2], images.shape[1]))
        return preset

    def fake_reference_recipe(device, images, labels):
        built.append(("reference", images.shape[2], images.shape[1]))
        return "reference"

    def fake_time_recipes(device, recipes, repeats):
        rows = []
        for name in recipes:
            train, predict = rounds[name]
            rows.append(
                {
                    "device": str(device),
                    "preset": name,
                    "image_size": [56, 24],
                    "batch_size": 100,
                    "amp": False,
                    "images": 4,
                    "train_images_per_s": sorted(train)[1],
                    "seconds_per_chunk": 1.0,
                    "predict_images_per_s": sorted(predict)[1],
                    "predict_one_ms": 1.0,
                    "train_gflop_per_image": 1.0,
                    "train_gflops": sorted(train)[1],
                    "train_rounds": train,
                    "predict_rounds": predict,
                }
            )
        return rows

    monkeypatch.setattr(speed, "preset_recipe", fake_preset_recipe)
    monkeypatch.setattr(speed, "reference_recipe", fake_reference_recipe)
    monkeypatch.setattr(speed, "time_recipes", fake_time_recipes)
    monkeypatch.setattr(speed, "matmul_gflops", lambda device: 500.0)
    report = speed.throughput(["cpu"], ["fast", "tiny"], images=4, progress=False, with_reference=True)

    # The presets get the chunk at the size asked for, the reference its own 56×24 of the same captchas.
    assert sorted(built) == [("fast", 120, 50), ("reference", 56, 24), ("tiny", 120, 50)]
    fast, tiny = report["results"]
    assert (fast["preset"], fast["train_vs_reference"], fast["predict_vs_reference"]) == ("fast", 2.5, 3.0)
    assert (tiny["preset"], tiny["train_vs_reference"], tiny["predict_vs_reference"]) == ("tiny", 0.5, 0.5)
    (reference_row,) = report["reference"]
    assert reference_row["preset"] == "reference" and reference_row["fraction_of_matmul"] == 0.1
    assert "train_vs_reference" not in reference_row
    table = speed.format_table(report)
    assert "2.50×" in table and "0.50×" in table

    without = speed.throughput(["cpu"], ["fast"], images=4, progress=False)
    assert "reference" not in without and "train_vs_reference" not in without["results"][0]


def test_bench_reference_times_the_reference_in_the_same_run(capsys, monkeypatch, one_thread):
    monkeypatch.setattr(
        speed, "matmul_gflops", lambda device: 100.0
    )  # a 4096² product: seconds, not the point
    code = main(
        [
            "bench",
            "speed",
            "--json",
            "--reference",
            "--device",
            "cpu",
            "--preset",
            "tiny",
            "--images",
            "8",
            "--batch-size",
            "4",
            "--repeats",
            "1",
            "--amp",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    (ref,) = report["reference"]
    # The reference recipe as it was: its own size, mini-batch and precision, whatever the presets were given.
    assert ref["preset"] == "reference" and ref["device"] == "cpu"
    assert ref["image_size"] == [56, 24] and ref["batch_size"] == 100 and ref["amp"] is False
    assert ref["images"] == 8 and ref["train_images_per_s"] > 0
    # Forward + backward of ResNet-18 at 56×24: about 4 GFLOP an image (counted, not assumed).
    assert 3 < ref["train_gflop_per_image"] < 6
    (row,) = report["results"]
    assert row["preset"] == "tiny" and row["amp"] is True and row["image_size"] == [120, 50]
    # The ratios divide the two rates measured in each round (the rounds are in the report too).
    for kind in ("train", "predict"):
        by_round = sorted(a / b for a, b in zip(row[f"{kind}_rounds"], ref[f"{kind}_rounds"], strict=True))
        assert row[f"{kind}_vs_reference"] == pytest.approx(by_round[0], abs=0.006)  # one round: its ratio
        assert len(by_round) == 1


@pytest.mark.parametrize("preset", ["tiny", "crnn-tiny"])
def test_the_speed_benchmark_times_every_kind_of_preset(capsys, monkeypatch, one_thread, preset):
    # CTC presets crashed here once: the spec handed to them named the per-position decoder (issue 22).
    monkeypatch.setattr(speed, "matmul_gflops", lambda device: 100.0)
    argv = [
        "bench",
        "speed",
        "--json",
        "--device",
        "cpu",
        "--preset",
        preset,
        "--images",
        "8",
        "--batch-size",
        "4",
    ]
    assert main([*argv, "--repeats", "1"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["preset"] == preset and row["train_images_per_s"] > 0 and row["train_gflop_per_image"] > 0


def test_bench_json_has_the_agreed_fields(capsys):
    code = main(
        [
            "bench",
            "speed",
            "--json",
            "--device",
            "cpu",
            "--preset",
            "tiny",
            "--images",
            "40",
            "--batch-size",
            "20",
            "--repeats",
            "1",
            "--amp",
            "--size",
            "56x24",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    row = report["results"][0]
    assert row["image_size"] == [56, 24]  # the reference's size, as asked for
    for key in ("device", "preset", "batch_size", "train_images_per_s", "predict_images_per_s"):
        assert key in row
    assert row["device"] == "cpu" and row["preset"] == "tiny" and row["batch_size"] == 20
    assert row["amp"] is True  # asked for: bf16 autocast on the CPU, whatever the default would be
    assert (
        row["train_images_per_s"] > 0 and row["predict_images_per_s"] > 0 and row["train_gflop_per_image"] > 0
    )


@pytest.mark.slow
def test_a_list_of_devices_times_training_on_all_of_them_at_once(capsys):
    # cpu:2 (two gloo processes) stands for cuda:0,cuda:1: the row a two-GPU figure is read from.
    args = ["bench", "speed", "--device", "cpu:2", "--preset", "tiny", "--images", "40", "--repeats", "2"]
    assert main([*args, "--batch-size", "10"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("cpu:2"))
    assert row.split()[1:5] == ["tiny", "120×50", "10", "off"] and row.count("n/a") == 4
    assert float(row.split()[5].replace(",", "")) > 0  # images/s of both processes together

    assert main([*args, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (result["device"], result["processes"], result["images"]) == ("cpu:2", 2, 40)
    assert len(result["train_rounds"]) == 2 and result["train_images_per_s"] > 0
    assert result["predict_images_per_s"] is None  # prediction runs on one device: not timed here


def test_a_bad_list_of_devices_is_refused_before_anything_is_timed(capsys):
    assert main(["bench", "speed", "--device", "cpu:2,cpu:2", "--preset", "tiny"]) == 2
    assert "cannot be one item of a list" in capsys.readouterr().err
