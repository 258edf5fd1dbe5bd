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


async def _page(port: int, timeout: float = 60.0) -> str:
    """The served page's HTML, once the server answers."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://localhost:{port}/") as page:
                    return await page.text()
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


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
        html = await _page(port)
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
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


ARTIFACTS = Path(os.environ.get("CAPTCHA_TUI_ARTIFACTS", ROOT / ".test-artifacts"))


async def _screenshot_when_drawn(chromium: str, url: str, drawn, timeout: float = 90.0) -> bytes:
    """Open ``url`` in headless Chromium and return a PNG screenshot once ``drawn(picture)`` says the
    app is on it (Chromium's own --screenshot fires at page load, before the app's process has drawn
    anything). Driven over the DevTools protocol with aiohttp, which textual-serve already needs."""
    import base64
    import io
    import json

    import aiohttp
    from PIL import Image

    port = _free_port()
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        + ["--window-size=1280,800", f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                        page = next(t for t in await answer.json() if t["type"] == "page")
                        break
                except (aiohttp.ClientError, StopIteration):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                calls = 0

                async def call(method: str, **params) -> dict:
                    nonlocal calls
                    calls += 1
                    await ws.send_str(json.dumps({"id": calls, "method": method, "params": params}))
                    while True:
                        reply = json.loads((await ws.receive()).data)
                        if reply.get("id") == calls:
                            return reply.get("result", {})

                await call("Page.navigate", url=url)
                while True:
                    taken = await call("Page.captureScreenshot", format="png")
                    if "data" not in taken:  # refused while the page is still navigating
                        await asyncio.sleep(0.5)
                        continue
                    shot = base64.b64decode(taken["data"])
                    if drawn(Image.open(io.BytesIO(shot)).convert("RGB")) or time.monotonic() > deadline:
                        return shot
                    await asyncio.sleep(1.0)
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def test_the_dashboard_shows_in_headless_chromium(tmp_path):
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    pytest.importorskip("textual_serve")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "captcha_tui.cli", "serve", "--port", str(port), "--data", "no-data-here"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def orange(picture) -> int:
        # The first-run panel's orange border and words ("No dataset yet"): nothing else is orange.
        colours = picture.getcolors(maxcolors=1 << 24)
        return sum(n for n, (r, g, b) in colours if r > 200 and 120 < g < 190 and b < 90)

    try:
        asyncio.run(_page(port))  # up before the browser asks, or it shows its own error page
        shot = asyncio.run(
            _screenshot_when_drawn(chromium, f"http://localhost:{port}/", lambda p: orange(p) > 500)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / "serve-dashboard.png"
    kept.write_bytes(shot)  # the test's artifact: what a browser showed
    import io

    from PIL import Image

    assert orange(Image.open(io.BytesIO(shot)).convert("RGB")) > 500, f"no dashboard drawn (see {kept})"
