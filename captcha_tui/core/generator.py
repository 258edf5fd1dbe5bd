"""Synthetic text-CAPTCHA generator.

Draws images in the style of common web captchas (and of the reference data set, which came from a C#
captcha library): a light background with faint lines, one dark rotated character per horizontal cell
in a random font, a slight blur, then small white circles punched over the text.

That is the ``default`` style. The ``mix`` style (:mod:`.style_mix`) draws many looks instead, one per
image, from more fonts (``assets/fonts/mix``).

Output is deterministic: image ``i`` of a run is drawn from an RNG seeded with ``(seed, i)``, so the
same seed gives byte-identical PNGs whatever the worker count. Files are named ``{index:05d}-{code}.png``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .style_mix import MIX_CASE, MIX_LENGTH, MixStyle, render_mix

DEFAULT_CHARSET = "23456789abcdefghjkmnpqrstuvwxyz"  # lowercase + digits without the ambiguous 0 1 i l o
DEFAULT_LENGTH = 4
DEFAULT_SIZE = (120, 50)  # width, height
DEFAULT_COUNT = 60_000  # about 30 s on 2 cores; enough for ~10 epochs before memorising (docs/performance.md)
CASES = ("lower", "upper", "mixed")  # how letters are drawn; file names carry the case drawn
STYLES = ("default", "mix")  # the built-in looks; see generate()

# A code length: one number, or an inclusive (shortest, longest) range drawn evenly.
Length = int | tuple[int, int]

CHUNK_SIZE = 256  # indices per worker task: big enough to amortise IPC, small enough for smooth progress

# Dark ink colours for the characters; few and distinct, like the reference library's palette.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (20, 20, 20),
    (25, 45, 140),
    (140, 20, 30),
    (20, 100, 40),
    (95, 30, 125),
    (115, 65, 15),
)

FONT_SUFFIXES = (".ttf", ".otf")


@dataclass(frozen=True)
class CaptchaStyle:
    """Drawing knobs. Code length and charset are arguments of :func:`generate`, not style."""

    width: int = DEFAULT_SIZE[0]
    height: int = DEFAULT_SIZE[1]
    circles: int = 15  # white circles drawn over the text
    circle_radius: tuple[int, int] = (2, 8)
    rotation: float = 45.0  # max absolute rotation per character, degrees
    scale: tuple[float, float] = (0.9, 1.4)  # font size range, relative to the base size
    font_fraction: float = 0.8  # base font size as a fraction of the image height
    jitter: float = 0.12  # horizontal jitter as a fraction of the cell width
    lines: int = 2  # faint background polylines
    blur: float = 0.6  # GaussianBlur radius applied after the text

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size must be at least 8x8, got {self.width}x{self.height}")
        if self.circles < 0 or self.lines < 0:
            raise ValueError("circles and lines must be >= 0")
        lo, hi = self.circle_radius
        if not 0 <= lo <= hi:
            raise ValueError(f"circle_radius must be (lo, hi) with 0 <= lo <= hi, got {self.circle_radius}")
        lo_s, hi_s = self.scale
        if not 0 < lo_s <= hi_s:
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {self.scale}")
        if self.blur < 0 or self.rotation < 0 or self.jitter < 0:
            raise ValueError("blur, rotation and jitter must be >= 0")


@dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate` did. Only the first and last files are kept, to stay small for big runs."""

    out_dir: Path
    count: int
    seconds: float
    first: Path
    last: Path

    @property
    def images_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def font_paths() -> list[Path]:
    """The default style's fonts: inside the installed package first, else the repo's top-level
    assets/fonts. Only the folder's own files: the mix style's fonts in its subfolder ``mix`` must not
    change the default style's images."""
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "assets" / "fonts", here.parents[2] / "assets" / "fonts"]
    for folder in candidates:
        if folder.is_dir():
            found = _fonts_in(folder)
            if found:
                return found
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no captcha fonts (*.ttf/*.otf) found; looked in: {tried}")


def mix_font_paths() -> list[Path]:
    """The mix style's fonts: the default style's and those of the ``mix`` folder beside them."""
    base = font_paths()
    folder = base[0].parent / "mix"
    extra = _fonts_in(folder) if folder.is_dir() else []
    if not extra:
        raise FileNotFoundError(f"no mix-style fonts (*.ttf/*.otf) found in {folder}")
    return base + extra


def _fonts_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FONT_SUFFIXES)


# Per-process caches. Loading a FreeType face and rasterising a glyph dominate the cost of an image,
# while there are only a few thousand distinct (font, size, char) combinations.
_FONTS: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
_GLYPHS: dict[tuple[str, int, str], Image.Image] = {}


def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    key = (path, size)
    font = _FONTS.get(key)
    if font is None:
        font = _FONTS[key] = ImageFont.truetype(path, size)
    return font


def _glyph(path: str, size: int, char: str) -> Image.Image:
    """An "L" mask of one character, cropped to its ink."""
    key = (path, size, char)
    mask = _GLYPHS.get(key)
    if mask is None:
        font = _font(path, size)
        x0, y0, x1, y1 = font.getbbox(char)
        mask = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
        ImageDraw.Draw(mask).text((-x0, -y0), char, fill=255, font=font)
        _GLYPHS[key] = mask
    return mask


def random_code(
    rng: random.Random, length: Length = DEFAULT_LENGTH, charset: str = DEFAULT_CHARSET, case: str = "lower"
) -> str:
    """Characters drawn uniformly (with repetition) from ``charset``; a ``(lo, hi)`` length is drawn evenly
    first. ``case``: "lower" leaves the charset as it is, "upper" upper-cases letters, "mixed" flips a coin
    for each letter."""
    low, high = _check_code_args(length, charset, case)
    # A fixed length draws nothing extra, so fixed-length sets stay byte-identical to earlier versions.
    n = low if low == high else rng.randint(low, high)
    chars = [rng.choice(charset) for _ in range(n)]
    if case == "upper":
        chars = [c.upper() for c in chars]
    elif case == "mixed":
        chars = [c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in chars]
    return "".join(chars)


def _check_code_args(length: Length, charset: str, case: str = "lower") -> tuple[int, int]:
    low, high = (length, length) if isinstance(length, int) else tuple(length)
    if low < 1 or high < low:
        raise ValueError(f"length must be >= 1 (or a range lo-hi with 1 <= lo <= hi), got {length}")
    if case not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}, got {case!r}")
    if not charset:
        raise ValueError("charset must not be empty")
    if len(set(charset)) != len(charset):
        raise ValueError(f"charset has repeated characters: {charset!r}")
    if any(c.isspace() for c in charset):
        raise ValueError("charset must not contain whitespace")
    return low, high


def _light(rng: random.Random, lo: int, hi: int) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def render_captcha(
    code: str,
    rng: random.Random,
    style: CaptchaStyle = CaptchaStyle(),  # noqa: B008 - frozen, so a shared default is safe
    fonts: Sequence[str | Path] | None = None,
) -> Image.Image:
    """Draw ``code`` as a captcha and return an RGB image of ``style.width`` x ``style.height``."""
    if not code:
        raise ValueError("code must not be empty")
    font_list = [str(p) for p in (fonts if fonts is not None else font_paths())]
    if not font_list:
        raise ValueError("fonts must not be empty")
    w, h = style.width, style.height

    image = Image.new("RGB", (w, h), _light(rng, 215, 255))
    draw = ImageDraw.Draw(image)

    # Faint polylines behind the text: clutter that a model must learn to ignore.
    for _ in range(style.lines):
        points = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(rng.randint(3, 5))]
        draw.line(points, fill=_light(rng, 150, 215), width=rng.randint(1, 2))

    # One cell per character with a small margin, so rotated glyphs at the ends are not cut off much.
    margin = w * 0.04
    cell = (w - 2 * margin) / len(code)
    # Base size follows the height but shrinks for long codes, keeping neighbours from piling up.
    full_size = h * style.font_fraction
    base = min(full_size, cell * 1.4)
    for i, char in enumerate(code):
        path = rng.choice(font_list)
        size = max(6, round(base * rng.uniform(*style.scale)))
        color = rng.choice(PALETTE)
        angle = rng.uniform(-style.rotation, style.rotation)
        mask = _glyph(path, size, char).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        mw, mh = mask.size
        cx = margin + (i + 0.5) * cell + rng.uniform(-style.jitter, style.jitter) * cell
        # Vertical jitter only as far as the glyph still fits, so tall glyphs stay centred.
        slack = max(0.0, (h - mh) / 2 - 1)
        cy = h / 2 + rng.uniform(-slack, slack) * 0.7
        image.paste(color, (round(cx - mw / 2), round(cy - mh / 2)), mask)

    if style.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
        draw = ImageDraw.Draw(image)

    # White circles last, so they bite sharp holes out of the blurred strokes. Radii lean small (squared
    # uniform) so that the big ones are rare and a human can still read every character.
    lo, hi = circle_radii(style, base / full_size)
    for _ in range(style.circles):
        r = lo + int((hi - lo + 1) * rng.random() ** 2)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_light(rng, 240, 255))
    return image


def circle_radii(style: CaptchaStyle, glyph_scale: float) -> tuple[int, int]:
    """The circles' radius range for glyphs drawn at ``glyph_scale`` of their full size: circles shrink
    with the glyphs of long codes, or they would blot out whole characters (six characters in 120×50
    read 77% whole with full-size circles, 96% with these; docs/performance.md). Rounded, so that codes
    drawn at (nearly) full size, four characters in 120×50 among them, keep their exact pixels."""
    lo, hi = style.circle_radius
    return round(lo * glyph_scale), round(hi * glyph_scale)


def _image_rng(seed: int, index: int) -> random.Random:
    # String seeds go through SHA-512 in CPython, so this is stable across processes and PYTHONHASHSEED.
    return random.Random(f"{seed}:{index}")


def _render_range(
    out_dir: str,
    seed: int,
    start: int,
    stop: int,
    length: Length,
    charset: str,
    case: str,
    style: CaptchaStyle | MixStyle,
    fonts: list[str],
) -> int:
    """Render indices ``start..stop-1`` to disk; top-level so "spawn" workers can import it."""
    for index in range(start, stop):
        rng = _image_rng(seed, index)
        code = random_code(rng, length, charset, case)
        path = os.path.join(out_dir, f"{index:05d}-{code}.png")
        if isinstance(style, MixStyle):
            image = render_mix(code, rng, fonts, style.size)
        else:
            image = render_captcha(code, rng, style, fonts)
        # Pillow writes no timestamps or other metadata by default, so files are byte-reproducible.
        image.save(path, format="PNG")
    return stop - start


def generate(
    out_dir: str | Path,
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    *,
    length: Length | None = None,
    charset: str = DEFAULT_CHARSET,
    case: str | None = None,
    size: tuple[int, int] | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    start_index: int = 0,
    style: str | CaptchaStyle | None = "default",
) -> GenerateReport:
    """Write ``count`` captchas, indices ``start_index..start_index+count-1``, into ``out_dir``.

    ``style``: "default" (one look: :func:`render_captcha`; a :class:`CaptchaStyle` tunes it) or "mix"
    (a look drawn per image: :func:`.style_mix.render_mix`). ``length`` and ``case`` default to 4 and
    "lower" for the default style, to 4–6 and "mixed" for the mix. ``size`` (width, height) fixes the
    image size: by default 120×50 (or the CaptchaStyle's), and for the mix one of a handful per image.
    ``workers`` defaults to the CPU count; ``workers=1`` renders in this process with no pool.
    ``on_progress(done, total)`` is called in this process after each chunk; if it raises, pending
    chunks are cancelled and the exception propagates (a cheap way to stop a run). Workers are started
    with "spawn", so a script that calls this with ``workers > 1`` needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0, got {start_index}")
    mix = style == "mix"
    if not (mix or style is None or style == "default" or isinstance(style, CaptchaStyle)):
        raise ValueError(f"style must be one of {', '.join(STYLES)} or a CaptchaStyle, got {style!r}")
    if length is None:
        length = MIX_LENGTH if mix else DEFAULT_LENGTH
    if case is None:
        case = MIX_CASE if mix else "lower"
    _check_code_args(length, charset, case)
    if size is not None and len(size) != 2:
        raise ValueError(f"size must be (width, height), got {size!r}")
    size = None if size is None else (int(size[0]), int(size[1]))
    drawing: CaptchaStyle | MixStyle
    if mix:
        drawing = MixStyle(size)
    else:
        drawing = style if isinstance(style, CaptchaStyle) else CaptchaStyle()
        if size is not None:
            drawing = replace(drawing, width=size[0], height=size[1])
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    fonts = [str(p) for p in (mix_font_paths() if mix else font_paths())]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Small runs are split evenly so that every worker gets a share.
    chunk = max(1, min(CHUNK_SIZE, math.ceil(count / workers)))
    ranges = [
        (s, min(s + chunk, start_index + count)) for s in range(start_index, start_index + count, chunk)
    ]
    workers = min(workers, len(ranges))
    args = (str(out), seed)
    tail = (length, charset, case, drawing, fonts)

    t0 = time.perf_counter()
    done = 0
    if workers == 1:
        for start, stop in ranges:
            done += _render_range(*args, start, stop, *tail)
            if on_progress is not None:
                on_progress(done, count)
    else:
        # "spawn" avoids forking a process that may hold threads (the TUI, torch) and behaves the
        # same on every OS; its start-up cost is small next to a real run.
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            pending = {pool.submit(_render_range, *args, start, stop, *tail) for start, stop in ranges}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done += future.result()
                    if on_progress is not None:
                        on_progress(done, count)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - t0
    first_path = _expected_path(out, seed, start_index, length, charset, case)
    last_path = _expected_path(out, seed, start_index + count - 1, length, charset, case)
    return GenerateReport(out_dir=out, count=count, seconds=seconds, first=first_path, last=last_path)


def _expected_path(out: Path, seed: int, index: int, length: Length, charset: str, case: str) -> Path:
    # The code is the RNG's first draw, so the file name can be recomputed without rendering.
    code = random_code(_image_rng(seed, index), length, charset, case)
    return out / f"{index:05d}-{code}.png"
