"""Readiness: wait until a server answers, or fail fast with its log tail.

A wait ends in one of three ways: the probe passes; the process dies (we say so at once
instead of waiting out the timeout); or the bounded timeout passes. `up` therefore never
hangs, and every failure message carries the last lines of the server's log.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from federator.errors import FederatorError
from federator.sandbox.supervisor import Running, is_alive, log_tail

Probe = Callable[[], Awaitable[bool]]


class ComponentFailed(FederatorError):
    """A sandbox server died or did not become ready; the message carries its log tail."""

    def __init__(self, key: str, reason: str, log: Path | str | None) -> None:
        message = f"sandbox: {key} {reason}"
        if log:
            message += f"\n--- last lines of {log} ---\n{log_tail(log)}"
        super().__init__(message)
        self.key = key


async def wait_ready(
    key: str,
    probe: Probe,
    *,
    running: Running | None,
    timeout_s: float,
    interval_s: float = 0.25,
) -> float:
    """Poll `probe` until it passes; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if running is not None and not is_alive(running):
            raise ComponentFailed(key, "exited while starting", running.log)
        try:
            if await probe():
                return time.monotonic() - started
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        if time.monotonic() >= deadline:
            log = running.log if running is not None else None
            raise ComponentFailed(key, f"was not ready after {timeout_s:.0f} s", log)
        await asyncio.sleep(interval_s)


def client_ssl(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """TLS for loopback servers: verify against the sandbox CA when given, else accept any."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def http_probe(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    expect_body: str | None = None,
    any_status: bool = False,
) -> Probe:
    """A probe that GETs `url`: passes on 200 (or any answer), optionally checking the body."""

    async def probe() -> bool:
        timeout = aiohttp.ClientTimeout(total=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=ssl_context if ssl_context is not None else False) as response,
        ):
            if any_status:
                return True
            if response.status != 200:
                return False
            if expect_body is None:
                return True
            return expect_body in await response.text()

    return probe
