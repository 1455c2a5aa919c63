"""Object-store keys kept in Kubernetes Secrets, re-read while the daemon runs.

A store whose policy says `credentials: {kubernetes_secret: ...}` takes its keys from a Secret
on the on-prem cluster. The keys rotate like file keys do (`storage.rotation`): the stores'
refreshable credentials call the policy's resolver every `REREAD_EVERY_S` seconds from the
worker thread that is about to sign a request, and that resolver calls this reader, which
GETs the Secret again through the on-prem client.

Why a GET on refresh rather than a watch: the refresher already decides when keys may be
stale, so one GET per store per refresh period is all a rotation needs, with no stream to keep
open, resume and reconcile for the life of the process. The pickup delay is one refresh period
either way, because the signer only asks at refresh time.

Threads: the store edge is synchronous and runs in worker threads, the Kubernetes client is
async and lives on the daemon's event loop, so a read is handed to the loop
(`run_coroutine_threadsafe`) and waited for at most `READ_TIMEOUT_S`. Called on the loop's own
thread (a store built lazily inside a coroutine) waiting would deadlock, so the last values
read are returned there.

Failures: a read that fails after start (apiserver unreachable, RBAC, Secret deleted for a
moment) keeps the last values read and logs `store_secret_unreadable` once per outage, naming
the Secret and the error, never a value; the next refresh tries again. Every value read is
registered with the log redactor before anything else can see it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from federator import errors, logs

log = structlog.get_logger(__name__)

READ_TIMEOUT_S = 5.0  # a refresh waits this long for the apiserver, then keeps the old keys

# (namespace, name) -> the Secret's decoded data; raises when it cannot be read.
ReadSecret = Callable[[str, str], Coroutine[Any, Any, dict[str, str]]]


class StoreSecrets:
    """The Secrets object stores take their keys from, read at start and again on refresh.

    An instance is the `policy.credentials.SecretReader` the stores are built with.
    """

    def __init__(
        self,
        read: ReadSecret,
        loop: asyncio.AbstractEventLoop,
        *,
        default_namespace: str,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self._read = read
        self._loop = loop
        self._default_namespace = default_namespace
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], dict[str, str]] = {}
        self._failing: set[tuple[str, str]] = set()

    async def load(self, namespace: str | None, name: str) -> dict[str, str]:
        """The first read, at start; its errors reach the caller (the store is unusable)."""
        key = (namespace or self._default_namespace, name)
        data = await self._read(*key)
        self._remember(key, data)
        return data

    def __call__(self, namespace: str | None, name: str) -> Mapping[str, str]:
        """The Secret's data as the apiserver has it now, or as last read if it cannot say."""
        key = (namespace or self._default_namespace, name)
        if not self._may_wait_for_the_loop():
            return self._last_read(key)
        try:
            data = self._read_on_the_loop(key)
        # The client's own errors (apiserver down, 403, 404), no answer in time, or a loop
        # that closed under us (shutdown): each keeps the keys that work now.
        except (errors.FederatorError, TimeoutError, RuntimeError, OSError) as error:
            self._note_failure(key, str(error) or type(error).__name__)
            return self._last_read(key)
        self._remember(key, data)
        return data

    def _read_on_the_loop(self, key: tuple[str, str]) -> dict[str, str]:
        future = asyncio.run_coroutine_threadsafe(self._read(*key), self._loop)
        try:
            return future.result(timeout=self._timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {self._timeout_s:g} s") from None

    def _may_wait_for_the_loop(self) -> bool:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        return running is not self._loop and self._loop.is_running()

    def _last_read(self, key: tuple[str, str]) -> dict[str, str]:
        with self._lock:
            return dict(self._last.get(key, {}))

    def _remember(self, key: tuple[str, str], data: dict[str, str]) -> None:
        logs.register_secrets(data.values())
        with self._lock:
            before = self._last.get(key)
            self._last[key] = dict(data)
            recovered = key in self._failing
            self._failing.discard(key)
        secret = f"{key[0]}/{key[1]}"
        if recovered:
            log.info("store_secret_readable_again", name=secret)
        if before is not None and before != data:
            changed = sorted(k for k in data.keys() | before.keys() if data.get(k) != before.get(k))
            log.info("store_secret_changed", name=secret, fields=changed)

    def _note_failure(self, key: tuple[str, str], why: str) -> None:
        with self._lock:
            first = key not in self._failing
            self._failing.add(key)
        if first:
            log.warning(
                "store_secret_unreadable",
                name=f"{key[0]}/{key[1]}",  # not `secret=`: the redactor masks that
                error=why,
                action="keeping the keys read last; tried again at the next refresh",
            )
