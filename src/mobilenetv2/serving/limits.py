"""Shedding slow and dead clients: a deadline on each request's body (``ShedSlowUploads``, ASGI middleware), a cap on
the uploads streaming in at once (503 beyond it), and a deadline on a new connection's headers (``HTTP_PROTOCOL``,
uvicorn's own protocol with ``HeaderDeadline``). A refused request gets ``Connection: close``: its socket and its
buffered body are freed."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from mobilenetv2.serving.errors import ApiError
from mobilenetv2.serving.state import CONFIG_VARIABLE

HEADER_TIMEOUT_S = 10.0  # a new connection must send its request's headers within this


class ShedSlowUploads:
    """ASGI middleware: a request's body must arrive within ``body_timeout_s`` in all, with no pause longer than
    ``read_timeout_s`` (408 otherwise); at most ``max_uploads`` bodies may be streaming in (more than one message)
    at once, the next gets 503 with Retry-After."""

    def __init__(self, app: ASGIApp, read_timeout_s: float, body_timeout_s: float, max_uploads: int) -> None:
        self.app, self.read_timeout_s, self.body_timeout_s, self.max_uploads = app, read_timeout_s, body_timeout_s, max_uploads
        self.streaming = 0  # uploads now past their first message and not yet complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = Upload(self, receive)
        try:
            await self.app(scope, upload.receive, send)
        finally:
            upload.end()


class Upload:
    """One request's ``receive``, timed and counted against the cap of its ``ShedSlowUploads``."""

    def __init__(self, limits: ShedSlowUploads, receive: Receive) -> None:
        self.limits, self.inner = limits, receive
        self.deadline = time.monotonic() + limits.body_timeout_s
        self.counted = False

    async def receive(self) -> Message:
        wait = min(self.limits.read_timeout_s, self.deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(self.inner(), max(wait, 0.0))
        except asyncio.TimeoutError:
            self.end()
            raise ApiError(408, f"the request's body did not arrive in time (a pause above {self.limits.read_timeout_s:g} s "
                                f"or {self.limits.body_timeout_s:g} s in all)", CLOSE, kind="slow_client") from None
        more = message["type"] == "http.request" and message.get("more_body", False)
        if more and not self.counted:
            if self.limits.streaming >= self.limits.max_uploads:
                raise ApiError(503, f"the server is busy ({self.limits.max_uploads} uploads in flight); retry shortly",
                               {"Retry-After": "1", **CLOSE}, kind="uploads_full")
            self.limits.streaming += 1
            self.counted = True
        elif not more:
            self.end()
        return message

    def end(self) -> None:
        if self.counted:
            self.limits.streaming -= 1
            self.counted = False


CLOSE = {"Connection": "close"}


class HeaderDeadline:
    """Mixed into uvicorn's HTTP protocols: a connection whose first request's headers have not all come within the
    header timeout is closed (``header_timeout_s`` in ``$MOBILENETV2_SERVE_CONFIG``; a client that connects and says
    nothing, or trickles its headers). Idle connections between requests are uvicorn's keep-alive timeout's."""

    header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self.header_timer = self.loop.call_later(header_timeout_s(), self.headers_too_slow)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not None and self.header_timer is not None:  # type: ignore[attr-defined]
            self.header_timer.cancel()
            self.header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def headers_too_slow(self) -> None:
        self.header_timer = None
        if self.cycle is None and not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]


class TimedH11Protocol(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (its fastest) with the header deadline."""

    HTTP_PROTOCOL: type = TimedHttpToolsProtocol
except ImportError:  # httptools is optional: h11 then, as uvicorn itself picks
    HTTP_PROTOCOL = TimedH11Protocol


@functools.lru_cache(maxsize=1)
def header_timeout_s() -> float:
    config = json.loads(os.environ.get(CONFIG_VARIABLE, "{}"))
    return float(config.get("header_timeout_s", HEADER_TIMEOUT_S))
