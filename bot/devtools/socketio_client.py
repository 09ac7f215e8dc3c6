"""A minimal Socket.IO (v5, Engine.IO v4) client over a websocket, like the browser widget uses.

python-socketio's AsyncClient can't do websockets with the pinned aiohttp 3.9.5 and hangs ~25 s on
disconnect over polling, so the channel tests and the benchmark talk the protocol directly:
"0{...}" open, "40" connect, "42[event, data]" events, "2"/"3" ping/pong, "41" disconnect.
Like other non-browser clients it sends no Origin header unless given one (`origin=`, as a page would).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import websockets


class MiniSocketIO:
    def __init__(self, base_url: str, path: str = "/socket.io", origin: str | None = None) -> None:
        self.url = base_url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + (
            f"{path}/?EIO=4&transport=websocket"
        )
        self.origin = origin
        self.ws: Any = None
        self.queues: dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.reader: asyncio.Task | None = None

    async def connect(self, timeout: float = 10.0) -> MiniSocketIO:
        self.ws = await asyncio.wait_for(websockets.connect(self.url, max_size=2**22, origin=self.origin), timeout)
        opening = await asyncio.wait_for(self.ws.recv(), timeout)
        assert opening.startswith("0"), opening
        await self.ws.send("40")
        while True:
            packet = await asyncio.wait_for(self.ws.recv(), timeout)
            if packet.startswith("40"):
                break
            if packet.startswith("44"):
                raise ConnectionRefusedError(packet)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for packet in self.ws:
                if packet == "2":
                    await self.ws.send("3")
                elif packet.startswith("42"):
                    event, *args = json.loads(packet[2:])
                    self.queues[event].put_nowait(args[0] if args else None)
        except websockets.ConnectionClosed:
            pass

    async def emit(self, event: str, data: Any) -> None:
        await self.ws.send("42" + json.dumps([event, data]))

    async def receive(self, event: str, timeout: float = 15.0) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), timeout)

    async def session(self, session_id: Any = None, timeout: float = 10.0) -> str:
        await self.emit("session_request", {"session_id": session_id})
        return await self.receive("session_confirm", timeout)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await self.ws.send("41")
            except websockets.ConnectionClosed:
                pass
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()

    async def __aenter__(self) -> MiniSocketIO:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
