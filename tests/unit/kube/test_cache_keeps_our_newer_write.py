"""The cache never goes back to a version older than our own write.

Before, `Reflector.put` refused an older object but a late watch event or a list taken before
the write replaced it unconditionally: the placement record just written vanished from the
cache until the watch caught up, and a collector looking meanwhile saw a copy with no record.
"""

from __future__ import annotations

from typing import Any

from federator.kube.clients import Cluster
from federator.kube.watching import JOBS, Reflector


def job(name: str, version: str, record: str = "") -> dict[str, Any]:
    annotations = {"federator.io/record": record} if record else {}
    meta = {"namespace": "team-a", "name": name, "resourceVersion": version}
    return {"metadata": {**meta, "annotations": annotations}}


def reflector() -> Reflector:
    return Reflector(Cluster("onprem", api=None), JOBS)  # type: ignore[arg-type]


def version_of(r: Reflector, name: str) -> str:
    return str(r.items[f"team-a/{name}"]["metadata"]["resourceVersion"])


def test_a_late_event_older_than_our_write_does_not_undo_it() -> None:
    r = reflector()
    r.put(job("j1", "101", record="placed"))

    r._apply({"type": "MODIFIED", "raw_object": job("j1", "100")})

    assert version_of(r, "j1") == "101"
    r._apply({"type": "MODIFIED", "raw_object": job("j1", "101", record="placed")})
    r._apply({"type": "MODIFIED", "raw_object": job("j1", "102")})
    assert version_of(r, "j1") == "102", "the watch still moves the cache forward"


def test_a_late_delete_of_the_object_we_replaced_keeps_our_new_one() -> None:
    r = reflector()
    r.put(job("copy", "60"))  # created again under the same name

    r._apply({"type": "DELETED", "raw_object": job("copy", "55")})  # the old one's deletion

    assert version_of(r, "copy") == "60"
    r._apply({"type": "DELETED", "raw_object": job("copy", "61")})
    assert "team-a/copy" not in r.items


def test_versions_that_are_not_integers_leave_the_last_arrival_in_the_cache() -> None:
    r = reflector()
    r.put(job("j1", "b"))
    r._apply({"type": "MODIFIED", "raw_object": job("j1", "a")})
    assert version_of(r, "j1") == "a"


class ListAnswer:
    """An apiserver whose list was taken (at version 100) before our write landed."""

    def __init__(self, r: Reflector, *listed: dict[str, Any]) -> None:
        self.reflector = r
        self.listed = list(listed)

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.reflector.put(job("j1", "101", record="placed"))  # our write, while it is on its way
        self.reflector.put(job("j2", "99"))  # one the list already holds a later version of
        return {"metadata": {"resourceVersion": "100"}, "items": self.listed}


async def test_a_list_taken_before_our_write_keeps_the_write_and_drops_what_was_deleted() -> None:
    r = reflector()
    r.items = {"team-a/gone": job("gone", "40")}  # deleted while we were not watching
    r.cluster = ListAnswer(r, job("j1", "90"), job("j2", "100"))  # type: ignore[assignment]

    await r.relist()

    assert (version_of(r, "j1"), version_of(r, "j2")) == ("101", "100")
    assert "team-a/gone" not in r.items
    assert r.resource_version == "100"


async def test_only_writes_made_while_the_list_was_on_its_way_outlive_it() -> None:
    """A list is the truth about everything written before it was sent, even where the
    versions say otherwise (an etcd restored from a backup counts from lower ones again)."""
    r = reflector()
    r.put(job("before", "120"))
    r.cluster = ListAnswer(r)  # type: ignore[assignment]

    await r.relist()

    assert "team-a/before" not in r.items
    assert "team-a/j2" not in r.items, "older than the list, which does not hold it: deleted"
    assert version_of(r, "j1") == "101"
