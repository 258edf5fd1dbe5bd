"""``bench fine-tune``: its message without the other generator, and a tiny real run where it is."""

from __future__ import annotations

import builtins

import pytest

from captcha_tui.bench import fine_tune
from captcha_tui.bench.fine_tune import FineTuneBenchError, draw_other_style, run
from captcha_tui.core.labels import label_from_name


def test_without_the_captcha_package_it_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_captcha(name, *args, **kwargs):
        if name.startswith("captcha.") or name == "captcha":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_captcha)
    with pytest.raises(FineTuneBenchError, match="pip install captcha"):
        draw_other_style(tmp_path, 3, 0, "abc", (4, 6))


def test_a_tiny_fine_tune_against_scratch_scores_both_on_unseen_images(tmp_path):
    pytest.importorskip("captcha")
    paths = draw_other_style(tmp_path / "look", 5, 7, "abc", (4, 6))
    assert [4 <= len(label_from_name(p.name)) <= 6 for p in paths] == [True] * 5
    result = run(
        labelled=30, unlabelled=0, unseen=10, time_limit_s=3, work_dir=tmp_path, on_line=lambda line: None
    )
    assert result["split"] == {"train": 24, "val": 3, "test": 3}
    runs = result["runs"]
    assert set(runs) == {"fine-tune from base", "from scratch"}
    for row in runs.values():
        assert 0 <= row["unseen_accuracy"] <= 1 and row["images_seen"] > 0
    assert 0 <= result["base_unseen_accuracy"] <= 1
    assert fine_tune.OTHER_STYLE_SIZE == (160, 60)


def test_a_run_too_short_to_score_an_epoch_says_what_to_give_it(tmp_path):
    pytest.importorskip("captcha")
    # Reading 3,000 unlabelled captchas takes longer than the whole second the run is given.
    with pytest.raises(FineTuneBenchError, match=r"ended before its first epoch was scored.*--time-limit"):
        run(labelled=30, unseen=10, time_limit_s=1, work_dir=tmp_path, on_line=lambda line: None)


def test_a_candidate_base_that_is_not_there_is_named(tmp_path):
    with pytest.raises(FineTuneBenchError, match=r"--base .*missing\.pt: no such checkpoint"):
        run(
            labelled=30, unseen=10, base=tmp_path / "missing.pt", work_dir=tmp_path, on_line=lambda line: None
        )
    assert list(tmp_path.iterdir()) == []  # nothing drawn


def test_the_other_style_is_drawn_the_same_every_time(tmp_path):
    """The package draws its noise from ``secrets``; the benchmark seeds it, so rounds compare alike."""
    pytest.importorskip("captcha")
    first = draw_other_style(tmp_path / "a", 4, 3, "abc23", (4, 6))
    again = draw_other_style(tmp_path / "b", 4, 3, "abc23", (4, 6))
    other = draw_other_style(tmp_path / "c", 4, 4, "abc23", (4, 6))
    assert [p.name for p in first] == [p.name for p in again]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]
