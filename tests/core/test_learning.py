"""core.learning (the label screen's fine-tune rounds) and the session's re-ranking, without training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captcha_tui.core.base_model import base_model_path
from captcha_tui.core.dataset import load_dataset
from captcha_tui.core.labelling import Candidate, FolderScan, LabelFile, LabellingSession, ScoredChunk
from captcha_tui.core.learning import (
    Comparison,
    Learner,
    LearnError,
    LearnSettings,
    answers_spec,
    compare_on_held_out,
    work_dir,
)
from captcha_tui.core.predictor import Prediction
from captcha_tui.core.spec import CodeSpec

BASE_LIKE = CodeSpec("23456789abcdefghjkmnpqrstuvwxyz", 4, 6, (120, 50), decoder="ctc")
POSITIONAL = CodeSpec("abcd", 4, 4, (120, 50), decoder="positional")


def _labels(folder: Path, rows: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.csv").write_text("path,label,note\n" + "".join(f"{row}\n" for row in rows))


def test_a_round_keeps_the_models_characters_and_lengths_and_adds_the_answers(tmp_path):
    # The last row wins (an undone answer is no label); upper case is read as the model reads it.
    _labels(tmp_path, ["a.png,K3X9,", "b.png,abc1defg,", "c.png,zzzz,", "c.png,,undone", "d.png,,unreadable"])
    answers, charset, lengths = answers_spec(tmp_path, BASE_LIKE)
    assert answers == 2
    assert set(BASE_LIKE.charset) | {"1"} == set(charset) and charset == "".join(sorted(charset))
    assert lengths == (4, 8)
    # A per-position model reads one length: answers of another are left to prepare to skip.
    assert answers_spec(tmp_path, POSITIONAL)[2] == (4, 4)
    # No labels.csv yet: nothing answered, the model's own spec.
    assert answers_spec(tmp_path / "empty", BASE_LIKE) == (0, "".join(sorted(BASE_LIKE.charset)), (4, 6))


def test_too_few_answers_start_no_round_and_write_nothing(tiny_run, tmp_path):
    _labels(tmp_path, [f"{i}.png,abcd," for i in range(3)])
    before = sorted(tmp_path.rglob("*"))
    learner = Learner(tmp_path, LearnSettings(min_answers=10))
    with pytest.raises(LearnError, match="3 labelled answers so far: the model learns from 10 on"):
        learner.run_round(tiny_run / "best.pt")
    with pytest.raises(LearnError, match="cannot fine-tune"):
        learner.run_round(tmp_path / "labels.csv")  # not a checkpoint
    assert sorted(tmp_path.rglob("*")) == before and not work_dir(tmp_path).exists()
    learner.stop()
    with pytest.raises(LearnError, match="stopped"):
        learner.run_round(tiny_run / "best.pt")


def _candidate(tmp_path: Path, i: int, confidence: float) -> Candidate:
    return Candidate(tmp_path / f"{i}.png", f"{i}.png", i, Prediction("abcd", (confidence,)))


def test_reread_ranks_the_queue_anew_and_leaves_out_what_was_answered_since(tmp_path):
    scan = FolderScan(tmp_path, LabelFile(tmp_path / "labels.csv"), 4, [], None)
    session = LabellingSession(scan)
    old = [_candidate(tmp_path, i, c) for i, c in enumerate([0.1, 0.2, 0.3, 0.4])]
    session.add(ScoredChunk(old, []))
    assert session.current.name == "0.png"
    # A new model read what was waiting (1, 2, 3); meanwhile 0 was skipped and 1 is on show.
    session.skip()
    assert session.current.name == "1.png"
    fresh = [_candidate(tmp_path, 1, 0.01), _candidate(tmp_path, 2, 0.9), _candidate(tmp_path, 3, 0.05)]
    assert session.reread(fresh) is False  # an image is on show already: it stays
    assert session.current.name == "1.png" and session.current.prediction.confidence == 0.2
    assert [c.name for c in session.queue.items()] and len(session.queue) == 2
    assert session.queue.pop().name == "3.png" and session.queue.pop().name == "2.png"
    # Nothing on show: the least confident of the new readings is.
    session.current = None
    session.queue.add([old[2]])
    assert session.reread([_candidate(tmp_path, 2, 0.7)]) is True
    assert session.current.prediction.confidence == 0.7


def test_a_rounds_model_is_judged_against_the_one_before_on_the_answers_it_held_out(
    prepared_dataset, tmp_path
):
    """Real models on real held-out captchas: the base model, and the same model with its output layer
    wiped (what a fine-tune on a few answers can do to it: it read none of its own style after 10)."""
    base = base_model_path()
    assert base is not None
    payload = torch.load(base, weights_only=True)
    payload["model"] = {
        k: torch.zeros_like(v) if k.startswith("head.") else v for k, v in payload["model"].items()
    }
    wiped = tmp_path / "wiped.pt"
    torch.save(payload, wiped)
    data = load_dataset(prepared_dataset)
    held_out = data.count("val") + data.count("test")

    worse = compare_on_held_out(base, wiped, prepared_dataset)
    assert worse.answers == held_out and worse.characters == 4 * held_out
    assert worse.before[0] >= 0.8 * held_out  # the base reads its own style; the wiped one nothing whole
    assert worse.after[0] == 0 and worse.after[1] < worse.before[1] / 4
    assert not worse.better
    assert worse.describe() == f"0 of {held_out} held-out answers read (the model before: {worse.before[0]})"
    better = compare_on_held_out(wiped, base, prepared_dataset)
    assert better.better and better.after == worse.before
    # A tie keeps the model before; characters break a tie in whole codes; nothing held out keeps the new.
    assert not compare_on_held_out(base, base, prepared_dataset).better
    assert Comparison(5, (0, 3), (0, 4), 20).better and not Comparison(5, (1, 3), (0, 19), 20).better
    assert Comparison(0, (0, 0), (0, 0), 0).better
