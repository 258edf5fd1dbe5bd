"""``python -m captcha_tui …``: the command line, as the ``captcha-tui`` script runs it. It is also what
torchrun starts on every process: ``torchrun --nproc-per-node 2 -m captcha_tui train --headless …``."""

import sys


def run() -> int:
    """The ``captcha-tui`` script: the command line, with Ctrl+C while it loads (torch takes a second or
    two) ending as Ctrl+C does later, with no traceback."""
    try:
        from .cli import main

        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
