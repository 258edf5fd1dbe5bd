"""Tests for the synthetic captcha generator (real images, kept small so the file runs in seconds)."""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

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
    mix_font_paths,
    random_code,
    render_captcha,
)
from captcha_tui.core.style_mix import MIX_SIZES, glyph_mask, render_mix

NAME = re.compile(r"^(\d{5})-(.+)\.png$")


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in _files(folder)}


def test_font_paths_finds_the_shipped_fonts() -> None:
    fonts = font_paths()
    # Exactly the default style's three: a fourth (say, one of the mix's) would change its images.
    assert [p.name for p in fonts] == [
        "DejaVuSansMono-Bold.ttf",
        "LiberationSans-BoldItalic.ttf",
        "LiberationSerif-Bold.ttf",
    ]
    assert all(p.is_file() for p in fonts)


# Digests of the default style's pixels (and file names), recorded from commit cd9b8a9, before the mix style
# existed (Pillow 13.0.0 with its FreeType 2.14.3). The shipped base model and every default set depend on
# these images staying the same. Pixels, not PNG bytes, so that another zlib does not trip this; another
# FreeType may rasterise differently, and then these need re-recording from the old code.
DEFAULT_STYLE_DIGESTS = {
    "8 images, seed 2024": "514a44941dcd97f734608a1503c365266812074736dae77da2d5ba4c3038b4c4",
    "6 images, seed 11, length 4-6, mixed case, 160x60": (
        "12f448285bc15cdee40d39d8a754852857663644a849548f189e85f1da16877d"
    ),
}


def _pixel_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(path.name.encode())
        with Image.open(path) as im:
            digest.update(im.tobytes())
    return digest.hexdigest()


def test_the_default_style_draws_what_it_drew_before_the_mix(tmp_path: Path) -> None:
    generate(tmp_path / "a", 8, seed=2024, workers=1)
    generate(tmp_path / "b", 6, seed=11, length=(4, 6), case="mixed", size=(160, 60), workers=1)
    digests = list(DEFAULT_STYLE_DIGESTS.values())
    assert _pixel_digest(tmp_path / "a") == digests[0]
    assert _pixel_digest(tmp_path / "b") == digests[1]


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


# ---- the mix style -------------------------------------------------------------------------------------

MIX_FONTS = [str(p) for p in mix_font_paths()]
ALNUM = string.digits + string.ascii_letters


def test_the_mix_ships_many_fonts_each_with_its_licence() -> None:
    mix = [Path(p) for p in MIX_FONTS if Path(p).parent.name == "mix"]
    assert len(mix) >= 12
    assert MIX_FONTS[:3] == [str(p) for p in font_paths()]  # the default style's three are in it too
    for font in mix:
        family = font.stem.split("-")[0]
        licence = font.parent / f"LICENSE-{family}.txt"
        assert licence.is_file(), font.name
        text = licence.read_text().lower()
        # OFL, Apache-2.0, or the GPL with the font exception ("a document which uses this font").
        assert (
            "open font license" in text or "apache license" in text or "document which uses this font" in text
        )


def _ink(path: str, char: str) -> bytes:
    mask = glyph_mask(path, 40, char)
    return bytes(mask.size) + mask.tobytes()


@pytest.mark.parametrize("path", MIX_FONTS, ids=[Path(p).name for p in MIX_FONTS])
def test_every_mix_font_draws_every_letter_and_digit(path: str) -> None:
    # A font without a glyph draws its .notdef box (or nothing) instead: compare with two code points
    # no Latin font has, which must both come out as that same box.
    notdef = _ink(path, "\U0010fffd")
    assert _ink(path, "\U000ffffd") == notdef
    missing = [c for c in ALNUM if _ink(path, c) == notdef or glyph_mask(path, 40, c).getbbox() is None]
    assert not missing, f"{Path(path).name} has no glyph for {''.join(missing)}"
    # A real lower case: g p q hang below the baseline of a e n r, b d h rise above their x-height. Fonts
    # that draw capitals or small capitals for lower case (Humor Sans, Tomson Talks: both -5..0 px at
    # 100 px; every shipped font 17 px or more) would label a drawn "A" as "a".
    font = ImageFont.truetype(path, 100)
    box = {c: font.getbbox(c) for c in "aenrgpqbdh"}
    descender = min(box[c][3] for c in "gpq") - min(box[c][3] for c in "aenr")
    ascender = max(box[c][1] for c in "aenr") - max(box[c][1] for c in "bdh")
    assert descender > 10 and ascender > 10, f"{Path(path).name} has no real lower case"


def test_hollow_glyphs_keep_the_outline_and_lose_the_body() -> None:
    path = str(font_paths()[0])
    solid = np.asarray(glyph_mask(path, 40, "H", stroke=2)) > 128
    hollow = np.asarray(glyph_mask(path, 40, "H", stroke=2, hollow=True)) > 128
    assert solid.shape == hollow.shape
    assert 0.2 < hollow.sum() / solid.sum() < 0.8
    assert not (hollow & ~solid).any()


def test_mix_is_byte_identical_across_worker_counts_and_differs_by_seed(tmp_path: Path) -> None:
    generate(tmp_path / "a", 16, seed=7, style="mix", workers=1)
    generate(tmp_path / "b", 16, seed=7, style="mix", workers=2)
    generate(tmp_path / "c", 16, seed=8, style="mix", workers=1)
    a, b, c = _bytes(tmp_path / "a"), _bytes(tmp_path / "b"), _bytes(tmp_path / "c")
    assert len(a) == 16 and a == b
    assert not set(a.values()) & set(c.values())


def test_mix_defaults_to_varied_lengths_cases_and_sizes(tmp_path: Path) -> None:
    report = generate(tmp_path, 60, seed=3, style="mix", workers=1)
    files = _files(tmp_path)
    assert report.first == files[0] and report.last == files[-1]
    codes = [NAME.match(p.name).group(2) for p in files]
    assert {len(c) for c in codes} == {4, 5, 6}
    letters = "".join(c for c in "".join(codes) if c.isalpha())
    assert any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    assert set("".join(codes).lower()) <= set(DEFAULT_CHARSET)
    sizes = Counter()
    for path in files:
        with Image.open(path) as im:
            assert im.mode == "RGB"
            sizes[im.size] += 1
    assert len(sizes) >= 6
    assert set(sizes) <= set(MIX_SIZES)
    assert all(100 <= w <= 200 and 40 <= h <= 70 for w, h in sizes)


def test_mix_images_vary_in_colour_and_keep_readable_contrast() -> None:
    colourful, backgrounds, dark = 0, [], 0
    for index in range(50):
        rng = random.Random(f"mix-look:{index}")
        code = random_code(rng, (4, 6), DEFAULT_CHARSET, "mixed")
        arr = np.asarray(render_mix(code, rng, MIX_FONTS), dtype=np.float32)
        gray = arr.mean(axis=2)
        saturation = arr.max(axis=2) - arr.min(axis=2)
        colourful += (saturation > 60).mean() > 0.02
        background = np.median(arr.reshape(-1, 3), axis=0)
        backgrounds.append(background)
        dark += background.mean() < 110
        # Ink: a fair share of pixels far from the background's grey (text survives the clutter, blur
        # and warp), but not most of them (the background stays a background).
        far = np.abs(gray - np.median(gray)) > 70
        assert 0.06 < far.mean() < 0.6, (index, code, far.mean())  # measured: 0.12 to 0.36
    assert colourful >= 15  # measured: 26 of 50
    assert 1 <= dark <= 15  # dark backgrounds occur, but rarely
    spread = np.std(np.stack(backgrounds), axis=0)
    assert (spread > 10).all()  # backgrounds differ in every channel, not one tint


def test_mix_render_is_deterministic_and_honours_a_fixed_size() -> None:
    a = render_mix("ab3x", random.Random(5), MIX_FONTS)
    b = render_mix("ab3x", random.Random(5), MIX_FONTS)
    c = render_mix("ab3x", random.Random(6), MIX_FONTS)
    assert a.tobytes() == b.tobytes() and a.size == b.size
    assert a.tobytes() != c.tobytes()
    assert render_mix("ab3xyz", random.Random(5), MIX_FONTS, size=(90, 32)).size == (90, 32)


def test_mix_with_a_fixed_size_length_and_case(tmp_path: Path) -> None:
    generate(tmp_path, 8, seed=1, style="mix", size=(160, 60), length=5, case="lower", workers=1)
    for path in _files(tmp_path):
        code = NAME.match(path.name).group(2)
        assert len(code) == 5 and code == code.lower()
        with Image.open(path) as im:
            assert im.size == (160, 60)


def test_an_unknown_style_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="style"):
        generate(tmp_path, 2, style="fancy", workers=1)
    with pytest.raises(ValueError):
        render_mix("", random.Random(0), MIX_FONTS)
    with pytest.raises(ValueError):
        render_mix("ab", random.Random(0), [])
    assert not _files(tmp_path)
