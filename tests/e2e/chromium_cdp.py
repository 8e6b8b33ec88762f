"""Headless Debian Chromium driven over the Chrome DevTools Protocol (CDP), no driver downloads.

`Chromium.launch(user_data_dir)` starts ``chromium --headless`` with ``--remote-debugging-port=0``
and reads the port Chromium picked from ``DevToolsActivePort`` in the user-data dir. One
websocket (``websocket-client``) speaks to the browser target; pages are attached with
``flatten=True``, so each page's commands carry a ``sessionId`` on that same socket.

`Page` offers what a page test needs: `goto`, `evaluate`, `wait_for(js)`, real mouse clicks and
typing through ``Input.*`` (so clicks are user gestures), `set_files` (``DOM.setFileInputFiles``)
and `screenshot`. Console errors and uncaught exceptions are collected in `Page.errors`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

import websocket

__all__ = ["CDPError", "Chromium", "Page", "find_chromium"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-dev-shm-usage", "--mute-audio", "--remote-debugging-port=0", "--window-size=1280,1000",
)


class CDPError(RuntimeError):
    """A CDP command failed, the browser went away, or a wait timed out."""


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
                         "(`apt-get install -y chromium`) or point VATT_CHROMIUM at a Chromium binary")


class _Connection:
    """One websocket to the browser; replies are matched by id, events are queued."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=5000)  # unread events, newest kept

    def _recv(self, deadline: float) -> dict[str, Any]:
        self.ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise TimeoutError from exc

    def call(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._recv(deadline)
            except TimeoutError:
                raise CDPError(f"{method}: no reply within {timeout:.0f} s") from None
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CDPError(f"{method} failed: {reply['error'].get('message')} {reply['error'].get('data', '')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def pump(self, timeout: float) -> None:
        """Read events for up to ``timeout`` seconds into the queue."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self._recv(deadline)
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append(msg)

    def close(self) -> None:
        try:
            self.ws.close()
        except OSError:
            pass


class Page:
    """One tab, attached with a flat session on the browser's connection."""

    def __init__(self, conn: _Connection, session_id: str, target_id: str) -> None:
        self.conn, self.session_id, self.target_id = conn, session_id, target_id
        self.errors: list[str] = []  # uncaught exceptions and console.error lines
        self.console: list[str] = []
        for domain in ("Page", "Runtime", "Log", "DOM"):
            self.call(f"{domain}.enable")

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        result = self.conn.call(method, params, self.session_id, timeout)
        self._drain()
        return result

    def _drain(self) -> None:
        """Move this page's queued events into `errors`/`console` (other events are dropped)."""
        keep: deque[dict[str, Any]] = deque()
        while self.conn.events:
            ev = self.conn.events.popleft()
            if ev.get("sessionId") != self.session_id:
                keep.append(ev)
                continue
            method, params = ev["method"], ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                desc = d.get("exception", {}).get("description") or d.get("text")
                self.errors.append(f"uncaught: {desc} ({d.get('url', '')}:{d.get('lineNumber')})")
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                self.console.append(f"{params.get('type')}: {text}")
                if params.get("type") == "error":
                    self.errors.append(f"console.error: {text}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                self.console.append(f"log {entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
            else:
                keep.append(ev)
        self.conn.events.extend(keep)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for ev in list(self.conn.events):
                if ev.get("sessionId") == self.session_id and ev["method"] == method:
                    self.conn.events.remove(ev)
                    return ev.get("params", {})
            if time.monotonic() >= deadline:
                raise CDPError(f"no {method} within {timeout:.0f} s")
            self.conn.pump(min(0.2, max(0.0, deadline - time.monotonic())))
            self._drain()

    def goto(self, url: str, timeout: float = 30.0) -> None:
        self.conn.events.clear()
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url} failed: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, await_promise: bool = True, timeout: float = 60.0) -> Any:
        """Value of a JS expression (promises awaited), or CDPError with the page's exception."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise CDPError(f"JS error in {expression[:80]!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
        """Poll a JS expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise CDPError(f"timed out after {timeout:.0f} s waiting for {what or expression}")
            time.sleep(interval)

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height}; })()")
        if not box:
            raise CDPError(f"no element matches {selector!r}")
        if box["w"] <= 0 or box["h"] <= 0:
            raise CDPError(f"{selector!r} is not visible (size {box['w']}x{box['h']})")
        return box["x"], box["y"]

    def click(self, selector: str) -> None:
        """A real left click at the element's centre (a user gesture, unlike element.click())."""
        x, y = self._center(selector)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_text(self, selector: str, text: str) -> None:
        """Focus by clicking, then type ``text`` as the keyboard would insert it."""
        self.click(selector)
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            params = dict(type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13, nativeVirtualKeyCode=13)
            if kind == "keyDown":
                params["text"] = "\r"
            self.call("Input.dispatchKeyEvent", **params)

    def set_files(self, selector: str, paths: list[str | os.PathLike]) -> None:
        """Choose files in an <input type=file> (fires its input and change events)."""
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise CDPError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(Path(p).resolve()) for p in paths])

    def close(self) -> None:
        """Close the tab (its events are dropped with it)."""
        self.conn.call("Target.closeTarget", {"targetId": self.target_id})

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Chromium:
    """A headless Chromium process with a fresh profile, and its browser-level CDP connection."""

    def __init__(self, proc: subprocess.Popen, conn: _Connection, user_data_dir: Path, log_path: Path) -> None:
        self.proc, self.conn, self.user_data_dir, self.log_path = proc, conn, user_data_dir, log_path

    @classmethod
    def launch(cls, user_data_dir: str | os.PathLike, *, binary: str | None = None, timeout: float = 60.0) -> Chromium:
        binary = binary or find_chromium()
        user_data_dir = Path(user_data_dir)
        user_data_dir.mkdir(parents=True, exist_ok=True)
        log_path = user_data_dir.parent / f"{user_data_dir.name}.chromium.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        port_file = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if port_file.exists():
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise CDPError(f"{binary} did not open a DevTools port (exit code {proc.poll()}); log:\n{tail}")
            time.sleep(0.05)
        port, path = lines[0], lines[1]
        conn = _Connection(f"ws://127.0.0.1:{port}{path}")
        return cls(proc, conn, user_data_dir, log_path)

    def new_page(self) -> Page:
        target = self.conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.conn.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self.conn, session, target)

    def close(self) -> None:
        try:
            self.conn.call("Browser.close", timeout=5)
        except (CDPError, OSError, websocket.WebSocketException):
            pass
        self.conn.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
