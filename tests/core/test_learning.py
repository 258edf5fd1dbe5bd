"""core.learning (the label screen's fine-tune rounds) and the session's re-ranking, without training."""

from __future__ import annotations

from pathlib import Path

import pytest

from captcha_tui.core.labelling import Candidate, FolderScan, LabelFile, LabellingSession, ScoredChunk
from captcha_tui.core.learning import Learner, LearnError, LearnSettings, answers_spec, work_dir
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
