"""The ``mix`` captcha style: every image draws its own look from its seeded RNG.

A model trained on one generator learns that generator's quirks; one trained on many looks has a better
chance with captchas it never saw (the PyPI ``captcha`` package's, real sites'). So each image picks, at
random: its size, a background (flat, gradient, noise texture, grid; now and then dark), ink colours (one
or one per character), fonts (one or one per character, some drawn hollow), size jitter, rotation,
per-character perspective, spacing from overlapping to loose, then clutter (lines, arcs, dots, hairs,
punched circles), and sometimes a sine warp, a blur or JPEG artefacts.

Everything is drawn from the ``random.Random`` given (numpy noise from a seed drawn from it), in a fixed
order, so one RNG state gives one image, byte for byte. Kept mild enough that a person reads every
character: ink keeps a contrast floor against the background, and clutter is thin.
"""

from __future__ import annotations

import colorsys
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]

# Sizes seen on real captchas, 100–200 × 40–70. A handful rather than any size: `prepare` resizes a set
# to its most common size, and 120×50 (the model's input and the default style's size) is listed twice
# so that a big mixed set is packed at it.
MIX_SIZES: tuple[tuple[int, int], ...] = (
    (100, 40),
    (100, 50),
    (120, 40),
    (120, 50),
    (120, 50),
    (130, 50),
    (140, 50),
    (150, 50),
    (150, 60),
    (160, 60),
    (180, 60),
    (200, 60),
    (200, 70),
)
MIX_LENGTH = (4, 6)  # the mix's code lengths unless asked otherwise
MIX_CASE = "mixed"  # and its letter case

# Luminance between ink and the background's darkest 5% (lightest, if dark). At 90, light ink on pastel
# noise under a blur was often unreadable; 120 keeps it legible.
MIN_CONTRAST = 120.0
MIN_SPACING = -0.12  # most overlap between neighbours, × mean glyph width; more tangled thin fonts


@dataclass(frozen=True)
class MixStyle:
    """The ``mix`` style; ``size`` fixes every image's (width, height), else each draws one of MIX_SIZES."""

    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (self.size[0] < 8 or self.size[1] < 8):
            raise ValueError(f"image size must be at least 8x8, got {self.size[0]}x{self.size[1]}")


# Per-process caches, as in the default style: faces and glyph masks are reused across images. Bounded,
# since the mix has far more (font, size, char, stroke) combinations than the default style.
_FONTS: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
_MASKS: dict[tuple[str, int, str, int, bool], Image.Image] = {}
_MAX_MASKS = 60_000


def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    font = _FONTS.get((path, size))
    if font is None:
        font = _FONTS[(path, size)] = ImageFont.truetype(path, size)
    return font


def glyph_mask(path: str, size: int, char: str, stroke: int = 0, hollow: bool = False) -> Image.Image:
    """An "L" mask of one character cropped to its ink; a ``stroke`` of that many pixels around it makes
    it bolder, or, ``hollow``, only its outline is drawn."""
    key = (path, size, char, stroke, hollow)
    mask = _MASKS.get(key)
    if mask is None:
        if len(_MASKS) >= _MAX_MASKS:
            _MASKS.clear()
        font = _font(path, size)
        x0, y0, x1, y1 = font.getbbox(char, stroke_width=stroke)
        mask = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
        # With a stroke, PIL draws the outline in stroke_fill, then the letter's body in fill over it:
        # fill=0 leaves the outline alone.
        fill = 0 if hollow and stroke else 255
        ImageDraw.Draw(mask).text(
            (-x0, -y0), char, fill=fill, font=font, stroke_width=stroke, stroke_fill=255
        )
        _MASKS[key] = mask
    return mask


def _luminance(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def _light_colour(rng: random.Random) -> RGB:
    # Mostly near-white or pastel; saturated light colours now and then.
    sat = rng.uniform(0.0, 0.15) if rng.random() < 0.6 else rng.uniform(0.15, 0.45)
    return _hsv(rng.random(), sat, rng.uniform(0.85, 1.0))


def _dark_colour(rng: random.Random) -> RGB:
    sat = 0.0 if rng.random() < 0.2 else rng.uniform(0.35, 1.0)
    return _hsv(rng.random(), sat, rng.uniform(0.0, 0.55))


def _background(rng: random.Random, w: int, h: int, dark: bool) -> np.ndarray:
    """An (h, w, 3) uint8 background: flat, gradient, noise texture or grid."""
    base = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.05, 0.35)) if dark else _light_colour(rng)
    kind = rng.choice(("flat", "flat", "gradient", "noise", "clouds", "grid"))
    arr = np.empty((h, w, 3), dtype=np.float32)
    arr[:] = base
    if kind in ("gradient", "grid") and rng.random() < 0.7:
        other = np.asarray(_dark_colour(rng) if dark else _light_colour(rng), dtype=np.float32)
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xs * math.cos(theta) + ys * math.sin(theta)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        arr += t[..., None] * (other - arr)
    noise = np.random.default_rng(rng.getrandbits(64))  # pixel noise is numpy's; seeded from the image RNG
    if kind == "noise":
        sigma = rng.uniform(6, 22)
        channels = 1 if rng.random() < 0.5 else 3
        arr += noise.normal(0, sigma, (h, w, channels)).astype(np.float32)
    elif kind == "clouds":
        # Coarse noise scaled up: blotches like a paper or camouflage texture.
        cell = rng.randint(4, 10)
        small = noise.normal(0, rng.uniform(12, 30), (max(2, h // cell), max(2, w // cell), 3))
        small_img = Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8))
        arr += np.asarray(small_img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) - 128
    out = np.clip(arr, 0, 255).astype(np.uint8)
    if kind == "grid":
        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        step = rng.randint(5, 14)
        shade = rng.uniform(25, 60) * (1 if dark else -1)
        ink = tuple(int(np.clip(c + shade, 0, 255)) for c in base)
        lines = rng.choice(("both", "both", "horizontal", "vertical", "diagonal"))
        if lines in ("both", "vertical"):
            for x in range(rng.randint(0, step), w, step):
                draw.line([(x, 0), (x, h)], fill=ink)
        if lines in ("both", "horizontal"):
            for y in range(rng.randint(0, step), h, step):
                draw.line([(0, y), (w, y)], fill=ink)
        if lines == "diagonal":
            for x in range(-h, w, step):
                draw.line([(x, 0), (x + h, h)], fill=ink)
        out = np.asarray(img)
    return out


def _with_contrast(colour: RGB, bg_luminance: float, dark_bg: bool) -> RGB:
    """``colour`` darkened (lightened on a dark background) until it stands MIN_CONTRAST off the bg."""
    lum = _luminance(colour)
    if not dark_bg:
        target = max(0.0, bg_luminance - MIN_CONTRAST)
        if lum <= target:
            return colour
        k = target / lum if lum > 0 else 0.0
        return tuple(round(c * k) for c in colour)  # type: ignore[return-value]
    target = min(255.0, bg_luminance + MIN_CONTRAST)
    if lum >= target:
        return colour
    k = (255 - target) / max(1e-6, 255 - lum)
    return tuple(round(255 - (255 - c) * k) for c in colour)  # type: ignore[return-value]


def _perspective(mask: Image.Image, rng: random.Random) -> Image.Image:
    """A mild random quad warp of one glyph, as the ``captcha`` package does to each character."""
    w, h = mask.size
    dx, dy = w * rng.uniform(0.05, 0.2), h * rng.uniform(0.05, 0.2)
    x1, y1 = round(rng.uniform(-dx, dx)), round(rng.uniform(-dy, dy))
    x2, y2 = round(rng.uniform(-dx, dx)), round(rng.uniform(-dy, dy))
    w2, h2 = w + abs(x1) + abs(x2), h + abs(y1) + abs(y2)
    big = mask.resize((w2, h2), Image.Resampling.BILINEAR)
    quad = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
    return big.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)


_REFERENCE_PX = 100
_EXTENTS: dict[tuple[str, str], tuple[int, int]] = {}


def _predicted_fit(
    code: str,
    fonts: Sequence[str],
    scales: Sequence[float],
    angles: Sequence[float],
    size: float,
    spacing: float,
    avail: float,
    h: int,
) -> float:
    """``size``, shrunk as far as the word's estimated extent says it must be to fit: from each glyph's box
    at a reference size, scaled and rotated. Most words then rasterise their glyphs once, at the size they
    are drawn at, not first too big and then again (with even sizes, 1.5-1.8× the images a second)."""
    widths, heights = [], []
    for char, path, scale, angle in zip(code, fonts, scales, angles, strict=True):
        extent = _EXTENTS.get((path, char))
        if extent is None:
            x0, y0, x1, y1 = _font(path, _REFERENCE_PX).getbbox(char)
            extent = _EXTENTS[(path, char)] = (x1 - x0, y1 - y0)
        k = scale / _REFERENCE_PX
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        widths.append(k * (extent[0] * c + extent[1] * s))
        heights.append(k * (extent[0] * s + extent[1] * c))
    n = len(code)
    # The extent of the word at size 1 with its overlap, if any: loose spacing is the first thing given up.
    gap = min(spacing, 0.0) * sum(widths) / n
    total = sum(widths) + gap * (n - 1)
    return min(size, avail / max(1e-6, total), 0.95 * h / max(1e-6, max(heights)))


def _text(
    image: Image.Image, code: str, rng: random.Random, fonts: Sequence[str], bg_luminance: float, dark: bool
) -> list[RGB]:
    """Draw the characters; returns their colours (the clutter reuses them)."""
    w, h = image.size
    n = len(code)
    # Every draw happens before the fitting loop below, which is deterministic: same RNG, same image.
    one_font = rng.random() < 0.55
    first = rng.choice(fonts)
    char_fonts = [first if one_font else rng.choice(fonts) for _ in code]
    one_colour = rng.random() < 0.6
    ink = _light_colour(rng) if dark else _dark_colour(rng)
    colours = [ink if one_colour else (_light_colour(rng) if dark else _dark_colour(rng)) for _ in code]
    colours = [_with_contrast(c, bg_luminance, dark) for c in colours]
    weight = rng.random()
    hollow, bold = weight < 0.12, weight > 0.8  # outlines; fake bold, as some captcha libraries draw
    height = rng.uniform(0.75, 1.05)  # font size / image height; a capital's ink is ~0.7 of it
    jitter = rng.choice((0.0, 0.08, 0.18))
    scales = [1 + rng.uniform(-jitter, jitter) for _ in code]
    max_angle = rng.choice((0.0, 5.0, 12.0, 20.0, 30.0))
    angles = [rng.uniform(-max_angle, max_angle) for _ in code]
    warp = rng.random() < 0.3
    warp_seeds = [rng.getrandbits(64) for _ in code] if warp else None
    spacing = rng.uniform(MIN_SPACING, 0.25)  # × mean glyph width; below zero neighbours overlap
    if hollow:
        spacing = max(spacing, 0.05)  # overlapping outlines merge into a tangle
    margin = w * rng.uniform(0.03, 0.08)
    wave = rng.random() < 0.3
    phase, period = rng.uniform(0, 2 * math.pi), rng.uniform(0.6, 1.5) * w
    offsets = [rng.uniform(-1, 1) for _ in code]

    avail = w - 2 * margin
    size = _predicted_fit(code, char_fonts, scales, angles, h * height, spacing, avail, h)
    for _ in range(5):  # shrink until the word fits, with whatever rotation and spacing were drawn
        masks = []
        for char, path, scale, angle, i in zip(code, char_fonts, scales, angles, range(n), strict=True):
            px = max(8, 2 * round(size * scale / 2))  # even sizes only: twice the glyph-cache hits
            stroke = max(1, round(px / 16)) if hollow else max(1, round(px / 30)) if bold else 0
            mask = glyph_mask(path, px, char, stroke, hollow)
            if angle:
                mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
            if warp_seeds is not None:
                mask = _perspective(mask, random.Random(warp_seeds[i]))
            if angle or warp_seeds is not None:
                # Back to the ink: the corners that rotation adds would space the word out and shrink it.
                mask = mask.crop(mask.getbbox() or (0, 0, 1, 1))
            masks.append(mask)
        widths = [m.size[0] for m in masks]
        mean = sum(widths) / n
        # Too wide: close up first (down to the most overlap drawn anywhere), then shrink the glyphs.
        gap = spacing * mean
        if n > 1 and sum(widths) + gap * (n - 1) > avail:
            gap = max(min(gap, MIN_SPACING * mean), (avail - sum(widths)) / (n - 1))
        total = sum(widths) + gap * (n - 1)
        fit = min(avail / max(1.0, total), 0.95 * h / max(m.size[1] for m in masks))
        if fit >= 1 or size <= 8:
            break
        size *= fit * 0.98
    x = margin + max(0.0, avail - total) * rng.random()
    for i, (mask, colour) in enumerate(zip(masks, colours, strict=True)):
        mw, mh = mask.size
        slack = max(0.0, (h - mh) / 2 - 1)
        if wave:
            cy = h / 2 + slack * 0.8 * math.sin(phase + 2 * math.pi * (x + mw / 2) / period)
        else:
            cy = h / 2 + slack * 0.6 * offsets[i]
        image.paste(colour, (round(x), round(cy - mh / 2)), mask)
        x += mw + gap
    return colours


CLUTTER = ("lines", "arcs", "dots", "hairs", "circles")


def _clutter(image: Image.Image, rng: random.Random, colours: list[RGB], bg: np.ndarray, dark: bool) -> None:
    """Up to three kinds of clutter: lines, arcs, dots, hairs, punched circles. Every kind at once, or
    dense dots in a small image, buried the text; so a few kinds, thin, and dots by the area."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    thick = 1 if h < 55 else 2
    kinds = rng.sample(CLUTTER, rng.choice((0, 1, 1, 2, 2, 3)))

    def colour() -> RGB:
        # The ink of the text (the `captcha` package's choice) or another colour of similar strength.
        if rng.random() < 0.5:
            return rng.choice(colours)
        return _light_colour(rng) if dark else _dark_colour(rng)

    if "lines" in kinds:  # straight or bent lines across the text
        for _ in range(rng.randint(1, 3)):
            points = [(rng.uniform(0, w * 0.25), rng.uniform(0, h))]
            for _ in range(rng.randint(0, 2)):
                points.append((rng.uniform(w * 0.25, w * 0.75), rng.uniform(0, h)))
            points.append((rng.uniform(w * 0.75, w), rng.uniform(0, h)))
            draw.line(points, fill=colour(), width=rng.randint(1, thick + 1))
    if "arcs" in kinds:  # arcs and sine curves through the middle
        for _ in range(rng.randint(1, 2)):
            fill, width = colour(), rng.randint(1, thick + 1)
            if rng.random() < 0.5:
                x0, y0 = rng.uniform(0, w / 5), rng.uniform(h / 5, h / 2)
                x1, y1 = rng.uniform(w * 0.8, w), rng.uniform(h / 2, h * 1.3)
                draw.arc((x0, y0, x1, y1), rng.uniform(0, 30), rng.uniform(150, 210), fill=fill, width=width)
            else:
                amp, per, ph = rng.uniform(2, h / 4), rng.uniform(0.4, 1.5) * w, rng.uniform(0, 6.3)
                mid = rng.uniform(h * 0.3, h * 0.7)
                xs = range(0, w + 4, 4)
                draw.line([(x, mid + amp * math.sin(ph + 2 * math.pi * x / per)) for x in xs], fill, width)
    if "dots" in kinds:  # specks, or small dots
        big = rng.random() < 0.4
        for _ in range(round(rng.randint(20, 80) * w * h / 8000 * (0.4 if big else 1))):
            x, y, fill = rng.uniform(0, w), rng.uniform(0, h), colour()
            r = rng.uniform(0.8, 1.4) if big else 0.5
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    if "hairs" in kinds:  # short strokes
        for _ in range(rng.randint(8, 25)):
            x, y, a, n = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, math.pi), rng.uniform(3, 8)
            draw.line([(x, y), (x + n * math.cos(a), y + n * math.sin(a))], fill=colour(), width=1)
    if "circles" in kinds:  # background-coloured circles that bite holes out of the strokes
        for _ in range(rng.randint(5, 15)):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            r = 1 + int(3 * rng.random() ** 2 * h / 50)
            fill = tuple(int(c) for c in bg[min(h - 1, int(y)), min(w - 1, int(x))])
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _sine_warp(image: Image.Image, rng: random.Random) -> Image.Image:
    """Shift columns up and down (or rows sideways) along a sine: a wavy, rubbery look."""
    arr = np.asarray(image, dtype=np.float32)
    h, w = arr.shape[:2]
    vertical = rng.random() < 0.7
    length = w if vertical else h
    amp = rng.uniform(1.0, 0.06 * h if vertical else 0.03 * w)
    period = rng.uniform(0.5, 1.5) * length
    shift = amp * np.sin(rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(length) / period)
    if not vertical:
        arr = arr.transpose(1, 0, 2)
    # Sample each column at (row - shift), linearly between the two nearest rows, edges repeated.
    rows = np.arange(arr.shape[0], dtype=np.float32)[:, None] - shift[None, :].astype(np.float32)
    rows = np.clip(rows, 0, arr.shape[0] - 1)
    lo = np.floor(rows).astype(np.int64)
    hi = np.minimum(lo + 1, arr.shape[0] - 1)
    frac = (rows - lo)[..., None]
    cols = np.arange(arr.shape[1])[None, :]
    out = arr[lo, cols] * (1 - frac) + arr[hi, cols] * frac
    if not vertical:
        out = out.transpose(1, 0, 2)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def render_mix(
    code: str, rng: random.Random, fonts: Sequence[str], size: tuple[int, int] | None = None
) -> Image.Image:
    """Draw ``code`` in a look drawn from ``rng``; an RGB image of ``size`` or of one of MIX_SIZES."""
    if not code:
        raise ValueError("code must not be empty")
    if not fonts:
        raise ValueError("fonts must not be empty")
    fonts = [str(f) for f in fonts]
    w, h = size if size is not None else rng.choice(MIX_SIZES)
    dark = rng.random() < 0.08  # light ink on a dark background, now and then
    bg = _background(rng, w, h, dark)
    lum = bg.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    bg_luminance = float(np.percentile(lum, 95 if dark else 5))
    image = Image.fromarray(bg)
    colours = _text(image, code, rng, fonts, bg_luminance, dark)
    _clutter(image, rng, colours, bg, dark)
    # At most two of warp, blur and JPEG: all three smeared thin strokes away.
    finish = rng.sample(("warp", "blur", "jpeg"), rng.choice((0, 0, 1, 1, 1, 2)))
    if "warp" in finish:
        image = _sine_warp(image, rng)
    if "blur" in finish:
        if rng.random() < 0.3:
            image = image.filter(ImageFilter.SMOOTH)
        else:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if "jpeg" in finish:  # real captchas are often JPEGs: blocks and ringing around the strokes
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(35, 85))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image
