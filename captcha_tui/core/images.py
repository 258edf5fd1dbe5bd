"""Decode any image file into the small uint8 array the model reads, or say in one line why not.

Files are recognised by content, never by extension: the reference data set had GIFs named ``.png``.
Only plain raster formats are decoded (see :data:`FORMATS`): Pillow can also open formats such as EPS,
whose loader runs Ghostscript, and a file named ``.png`` must not reach those.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .units import MiB

# Width × height that datasets are packed at: the generator's own size, so nothing is lost to resizing.
# The reference shrank them to 56×24, where the circles and blur leave much less to read: the same 10 minutes
# of training reach 94.7% there and 97.1% at full size (docs/performance.md). A preset may resize again (model.py).
MODEL_IMAGE_SIZE = (120, 50)

# A captcha is a few thousand pixels. A header declaring more than this is a decompression bomb or not a
# captcha; refuse it before decoding rather than after allocating gigabytes.
MAX_PIXELS = 25_000_000
# Files are read whole (to decode and, in ``prepare``, to spot duplicates); a captcha is a few KiB.
MAX_FILE_BYTES = 32 * MiB

# The formats decoded; anything else is "not an image". (Multi-picture camera JPEGs open as "JPEG" too.)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "TGA")

# Truncated files must fail loudly, never decode half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

TOO_LARGE = "declares an image too large to be a captcha (decompression bomb?)"


class ImageError(ValueError):
    """An image that cannot be used. ``str()`` is a one-line reason for the user.

    ``category`` is the same reason without file-specific details (sizes, decoder messages), for
    counting skipped files by reason.
    """

    def __init__(self, message: str, category: str | None = None):
        super().__init__(message)
        self.category = category or message


# The file names that folder listings take for images (a file named on its own is read by content).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    """Whether a folder listing takes the file ``name`` for an image (by its extension)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


# The first bytes of the formats above: a scraped captcha saved without its extension (`captcha`,
# `get_code.php`, `img.dat`) is still an image.
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_BMP_HEADERS = (12, 40, 52, 56, 108, 124)  # a BMP's DIB header sizes: "BM" alone starts many a text


def _looks_like_image(head: bytes) -> bool:
    if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return True
    return (
        head[:2] == b"BM"
        and len(head) >= 18
        and head[6:10] == b"\x00\x00\x00\x00"
        and int.from_bytes(head[14:18], "little") in _BMP_HEADERS
    )


def is_image_file(path: str | os.PathLike, name: str | None = None) -> bool:
    """Whether a folder listing takes the file at ``path`` for an image: by its extension, or, with none
    of theirs, by its first bytes (a file of a known image extension is not opened: 60,000 are not read)."""
    name = os.path.basename(path) if name is None else name
    if is_image_name(name):
        return True
    if not os.path.isfile(path):  # a named pipe would block the listing
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(18)
    except OSError:
        return False
    return _looks_like_image(head)


def _deep_gray_top(mode: str, arr: np.ndarray) -> float:
    """The value that means white in a deep grayscale image."""
    if mode.startswith("I;16"):
        return 65535.0
    peak = float(arr.max()) if arr.size else 0.0
    if mode == "F" and peak <= 1.0:
        return 1.0  # floats in 0..1
    for top in (255.0, 65535.0):
        if peak <= top:
            return top  # 8-bit or 16-bit data in a 32-bit container: keep its real scale
    return peak


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow image as RGB: transparency onto white, 16-bit and float grayscale scaled (not clipped)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Deep grayscale: Pillow's own conversion clips at 255 (16-bit captchas would come out all white),
        # so scale the real range down instead.
        arr = np.asarray(img, dtype=np.float64)
        gray = np.clip(arr * (255.0 / _deep_gray_top(mode, arr)), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become white, the usual captcha background.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


@functools.cache
def _formats() -> tuple[str, ...]:
    """:data:`FORMATS` this Pillow can open (a build may lack WebP, say; naming it would be an error).
    Worked out once: it is asked for every image decoded."""
    Image.init()
    return tuple(name for name in FORMATS if name in Image.OPEN)


def read_bytes(source: str | Path) -> bytes:
    """The contents of ``source``, or :class:`ImageError` saying why it cannot be an image file."""
    path = Path(source)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except NotADirectoryError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"unreadable file ({exc.strerror or exc})", "unreadable file") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file (a pipe or device?)")
    if info.st_size == 0:
        raise ImageError("empty file (0 bytes)")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(
            f"file is {info.st_size / MiB:.0f} MiB, too big to be a captcha",
            "file too big to be a captcha",
        )
    try:
        data = path.read_bytes()
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"unreadable file ({exc.strerror or exc})", "unreadable file") from None
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data


def decode_rgb(data: bytes) -> Image.Image:
    """Decode an image file's bytes into a fully loaded RGB image (first frame of animations)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decoder chatter (EXIF, palettes) is not the user's problem
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_formats()) as img:
                width, height = img.size
                if width < 1 or height < 1:
                    raise ImageError(f"has no pixels ({width}×{height})", "has no pixels")
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"declares a {width}×{height} image, too large to be a captcha", TOO_LARGE
                    )
                img.seek(0)  # animated GIF/PNG: the first frame
                img.load()
                return to_rgb(img).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            "not an image (unrecognised format; PNG, JPEG, GIF, BMP, WebP, TIFF and PPM are read)",
            "not an image (unrecognised format)",
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(TOO_LARGE) from None
    except MemoryError:
        raise ImageError("too large to decode (out of memory)") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad file, not a crash
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "truncated" in text or isinstance(exc, EOFError):
            raise ImageError("truncated or corrupt image data") from None
        raise ImageError(f"cannot decode: {text[:120]}", "cannot decode (corrupt image data)") from None


def peek_size(source: str | Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header without decoding it; None when it is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source, formats=_formats()) as img:
                return img.size
    except Exception:  # noqa: BLE001 - any failure: decoding later says what is wrong with the file
        return None


def read_rgb(source: str | Path) -> Image.Image:
    """Open ``source`` and return a fully decoded RGB image (first frame of animations)."""
    return decode_rgb(read_bytes(source))


def to_model_array(img: Image.Image, size: tuple[int, int] = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Resize an RGB image to ``size`` (width, height) and return it as a writable (H, W, 3) uint8 array."""
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(img, dtype=np.uint8)  # a copy: np.asarray of a PIL image is read-only


def decode_image(data: bytes, size: tuple[int, int] = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Like :func:`load_image`, for a file's bytes already in memory."""
    return to_model_array(decode_rgb(data), size)


def load_image(source: str | Path, size: tuple[int, int] = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Decode ``source`` into a (H, W, 3) uint8 array of ``size``; raises :class:`ImageError`."""
    return to_model_array(read_rgb(source), size)
