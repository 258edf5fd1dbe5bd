from __future__ import annotations

import shutil

import numpy as np

from captcha_tui.core.images import load_image
from captcha_tui.core.predictor import Predictor, accuracy, expand_paths


def test_predictions_match_a_batch_forward(trained_run, captcha_dir):
    run_dir, _ = trained_run
    predictor = Predictor.load(run_dir / "best.pt")
    files = sorted(captcha_dir.iterdir())[:8]
    one_by_one = [predictor.predict_image(f).code for f in files]
    batched = [p.code for p in predictor.predict_arrays(np.stack([load_image(f) for f in files]))]
    assert one_by_one == batched


def test_folder_and_glob_expand_to_images(captcha_dir, tmp_path):
    paths, problems = expand_paths([str(captcha_dir)])
    assert len(paths) == 300 and not problems
    paths, problems = expand_paths([str(captcha_dir / "0000*.png")])
    assert len(paths) == 10 and not problems
    (tmp_path / "empty").mkdir()
    paths, problems = expand_paths(
        [str(tmp_path / "empty"), str(tmp_path / "nope.png"), str(tmp_path / "*.jpg")]
    )
    assert paths == []
    assert [p.split(": ")[1] for p in problems] == [
        "no images in this folder",
        "no such file or folder",
        "no files match",
    ]


def test_labelled_files_are_scored_and_bad_files_do_not_stop_the_rest(trained_run, captcha_dir, tmp_path):
    run_dir, _ = trained_run
    predictor = Predictor.load(run_dir / "best.pt")
    charset = predictor.spec.charset

    def other(c: str) -> str:  # a different character of the charset
        return charset[(charset.index(c) + 1) % len(charset)]

    # Labels whose truth is known before scoring: three name the code the model reads in that image (one in
    # capitals, which must count as the same code), two are deliberately wrong (one by its last character).
    sources = sorted(captcha_dir.iterdir())[:5]
    readings = [predictor.predict_image(f).code for f in sources]
    labels = [
        readings[0],
        readings[1].upper(),
        readings[2],
        readings[3][:3] + other(readings[3][3]),
        "".join(other(c) for c in readings[4]),
    ]
    expected_correct = {f"{i:05d}-{label}.png": i < 3 for i, label in enumerate(labels)}
    for source, name in zip(sources, expected_correct, strict=True):
        shutil.copy(source, tmp_path / name)
    (tmp_path / "00099-abcd.png").write_text("not an image")
    (tmp_path / "unlabelled.png").write_bytes(sources[0].read_bytes())
    paths, _ = expand_paths([str(tmp_path)])
    results = predictor.predict_paths(paths)
    assert len(results) == 7
    broken = [r for r in results if r.error]
    assert len(broken) == 1 and broken[0].path.name == "00099-abcd.png" and "not an image" in broken[0].error
    unlabelled = next(r for r in results if r.path.name == "unlabelled.png")
    assert unlabelled.label is None and unlabelled.correct is None and unlabelled.prediction
    assert {r.path.name: r.correct for r in results if r.label} == expected_correct
    assert accuracy(results) == (3, 5)  # the broken and the unlabelled file count neither way
    # In chunks (what the eval screen reads with, to show progress and stop): the same results, in order,
    # the broken file in its own chunk's place.
    chunks = list(predictor.read_chunks(paths, chunk_size=3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [r for chunk in chunks for r in chunk] == results
