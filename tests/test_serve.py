"""``captcha-tui serve``: the dashboard through textual-serve, fetched and driven over its websocket."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from captcha_tui import serve
from captcha_tui.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_server_says_who_can_reach_it():
    assert serve.reach_words("localhost", 8000) == (
        "serving the dashboard at http://localhost:8000 (this machine only: --host 0.0.0.0 lets other "
        "machines in)"
    )
    anyone = serve.reach_words("0.0.0.0", 9000)
    assert anyone.startswith("serving the dashboard at http://0.0.0.0:9000, to every machine")
    assert "whoever opens it can start and stop training" in anyone
    assert serve.reach_words("::1", 8000).startswith(
        "serving the dashboard at http://[::1]:8000 (this machine only"
    )


def test_the_dashboards_options_are_handed_on_as_typed():
    tail = ["--host", "0.0.0.0", "--data", "my data", "--port=9000", "--device", "cpu"]
    assert serve.dashboard_args(tail) == ["--data", "my data", "--device", "cpu"]


def test_each_tab_runs_this_pythons_dashboard_with_the_options_given():
    command = serve.app_command(["--data", "my data", "--device", "cpu"])
    assert command.startswith(f"{sys.executable} -m captcha_tui.cli ") or command.startswith(
        f"'{sys.executable}' -m captcha_tui.cli "
    )
    assert command.endswith("--data 'my data' --device cpu")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--port", "0"], "--port takes 1 to 65535 (got 0)"),
        (["serve", "--device", "banana"], "unknown device 'banana'"),
        (["serve", "--port", "8001", "--epochs", "0"], "epochs must be at least 1 (got 0)"),
    ],
)
def test_options_the_dashboard_would_refuse_are_refused_before_serving(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error: ") and words in err


def test_another_command_or_options_before_serve_are_refused(capsys):
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        main(["serve", "eval", "x.png"])
    assert exited.value.code == 2 and "unrecognized arguments: eval x.png" in capsys.readouterr().err
    assert main(["--data", "d", "serve"]) == 2  # would be dropped: the tab's dashboard gets what follows
    assert "--data before `serve`" in capsys.readouterr().err


def test_without_textual_serve_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert main(["serve"]) == 2
    assert "pip install 'captcha-tui[serve]' (from a source checkout: pip install '.[serve]')" in (
        capsys.readouterr().err
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_browser_tab_gets_the_dashboard(tmp_path):
    pytest.importorskip("textual_serve")
    aiohttp = pytest.importorskip("aiohttp")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "captcha_tui.cli", "serve", "--port", str(port), "--data", "no-data-here"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    async def browse() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:  # the server is up once the page answers
                try:
                    async with session.get(f"http://localhost:{port}/") as page:
                        html = await page.text()
                        break
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            screen = b""
            # What the page's script does: open the websocket at a size; the dashboard draws into it.
            async with session.ws_connect(f"http://localhost:{port}/ws?width=120&height=40") as ws:
                while b"no-data-here" not in screen or b"captcha-tui" not in screen:
                    message = await asyncio.wait_for(
                        ws.receive(), timeout=max(1.0, deadline - time.monotonic())
                    )
                    if message.type == aiohttp.WSMsgType.BINARY:
                        screen += message.data
                    elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
                await ws.send_str('["stdin", "q"]')  # quits the tab's dashboard, as in a terminal
            return html, screen.decode("utf-8", "replace")

    try:
        html, screen = asyncio.run(browse())
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert f"http://localhost:{port}/static/js/textual.js" in html
    # The dashboard itself: its title, and the dataset it was told to use (missing here).
    assert "captcha-tui" in screen and "no-data-here" in screen
    assert out.startswith(f"serving the dashboard at http://localhost:{port} (this machine only")
