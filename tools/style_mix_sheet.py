"""Draw docs/style-mix.png: twelve captchas of the ``mix`` style, as ``generate --style mix`` draws them.

python -m tools.style_mix_sheet [docs/style-mix.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from captcha_tui.core.generator import _image_rng, mix_font_paths, random_code
from captcha_tui.core.style_mix import MIX_CASE, MIX_LENGTH, render_mix

SEED, COUNT, COLUMNS, CELL, PAD = 0, 12, 4, (200, 70), 6


def main(out: Path) -> None:
    fonts = [str(p) for p in mix_font_paths()]
    rows = -(-COUNT // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * (CELL[0] + PAD) + PAD, rows * (CELL[1] + PAD) + PAD), "white")
    for index in range(COUNT):
        # The same RNG as image `index` of `generate --style mix --seed 0`, so the sheet shows that set.
        rng = _image_rng(SEED, index)
        image = render_mix(random_code(rng, MIX_LENGTH, case=MIX_CASE), rng, fonts)
        col, row = index % COLUMNS, index // COLUMNS
        x = PAD + col * (CELL[0] + PAD) + (CELL[0] - image.width) // 2
        y = PAD + row * (CELL[1] + PAD) + (CELL[1] - image.height) // 2
        sheet.paste(image, (x, y))
    # A 256-colour palette: a third of the bytes, and no difference to see at this size.
    sheet.quantize(256).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/style-mix.png"))
