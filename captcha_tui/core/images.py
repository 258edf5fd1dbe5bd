"""Decode any image file into the small uint8 array the model reads, or say in one line why not.

Files are recognised by content, never by extension: the reference data set had GIFs named ``.png``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# Width × height the model reads, as in the reference.
MODEL_IMAGE_SIZE = (56, 24)

# A captcha is a few thousand pixels. A header declaring more than this is a decompression bomb or not a
# captcha; refuse it before decoding rather than after allocating gigabytes.
MAX_PIXELS = 25_000_000

# Truncated files must fail loudly, never decode half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An image that cannot be used. ``str()`` is a one-line reason for the user."""


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Deep grayscale: Pillow's own conversion clips at 255, so scale the real range down instead.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        gray = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become white, the usual captcha background.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def read_rgb(source: str | Path) -> Image.Image:
    """Open ``source`` and return a fully decoded RGB image (first frame of animations)."""
    path = Path(source)
    if not path.exists():
        raise ImageError("no such file")
    if path.is_dir():
        raise ImageError("is a directory, not an image")
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"declares a {width}×{height} image, too large to be a captcha (decompression bomb?)"
                    )
                if width < 1 or height < 1:
                    raise ImageError(f"has no pixels ({width}×{height})")
                img.seek(0)  # animated GIF/PNG: the first frame
                img.load()
                return _to_rgb(img).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"refused: {exc}") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text:
            raise ImageError("truncated or corrupt image data") from None
        raise ImageError(f"cannot decode: {text}") from None


def to_model_array(img: Image.Image, size: tuple[int, int] = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Resize an RGB image to ``size`` (width, height) and return it as a (H, W, 3) uint8 array."""
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def load_image(source: str | Path, size: tuple[int, int] = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Decode ``source`` into a (H, W, 3) uint8 array of ``size``; raises :class:`ImageError`."""
    return to_model_array(read_rgb(source), size)
