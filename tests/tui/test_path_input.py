"""The path fields and their completion list, in a folder as big as the default data (60,000 files).

Typed slowly (a Pilot press per key, each waiting for the app to settle) or in one burst (every key
handed to the driver at once, as a paste or ``tmux send-keys 'PATH' Enter`` delivers them), Enter reads
exactly what was typed; the list never holds more than its cap; Enter closes it; Escape closes an open
list and, with none open, leaves the screen.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events

from captcha_tui.tui.screens.eval import EvalScreen
from captcha_tui.tui.screens.path_prompt import PathPrompt
from captcha_tui.tui.widgets.path_completion import MAX_SHOWN, PathInput, list_folder, matching

from .helpers import SIZE, make_app, screen_text, training_config, wait_for_exit, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")

FILE_COUNT = 60_000
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _code(index: int) -> str:
    n = index * 7919
    return "".join(ALPHABET[(n // len(ALPHABET) ** k) % len(ALPHABET)] for k in range(4))


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory) -> Iterator[Path]:
    """60,000 empty files named like the default captchas (00042-k3x9.png): names are all that matter.

    On a tmpfs where there is one: creating them takes about a second there, 15 s on an ext4 disk.
    """
    shm = Path("/dev/shm")
    memory = shm.is_dir() and os.access(shm, os.W_OK)
    base = (
        Path(tempfile.mkdtemp(prefix="captcha-tui-", dir=shm)) if memory else tmp_path_factory.mktemp("big")
    )
    folder = base / "captchas"
    folder.mkdir()
    handle = os.open(folder, os.O_RDONLY)
    try:
        for index in range(FILE_COUNT):
            name = f"{index:05d}-{_code(index)}.png"
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=handle))
    finally:
        os.close(handle)
    yield folder
    if memory:
        shutil.rmtree(base)


def _record_requests(screen: EvalScreen) -> list[str]:
    """What the eval screen is asked to read, in order (the real reading goes on as well)."""
    requests: list[str] = []
    read = screen.read

    def recording(request: str) -> None:
        requests.append(request)
        read(request)

    screen.read = recording
    return requests


async def _burst(pilot, *keys: str) -> None:
    """Hand every key to the driver at once, with no pause in between (a paste, tmux send-keys)."""
    for key in keys:
        character = {"enter": "\r", "escape": "\x1b", "ctrl+u": "\x15"}.get(key, key)
        pilot.app._driver.send_message(events.Key(key, character))
    await pilot.pause()


def test_listing_is_sorted_and_matched_by_prefix(tmp_path):
    for name in ("b.png", "a2.png", "a1.png", ".hidden", "c"):
        (tmp_path / name).touch()
    (tmp_path / "a3").mkdir()
    listing = list_folder(tmp_path)
    assert listing.names == ["a1.png", "a2.png", "a3/", "b.png", "c"]
    assert matching(listing, "a") == (["a1.png", "a2.png", "a3/"], 3)
    assert matching(listing, "a", limit=2) == (["a1.png", "a2.png"], 3)
    assert matching(listing, "") == (listing.names, 5)  # dot files only for a "." prefix…
    assert matching(listing, ".") == ([".hidden"], 1)  # …as a shell does
    assert matching(listing, "z") == ([], 0)
    assert list_folder(tmp_path / "missing").names == []


def test_slow_typing_in_a_huge_folder_lists_a_capped_dropdown_and_reads_what_was_typed(
    big_folder, tiny_run, prepared_dataset, tmp_path, monkeypatch
):
    monkeypatch.chdir(big_folder.parent)
    app = make_app(
        training_config(prepared_dataset, tmp_path / "run"), start_screen="eval", model=tiny_run / "best.pt"
    )
    wanted = f"captchas/00042-{_code(42)}.png"

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            requests = _record_requests(screen)
            box = screen.query_one("#image-path", PathInput)
            assert box.has_focus
            for key in "captchas/0":
                await pilot.press(key)
            await wait_until(pilot, lambda: box.list_shown, what="the folder's listing")
            # 10,000 names start with "0": the list holds the cap and says how many more there are.
            assert len(box.dropdown.names) == MAX_SHOWN
            assert box.dropdown.border_subtitle == f"+{10_000 - MAX_SHOWN:,} more"
            assert "00000-" in screen_text(app)
            for key in wanted.removeprefix("captchas/0"):
                await pilot.press(key)
            assert box.value == wanted
            assert len(box.dropdown.names) <= MAX_SHOWN
            await pilot.press("enter")
            await wait_until(pilot, lambda: "empty file" in screen_text(app), what="the answer")
            assert requests == [wanted]

    asyncio.run(scenario())


def test_a_burst_of_keys_with_enter_reads_the_whole_path_at_once(
    big_folder, tiny_run, prepared_dataset, tmp_path, monkeypatch
):
    """The keys open the eval screen and type into it before it has drawn: none may be lost."""
    monkeypatch.chdir(big_folder.parent)
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), model=tiny_run / "best.pt")
    first = f"captchas/00042-{_code(42)}.png"
    second = f"captchas/59999-{_code(59999)}.png"

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            assert app.screen is app.train_screen
            await _burst(pilot, "e", *first, "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, EvalScreen), what="the eval screen")
            screen = app.eval_screen
            message = screen.query_one("#eval-message")
            await wait_until(pilot, lambda: "empty file" in str(message.content), what="the answer")
            assert str(message.content).startswith(Path(first).name)

            requests = _record_requests(screen)
            box = screen.query_one("#image-path", PathInput)
            box.value = "something typed earlier"
            await _burst(pilot, "ctrl+u", *second, "enter")  # clear the field, type, read
            await wait_until(pilot, lambda: requests, what="the second request")
            assert requests == [second]
            assert box.value == second
            await pilot.pause()
            assert not box.list_shown  # Enter closed the list, and the burst's late updates kept it closed

    asyncio.run(scenario())


def test_enter_closes_the_list_escape_closes_it_then_leaves_and_q_quits(
    captcha_dir, tiny_run, prepared_dataset, tmp_path, monkeypatch
):
    monkeypatch.chdir(captcha_dir)
    # Opened from the dashboard (e), so Escape goes back to it (`captcha-tui eval`'s screen quits instead).
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), model=tiny_run / "best.pt")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("e")
            screen = app.eval_screen
            box = screen.query_one("#image-path", PathInput)
            footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
            await wait_until(pilot, lambda: "esc training" in footer(), what="the footer")
            await pilot.press("0", "0", "0")
            await wait_until(pilot, lambda: box.list_shown, what="the list")
            assert "esc close list" in footer()
            await pilot.press("enter")
            await pilot.pause()
            assert not box.list_shown
            assert "esc training" in footer()

            await pilot.press("0")  # typing opens it again
            await wait_until(pilot, lambda: box.list_shown, what="the list again")
            await pilot.press("escape")
            assert not box.list_shown and app.screen is screen
            await pilot.press("escape")
            assert app.screen is app.train_screen
            await pilot.press("q")
            await wait_for_exit(app)

    asyncio.run(scenario())


def test_the_folder_prompt_keeps_escape_for_an_open_list(captcha_dir, tmp_path):
    app = make_app(training_config(tmp_path / "dataset", tmp_path / "run"), captcha_dir.parent)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt), what="the folder prompt")
            box = app.screen.query_one(PathInput)
            box.value = f"{captcha_dir}/0000"
            await wait_until(pilot, lambda: box.list_shown, what="the list")
            # Let the folder listings settle (the suggested folder's may land after the typed one's).
            await pilot.pause(0.5)
            await wait_until(pilot, lambda: box.list_shown, what="the list, settled")
            await pilot.press("escape")
            await wait_until(pilot, lambda: not box.list_shown, what="the list to close")
            assert isinstance(app.screen, PathPrompt)  # the first Escape only closed the list
            await pilot.press("escape")  # now it cancels the prompt
            await wait_until(pilot, lambda: app.screen is app.train_screen, what="the prompt to close")

    asyncio.run(scenario())


def test_a_pasted_path_ending_in_a_newline_is_read_as_if_enter_followed(
    captcha_files, tiny_run, prepared_dataset, tmp_path
):
    """A bracketed paste arrives as one Paste event; its trailing newline is Enter, as in a shell."""
    app = make_app(
        training_config(prepared_dataset, tmp_path / "run"), start_screen="eval", model=tiny_run / "best.pt"
    )
    first, second = (str(path) for path in captcha_files[:2])

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            requests = _record_requests(screen)
            box = screen.query_one("#image-path", PathInput)
            assert box.has_focus
            message = screen.query_one("#eval-message")

            # No newline: the path is only filled in, and waits for Enter (typed).
            pilot.app._driver.send_message(events.Paste(first))
            await wait_until(pilot, lambda: box.value == first, what="the pasted path")
            await pilot.pause()
            assert requests == []
            await pilot.press("enter")
            await wait_until(pilot, lambda: str(message.content).startswith("read "), what="the typed Enter")
            assert requests == [first]

            # With one: read at once, and exactly the line (no newline in the request, nothing doubled).
            box.value = ""
            pilot.app._driver.send_message(events.Paste(f"{second}\n"))
            await wait_until(pilot, lambda: len(requests) == 2, what="the pasted newline")
            assert requests == [first, second] and box.value == second
            await wait_until(
                pilot, lambda: str(message.content).endswith(Path(second).name), what="the pasted read"
            )
            assert not box.list_shown

            # A Windows line end, pasted after text already typed, reads the whole line as well.
            box.value = second[:-4]
            box.cursor_position = len(box.value)
            pilot.app._driver.send_message(events.Paste(".png\r\n"))
            await wait_until(pilot, lambda: len(requests) == 3, what="the pasted CRLF")
            assert requests[-1] == second

    asyncio.run(scenario())
