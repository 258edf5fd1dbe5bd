"""``python -m captcha_tui …``: the command line, as the ``captcha-tui`` script runs it. It is also what
torchrun starts on every process: ``torchrun --nproc-per-node 2 -m captcha_tui train --headless …``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
