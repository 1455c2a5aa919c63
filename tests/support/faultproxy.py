"""A small TCP proxy that injects faults between federator and a server (S3 or kube-apiserver).

Why our own: the faults we need are few and must be switched mid-test from the test's own
thread (slow down, cut every connection, black-hole new ones, answer HTTP 503), and a proxy of
~150 lines on asyncio streams is simpler to trust than driving an external fault proxy. It runs
its own event loop in a daemon thread, so blocking boto3 tests and asyncio tests use it alike.

    with FaultProxy(upstream=("127.0.0.1", 18310)) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        proxy.set_mode(Mode.SLOW, bytes_per_s=1_000_000)
        proxy.set_mode(Mode.RESET)      # every open connection is cut, new ones too
        proxy.set_mode(Mode.PASS)
        proxy.pulse(Mode.HTTP_503, seconds=2.0)   # a fault for a while, from a background thread

Switching to RESET, BLACKHOLE or HTTP_503 cuts every open connection, so a client's pooled
keep-alive connections cannot slip past the new fault: its next request meets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any


class Mode(StrEnum):
    PASS = "pass"  # forward bytes untouched
    SLOW = "slow"  # forward at most `bytes_per_s` in each direction per connection
    RESET = "reset"  # cut open connections and refuse to forward new ones
    BLACKHOLE = "blackhole"  # accept, read, never answer (a partition that times out)
    HTTP_503 = "http503"  # answer every new request with 503 SlowDown, as a throttling store would


_SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 112\r\n"
    b"Connection: close\r\n\r\n"
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Stats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cut: int = 0
    refused: int = 0  # connections answered with 503
    pulses: int = 0  # faults switched on by `pulse`


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], *, listen_port: int = 0) -> None:
        self.upstream = upstream
        self.mode = Mode.PASS
        self.bytes_per_s = 0
        self.stats = Stats()
        self._listen_port = listen_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def set_mode(self, mode: Mode, *, bytes_per_s: int = 0) -> None:
        self.bytes_per_s = bytes_per_s
        self.mode = mode
        if mode in (Mode.RESET, Mode.BLACKHOLE, Mode.HTTP_503):
            self._call(self._cut_all())

    def pulse(self, mode: Mode, *, seconds: float, bytes_per_s: int = 0) -> threading.Thread:
        """Switch to `mode` now and back to PASS after `seconds`, without blocking the caller.

        Safe to call from a callback running on the client's own I/O thread; the returned
        thread can be joined to wait for the fault to be over.
        """
        self.stats.pulses += 1
        self.set_mode(mode, bytes_per_s=bytes_per_s)
        timer = threading.Timer(seconds, self.set_mode, args=(Mode.PASS,))
        timer.daemon = True
        timer.start()
        return timer

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        future.result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self._listen_port, family=socket.AF_INET
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _cut_all(self) -> None:
        for writer in list(self._writers):
            self.stats.cut += 1
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self.mode is Mode.RESET:
            writer.transport.abort()
            return
        if self.mode is Mode.HTTP_503:
            self.stats.refused += 1
            await reader.read(65536)
            writer.write(_SLOW_DOWN)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        self._writers.add(writer)
        if self.mode is Mode.BLACKHOLE:
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer, up=True),
            self._pump(up_reader, writer, up=False),
            return_exceptions=True,
        )
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.mode is Mode.BLACKHOLE:
                    continue
                if self.mode is Mode.SLOW and self.bytes_per_s > 0:
                    await asyncio.sleep(len(chunk) / self.bytes_per_s)
                if up:
                    self.stats.bytes_up += len(chunk)
                else:
                    self.stats.bytes_down += len(chunk)
                writer.write(chunk)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
