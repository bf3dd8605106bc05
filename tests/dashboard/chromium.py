"""Just enough of the Chrome DevTools Protocol to drive headless Chromium from a test.

No Selenium or Playwright: Chromium starts with --remote-debugging-port, we open its page's
websocket and send `Page.navigate` and `Runtime.evaluate`. Debian's `chromium` package is
enough; `find_chromium()` returns None when there is none, and the test skips saying so.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.waiting import wait_for

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # events arrive in between; we only want our answer
            reply = json.loads(await self._socket.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, *, timeout: float = 20.0) -> Any:
        """Evaluate until truthy (pages load and refresh on their own); the value."""

        async def value() -> Any:
            try:
                return await self.evaluate(expression)
            except RuntimeError:
                return None  # mid-navigation: the context went away

        return await wait_for(value, timeout=timeout, what=expression, interval=0.1)


@asynccontextmanager
async def chromium_page(binary: str, profile: Path) -> AsyncIterator[Page]:
    process = await asyncio.create_subprocess_exec(
        binary,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"

        def port_written() -> bool:
            if process.returncode is not None:
                raise RuntimeError("chromium exited before it opened its debugging port")
            return port_file.exists() and bool(port_file.read_text().strip())

        await wait_for(port_written, timeout=30, what="chromium's debugging port", interval=0.05)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with connect(url, max_size=None) as socket:
            page = Page(socket)
            await page.send("Page.enable")
            yield page
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
