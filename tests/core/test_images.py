"""Decoding whatever users point us at: each file either works or gets a one-line reason."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captcha_tui.core import images
from captcha_tui.core.images import (
    MODEL_IMAGE_SIZE,
    ImageError,
    decode_image,
    is_image_file,
    load_image,
    read_rgb,
)

SHAPE = (MODEL_IMAGE_SIZE[1], MODEL_IMAGE_SIZE[0], 3)


@pytest.fixture(scope="module")
def captcha(captcha_files) -> Image.Image:
    with Image.open(captcha_files[0]) as img:
        return img.convert("RGB")


def _check(array: np.ndarray) -> np.ndarray:
    assert array.shape == SHAPE and array.dtype == np.uint8
    assert array.flags.writeable  # torch.from_numpy warns on read-only arrays
    return array


def _reference(img: Image.Image) -> np.ndarray:
    return np.asarray(
        img.convert("RGB").resize(MODEL_IMAGE_SIZE, Image.Resampling.BILINEAR), dtype=np.float64
    )


def _png_with_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose IHDR then claims ``width``×``height`` (CRC fixed, so only the size lies)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts after signature+length+type
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _error(path) -> ImageError:
    with pytest.raises(ImageError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 200
    return caught.value


# ---- files that work ---------------------------------------------------------------------------------


def test_a_plain_captcha(captcha_files, captcha) -> None:
    array = _check(load_image(captcha_files[0]))
    assert np.abs(array - _reference(captcha)).mean() < 1


def test_gif_named_png_is_read_by_content(tmp_path, captcha) -> None:
    path = tmp_path / "00001-abcd.png"
    captcha.save(path, format="GIF")
    assert path.read_bytes()[:4] == b"GIF8"
    array = _check(load_image(path))
    with Image.open(path) as gif:
        assert np.abs(array - _reference(gif)).mean() < 1


def test_animated_gif_gives_the_first_frame(tmp_path, captcha) -> None:
    path = tmp_path / "anim.gif"
    first = captcha.convert("P")
    others = [Image.new("RGB", captcha.size, colour).convert("P") for colour in ("red", "blue")]
    first.save(path, save_all=True, append_images=others, duration=50, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 3
    array = _check(load_image(path))
    assert np.abs(array - _reference(first)).mean() < 2


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path, captcha) -> None:
    gray8 = np.asarray(captcha.convert("L"), dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.frombytes("I;16", captcha.size, (gray8 * 257).astype("<u2").tobytes()).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    array = _check(load_image(path))
    expected = _reference(captcha.convert("L"))
    assert 40 < array.mean() < 250  # not all white (clipped) nor black
    assert abs(array.mean() - expected.mean()) < 3
    assert np.abs(array - expected).mean() < 2


def test_thirty_two_bit_grayscale_keeps_its_scale(tmp_path) -> None:
    path = tmp_path / "i32.tif"
    Image.fromarray(np.full((10, 20), 128, dtype=np.int32), "I").save(path)
    assert 120 < _check(load_image(path)).mean() < 136  # 8-bit data in a 32-bit container stays mid-grey


@pytest.mark.parametrize("mode", ["P", "L", "1", "LA", "CMYK"])
def test_other_modes(tmp_path, captcha, mode) -> None:
    img = captcha.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else captcha.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    array = _check(load_image(path))
    assert abs(array.mean() - _reference(img).mean()) < 12


def test_cmyk_jpeg(tmp_path, captcha) -> None:
    path = tmp_path / "cmyk.jpg"
    captcha.convert("CMYK").save(path, format="JPEG", quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    array = _check(load_image(path))
    assert np.abs(array - _reference(captcha)).mean() < 12


def test_transparent_becomes_white(tmp_path) -> None:
    rgba = np.zeros((50, 120, 4), dtype=np.uint8)  # black everywhere…
    rgba[:, 60:, 3] = 255  # …opaque on the right half only
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    array = _check(load_image(path))
    assert (array[:, :60] == 255).all()
    assert (array[:, 60:] == 0).all()


def test_palette_with_transparency(tmp_path, captcha) -> None:
    img = captcha.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.info["transparency"] = 0
    path = tmp_path / "ptrans.png"
    img.save(path, transparency=0)
    _check(load_image(path))


def test_one_pixel_image(tmp_path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    array = _check(load_image(path))
    assert (array == np.array([10, 20, 30], dtype=np.uint8)).all()


def test_path_with_spaces_and_non_ascii(tmp_path, captcha) -> None:
    path = tmp_path / "ö 验证码 folder" / "ö 验证码 00001-abcd.png"
    path.parent.mkdir()
    captcha.save(path)
    _check(load_image(path))
    _check(load_image(str(path)))


def test_decode_bytes_matches_load(captcha_files) -> None:
    data = captcha_files[0].read_bytes()
    assert np.array_equal(decode_image(data), load_image(captcha_files[0]))
    assert read_rgb(captcha_files[0]).mode == "RGB"


def test_other_sizes(captcha_files) -> None:
    assert load_image(captcha_files[0], (120, 50)).shape == (50, 120, 3)


# ---- files that do not, each with a one-line reason ---------------------------------------------------


def test_missing_file(tmp_path) -> None:
    assert str(_error(tmp_path / "nope.png")) == "no such file"
    assert str(_error(tmp_path / "nope" / "deeper.png")) == "no such file"


def test_directory(tmp_path) -> None:
    (tmp_path / "folder.png").mkdir()
    assert "directory" in str(_error(tmp_path / "folder.png"))


def test_zero_byte_file(tmp_path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in str(_error(tmp_path / "empty.png"))


def test_text_file_named_png(tmp_path) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels\n")
    assert "not an image" in str(_error(tmp_path / "notes.png"))


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png(tmp_path, captcha_files, keep) -> None:
    data = captcha_files[0].read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep)])
    assert "truncated" in str(_error(path))


def test_truncated_header(tmp_path, captcha_files) -> None:
    path = tmp_path / "stub.png"
    path.write_bytes(captcha_files[0].read_bytes()[:30])
    _error(path)


def test_truncated_jpeg(tmp_path, captcha) -> None:
    buffer = io.BytesIO()
    captcha.save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _error(path)


@pytest.mark.parametrize("size", [(100_000, 100_000), (6_000, 6_000)])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, size) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_size(*size))
    assert path.stat().st_size < 100
    error = _error(path)
    assert "too large" in str(error) and "decompression bomb" in error.category


def test_eps_named_png_is_not_handed_to_ghostscript(tmp_path) -> None:
    path = tmp_path / "sneaky.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    assert "not an image" in str(_error(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_not_read(tmp_path) -> None:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    assert "not a regular file" in str(_error(path))  # and no hang


def test_huge_file_is_not_read(tmp_path, monkeypatch, captcha_files) -> None:
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    assert "too big" in str(_error(captcha_files[0]))


def test_bytes_that_are_no_image() -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"\x89PNG but not really")
    with pytest.raises(ImageError):
        decode_image(os.urandom(64))


def test_a_pillow_without_some_formats(monkeypatch, captcha_files) -> None:
    monkeypatch.setattr(images, "FORMATS", images.FORMATS + ("NOSUCHFORMAT",))
    _check(load_image(captcha_files[0]))


def test_image_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_image(tmp_path / "missing.png")


def test_a_file_without_an_image_extension_is_taken_for_one_by_its_first_bytes(tmp_path, captcha) -> None:
    """Scraped captchas are often saved as `captcha`, `get_code.php` or `img.dat`: eval and the label
    screen listed only known extensions, and missed them."""
    formats = (("captcha", "PNG"), ("get_code.php", "JPEG"), ("img.dat", "GIF"), ("w", "WEBP"), ("b", "BMP"))
    for name, fmt in formats:
        captcha.save(tmp_path / name, format=fmt)
        assert is_image_file(tmp_path / name), name
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "bm-notes").write_text("BM12.png,abcd\nBM13.png,efgh\n")  # "BM" starts it, no BMP
    (tmp_path / "labels.csv").write_text("file,label\n")
    (tmp_path / "empty").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    assert not any(
        is_image_file(tmp_path / n)
        for n in ("notes.txt", "bm-notes", "labels.csv", "empty", "pipe", "folder")
    )
    assert is_image_file(tmp_path / "gone.png")  # a known extension is not opened
