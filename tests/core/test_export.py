"""ONNX export: real checkpoints exported and read back with ONNX Runtime on real generated captchas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from captcha_tui.cli import main
from captcha_tui.core.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from captcha_tui.core.export import disagreement, export_onnx
from captcha_tui.core.generator import DEFAULT_CHARSET
from captcha_tui.core.images import load_image
from captcha_tui.core.model import build_model
from captcha_tui.core.onnx_format import METADATA_KEY, read_onnx_metadata
from captcha_tui.core.onnx_predictor import NEEDS_ONNXRUNTIME, OnnxPredictor
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.spec import CodeSpec
from captcha_tui.core.train import TrainConfig, Trainer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"


@pytest.fixture(scope="module")
def onnx_libs():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")


def _random_checkpoint(path: Path, preset: str, spec: CodeSpec) -> Path:
    """A checkpoint of ``preset`` with random (seeded) weights: for model kinds the trainer cannot make."""
    torch.manual_seed(0)
    model = build_model(preset, spec)
    with torch.no_grad():  # give BatchNorm statistics of its own, so they are exported for real
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    meta = CheckpointMeta(spec=spec, preset=preset, epoch=3, val_accuracy=0.5, created="2025-01-01")
    return save_checkpoint(path, {"meta": meta.to_dict(), "model": model.state_dict()})


@pytest.fixture(scope="module")
def exported(onnx_libs, tiny_run, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(checkpoint, exported model) of each kind: the trained tiny run (per-position); a CTC crnn-tiny
    reading 4–6 characters; a slots-tiny reading 4–6 (an end class per slot); and `fast` at 150×60, whose
    graph resizes (antialiased) to its 120×50."""
    folder = tmp_path_factory.mktemp("export")
    checkpoints = {
        "positional": tiny_run / "best.pt",
        "ctc": _random_checkpoint(
            folder / "ctc.pt", "crnn-tiny", CodeSpec(DEFAULT_CHARSET, 4, 6, (120, 50), decoder="ctc")
        ),
        "slots": _random_checkpoint(
            folder / "slots.pt", "slots-tiny", CodeSpec(DEFAULT_CHARSET, 4, 6, (120, 50), decoder="slots")
        ),
        "resized": _random_checkpoint(
            folder / "fast.pt", "fast", CodeSpec.fixed(DEFAULT_CHARSET, 4, (150, 60))
        ),
    }
    return {kind: (pt, export_onnx(pt, folder / f"{kind}.onnx")) for kind, pt in checkpoints.items()}


@pytest.mark.parametrize("kind", ["positional", "ctc", "slots", "resized"])
def test_onnx_reads_real_captchas_as_pytorch_does(exported, captcha_files, kind):
    checkpoint, model = exported[kind]
    torch_reader, onnx_reader = Predictor.load(checkpoint), Predictor.load(model)
    assert isinstance(onnx_reader, OnnxPredictor) and not isinstance(torch_reader, OnnxPredictor)
    assert onnx_reader.spec == torch_reader.spec and onnx_reader.steps == torch_reader.steps
    images = np.stack([load_image(f, torch_reader.spec.image_size) for f in captcha_files[:64]])
    expected, got = torch_reader.logits(images).numpy(), onnx_reader.logits(images).numpy()
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
    assert [p.code for p in onnx_reader.predict_arrays(images)] == [
        p.code for p in torch_reader.predict_arrays(images)
    ]
    # The same through every way in: paths (with labels), bytes. Confidences are rounded to 4 places,
    # so a 1e-7 difference may move the last one.
    pairs = [
        (a.prediction, b.prediction)
        for a, b in zip(
            onnx_reader.predict_paths(captcha_files[:5]),
            torch_reader.predict_paths(captcha_files[:5]),
            strict=True,
        )
    ]
    pairs.append((onnx_reader.predict(captcha_files[0].read_bytes()), torch_reader.predict(captcha_files[0])))
    for got_one, expected_one in pairs:
        assert got_one.code == expected_one.code
        assert np.allclose(got_one.confidences, expected_one.confidences, atol=2e-4)


@pytest.mark.parametrize("kind", ["positional", "ctc", "slots"])
def test_the_batch_axis_is_dynamic(exported, captcha_files, kind):
    checkpoint, model = exported[kind]
    torch_reader, onnx_reader = Predictor.load(checkpoint), Predictor.load(model)
    images = np.stack([load_image(f) for f in captcha_files[:7]])
    for batch in (images[:1], images):
        got = onnx_reader.logits(batch).numpy()
        assert got.shape[0] == len(batch)
        assert np.abs(got - torch_reader.logits(batch).numpy()).max() <= 1e-4


@pytest.mark.parametrize("kind", ["ctc", "slots"])
def test_read_options_apply_to_onnx_models_too(exported, captcha_files, kind):
    checkpoint, model = exported[kind]
    options_cases = [{"charset": "2345"}, {"length": 5}]
    from captcha_tui.core.decoding import ReadOptions

    for options in options_cases:
        read = ReadOptions(**options)
        got = Predictor.load(model).predict(captcha_files[0], read)
        assert got == Predictor.load(checkpoint).predict(captcha_files[0], read)
    assert set(Predictor.load(model).predict(captcha_files[0], ReadOptions(charset="2345")).code) <= set(
        "2345"
    )
    assert len(Predictor.load(model).predict(captcha_files[0], ReadOptions(length=5)).code) == 5


def test_the_metadata_round_trips(exported):
    for checkpoint, model in exported.values():
        info = read_onnx_metadata(model)
        assert info.meta == load_checkpoint(checkpoint).meta
        assert info.steps == Predictor.load(checkpoint).steps
        assert info.checked is not None and info.checked <= 1e-4
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported["ctc"][1]), providers=["CPUExecutionProvider"])
    raw = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert raw["format"] == "captcha-tui-onnx/1" and raw["layout"] == "NHWC uint8" and raw["blank"] == "last"
    assert raw["spec"]["decoder"] == "ctc" and raw["spec"]["max_length"] == 6 and raw["steps"] == 60
    assert [i.name for i in session.get_inputs()] == [raw["input"]]
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_inputs()[0].shape[1:] == [
        50,
        120,
        3,
    ]


def _strays(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_export_never_replaces_a_file_unless_forced(exported, tmp_path):
    checkpoint, _ = exported["positional"]
    target = tmp_path / "model.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(CheckpointError, match="already exists; it was left as it is .*--force"):
        export_onnx(checkpoint, target)
    assert target.read_bytes() == b"keep me" and _strays(tmp_path) == []
    assert export_onnx(checkpoint, target, force=True) == target
    assert read_onnx_metadata(target).meta.preset == "tiny" and _strays(tmp_path) == []


def test_default_path_is_beside_the_checkpoint(exported, run_copy):
    path = export_onnx(run_copy / "best.pt")
    assert path == run_copy / "best.onnx" and Predictor.load(path).meta.preset == "tiny"


def test_export_base_writes_into_the_current_folder_not_the_package(onnx_libs, tmp_path, monkeypatch, capsys):
    """`export base` said "checkpoint not found: base", though eval and label take it."""
    from captcha_tui.cli import main
    from captcha_tui.core.base_model import base_model_path

    monkeypatch.chdir(tmp_path)
    before = sorted(base_model_path().parent.iterdir())
    assert main(["export", "base"]) == 0
    assert "wrote base.onnx" in capsys.readouterr().out
    assert Predictor.load(tmp_path / "base.onnx").spec == Predictor.load(base_model_path()).spec
    assert sorted(base_model_path().parent.iterdir()) == before  # nothing written beside the package's


def test_export_refuses_what_it_cannot_use_in_one_line(exported, tmp_path):
    checkpoint, model = exported["positional"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "folder").mkdir()
    cases = {
        tmp_path / "missing.pt": (tmp_path / "x.onnx", "checkpoint not found"),
        model: (tmp_path / "y.onnx", "already an ONNX model"),
        checkpoint: (blocker / "best.onnx", "cannot write an ONNX model in"),
    }
    for source, (out, words) in cases.items():
        with pytest.raises(CheckpointError, match=words) as caught:
            export_onnx(source, out)
        assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        export_onnx(checkpoint, tmp_path / "folder")


def test_exporter_failures_and_a_missing_onnx_are_one_line_errors(exported, tmp_path, monkeypatch):
    checkpoint, _ = exported["positional"]

    def unsupported(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::new_op' is not supported\n(a long trace)")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(CheckpointError) as caught:
        export_onnx(checkpoint, tmp_path / "x.onnx")
    assert str(caught.value) == (
        "could not export best.pt to ONNX: Exporting the operator 'aten::new_op' is not supported; "
        "nothing was written"
    )
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CheckpointError) as caught:
        export_onnx(checkpoint, tmp_path / "x.onnx")
    # Both ways to install the extra: from the package index, and in a source checkout (as the README does).
    assert str(caught.value) == (
        "exporting to ONNX needs onnx: pip install 'captcha-tui[onnx]' "
        "(from a source checkout: pip install '.[onnx]')"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_with_pytorch_is_not_written(exported, tmp_path, monkeypatch):
    checkpoint, _ = exported["positional"]
    real = Predictor.logits
    monkeypatch.setattr(Predictor, "logits", lambda self, images: real(self, images) + 0.5)
    with pytest.raises(CheckpointError, match="disagrees with PyTorch .*nothing was written"):
        export_onnx(checkpoint, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_rounding_is_honest_and_a_wrong_graph_is_not():
    rng = np.random.default_rng(0)
    small = rng.normal(0, 0.05, (3, 4, 32)).astype(np.float32)  # a freshly trained model's logits
    assert disagreement(small, small + rng.uniform(-1.1e-4, 1.1e-4, small.shape)) == ""  # issue 22's case
    big = small * 400  # a converged model's: the tolerance follows the scale
    assert disagreement(big, big + 0.01) == ""
    assert "logits differ by up to 0.5" in disagreement(small, small + 0.5)
    assert "NaN" in disagreement(small, np.full_like(small, np.nan))
    # On logits of up to 30 the tolerance is 0.03: two best 0.02 apart are a tie either may break, while
    # another character chosen where PyTorch's choice was clear means another graph.
    clear = small * 100
    clear[0, 0, :2] = [30.0, 29.98]
    flipped = clear.copy()
    flipped[0, 0, :2] = [29.98, 30.0]
    assert disagreement(clear, flipped) == ""
    clear[0, 0, :2] = [30.0, 29.0]
    flipped[0, 0, :2] = [29.0, 30.0]
    assert "logits differ by up to 1, on logits of up to 30" in disagreement(clear, flipped)


def test_a_freshly_trained_model_of_each_kind_exports(onnx_libs, prepared_dataset, tmp_path):
    # Two epochs on a tiny set: logits still near zero, where a fixed absolute tolerance refused them.
    for preset in ("tiny", "crnn-tiny", "slots-tiny"):
        run = tmp_path / preset
        Trainer(TrainConfig(data=prepared_dataset, out=run, preset=preset, device="cpu", epochs=2)).run()
        onnx_file = export_onnx(run / "best.pt", tmp_path / f"{preset}.onnx")
        assert read_onnx_metadata(onnx_file).checked is not None


def test_bad_onnx_files_get_one_line_reasons(exported, tmp_path):
    import onnx

    _, model = exported["positional"]
    data = model.read_bytes()
    plain = onnx.load(str(model))
    del plain.metadata_props[:]
    wrong_spec = onnx.load(str(model))
    entry = json.loads(wrong_spec.metadata_props[0].value)
    entry["spec"]["image_size"] = [99, 40]
    wrong_spec.metadata_props[0].value = json.dumps(entry)
    bad_charset = onnx.load(str(model))
    entry["spec"] = {**entry["spec"], "image_size": [120, 50], "charset": "aa"}
    bad_charset.metadata_props[0].value = json.dumps(entry)
    cases = {
        "truncated.onnx": (data[: len(data) // 2], "truncated or corrupt"),
        "garbage.onnx": (b"\x08" + bytes(range(256)) * 4, "truncated or corrupt"),
        "empty.onnx": (b"", "empty"),
        "foreign.onnx": (plain.SerializeToString(), "not one exported by captcha-tui"),
        "resized.onnx": (
            wrong_spec.SerializeToString(),
            "its input is .* but its metadata says \\(N, 40, 99",
        ),
        "charset.onnx": (bad_charset.SerializeToString(), "repeats characters"),
        "named.pt": (data, None),  # by content: an ONNX model, whatever its name
    }
    for name, (content, words) in cases.items():
        (tmp_path / name).write_bytes(content)
        if words is None:
            assert isinstance(Predictor.load(tmp_path / name), OnnxPredictor)
            continue
        with pytest.raises(CheckpointError, match=words) as caught:
            Predictor.load(tmp_path / name)
        assert "\n" not in str(caught.value) and name in str(caught.value)
    with pytest.raises(CheckpointError, match="model not found"):
        Predictor.load(tmp_path / "missing.onnx")


def test_without_onnxruntime_the_message_says_what_to_install(tmp_path, monkeypatch):
    model = tmp_path / "best.onnx"
    model.write_bytes(b"\x08\x07 not needed: onnxruntime is asked for first")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(CheckpointError) as caught:
        Predictor.load(model)
    assert str(caught.value) == NEEDS_ONNXRUNTIME
    assert str(caught.value) == (
        "reading .onnx models needs onnxruntime: pip install 'captcha-tui[onnx]' "
        "(from a source checkout: pip install '.[onnx]')"
    )


def test_export_and_eval_from_the_command_line(exported, tiny_run, captcha_files, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", str(tiny_run / "best.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (" in printed and "MiB)" in printed
    assert "tiny (positional) reads 4 characters" in printed and "120×50" in printed
    assert "checked with onnxruntime: logits within" in printed
    assert main(["export", str(tiny_run / "best.pt"), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tiny_run / "best.pt"), "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    images = [str(f) for f in captcha_files[:20]]
    codes = {}
    for model in (tiny_run / "best.pt", out):
        assert main(["eval", "--json", "--model", str(model), *images]) == 0
        codes[model.suffix] = [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()]
    assert codes[".onnx"] == codes[".pt"] and len(codes[".pt"]) == 20


def _docs_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "docs/onnx.md should hold one python example"
    return blocks[0]


@pytest.mark.parametrize("kind", ["positional", "ctc", "slots", "resized"])
def test_the_docs_snippet_reads_what_captcha_tui_reads(exported, captcha_files, tmp_path, kind):
    snippet = _docs_snippet()
    assert "captcha_tui" not in snippet.replace('["captcha_tui"]', "")  # plain onnxruntime and numpy
    _, model = exported[kind]
    shutil.copy(model, tmp_path / "best.onnx")
    reader = Predictor.load(model)
    for image in captcha_files[:3]:
        shutil.copy(image, tmp_path / "captcha.png")
        done = subprocess.run(
            [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == reader.predict(image).code


def test_bench_compares_onnx_runtime_with_pytorch(exported, capsys):
    from captcha_tui.bench import onnx

    checkpoint, _ = exported["ctc"]
    result = onnx.onnx_vs_torch(checkpoint, images=20, runs=3)
    assert result["same_codes"] == 20 and result["max_logit_difference"] <= 1e-4
    assert result["torch_one_image_ms"] > 0 and result["onnx_one_image_ms"] > 0 and result["runs"] == 3
    assert "same codes on 20/20 captchas" in onnx.format_onnx(result)
    assert main(["bench", "onnx", "/nonexistent/best.pt"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
