"""``captcha-tui serve``: the dashboard in a browser, through textual-serve (the Textual project's server).

Each browser tab that connects gets its own dashboard process, started with the options given after
``serve``'s own, exactly as ``captcha-tui [options]`` would start it in a terminal. The server binds to
this machine only unless told otherwise, and says so: whoever reaches the page can start and stop training.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .options import UsageError

DEFAULT_PORT = 8000
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NEEDS_SERVE = (
    "captcha-tui serve needs textual-serve: pip install 'captcha-tui[serve]' "
    "(from a source checkout: pip install '.[serve]')"
)
# Set by textual-serve for the app it starts: the web driver draws to the browser, not to a terminal.
SERVED_ENV = "TEXTUAL_DRIVER"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="localhost",
        help="address to listen on (default: localhost, this machine only; 0.0.0.0: every network)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")


def dashboard_args(tail: list[str]) -> list[str]:
    """The words typed after ``serve`` without serve's own options: the dashboard's, verbatim."""
    own = argparse.ArgumentParser(add_help=False)
    add_arguments(own)
    _, rest = own.parse_known_args(tail)
    return rest


def app_command(app_args: list[str]) -> str:
    """The shell command textual-serve runs for each browser tab: this Python, this package's CLI."""
    return shlex.join([sys.executable, "-m", "captcha_tui.cli", *app_args])


def reach_words(host: str, port: int) -> str:
    """Where the page is, and who can reach it."""
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    if host in LOCAL_HOSTS:
        return f"serving the dashboard at {url} (this machine only: --host 0.0.0.0 lets other machines in)"
    return (
        f"serving the dashboard at {url}, to every machine that can reach {host}: whoever opens it can "
        "start and stop training here (Ctrl+C stops the server)"
    )


def main(args: argparse.Namespace, app_args: list[str], check_dashboard_args) -> int:
    """``check_dashboard_args(app_args)`` raises UsageError for options the dashboard would refuse, so
    a typo is said here once, not in every browser tab."""
    if not 0 < args.port < 65536:
        raise UsageError(f"--port takes 1 to 65535 (got {args.port})")
    check_dashboard_args(app_args)
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UsageError(NEEDS_SERVE) from None
    print(reach_words(args.host, args.port), flush=True)
    Server(app_command(app_args), host=args.host, port=args.port, title="captcha-tui").serve()
    return 0
