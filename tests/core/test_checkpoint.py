"""Checkpoints: saved atomically, and nothing unsafe, broken or mismatched is ever loaded.

Write failures and crashes during a save are injected in ``tests/test_faults.py``.
"""

from __future__ import annotations

import os
import pickle
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from captcha_tui.core import checkpoint as ck
from captcha_tui.core.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.spec import CodeSpec


class Payload:
    """Unpickling this runs a shell command: what a booby-trapped checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture(scope="module")
def good(tiny_run) -> dict:
    """The raw payload of a real checkpoint."""
    return torch.load(tiny_run / "best.pt", weights_only=True)


def _legacy_meta(meta: dict) -> dict:
    """The flat metadata checkpoints carried before 0.3 (charset, length, image_size, keep_case)."""
    spec = meta["spec"]
    flat = {k: spec[k] for k in ("charset", "image_size", "keep_case")}
    return {**{k: v for k, v in meta.items() if k != "spec"}, **flat, "length": spec["max_length"]}


def _variant(good: dict, path: Path, **meta) -> Path:
    """A copy of ``good`` in the pre-0.3 metadata form, with some fields changed."""
    payload = {k: v for k, v in good.items() if k != "format"}
    payload["meta"] = {**_legacy_meta(good["meta"]), **meta}
    return save_checkpoint(path, payload)


def _refused(path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---- saving ---------------------------------------------------------------------------------------------


def test_round_trip(tmp_path) -> None:
    payload = {"meta": {"charset": "ab", "length": 2}, "model": {"w": torch.arange(4.0)}, "epoch": 3}
    path = save_checkpoint(tmp_path / "new" / "x.pt", payload)
    assert path == tmp_path / "new" / "x.pt"
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith("/data.pkl") for name in archive.namelist())
    data = torch.load(path, weights_only=True)
    assert (
        data["format"] == FORMAT and data["epoch"] == 3 and torch.equal(data["model"]["w"], torch.arange(4.0))
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.pt"]  # no temporary file left


def test_the_training_checkpoints_load(tiny_run) -> None:
    for name in ("best.pt", "last.pt"):
        data = load_checkpoint(tiny_run / name)
        assert data.meta.preset == "tiny" and data.meta.epoch == 1
        assert data.meta.spec.max_length == 4 and data.meta.spec.decoder == "positional"
    assert load_checkpoint(tiny_run / "best.pt").optimizer is None
    assert load_checkpoint(tiny_run / "last.pt").optimizer is not None
    assert load_checkpoint(tiny_run / "last.pt").trainer["epoch"] == 1


def test_checkpoints_from_before_the_spec_still_load(tmp_path, good) -> None:
    """0.2 wrote charset, length, image_size and keep_case flat into the metadata."""
    meta = load_checkpoint(_variant(good, tmp_path / "old.pt")).meta
    assert meta.spec == CodeSpec.from_dict(good["meta"]["spec"])
    assert meta.spec.fixed_length and meta.spec.max_length == 4


def test_atomic_sequence(tmp_path, monkeypatch) -> None:
    """Temporary file in the same folder, flushed and fsynced, then renamed over the target."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(ck.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])

    def replace(src, dst):
        calls.append(("replace", Path(src).parent == Path(dst).parent, Path(src).name.endswith(".tmp")))
        return real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", replace)
    save_checkpoint(tmp_path / "a.pt", {"x": 1})
    assert calls[0] == "fsync" and calls[1] == ("replace", True, True)


def test_permissions_are_ordinary(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", {"x": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~ck._umask()  # as open() would, not mkstemp's 0600
    os.chmod(path, 0o640)
    save_checkpoint(path, {"x": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # replacing a file keeps its permissions


def test_interrupt_during_save_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "a.pt", {"x": 1})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"x": 2})
    assert os.listdir(tmp_path) == ["a.pt"]
    assert torch.load(path, weights_only=True)["x"] == 1


# ---- refusing what must not be loaded -------------------------------------------------------------------


def test_the_payload_is_real(tmp_path) -> None:
    """The booby trap works when unpickled naively, so the tests below mean something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # noqa: S301 - on purpose
    assert marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_bare_malicious_pickle_is_refused_unrun(tmp_path, protocol) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "best.pt"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    _refused(path, "refused best.pt: .*pickle.*not loaded")
    with pytest.raises(CheckpointError, match="refused"):
        Predictor.load(path)
    assert not marker.exists()


def test_malicious_object_inside_a_torch_archive_is_refused_unrun(tmp_path, good) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "best.pt"
    torch.save({"format": FORMAT, "meta": good["meta"], "model": good["model"], "x": Payload(marker)}, path)
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith("/data.pkl") for name in archive.namelist())
    _refused(path, "refused best.pt: it contains Python objects .* not loaded")
    with pytest.raises(CheckpointError, match="could run code"):
        Predictor.load(path)
    assert not marker.exists()


def test_legacy_torch_format_is_refused(tmp_path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    _refused(path, "not a captcha-tui checkpoint")


def test_missing_and_folder(tmp_path) -> None:
    _refused(tmp_path / "none.pt", "checkpoint not found")
    _refused(tmp_path, "is a folder; give the checkpoint file")


@pytest.mark.parametrize("keep", [0, 0.5, 0.99, 100])
def test_truncated(tmp_path, tiny_run, keep) -> None:
    data = (tiny_run / "best.pt").read_bytes()
    path = tmp_path / "best.pt"
    path.write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    _refused(path, "empty|truncated or corrupt")


def test_random_bytes_and_other_files(tmp_path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(b"\x07" + np.random.default_rng(0).bytes(4096))
    _refused(path, "not a captcha-tui checkpoint")
    path.write_text("model weights, honest\n")
    _refused(path, "not a captcha-tui checkpoint")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip, not a model")
    _refused(path, "not a captcha-tui checkpoint .*zip")
    torch.save({"conv.weight": torch.zeros(3)}, path)  # a PyTorch file from somewhere else
    _refused(path, "no 'captcha-tui-checkpoint/1' marker")
    torch.save({"format": FORMAT, "meta": {"charset": "ab"}, "model": {}}, path)
    _refused(path, "missing its metadata or weights")


def test_corrupt_bytes_inside_the_archive(tmp_path, tiny_run) -> None:
    data = bytearray((tiny_run / "best.pt").read_bytes())
    start = data.index(b"data.pkl") + 40  # inside the pickle's stored bytes
    data[start : start + 64] = bytes(64)
    path = tmp_path / "best.pt"
    path.write_bytes(bytes(data))
    _refused(path, "corrupt|cannot read")


def test_one_flipped_bit_in_a_weight_is_refused_not_loaded(tmp_path, tiny_run) -> None:
    """A disk or copy error inside a tensor's bytes: torch.load reads it as a slightly wrong weight and
    says nothing; the archive's checksum does not match."""
    source = tiny_run / "best.pt"
    with zipfile.ZipFile(source) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)  # the largest tensor
        assert "/data/" in member.filename
    data = bytearray(source.read_bytes())
    name_length, extra_length = struct.unpack(
        "<HH", data[member.header_offset + 26 : member.header_offset + 30]
    )
    start = member.header_offset + 30 + name_length + extra_length
    data[start + member.file_size // 2] ^= 0x04
    path = tmp_path / "best.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=rf"best.pt is corrupt: its part {member.filename} fails its checksum"
    ):
        load_checkpoint(path)
    load_checkpoint(source)  # the file it was copied from loads


# ---- metadata that does not match the weights ---------------------------------------------------------------


def test_wrong_charset_names_the_mismatch(tmp_path, good) -> None:
    charset = good["meta"]["spec"]["charset"]
    path = _variant(good, tmp_path / "best.pt", charset=charset[:-1])
    message = _refused(path, "charset")
    n = len(charset)
    assert f"{n - 1} characters × 4 positions = {4 * (n - 1)} outputs" in message
    assert f"output layer has {4 * n} ({n} characters × 4)" in message
    with pytest.raises(CheckpointError, match="charset or length does not match the weights"):
        Predictor.load(path)
    path = _variant(good, tmp_path / "long.pt", length=5)
    _refused(path, "charset or length does not match")


def test_a_slots_checkpoint_counts_the_end_class(tmp_path) -> None:
    from captcha_tui.core.model import build_model

    spec = CodeSpec("abcd", 2, 3, (40, 16), decoder="slots")
    model = build_model("slots-tiny", spec)
    meta = {"spec": spec.to_dict(), "preset": "slots-tiny", "epoch": 1, "val_accuracy": 0.0, "created": ""}
    good_path = save_checkpoint(tmp_path / "good.pt", {"meta": meta, "model": model.state_dict()})
    assert load_checkpoint(good_path).meta.spec == spec
    edited = {**meta, "spec": spec.replace(charset="abc").to_dict()}
    path = save_checkpoint(tmp_path / "best.pt", {"meta": edited, "model": model.state_dict()})
    message = _refused(path, "charset or length does not match the weights")
    assert "3 characters (+1 end) × 3 slots = 12 outputs, but the model's output layer has 15" in message


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"charset": "aab"}, "repeats characters"),
        ({"charset": 7}, "charset"),
        ({"length": 0}, "code length"),
        ({"length": True}, "code length"),
        ({"image_size": [56]}, "image size"),
        ({"image_size": [56, -24]}, "image size"),
        ({"preset": None}, "preset"),
    ],
)
def test_nonsense_metadata(tmp_path, good, meta, match) -> None:
    _refused(_variant(good, tmp_path / "best.pt", **meta), match)


def test_another_architecture(tmp_path, good) -> None:
    path = _variant(good, tmp_path / "best.pt", preset="fast")
    with pytest.raises(CheckpointError, match=r"does not fit preset 'fast'.*stem\.0\.weight"):
        Predictor.load(path)
    path = _variant(good, tmp_path / "bogus.pt", preset="resnet9000")
    with pytest.raises(CheckpointError, match="resnet9000.*unknown"):
        Predictor.load(path)


def test_a_missing_layer(tmp_path, good) -> None:
    payload = {k: v for k, v in good.items() if k != "format"}
    payload["model"] = {k: v for k, v in good["model"].items() if not k.startswith("stages.1.")}
    path = save_checkpoint(tmp_path / "best.pt", payload)
    with pytest.raises(CheckpointError, match="missing .*another architecture"):
        Predictor.load(path)


def test_a_good_checkpoint_predicts(tiny_run, captcha_files) -> None:
    predictor = Predictor.load(tiny_run / "best.pt")
    prediction = predictor.predict_image(captcha_files[0])
    assert len(prediction.code) == 4 and set(prediction.code) <= set(predictor.spec.charset)


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_writing_without_replacing_leaves_an_existing_file(tmp_path, monkeypatch, links):
    if not links:  # a file system without hard links (FAT, some network shares): check, then rename

        def no_links(*args):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(ck.os, "link", no_links)
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="model.onnx already exists; it was left as it is"):
        ck.write_atomically(existing, lambda out: out.write(b"new"), "a file", replace=False)
    assert existing.read_bytes() == b"precious"
    fresh = ck.write_atomically(tmp_path / "new.onnx", lambda out: out.write(b"new"), "a file", replace=False)
    assert fresh.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "new.onnx"]  # no stray .tmp
