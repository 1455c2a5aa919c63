"""`federator status` lists every cloud: active, draining, or not in the policy any more.

Retiring a cloud is: set `draining: true`, wait until status shows 0 placed jobs there, then
remove it (docs/operations.md). Before, status listed no cluster at all, so nothing said that
a cloud was draining or when it was empty, nor that a record still named a removed one.
"""

from __future__ import annotations

from typing import Any

from federator import policy
from tests.unit.test_cli_status import (
    JOBS,
    config,  # noqa: F401 (the fixture)
    fleet_of,
    job,
    placed,
    rows,
    shown,
)


def draining(base: policy.FederatorConfig, name: str) -> policy.FederatorConfig:
    clusters = [
        c.model_copy(update={"draining": True}) if c.name == name else c for c in base.clusters
    ]
    return base.model_copy(update={"clusters": clusters})


def test_a_draining_cloud_says_so_with_the_jobs_still_placed_there(
    config: policy.FederatorConfig,  # noqa: F811
) -> None:
    answers: dict[str, Any] = {
        JOBS: {
            "items": [
                job("a", "team-a", placed(cluster="cloud-b", pool="h100-spot")),
                job("b", "team-a", placed(cluster="cloud-b", pool="h100-spot", phase="done")),
                job("c", "team-a", placed(cluster="cloud-a")),
            ]
        }
    }
    text = shown(fleet_of(draining(config, "cloud-b"), answers))
    assert "clouds: 2" in text
    found = rows(text)
    assert found["cloud-a"] == ["cloud-a", "active", "1"]
    assert found["cloud-b"] == ["cloud-b", "draining", "1"], "a done job is not placed there"


def test_a_cluster_a_record_names_but_the_policy_does_not_is_listed(
    config: policy.FederatorConfig,  # noqa: F811
) -> None:
    answers = {JOBS: {"items": [job("a", "team-a", placed(cluster="cloud-z", pool="spot"))]}}
    found = rows(shown(fleet_of(config, answers)))
    assert found["cloud-z"] == ["cloud-z", "not in the policy", "1"]
    assert found["cloud-b"] == ["cloud-b", "active", "0"]
