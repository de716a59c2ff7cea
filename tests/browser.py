"""Launching Debian's Chromium through Playwright, the one way that works on these machines."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def require_chromium() -> None:
    """Skip locally without Chromium; in CI (CI=true) its absence is a failure, never a silent skip."""
    if shutil.which(CHROMIUM) is None or _missing_playwright():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} and playwright are required in CI (.ci/run installs them)")
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium and playwright")


def _missing_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return True
    return False


@contextmanager
def browser_page() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload_file(page: Any, component: str, path: Path, shown: str, seconds: float = 60.0) -> None:
    """Give Gradio's file component `#component` the file `path` and wait until `shown` (a selector) says it
    took it. On a loaded machine (a full suite run) Gradio has both lost the first change event (its input still
    there, nothing shown) and taken more than 15 s to show the name of an upload it had taken (its input gone):
    the file is given again only in the first case, and the wait is long enough for the second."""
    deadline = time.monotonic() + seconds
    files = page.locator(f"#{component} input[type=file]")
    files.set_input_files(str(path))
    while True:
        try:
            page.wait_for_selector(shown, timeout=10_000)
            return
        except Exception:  # playwright's TimeoutError
            if time.monotonic() > deadline:
                raise
            if files.count():  # not taken: give it again
                files.set_input_files(str(path))
