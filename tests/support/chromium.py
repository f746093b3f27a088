"""Headless Chromium driven over the Chrome DevTools Protocol, for the UI test.

Debian's ``chromium`` is started with a new empty profile and ``--remote-debugging-port=0``;
it prints the browser's DevTools WebSocket address on stderr, and one page target is driven
through it with the ``websockets`` client Airflow already installs (no npm package, no
browser download), its connection entered as a context manager as websockets' current API
asks. Only what the test needs: open a URL, read the page's visible text, click an element
(by script, or as a real mouse click for widgets that listen to pointer events), type text,
resize the viewport, take a screenshot (whole or clipped).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any, TypedDict

from websockets.sync.client import connect

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from websockets.sync.client import ClientConnection

#: Flags that work on these machines (no GPU, no sandbox in containers, no network beyond loopback).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class Clip(TypedDict):
    """A rectangle of the page to capture, in CSS pixels, rendered ``scale`` times larger."""

    x: float
    y: float
    width: float
    height: float
    scale: float


class BrowserError(RuntimeError):
    """Chromium did not start, or a page did not show what was expected in time."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium with one page; a context manager that stops the browser."""

    def __init__(self, profile: Path, *, width: int = 1440, height: int = 900, timeout: float = 30) -> None:
        self.profile = profile
        self.width, self.height, self.timeout = width, height, timeout
        self._ids = itertools.count(1)
        self._process: subprocess.Popen[str] | None = None
        self._closing = contextlib.ExitStack()
        self._socket: ClientConnection | None = None
        self._session: str | None = None

    # lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        browser = chromium_path()
        if browser is None:
            raise BrowserError("chromium is not installed (apt-get install -y chromium)")
        self.profile.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            self._socket = self._closing.enter_context(
                connect(self._address(), max_size=None, open_timeout=self.timeout)
            )
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            self.call("Page.enable")
            self.resize(self.width, self.height)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _address(self) -> str:
        assert self._process is not None
        assert self._process.stderr is not None
        deadline = time.monotonic() + self.timeout
        seen = []
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            if not line and self._process.poll() is not None:
                break
            seen.append(line)
            if match := LISTENING.search(line):
                return match.group(1)
        raise BrowserError(f"chromium did not open its DevTools port:\n{''.join(seen[-20:])}")

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._closing.close()  # the DevTools connection
        self._socket = None
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    # the protocol ------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One DevTools command on the page (events in between are skipped)."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if self._session is not None and not method.startswith("Target."):
            message["sessionId"] = self._session
        if self._socket is None:
            raise BrowserError(f"{method}: the browser is not running")
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            answer = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if answer.get("id") != ident:
                continue
            if "error" in answer:
                raise BrowserError(f"{method}: {answer['error']}")
            return answer.get("result", {})
        raise BrowserError(f"{method}: no answer in {self.timeout:g}s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    # what the test does ------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def text(self) -> str:
        """The page's visible text (``innerText`` of the body)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def wait_for(self, needles: Iterable[str], *, timeout: float = 60) -> str:
        """Until every needle is in the visible text; returns that text."""
        wanted = list(needles)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(needle in text for needle in wanted):
                return text
            time.sleep(0.5)
        missing = [needle for needle in wanted if needle not in text]
        raise BrowserError(f"not on the page after {timeout:g}s: {missing}\n--- page text ---\n{text[:3000]}")

    def settle(self, *, timeout: float = 10) -> None:
        """Until no finite CSS animation or transition runs (an accordion opening, a dialog
        fading in), so a screenshot does not catch a widget half-way."""
        script = (  # endless ones (a spinner, a running task's pulse) never settle: not those
            "document.getAnimations().filter(a => a.playState === 'running'"
            " && a.effect && a.effect.getTiming().iterations !== Infinity).length"
        )
        deadline = time.monotonic() + timeout
        while self.evaluate(script):
            if time.monotonic() > deadline:
                raise BrowserError(f"still animating after {timeout:g}s")
            time.sleep(0.2)

    def labels(self) -> list[str]:
        """The text of every ``<label>`` on the page (form fields' names)."""
        return list(self.evaluate("[...document.querySelectorAll('label')].map(l => l.innerText.trim())"))

    def click(self, selector: str, *, index: int = 0, timeout: float = 30) -> None:
        """Click the ``index``-th element matching ``selector`` once it is on the page."""
        script = (
            f"(() => {{ const e = document.querySelectorAll({json.dumps(selector)})[{index}];"
            " if (e) e.click(); return !!e; })()"
        )
        deadline = time.monotonic() + timeout
        while not self.evaluate(script):
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"no {selector} [{index}] after {timeout:g}s\n--- page text ---\n{self.text()[:2000]}"
                )
            time.sleep(0.5)

    def click_text(self, text: str, selector: str = "button, a") -> None:
        """Click the first element matching ``selector`` whose visible text is ``text``."""
        found = self.evaluate(
            f"(() => {{ const e = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim() === {json.dumps(text)}); if (e) e.click(); return !!e; }})()"
        )
        if not found:
            page = self.text()[:2000]
            raise BrowserError(f"no {selector} with the text {text!r}\n--- page text ---\n{page}")

    def mouse_click(self, selector: str, *, timeout: float = 30) -> None:
        """Click the first element matching ``selector`` with the mouse, as a user does:
        press and release at its centre (some widgets ignore a scripted ``click()``)."""
        script = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        deadline = time.monotonic() + timeout
        while (point := self.evaluate(script)) is None:
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"no {selector} after {timeout:g}s\n--- page text ---\n{self.text()[:2000]}"
                )
            time.sleep(0.5)
        x, y = point
        for kind, buttons in (("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1},
            )

    def type_into(self, selector: str, text: str) -> None:
        """Focus the first element matching ``selector`` and type ``text`` as keyboard input."""
        found = f"document.querySelector({json.dumps(selector)})"
        focused = self.evaluate(f"(() => {{ const e = {found}; if (e) e.focus(); return !!e; }})()")
        if not focused:
            raise BrowserError(f"no {selector} to type into\n--- page text ---\n{self.text()[:2000]}")
        self.call("Input.insertText", {"text": text})

    def resize(self, width: int, height: int) -> None:
        """The viewport's size in CSS pixels (the window a layout fits itself into)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def screenshot(self, path: Path, *, clip: Clip | None = None) -> Path:
        """The viewport as PNG, or only ``clip`` (page pixels, rendered at its scale)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = clip
        data = self.call("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
