"""`plan` and `run --once` stop at once, exit 2, when the on-prem apiserver is not there.

Before, a stopped cluster cost the full 60 s wait for the caches, then exit 1. The apiservers
here are real sockets on 127.0.0.1: a bound socket that does not listen refuses connections,
and a small aiohttp server answers /version. Only the wait between tries is faked, so the
tests count tries instead of timing them, and can start the server between two tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from federator import cli, daemon
from federator.kube import clients
from tests.support.configs import offline_sandbox_policy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REAL_PROBE = clients.probe


async def version(_: web.Request) -> web.StreamResponse:
    return web.json_response({"major": "1", "minor": "36", "gitVersion": "v1.36.3"})


async def unauthorized(_: web.Request) -> web.StreamResponse:
    status = {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized", "code": 401}
    return web.json_response(status, status=401)


class Apiserver:
    """An HTTP server on an already bound socket, run by its own thread and event loop, so
    it can be started while the command under test holds the test's thread."""

    def __init__(self, sock: socket.socket, handler: Handler) -> None:
        self.sock, self.handler = sock, handler
        self.loop = asyncio.new_event_loop()
        self.released = asyncio.Event()  # lets a handler that holds its answer go
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/version", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.released.set)
            if self.runner is not None:
                cleanup = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
                cleanup.result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.thread.is_alive():
            # Closed, or its ResourceWarning ("unclosed event loop") lands in whichever later
            # test collects it: test_daemon_connections' unclosed-session check failed so.
            self.loop.close()


@pytest.fixture
def bound() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that is ours but not listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@contextlib.contextmanager
def apiserver(sock: socket.socket, handler: Handler, *, started: bool = True) -> Iterator[Any]:
    server = Apiserver(sock, handler)
    if started:
        server.start()
    try:
        yield server
    finally:
        server.stop()


def policy_for(tmp_path: Path, sock: socket.socket) -> Path:
    """The offline sandbox policy with its on-prem context pointing at `sock`'s port."""
    config = offline_sandbox_policy(tmp_path)
    port = sock.getsockname()[1]
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: onprem\n"
        f"clusters: [{{name: onprem, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: onprem, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: onprem, context: {cluster: onprem, user: onprem}}]\n"
    )
    return config


class Spies:
    """Records the waits between tries and whether the command went on to its cache wait."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **probe_settings: Any) -> None:
        self.waits: list[float] = []
        self.between_tries: Callable[[int], None] = lambda _: None
        self.went_on: list[str] = []
        probe = functools.partial(REAL_PROBE, sleep=self.sleep, **probe_settings)
        monkeypatch.setattr(clients, "probe", probe)
        monkeypatch.setattr(daemon, "plan", self.plan)
        monkeypatch.setattr(daemon, "run", self.run)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.between_tries(len(self.waits))

    async def plan(self, *_: Any) -> tuple[list[Any], Any]:
        self.went_on.append("plan")
        return [], SimpleNamespace(skipped="")

    async def run(self, *_: Any, **__: Any) -> int:
        self.went_on.append("run")
        return 0


COMMANDS = [["plan"], ["run", "--once"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_on_prem_apiserver_stops_the_command_after_3_tries_without_the_cache_wait(
    command: list[str],
    bound: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spies = Spies(monkeypatch)
    config = policy_for(tmp_path, bound)
    code = cli.main([*command, "--config", str(config)])
    err = capsys.readouterr().err
    port = bound.getsockname()[1]
    assert code == 2, err
    assert err == (
        f"federator: error: cluster onprem (http://127.0.0.1:{port}) refused the connection "
        f"3 times over 5 s (clusters.onprem.connection.kubeconfig: {tmp_path / 'kubeconfig'}, "
        "context onprem); is it running? For the local sandbox: federator sandbox up\n"
    )
    assert spies.waits == [2.5, 2.5]  # 3 tries over 5 s
    assert spies.went_on == []  # the cache wait was never entered


@pytest.mark.parametrize("command", COMMANDS)
def test_an_apiserver_back_after_two_refusals_lets_the_command_go_on(
    command: list[str],
    bound: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spies = Spies(monkeypatch)
    with apiserver(bound, version, started=False) as server:
        spies.between_tries = lambda waits: server.start() if waits == 2 else None
        code = cli.main([*command, "--config", str(policy_for(tmp_path, bound))])
    assert code == 0, capsys.readouterr().err
    assert spies.waits == [2.5, 2.5]  # refused twice, answered at the third try
    assert spies.went_on == [command[0]]


@pytest.mark.parametrize("command", COMMANDS)
def test_credentials_the_apiserver_refuses_stop_the_command_naming_the_kubeconfig(
    command: list[str],
    bound: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spies = Spies(monkeypatch)
    port = bound.getsockname()[1]  # asked first: the server closes the socket when it stops
    with apiserver(bound, unauthorized):
        code = cli.main([*command, "--config", str(policy_for(tmp_path, bound))])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err == (
        f"federator: error: cluster onprem (http://127.0.0.1:{port}) refused our credentials "
        "(401 Unauthorized: Unauthorized): check the user's token or client certificate in "
        f"clusters.onprem.connection.kubeconfig: {tmp_path / 'kubeconfig'}, context onprem\n"
    )
    assert spies.waits == []  # an answer is an answer: no second try
    assert spies.went_on == []


def test_an_apiserver_that_does_not_answer_in_time_still_gets_the_cache_wait(
    bound: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No answer may be a slow apiserver: the command waits for its caches, as before."""

    async def held(_: web.Request) -> web.StreamResponse:
        await server.released.wait()
        return await version(_)

    spies = Spies(monkeypatch, timeout_s=0.2)
    with apiserver(bound, held) as server:
        code = cli.main(["plan", "--config", str(policy_for(tmp_path, bound))])
    assert code == 0, capsys.readouterr().err
    assert spies.waits == []  # no retry either: only "nobody there" is tried again
    assert spies.went_on == ["plan"]


def test_the_daemon_does_not_probe_it_rides_outages_out(
    bound: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spies = Spies(monkeypatch)
    probed: list[Any] = []
    monkeypatch.setattr(clients, "probe", lambda *a, **k: probed.append(a))
    assert cli.main(["run", "--config", str(policy_for(tmp_path, bound))]) == 0
    assert probed == []
    assert spies.went_on == ["run"]


async def test_a_name_that_does_not_resolve_is_tried_3_times_and_said(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'https://apiserver.federator-test.invalid'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: onprem, context: {cluster: c, user: u}}]\n"
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    cluster = await clients.connect(tmp_path / "kubeconfig", "onprem")
    try:
        found = await REAL_PROBE(cluster, sleep=sleep)
    finally:
        await cluster.close()
    assert (found.nothing_there, found.tries, waits) == ("did not resolve", 3, [2.5, 2.5])
    assert found.server == "https://apiserver.federator-test.invalid"
