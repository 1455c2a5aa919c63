"""The cloud adapter's writes against an in-memory apiserver: what a copy brings with it, and
what it must never touch (a ConfigMap of the same name that federator did not create)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from federator.federation.ports import CopyRequest, OnPremJob
from federator.kube import convert
from federator.kube import errors as kube_errors
from federator.kube.clients import JSON, Cluster
from federator.kube.cloud import CloudCluster, CloudSettings
from federator.kube.onprem import OnPremCluster
from tests.unit.kube import objects as o

INSTANCE = "fed"
SETTINGS_PATH = "/api/v1/namespaces/team-a/configmaps/settings"


class FakeApiserver(Cluster):
    """Objects by path with an apiserver's create, get and merge-patch answers; writes counted."""

    def __init__(self, name: str) -> None:
        super().__init__(name, api=None)  # type: ignore[arg-type]
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        creating: bool = False,
    ) -> dict[str, Any]:
        if method == "GET":
            if path not in self.objects:
                raise kube_errors.NotFound(self.name, 404, path)
            return copy.deepcopy(self.objects[path])
        self.writes.append(f"{method} {path}")
        if method == "POST":
            return self.create(f"{path}/{body['metadata']['name']}", body)
        if method == "PATCH":
            self.objects[path]["metadata"].update(copy.deepcopy(body["metadata"]))
            return copy.deepcopy(self.objects[path])
        raise AssertionError(f"unexpected {method} {path}")

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if path in self.objects:
            raise kube_errors.AlreadyExists(self.name, 409, path)
        stored = copy.deepcopy(dict(body))
        stored["metadata"].setdefault("uid", f"uid-{path}")
        self.objects[path] = stored
        return copy.deepcopy(stored)


def config_map(*, labels: Mapping[str, str], owners: int = 0, lr: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "team-a",
            "resourceVersion": "7",
            "labels": dict(labels),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": f"j{i}", "uid": f"u{i}"}
                for i in range(owners)
            ],
        },
        "data": {"lr": lr},
    }


def job_reading_settings() -> dict[str, Any]:
    volume = {"name": "settings", "configMap": {"name": "settings"}}
    return o.job(pod_spec_extra={"volumes": [volume]})


def cloud_over(api: FakeApiserver) -> CloudCluster:
    """The cloud adapter on `api`, its on-prem side caching the job and holding its ConfigMap."""
    onprem_api = FakeApiserver("onprem")
    onprem_api.objects[SETTINGS_PATH] = config_map(labels={}, lr="0.1")
    onprem = OnPremCluster(onprem_api)
    onprem.jobs.put(job_reading_settings())
    return CloudCluster(api, source=onprem, settings=CloudSettings(instance=INSTANCE))


def cloud_api_holding(settings: dict[str, Any]) -> FakeApiserver:
    api = FakeApiserver("cloud-a")
    api.objects[SETTINGS_PATH] = settings
    return api


def copy_request() -> CopyRequest:
    manifest = job_reading_settings()
    source = OnPremJob(
        key="team-a/train",
        namespace="team-a",
        name="train",
        uid=manifest["metadata"]["uid"],
        resource_version="1001",
        gpus=4,
        record=None,
        spec=convert.pending_job(manifest, workload=None, default_runtime_s=60),
    )
    return CopyRequest(source=source, pool="a100-spot", attempt=1, suspended=False)


def created_jobs(api: FakeApiserver) -> list[str]:
    return [w for w in api.writes if w.startswith("POST /apis/batch/v1/")]


async def test_a_config_map_this_federator_made_is_shared_with_the_new_copy() -> None:
    api = cloud_api_holding(config_map(labels={convert.LABEL_ORIGIN: INSTANCE}, owners=1, lr="0.1"))
    assert await cloud_over(api).create_copy(copy_request())
    [job_path] = [p for p in api.objects if p.startswith("/apis/batch/v1/")]
    owners = api.objects[SETTINGS_PATH]["metadata"]["ownerReferences"]
    assert [ref["uid"] for ref in owners] == ["u0", api.objects[job_path]["metadata"]["uid"]]


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({}, id="the cloud team's own"),
        pytest.param({convert.LABEL_ORIGIN: "federator-prod"}, id="another federator's"),
    ],
)
async def test_a_config_map_someone_else_made_is_left_alone_and_the_job_not_placed(
    labels: dict[str, str],
) -> None:
    """Owned by the copy, it would be garbage-collected with it; and the copy would read it."""
    theirs = config_map(labels=labels, lr="0.5")
    api = cloud_api_holding(copy.deepcopy(theirs))
    with pytest.raises(kube_errors.Refused) as refused:
        await cloud_over(api).create_copy(copy_request())
    assert api.objects[SETTINGS_PATH] == theirs
    assert created_jobs(api) == [], "no copy that would start with the cloud's data"
    message = str(refused.value)
    for named in ("cloud-a", "ConfigMap team-a/settings", "rename", "delete"):
        assert named in message


class RacingApiserver(FakeApiserver):
    """A cloud team creates its ConfigMap while federator creates the copy."""

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if path.startswith("/apis/batch/v1/"):
            self.objects[SETTINGS_PATH] = config_map(labels={}, lr="0.5")
        return super().create(path, body)


async def test_a_config_map_someone_else_made_after_the_check_is_still_never_adopted() -> None:
    racing = RacingApiserver("cloud-a")
    with pytest.raises(kube_errors.Refused, match="ConfigMap team-a/settings"):
        await cloud_over(racing).create_copy(copy_request())
    assert racing.objects[SETTINGS_PATH] == config_map(labels={}, lr="0.5")


async def test_a_job_re_created_under_its_name_is_not_copied_from_the_new_manifest() -> None:
    """Review (2026-12-01, session 15, §9): the manifest was looked up by name, so after a
    fast `kubectl delete` and `apply` of the Job the copy of the *new* Job was created under
    the old one's name and attempt, labelled with the new uid."""
    api = cloud_api_holding(config_map(labels={convert.LABEL_ORIGIN: INSTANCE}, owners=1, lr="0.1"))
    request = copy_request()
    stale = replace(request, source=replace(request.source, uid="uid-of-the-deleted-job"))
    with pytest.raises(kube_errors.NotFound, match="re-created"):
        await cloud_over(api).create_copy(stale)
    assert created_jobs(api) == []
