"""Run a channel's Sanic blueprint on a real local port in a background thread (no model needed)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from sanic import Sanic

from bot.devtools.stack import free_port

Sanic.test_mode = True  # several apps per process


class LocalChannelServer:
    """Serves `channel.blueprint(on_new_message)` under /webhooks/<name>/ like the Rasa server does."""

    def __init__(self, channel, on_new_message, port: int | None = None) -> None:
        self.channel = channel
        self.on_new_message = on_new_message
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as error:  # surfaced in __enter__
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = Sanic(f"channel-test-{uuid.uuid4().hex[:8]}")
        app.blueprint(self.channel.blueprint(self.on_new_message), url_prefix=f"/webhooks/{self.channel.url_prefix()}")
        self._server = await app.create_server(
            host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False
        )
        await self._server.startup()

    def __enter__(self) -> LocalChannelServer:
        self._thread.start()
        self._ready.wait(20)
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            # like a process exit: stop listening and drop every open connection (websockets included)
            self._server.close()
            for connection in list(self._server.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
