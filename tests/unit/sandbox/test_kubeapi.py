"""The sandbox's REST client against a local HTTP server that answers like a restarting
apiserver: it waits out "not ready yet", and fails at once on anything else."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from federator.sandbox.kubeapi import KubeApi, KubeError

STORAGE_NOT_READY = {
    "kind": "Status",
    "status": "Failure",
    "message": "storage is (re)initializing",
    "reason": "TooManyRequests",
    "code": 429,
}


class Answers:
    """Serves the given statuses in turn, then 200 with an empty list."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.statuses:
            status = self.statuses.pop(0)
            return web.json_response(STORAGE_NOT_READY, status=status)
        return web.json_response({"kind": "WorkloadList", "items": []})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Answers, KubeApi]]:
    answers = Answers()
    app = web.Application()
    app.router.add_get("/apis/kueue.x-k8s.io/v1beta2/workloads", answers.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield answers, KubeApi(f"http://127.0.0.1:{port}", ssl.create_default_context())
    await runner.cleanup()


async def test_a_restarting_apiserver_is_waited_out(served: tuple[Answers, KubeApi]) -> None:
    answers, api = served
    answers.statuses = [429, 503, 429]
    listed = await api.request("GET", "/apis/kueue.x-k8s.io/v1beta2/workloads")
    assert listed == {"kind": "WorkloadList", "items": []}
    assert answers.calls == 4


async def test_other_errors_fail_at_once(served: tuple[Answers, KubeApi]) -> None:
    answers, api = served
    answers.statuses = [403]
    with pytest.raises(KubeError) as refused:
        await api.request("GET", "/apis/kueue.x-k8s.io/v1beta2/workloads")
    assert refused.value.status == 403
    assert answers.calls == 1
