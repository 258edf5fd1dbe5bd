from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from captcha_tui.core.base_model import base_model_path
from captcha_tui.core.images import load_image
from captcha_tui.core.predictor import Prediction, Predictor, accuracy, expand_paths


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


def test_pictures_and_arrays_read_as_their_files_do_transparent_and_16_bit_ones_too(captcha_files, tmp_path):
    """A PIL image or an array was converted with a plain convert("RGB"): transparent pixels came out
    black and 16-bit ones white, and the base model read nothing where it read the file."""
    predictor = Predictor.load(base_model_path())
    with Image.open(captcha_files[0]) as opened:
        rgb = opened.convert("RGB")
    code = captcha_files[0].stem.split("-")[1]
    # Transparent where the captcha is white: the same picture once composited onto white.
    gray = np.asarray(rgb.convert("L"))
    rgba = np.dstack([np.asarray(rgb), np.where(gray > 250, 0, 255).astype(np.uint8)])
    rgba[gray > 250, :3] = 0  # what the transparent pixels hold does not matter
    deep = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype("<u2"))
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    assert predictor.predict(tmp_path / "deep.png").code == code  # the file: read as it always was
    for name, picture in {
        "PIL RGBA": Image.fromarray(rgba, "RGBA"),
        "RGBA array": rgba,
        "PIL 16-bit grey": deep,
    }.items():
        assert predictor.predict(picture).code == code, name


def test_an_empty_reading_is_not_a_confident_one():
    """Nothing read (a blank image) had confidence 1.0 (the product of no factors), so the label screen,
    least confident first, asked about it last."""
    assert Prediction("", ()).confidence == 0.0
    assert Prediction("ab", (0.5, 0.5)).confidence == 0.25
