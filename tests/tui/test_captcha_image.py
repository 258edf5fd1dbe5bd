"""The half-cell picture draws what textual-image's half cells draw, from lines made once per image."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from captcha_tui.tui.widgets import captcha_image
from captcha_tui.tui.widgets.captcha_image import draw_ahead, halfcell_strips

textual_image = pytest.importorskip("textual_image.renderable.halfcell")


def _cells(lines) -> list[list[tuple[str, object]]]:
    return [[(char, segment.style) for segment in line for char in segment.text] for line in lines]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")
@pytest.mark.parametrize(("width", "height"), [(80, 16), (40, 8), (33, 7)])
def test_the_same_cells_as_textual_image(captcha_files, width, height) -> None:
    path = captcha_files[0]
    console = Console(width=width, height=height, force_terminal=True, color_system="truecolor")
    options = console.options.update(width=width, height=height)
    theirs = console.render_lines(textual_image.Image(str(path), width, height), options, pad=False)
    ours = [list(strip) for strip in halfcell_strips(path, width, height)]
    assert len(ours) == height and _cells(ours) == _cells(theirs)


def test_lines_are_kept_per_version_of_the_file(captcha_files, tmp_path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(captcha_files[0].read_bytes())
    pauses = []
    draw_ahead(path, (20, 4), pause=lambda: pauses.append(1))
    assert len(pauses) == 4  # between lines, for a worker thread to wait on
    first = halfcell_strips(path, 20, 4)
    assert halfcell_strips(path, 20, 4) is first  # drawn ahead: found, not drawn again
    path.write_bytes(captcha_files[1].read_bytes())
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    assert halfcell_strips(path, 20, 4) is not first
    for i in range(captcha_image.DRAWN_KEPT + 5):
        draw_ahead(captcha_files[i % len(captcha_files)], (10 + i, 2))
    assert len(captcha_image._drawn) == captcha_image.DRAWN_KEPT
    draw_ahead(tmp_path / "missing.png", (20, 4))  # nothing to draw: left for show() to report
