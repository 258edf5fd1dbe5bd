"""How a run starts: a fine-tune from a checkpoint (--init) and what it carries over."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from captcha_tui.core import base_model
from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.dataset import load_dataset, prepare
from captcha_tui.core.model import build_model
from captcha_tui.core.spec import CodeSpec
from captcha_tui.core.train import TrainConfig, Trainer, TrainingError, start
from captcha_tui.core.train.start import resolve_init, transfer_weights
from tests.helpers import events_of


@pytest.fixture(scope="module")
def other_charset_dataset(captcha_dir, prepared_dataset, tmp_path_factory):
    """The same captchas read with another charset: reversed (so no character keeps its index) plus '#'."""
    charset = "#" + load_dataset(prepared_dataset).spec.charset[::-1]
    out = tmp_path_factory.mktemp("other_charset") / "dataset"
    prepare(captcha_dir, out, charset=charset, workers=1, seed=0)
    return out


def test_fine_tuning_with_the_same_charset_starts_from_the_checkpoint_weights(
    tiny_run, prepared_dataset, tmp_path, one_thread
):
    source = tiny_run / "best.pt"
    events: list = []
    # A vanishing learning rate: after the epoch the weights are still the ones it started from.
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=1, device="cpu", init=source, lr=1e-12
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    start, tuned = load_checkpoint(source), load_checkpoint(tmp_path / "last.pt")
    assert torch.allclose(tuned.model["stem.0.weight"], start.model["stem.0.weight"], atol=1e-8)
    assert torch.allclose(tuned.model["head.2.weight"], start.model["head.2.weight"], atol=1e-8)
    notices = [n.message for n in events_of(events, ev.Notice)]
    layers = len({name.rpartition(".")[0] for name in start.model})
    assert f"fine-tuning from {source}: {layers} of {layers} layers copied" in notices
    started = events_of(events, ev.RunStarted)[0]
    assert started.init == str(source) and started.learning_rate == 1e-12  # a given learning rate is kept
    # Where it starts is scored before the first step: the same weights read the same after it.
    before = next(n for n in notices if n.startswith("before fine-tuning"))
    assert before.startswith(f"before fine-tuning, {source} reads ") and "of the validation split" in before
    val = events_of(events, ev.EpochEnd)[0].val_accuracy
    assert f"reads {val:.1%} of" in before
    assert tuned.meta.init == str(source) and load_checkpoint(tmp_path / "best.pt").meta.init == str(source)


def test_a_fine_tune_that_reads_less_than_its_start_says_so(prepared_dataset, tmp_path, one_thread):
    """The base model reads most of the default captchas; a fine-tune whose learning rate scrambles it
    ends reading less of the validation split than it did, and the run says so, naming the one to keep."""
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, epochs=1, device="cpu", init="base", lr=5.0, schedule="constant"
    )
    events: list = []
    assert isinstance(Trainer(config, events.append).run(), ev.Finished)
    notices = [n for n in events_of(events, ev.Notice)]
    before = next(n.message for n in notices if n.message.startswith("before fine-tuning"))
    start = float(before.split(" reads ")[1].split("%")[0])
    assert start > 50  # the base model reads the default style
    best = events_of(events, ev.EpochEnd)[0].val_accuracy
    assert best * 100 < start
    warned = [n for n in notices if "reads less of the validation split" in n.message]
    assert len(warned) == 1 and warned[0].level == "warning"
    assert (
        f"({best:.1%} at best) than {base_model.base_model_path()} did before ({start:.1f}%)"
        in warned[0].message
    )


def test_fine_tuning_with_another_charset_rebuilds_the_output_layer(
    tiny_run, other_charset_dataset, tmp_path, one_thread
):
    source = tiny_run / "best.pt"
    events: list = []
    config = TrainConfig(
        data=other_charset_dataset, out=tmp_path, preset="tiny", epochs=1, device="cpu", init=source
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    notice = next(n.message for n in events_of(events, ev.Notice) if n.message.startswith("fine-tuning"))
    old = load_checkpoint(source).meta.spec.charset
    assert f"output layer rebuilt for charset {old!r} ≠ '#{old[::-1]}'" in notice
    assert f"the rows of the {len(old)} characters both charsets share copied" in notice
    layers = len({name.rpartition(".")[0] for name in load_checkpoint(source).model})
    assert f"{layers - 1} of {layers} layers copied" in notice
    # A fine-tune's default peak learning rate is a third of a new run's; resuming it keeps that.
    assert events_of(events, ev.RunStarted)[0].learning_rate == pytest.approx(3e-3 / 3)
    again: list = []
    Trainer(replace(config, init=None, resume=True, epochs=2), again.append).run()
    started = events_of(again, ev.RunStarted)[0]
    assert started.learning_rate == pytest.approx(1e-3) and started.init == str(source)


def test_a_fine_tune_on_labels_that_miss_characters_keeps_every_character_of_its_model(
    tiny_run, captcha_files, tmp_path, one_thread
):
    """Few labels hold only some of the model's characters: the inferred charset shrank the fine-tuned
    model's alphabet, which then could not read the others (`eval --charset g5w`: cannot read any)."""
    folder = tmp_path / "few"
    folder.mkdir()
    for i, source in enumerate(captcha_files[:150]):
        shutil.copy(source, folder / f"{i:05d}-{'abcd'[i % 4] * 2}{'bcda'[i % 4] * 2}.png")
    data = tmp_path / "set"
    prepare(folder, data, workers=1, seed=0)
    assert load_dataset(data).spec.charset == "abcd"
    source = tiny_run / "best.pt"
    model_charset = load_checkpoint(source).meta.spec.charset
    config = TrainConfig(data=data, out=tmp_path / "run", preset="tiny", epochs=1, device="cpu", init=source)
    events: list = []
    assert isinstance(Trainer(config, events.append).run(), ev.Finished)
    tuned = load_checkpoint(tmp_path / "run" / "best.pt")
    assert tuned.meta.spec.charset == model_charset  # every character, in the model's order
    notices = [n.message for n in events_of(events, ev.Notice)]
    assert f"keeps the {len(model_charset)} characters {source} reads, {len(model_charset) - 4} of them" in (
        " ".join(notices)
    )
    layers = len({name.rpartition(".")[0] for name in tuned.model})
    assert f"fine-tuning from {source}: {layers} of {layers} layers copied" in notices  # nothing rebuilt
    # The labels were re-indexed with it: the test split scores against the same codes.
    widened = load_dataset(data).with_charset(model_charset)
    assert [widened.spec.decode(row) for row in widened.labels["test"]] == [
        load_dataset(data).spec.decode(row) for row in load_dataset(data).labels["test"]
    ]
    # A resume keeps the model's characters too.
    resumed: list = []
    again = Trainer(replace(config, init=None, resume=True, epochs=2), resumed.append).run()
    assert isinstance(again, ev.Finished), getattr(again, "message", "")
    assert load_checkpoint(tmp_path / "run" / "last.pt").meta.spec.charset == model_charset
    # A charset given to prepare is the one trained on.
    prepare(folder, tmp_path / "given", workers=1, seed=0, charset="abcd")
    given = replace(config, data=tmp_path / "given", out=tmp_path / "run-given")
    assert isinstance(Trainer(given).run(), ev.Finished)
    assert load_checkpoint(tmp_path / "run-given" / "best.pt").meta.spec.charset == "abcd"


def test_transfer_weights_copies_output_rows_by_character():
    torch.manual_seed(0)
    source_spec = CodeSpec.fixed("abcd", 2, (40, 16))
    target_spec = CodeSpec.fixed(
        "#dcxa", 3, (40, 16)
    )  # d, c and a shared, at other indices; one more position
    source, target = build_model("tiny", source_spec), build_model("tiny", target_spec)
    fresh = target.head[2].weight.detach().clone()
    done = transfer_weights(target, source.state_dict(), source_spec, target_spec)
    assert done.output_rebuilt and done.shared_characters == 3 and done.copied == done.layers - 1
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)
    theirs, mine = source.head[2].weight, target.head[2].weight
    for position in range(2):
        for char in "dca":
            row = position * 5 + target_spec.charset.index(char)
            assert torch.equal(mine[row], theirs[position * 4 + source_spec.charset.index(char)])
        assert torch.equal(mine[position * 5], fresh[position * 5])  # '#' is new: left as built
    assert torch.equal(mine[2 * 5 :], fresh[2 * 5 :])  # the third position is new too


def test_transfer_weights_copies_slots_rows_by_character_and_the_end():
    torch.manual_seed(0)
    source_spec = CodeSpec("abcd", 2, 3, (40, 16), decoder="slots")
    target_spec = CodeSpec("#dcxa", 2, 4, (40, 16), decoder="slots")  # d, c, a shared; one more slot
    source, target = build_model("slots-tiny", source_spec), build_model("slots-tiny", target_spec)
    fresh = target.head[2].weight.detach().clone()
    done = transfer_weights(target, source.state_dict(), source_spec, target_spec)
    assert done.output_rebuilt and done.shared_characters == 3 and done.copied == done.layers - 1
    theirs, mine = source.head[2].weight, target.head[2].weight
    for slot in range(3):
        for char in "dca":
            row = slot * 6 + target_spec.charset.index(char)
            assert torch.equal(mine[row], theirs[slot * 5 + source_spec.charset.index(char)])
        assert torch.equal(mine[slot * 6 + 5], theirs[slot * 5 + 4])  # the end class, last in both
        assert torch.equal(mine[slot * 6], fresh[slot * 6])  # '#' is new: left as built
    assert torch.equal(mine[3 * 6 :], fresh[3 * 6 :])  # the fourth slot is new too


def test_transfer_weights_keeps_a_ctc_output_layer_whatever_the_lengths():
    """A CTC model's outputs are its characters and the blank: the base model (4–6 characters) fine-tuned
    on codes of 4 kept all but its output layer, rebuilt for "max length 6 ≠ 4"."""
    torch.manual_seed(0)
    source_spec = CodeSpec("abcd", 4, 6, (40, 16), decoder="ctc")
    source = build_model("crnn-tiny", source_spec)
    for lengths in ((4, 4), (2, 9)):
        target_spec = CodeSpec("abcd", *lengths, (40, 16), decoder="ctc")
        target = build_model("crnn-tiny", target_spec)
        done = transfer_weights(target, source.state_dict(), source_spec, target_spec)
        assert not done.output_rebuilt and done.copied == done.layers, lengths
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())


def test_transfer_weights_copies_ctc_rows_by_character_and_the_blank():
    torch.manual_seed(0)
    source_spec = CodeSpec("abcd", 4, 6, (40, 16), decoder="ctc")
    target_spec = CodeSpec("#dcxa", 4, 4, (40, 16), decoder="ctc")  # d, c, a shared at other indices
    source, target = build_model("crnn-tiny", source_spec), build_model("crnn-tiny", target_spec)
    output = next(k for k in reversed(target.state_dict()) if k.endswith(".weight")).rpartition(".")[0]
    fresh = target.state_dict()[f"{output}.weight"].clone()
    done = transfer_weights(target, source.state_dict(), source_spec, target_spec)
    assert done.output_rebuilt and done.shared_characters == 3 and done.copied == done.layers - 1
    theirs, mine = source.state_dict()[f"{output}.weight"], target.state_dict()[f"{output}.weight"]
    for char in "dca":
        assert torch.equal(mine[target_spec.charset.index(char)], theirs[source_spec.charset.index(char)])
    assert torch.equal(mine[5], theirs[4])  # the blank, last in both
    assert torch.equal(mine[0], fresh[0]) and torch.equal(mine[3], fresh[3])  # '#' and 'x' are new


def test_fine_tuning_from_another_preset_is_refused_with_the_preset_named(
    tiny_run, prepared_dataset, tmp_path
):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="fast", device="cpu", init=tiny_run / "best.pt"
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Failed)
    assert "holds a 'tiny' model and this run's preset is 'fast'; pass --preset tiny" in result.message


def test_init_and_resume_together_are_refused(tiny_run, prepared_dataset, tmp_path):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", init=tiny_run / "best.pt", resume=True
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Failed) and "--init and --resume do not go together" in result.message


def test_a_bad_init_gives_the_one_line_checkpoint_error(prepared_dataset, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    for init, words in (
        (tmp_path / "nowhere.pt", "checkpoint not found"),
        (tmp_path / "empty.pt", "is empty"),
    ):
        config = TrainConfig(
            data=prepared_dataset, out=tmp_path / "run", preset="tiny", device="cpu", init=init
        )
        result = Trainer(config).run()
        assert isinstance(result, ev.Failed) and "\n" not in result.message
        assert result.message.startswith("cannot fine-tune: ") and words in result.message


def test_init_base_says_so_when_this_install_has_no_base_model(tmp_path, monkeypatch):
    assert resolve_init(tmp_path / "best.pt") == tmp_path / "best.pt"
    monkeypatch.setattr(base_model, "base_model_path", lambda: None)
    with pytest.raises(TrainingError, match="this install of captcha-tui has no base model"):
        resolve_init("base")


def test_a_new_run_never_replaces_an_earlier_one_in_its_folder(
    tiny_run, prepared_dataset, tmp_path, one_thread
):
    """Training twice into one --out (or pressing s again on the dashboard): the first run's files stay
    byte for byte, the second goes to out-2 (then out-3), and says so first."""
    out = tmp_path / "default"
    shutil.copytree(tiny_run, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    config = TrainConfig(data=prepared_dataset, out=out, preset="tiny", epochs=1, device="cpu")
    for expected in ("default-2", "default-3"):
        events: list = []
        result = Trainer(config, events.append).run()
        assert isinstance(result, ev.Finished), getattr(result, "message", "")
        moved = tmp_path / expected
        assert events_of(events, ev.RunStarted)[0].run_dir == str(moved)
        first_notice = events_of(events, ev.Notice)[0]
        assert first_notice.level == "warning"
        assert f"{out} holds an earlier run, kept as it is: this one goes to {moved}" in first_notice.message
        assert result.best_checkpoint == str(moved / "best.pt") and (moved / "last.pt").is_file()
        assert json.loads((moved / "config.json").read_text())["out"] == str(moved)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # --resume carries on the folder named, and a folder with no run in it is used as it is.
    assert start.new_run_dir(tmp_path / "empty") == (tmp_path / "empty", None)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    assert start.new_run_dir(tmp_path / "mine") == (tmp_path / "mine", None)


def test_a_run_started_at_the_same_moment_into_the_same_folder_goes_to_the_next(
    prepared_dataset, tmp_path, monkeypatch, one_thread
):
    """Two runs (a sweep, the app and the command line) with one --out: the second to claim the folder
    (by creating its config.json, replacing nothing) goes on to out-2. The other run's claim is made here
    between this one's look and its claim, where two processes would race."""
    from captcha_tui.core.train import loop

    out = tmp_path / "default"
    looked = []

    def look_then_lose_the_race(folder):
        chosen, notice = start.new_run_dir(folder)
        if not looked:
            chosen.mkdir(parents=True, exist_ok=True)
            (chosen / "config.json").write_text('{"out": "the other run"}')
        looked.append(chosen)
        return chosen, notice

    monkeypatch.setattr(loop, "new_run_dir", look_then_lose_the_race)
    config = TrainConfig(data=prepared_dataset, out=out, preset="tiny", epochs=1, device="cpu")
    events: list = []
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    assert looked == [out, tmp_path / "default-2"]
    assert events_of(events, ev.RunStarted)[0].run_dir == str(tmp_path / "default-2")
    assert (out / "config.json").read_text() == '{"out": "the other run"}'
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_a_run_that_fails_before_it_starts_leaves_its_folder_free(prepared_dataset, tmp_path, one_thread):
    """The folder claimed for a run that then fails (a missing dataset) holds no run afterwards: the
    command run again, corrected, trains there, not in out-2."""
    out = tmp_path / "default"
    config = TrainConfig(data=tmp_path / "no-data", out=out, preset="tiny", epochs=1, device="cpu")
    failed = Trainer(config).run()
    assert isinstance(failed, ev.Failed)
    assert not (out / "config.json").exists() and not (out / "train.log").exists()
    result = Trainer(replace(config, data=prepared_dataset)).run()
    assert isinstance(result, ev.Finished) and result.best_checkpoint == str(out / "best.pt")
