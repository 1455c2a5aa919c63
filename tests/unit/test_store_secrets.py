"""Store keys kept in a Secret: re-read on each refresh from a worker thread, the last values
kept (and a warning logged once) while the Secret cannot be read.

The apiserver is replaced by an async function holding the Secret's data; the event loop and
the worker threads are real, as in the daemon (the sandbox scenario with a real apiserver and
S3 server is tests/reliability/test_store_secret_rotation.py).
"""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from federator import errors, policy
from federator.store_secrets import StoreSecrets
from tests.support.configs import sandbox_config

OLD = {"access_key_id": "AKIAOLDKEY0000000001", "secret_access_key": "old-secret-0123456789"}
NEW = {"access_key_id": "AKIANEWKEY0000000002", "secret_access_key": "new-secret-9876543210"}


class FakeApiserver:
    """One Secret; `failing` makes every read raise, `slow_s` delays the answer."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.failing = False
        self.slow_s = 0.0
        self.reads: list[tuple[str, str]] = []

    async def read(self, namespace: str, name: str) -> dict[str, str]:
        self.reads.append((namespace, name))
        await asyncio.sleep(self.slow_s)
        if self.failing:
            raise errors.ClusterUnavailable("onprem", "Cannot connect to host 127.0.0.1:16443")
        return dict(self.data)


async def loaded(api: FakeApiserver, *, timeout_s: float = 5.0) -> StoreSecrets:
    secrets = StoreSecrets(
        api.read, asyncio.get_running_loop(), default_namespace="federator", timeout_s=timeout_s
    )
    await secrets.load(None, "s3-keys")
    return secrets


async def test_a_worker_thread_reads_the_secret_again_and_gets_the_new_keys() -> None:
    api = FakeApiserver(OLD)
    secrets = await loaded(api)
    api.data = NEW
    with capture_logs() as logged:
        seen = await asyncio.to_thread(secrets, None, "s3-keys")
    assert seen == NEW
    assert api.reads == [("federator", "s3-keys")] * 2
    assert [e["event"] for e in logged] == ["store_secret_changed"]
    assert logged[0]["fields"] == ["access_key_id", "secret_access_key"]
    assert "new-secret" not in repr(logged)


async def test_an_unreadable_secret_keeps_the_last_keys_and_warns_once_without_the_secret() -> None:
    api = FakeApiserver(OLD)
    secrets = await loaded(api)
    api.failing = True
    with capture_logs() as logged:
        first = await asyncio.to_thread(secrets, None, "s3-keys")
        second = await asyncio.to_thread(secrets, None, "s3-keys")
        api.failing, api.data = False, NEW
        third = await asyncio.to_thread(secrets, None, "s3-keys")
    assert (first, second, third) == (OLD, OLD, NEW)
    assert [e["event"] for e in logged] == [
        "store_secret_unreadable",
        "store_secret_readable_again",
        "store_secret_changed",
    ]
    warning = logged[0]
    assert warning["log_level"] == "warning"
    assert warning["name"] == "federator/s3-keys"
    assert "Cannot connect" in warning["error"]
    assert all(value not in repr(logged) for value in (*OLD.values(), *NEW.values()))


async def test_an_apiserver_that_does_not_answer_in_time_keeps_the_last_keys() -> None:
    api = FakeApiserver(OLD)
    secrets = await loaded(api, timeout_s=0.2)
    api.slow_s, api.data = 5.0, NEW
    with capture_logs() as logged:
        seen = await asyncio.to_thread(secrets, None, "s3-keys")
    assert seen == OLD
    assert logged[0]["event"] == "store_secret_unreadable"
    assert "no answer within 0.2 s" in logged[0]["error"]


async def test_on_the_loop_thread_the_last_keys_are_returned_without_waiting() -> None:
    api = FakeApiserver(OLD)
    secrets = await loaded(api)
    api.data = NEW
    assert secrets(None, "s3-keys") == OLD  # waiting here for the loop would deadlock
    assert len(api.reads) == 1


async def test_the_policy_resolver_follows_the_secret() -> None:
    """What the stores' refresher calls: `store_access` with this reader as `read_secret`."""
    raw = sandbox_config()
    for cluster in raw["clusters"]:
        if cluster["name"] == "cloud-a":
            cluster["object_store"]["credentials"] = {"kubernetes_secret": {"name": "s3-keys"}}
    config = policy.FederatorConfig.model_validate(raw)
    api = FakeApiserver(OLD)
    secrets = await loaded(api)
    api.data = NEW

    def keys() -> policy.S3Credentials | None:
        return policy.store_access(config, "cloud-a", read_secret=secrets).credentials

    resolved = await asyncio.to_thread(keys)
    assert resolved is not None
    assert resolved.access_key_id == NEW["access_key_id"]
    assert resolved.secret_access_key == NEW["secret_access_key"]
