"""Fixtures for the report tests: synthetic run directories and a headless Chromium.

The browser is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
ending in NUL on file descriptors 3 and 4), so one Chromium loads every page in turn and each page is read
as soon as its plots have rendered. One process per page with `--dump-dom --virtual-time-budget` works
too (and is the fallback) but costs a browser start and a fresh parse of plotly.js per page.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from reports_fakes import make_fake_run

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-unsafe-swiftshader",  # software WebGL for the parallel-coordinates plot (no GPU here)
    "--hide-scrollbars",
)
# True once the page has loaded and every plot on it has rendered (the pages count them on <body>).
_READY_JS = ("document.readyState === 'complete' && location.href === %s && "
             "(document.body.getAttribute('data-plots') || '0') === "
             "(document.body.getAttribute('data-plots-rendered') || '0')")


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    return make_fake_run(tmp_path, n_trials=40)


@dataclass
class Page:
    url: str
    dom: str
    screenshot: Path
    ready: bool  # False: the plots had not all rendered within the timeout


class _DevTools:
    """The smallest DevTools-protocol client: one browser, one tab, calls answered in order."""

    def __init__(self, binary: str, flags: Sequence[str]) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen([binary, *flags, "--remote-debugging-pipe", "about:blank"],
                                     preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:  # anything else is an event we did not ask for
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Chromium:
    binary: str
    workdir: Path
    window: tuple[int, int] = (1400, 900)
    _devtools: _DevTools | None = field(default=None, repr=False)

    def _flags(self, profile: str) -> list[str]:
        return [*CHROMIUM_FLAGS, f"--user-data-dir={self.workdir / profile}",
                f"--window-size={self.window[0]},{self.window[1]}"]

    def open(self, urls: Sequence[str], *, timeout: float = 60) -> list[Page]:
        """Load each URL, wait until its plots have rendered, and return its DOM and a screenshot."""
        try:
            if self._devtools is None:
                self._devtools = _DevTools(self.binary, self._flags("profile"))
        except (OSError, EOFError, TimeoutError, RuntimeError) as exc:
            warnings.warn(f"DevTools pipe unavailable ({exc}); using one chromium --dump-dom per page", stacklevel=2)
            return [self._dump_dom(url, i) for i, url in enumerate(urls)]
        return [self._load(url, i, timeout) for i, url in enumerate(urls)]

    def _screenshot_path(self, url: str, i: int) -> Path:
        return self.workdir / f"page{i:02d}-{Path(url.split('#')[0]).stem}.png"

    def _load(self, url: str, i: int, timeout: float) -> Page:
        tools = self._devtools
        assert tools is not None
        tools.call("Page.navigate", {"url": "about:blank"}, session=tools.session)  # a new document each time,
        tools.call("Page.navigate", {"url": url}, session=tools.session)  # even for page.html#fragment
        deadline, ready = time.monotonic() + timeout, False
        while not ready and time.monotonic() < deadline:
            ready = bool(tools.evaluate(_READY_JS % json.dumps(url)))
            if not ready:
                time.sleep(0.05)
        dom = tools.evaluate("document.documentElement.outerHTML") or ""
        png = tools.call("Page.captureScreenshot", {"format": "png"}, session=tools.session)["data"]
        shot = self._screenshot_path(url, i)
        shot.write_bytes(base64.b64decode(png))
        return Page(url=url, dom=dom, screenshot=shot, ready=ready)

    def _dump_dom(self, url: str, i: int) -> Page:
        shot = self._screenshot_path(url, i)
        command = [self.binary, *self._flags(f"profile{i}"), "--virtual-time-budget=10000", f"--screenshot={shot}",
                   "--dump-dom", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        return Page(url=url, dom=result.stdout, screenshot=shot, ready=result.returncode == 0)

    def close(self) -> None:
        if self._devtools is not None:
            self._devtools.close()
            self._devtools = None


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    binary = _find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    workdir = tmp_path / "browser"
    workdir.mkdir()
    browser = Chromium(binary=binary, workdir=workdir)
    yield browser
    browser.close()
