"""Tests for the synthetic captcha generator (real images, kept small so the file runs in seconds)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captcha_tui.core import generator as gen
from captcha_tui.core.generator import (
    DEFAULT_CHARSET,
    DEFAULT_LENGTH,
    DEFAULT_SIZE,
    CaptchaStyle,
    GenerateReport,
    circle_radii,
    font_paths,
    generate,
    random_code,
    render_captcha,
)

NAME = re.compile(r"^(\d{5})-(.+)\.png$")


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in _files(folder)}


def test_font_paths_finds_the_shipped_fonts() -> None:
    fonts = font_paths()
    assert len(fonts) >= 3
    assert fonts == sorted(fonts, key=lambda p: p.name)
    assert all(p.is_file() and p.suffix.lower() in {".ttf", ".otf"} for p in fonts)


def test_generate_writes_named_files(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"  # created on demand
    progress: list[tuple[int, int]] = []
    report = generate(out, 30, seed=3, workers=1, on_progress=lambda d, t: progress.append((d, t)))

    assert isinstance(report, GenerateReport)
    assert report.out_dir == out and report.count == 30 and report.seconds > 0
    files = _files(out)
    assert len(files) == 30
    indices = []
    for path in files:
        match = NAME.match(path.name)
        assert match, path.name
        indices.append(int(match.group(1)))
        code = match.group(2)
        assert len(code) == DEFAULT_LENGTH
        assert set(code) <= set(DEFAULT_CHARSET)
    assert indices == list(range(30))
    assert report.first == files[0] and report.last == files[-1]
    assert progress and progress[-1] == (30, 30)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_images_are_rgb_of_default_size(tmp_path: Path) -> None:
    generate(tmp_path, 5, workers=1)
    for path in _files(tmp_path):
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.mode == "RGB"
            assert im.size == DEFAULT_SIZE


def test_same_seed_is_byte_identical_across_worker_counts(tmp_path: Path) -> None:
    generate(tmp_path / "a", 24, seed=7, workers=1)
    progress: list[tuple[int, int]] = []
    generate(tmp_path / "b", 24, seed=7, workers=2, on_progress=lambda d, t: progress.append((d, t)))
    a, b = _bytes(tmp_path / "a"), _bytes(tmp_path / "b")
    assert len(a) == 24
    assert a == b
    assert progress[-1] == (24, 24) and len(progress) == 2  # two chunks, one per worker


def test_different_seed_gives_different_images(tmp_path: Path) -> None:
    generate(tmp_path / "a", 10, seed=1, workers=1)
    generate(tmp_path / "b", 10, seed=2, workers=1)
    a, b = _bytes(tmp_path / "a"), _bytes(tmp_path / "b")
    assert set(a) != set(b)  # codes (hence names) differ
    assert sorted(a.values()) != sorted(b.values())


def test_start_index_continues_a_run(tmp_path: Path) -> None:
    # Generating 0..9 then 10..19 must equal generating 0..19 in one go.
    generate(tmp_path / "whole", 20, seed=5, workers=1)
    generate(tmp_path / "parts", 10, seed=5, workers=1)
    report = generate(tmp_path / "parts", 10, seed=5, workers=1, start_index=10)
    assert report.first.name.startswith("00010-") and report.last.name.startswith("00019-")
    assert _bytes(tmp_path / "whole") == _bytes(tmp_path / "parts")


def test_length_charset_and_size_are_respected(tmp_path: Path) -> None:
    generate(tmp_path, 12, seed=0, length=6, charset="ABC", size=(160, 60), workers=1)
    files = _files(tmp_path)
    assert len(files) == 12
    for path in files:
        code = NAME.match(path.name).group(2)
        assert len(code) == 6 and set(code) <= set("ABC")
        with Image.open(path) as im:
            assert im.size == (160, 60) and im.mode == "RGB"


def test_image_is_not_blank() -> None:
    rng = random.Random("blank-check")
    code = random_code(rng, 4, DEFAULT_CHARSET)
    im = render_captcha(code, rng)
    assert im.mode == "RGB" and im.size == DEFAULT_SIZE
    arr = np.asarray(im, dtype=np.float32)
    gray = arr.mean(axis=2)
    assert gray.std() > 20  # real strokes on a light background, not a flat fill
    assert (gray < 110).mean() > 0.03  # a fair share of dark ink survives blur and circles
    assert (gray > 200).mean() > 0.4  # but the background stays light


def test_ink_spans_the_width() -> None:
    # Each character sits in its own cell, so every quarter of the image should hold some ink.
    for k in range(5):
        rng = random.Random(f"span:{k}")
        im = render_captcha(random_code(rng, 4, DEFAULT_CHARSET), rng, CaptchaStyle(circles=0))
        dark = np.asarray(im.convert("L")) < 110
        quarters = np.array_split(dark, 4, axis=1)
        assert all(q.any() for q in quarters)


def test_circles_shrink_with_the_glyphs_of_long_codes() -> None:
    style = CaptchaStyle()  # 120×50, radii 2–8 for full-size glyphs
    assert circle_radii(style, 1.0) == (2, 8)
    # The glyph scale render_captcha works out for 4, 5 and 6 characters in 120×50 (cell × 1.4 ÷ 40 px).
    scales = {n: min(1.0, (120 - 2 * 4.8) / n * 1.4 / 40) for n in (4, 5, 6)}
    assert [circle_radii(style, scales[n]) for n in (4, 5, 6)] == [(2, 8), (2, 6), (1, 5)]


@pytest.mark.parametrize(("length", "same"), [(4, True), (3, True), (6, False)])
def test_codes_drawn_at_full_size_keep_their_exact_pixels(monkeypatch, length, same) -> None:
    # Against a generator whose circles never shrink (as before they did): short codes are untouched,
    # so fixed-length sets made by earlier versions stay byte-identical; long codes change.
    def draw() -> bytes:
        rng = random.Random(f"full-size:{length}")
        return render_captcha(random_code(rng, length, DEFAULT_CHARSET), rng).tobytes()

    shrinking = draw()
    monkeypatch.setattr(gen, "circle_radii", lambda style, scale: style.circle_radius)
    assert (draw() == shrinking) is same


def test_render_is_deterministic_for_the_same_rng_state() -> None:
    a = render_captcha("ab3x", random.Random(1))
    b = render_captcha("ab3x", random.Random(1))
    c = render_captcha("ab3x", random.Random(2))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_random_code_uses_charset() -> None:
    rng = random.Random(0)
    codes = [random_code(rng, 5, "xyz") for _ in range(50)]
    assert all(len(c) == 5 and set(c) <= set("xyz") for c in codes)
    assert len(set(codes)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": -3},
        {"length": 0},
        {"charset": ""},
        {"charset": "aab"},
        {"workers": 0},
        {"start_index": -1},
        {"size": (4, 4)},
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict) -> None:
    args = {"count": 2, "workers": 1, **kwargs}
    with pytest.raises(ValueError):
        generate(tmp_path, **args)
    assert not _files(tmp_path)


def test_bad_render_arguments_raise() -> None:
    with pytest.raises(ValueError):
        render_captcha("", random.Random(0))
    with pytest.raises(ValueError):
        render_captcha("ab", random.Random(0), fonts=[])
    with pytest.raises(ValueError):
        random_code(random.Random(0), 0, DEFAULT_CHARSET)
    with pytest.raises(ValueError):
        CaptchaStyle(scale=(1.5, 1.0))


def test_progress_callback_can_stop_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CHUNK_SIZE", 4)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, 40, workers=1, on_progress=stop)
    assert len(_files(tmp_path)) == 4  # only the first chunk was written


def test_a_length_range_draws_every_length_evenly() -> None:
    rng = random.Random(0)
    codes = [random_code(rng, (4, 6), DEFAULT_CHARSET) for _ in range(3000)]
    counts = {n: sum(len(c) == n for c in codes) for n in (4, 5, 6)}
    assert sum(counts.values()) == 3000 and all(900 < n < 1100 for n in counts.values())


def test_a_fixed_length_draws_the_same_codes_as_before_ranges_existed() -> None:
    # Fixed-length sets must stay byte-identical: no extra draw for the length.
    assert random_code(random.Random("0:7"), 4, DEFAULT_CHARSET) == random_code(
        random.Random("0:7"), (4, 4), DEFAULT_CHARSET
    )
    rng = random.Random("0:7")
    assert random_code(random.Random("0:7"), 4, DEFAULT_CHARSET) == "".join(
        rng.choice(DEFAULT_CHARSET) for _ in range(4)
    )


def test_mixed_case_draws_both_cases_and_names_files_with_them(tmp_path) -> None:
    rng = random.Random(1)
    codes = [random_code(rng, 6, "abc2", case="mixed") for _ in range(200)]
    letters = "".join(codes).replace("2", "")
    assert any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    assert all(c.isupper() or c == "2" for c in random_code(rng, 6, "abc2", case="upper"))
    report = generate(tmp_path, count=6, seed=2, length=(3, 5), charset="abc", case="mixed", workers=1)
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert report.first.name == names[0] and report.last.name == names[-1]
    assert {len(n.split("-")[1].removesuffix(".png")) for n in names} <= {3, 4, 5}


@pytest.mark.parametrize(("length", "case"), [((5, 4), "lower"), ((0, 3), "lower"), (4, "title")])
def test_bad_length_ranges_and_cases(length, case) -> None:
    with pytest.raises(ValueError, match="length|case"):
        random_code(random.Random(0), length, DEFAULT_CHARSET, case)
