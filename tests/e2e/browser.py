"""Headless Debian Chromium for the web-page test, driven by Playwright's Python package.

Playwright is launched with `executable_path` on Debian's `chromium` (it never downloads a browser
of its own: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD is set and `playwright install` is never run).

Why Playwright and not Selenium: both were tried here on the same six cases against Debian's
Chromium 156 (Playwright 1.65; Selenium 4.51 with Debian's chromium-driver 156, the same build), and
both passed them all (the Selenium adapter once its evaluate ran statements through eval). Playwright
is kept because it needs no second Debian package, runs every case in a fresh context of one browser
(Selenium: a chromedriver and a browser per case), evaluates statements as the tests write them, and
reports uncaught exceptions and console errors as events as they happen; Selenium gets them only
from chromedriver's `goog:loggingPrefs` log buffer, a Chromium-only extension. The price: Debian's
Chromium and Playwright's protocol client are not released together, so a far newer Chromium could
need a newer `playwright` (Selenium's chromium-driver always matches the browser exactly).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Playwright, sync_playwright

__all__ = ["Chromium", "Page", "find_chromium"]

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str:
    """Path of a Chromium binary (VATT_CHROMIUM overrides), or an AssertionError saying how to install it."""
    override = os.environ.get("VATT_CHROMIUM")
    if override:
        return override
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("the browser test needs Chromium: install Debian's package "
                         "(scripts/system-deps.sh, or `apt-get install -y chromium`) or point VATT_CHROMIUM at one")


class Page:
    """One tab: the few actions the test takes, with real input events, and the page's errors."""

    def __init__(self, page: Any) -> None:
        self._page = page
        self.errors: list[str] = []  # uncaught exceptions and console.error lines
        self.console: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._on_console)

    def _on_console(self, msg: Any) -> None:
        self.console.append(f"{msg.type}: {msg.text}")
        # Chromium reports a failed request (the favicon's 404) as a console error of its own; that is
        # the network's log, not the page's code calling console.error, so it is kept as console only
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(f"console.error: {msg.text}")

    def goto(self, url: str, timeout: float = 30.0) -> None:
        self._page.goto(url, timeout=timeout * 1000, wait_until="load")

    def evaluate(self, expression: str) -> Any:
        return self._page.evaluate(expression)

    def wait_for(self, expression: str, timeout: float = 30.0, what: str = "") -> Any:
        """The expression's first truthy value, polled in the page; an AssertionError naming `what`."""
        try:
            return self._page.wait_for_function(expression, timeout=timeout * 1000, polling=100).json_value()
        except Exception as exc:  # playwright's TimeoutError, or the page went away
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or expression} ({exc})") from None

    def click(self, selector: str) -> None:
        self._page.click(selector)

    def type_text(self, selector: str, text: str) -> None:
        self._page.click(selector)
        self._page.keyboard.type(text)

    def press_enter(self) -> None:
        self._page.keyboard.press("Enter")

    def set_files(self, selector: str, paths: list[str | os.PathLike]) -> None:
        self._page.set_input_files(selector, [str(p) for p in paths])

    def screenshot(self, path: str | os.PathLike) -> Path:
        self._page.screenshot(path=str(path), full_page=True)
        return Path(path)

    def close(self) -> None:
        self._page.close()


class Chromium:
    """Debian's Chromium under Playwright; one browser, a fresh context (profile) per tab."""

    def __init__(self, playwright: Playwright, browser: Browser) -> None:
        self._playwright = playwright
        self._browser = browser

    @classmethod
    def launch(cls, *, binary: str | None = None, timeout: float = 60.0) -> Chromium:
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=binary or find_chromium(), headless=True,
                                                 timeout=timeout * 1000, args=["--no-sandbox", "--mute-audio"])
        except BaseException:
            playwright.stop()
            raise
        return cls(playwright, browser)

    def new_page(self) -> Page:
        return Page(self._browser.new_context(viewport={"width": 1280, "height": 900}).new_page())

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()
