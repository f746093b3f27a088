"""The DevTools driver the UI tour stands on (tests/support/chromium.py), on a local page in
Debian's headless Chromium: a few seconds, so the tour's building blocks fail here first and
not after a four-minute demo. Warnings are errors: the websockets client it uses must be
driven through its current API (``connect()`` as a context manager)."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.support.chromium import BrowserError, Chromium, Clip, chromium_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error")]

PAGE = """<!doctype html><html><body style="margin:0">
<form><label for="a">Tenant ID *</label><input id="a" placeholder="00000000-0000-...">
<label for="b">Client ID</label><input id="b"></form>
<button onclick="document.getElementById('out').innerText = 'clicked ' + this.innerText">Save</button>
<div id="pointer" style="width:100px;height:40px"
  onpointerdown="document.getElementById('out').innerText = 'pointer down'">only a real mouse</div>
<p id="out">not yet</p></body></html>"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    if chromium_path() is None:
        if os.environ.get("P2C_REQUIRE_CHROMIUM"):
            pytest.fail("P2C_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with Chromium(tmp_path / "profile", width=800, height=600, timeout=20) as running:
        yield running


def test_the_driver_reads_clicks_and_shoots_a_page(browser: Chromium, tmp_path: Path) -> None:
    browser.open("data:text/html," + quote(PAGE))
    assert "not yet" in browser.wait_for(["Tenant ID", "Save"], timeout=20)
    assert browser.labels() == ["Tenant ID *", "Client ID"]
    assert browser.evaluate("document.getElementById('a').placeholder") == "00000000-0000-..."
    browser.click_text("Save")
    assert "clicked Save" in browser.wait_for(["clicked Save"], timeout=10)
    with pytest.raises(BrowserError, match="no button, a with the text 'Cancel'"):
        browser.click_text("Cancel")
    # a scripted click() sends no pointer events; the mouse does
    browser.click("#pointer")
    assert "pointer down" not in browser.text()
    browser.mouse_click("#pointer")
    assert "pointer down" in browser.wait_for(["pointer down"], timeout=10)
    browser.type_into("#b", "app-id")
    assert browser.evaluate("document.getElementById('b').value") == "app-id"
    browser.evaluate("document.body.animate([{opacity: 0}, {opacity: 1}], 800)")
    browser.evaluate(
        "document.getElementById('out').animate([{opacity: 0}], {duration: 1000, iterations: Infinity})"
    )
    assert browser.evaluate("document.getAnimations().length") == 2
    browser.settle()  # the finite one ended, the endless one does not hold it up
    assert browser.evaluate("document.getAnimations().length") == 1
    assert _size(browser.screenshot(tmp_path / "page.png")) == (800, 600)  # the emulated viewport
    clip: Clip = {"x": 0, "y": 0, "width": 200, "height": 50, "scale": 1.5}
    assert _size(browser.screenshot(tmp_path / "clip.png", clip=clip)) == (300, 75)
    browser.resize(1000, 500)
    assert browser.evaluate("[window.innerWidth, window.innerHeight]") == [1000, 500]


def _size(png: Path) -> tuple[int, int]:
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height
