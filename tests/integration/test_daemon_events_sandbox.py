"""`federator run` on the sandbox tells a waiting job what it decided, once per piece of news.

One plain suspended Job (nothing but federator will ever start it) is re-decided every 5 s.
First the policy's `burst.min_pending_gpus` is above what waits: it stays, many passes in a
row, and carries exactly one `FederatorStay` Event. Then the policy file is edited under the
running daemon (a reload): no minimum, and an hourly budget of $0 with `at_cap: hold`, so the
job is held for a cloud pool: a `FederatorHold` Event, again once, and the budget crossing its
warning line posts one `FederatorBudgetWarning` Event on the state namespace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator.replay import kueue_gpu_job
from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from tests.support import configs
from tests.support.daemon import Daemon, daemons, wait_until

pytestmark = pytest.mark.sandbox

PASSES = 4  # re-decisions to watch in each phase (the sandbox policy decides every 5 s)


def plain_job(namespace: str) -> dict[str, Any]:
    """A suspended Job outside Kueue that may burst: it waits for federator alone."""
    job = kueue_gpu_job(name="waits", namespace=namespace, queue="-", gpus=8, duration_s=30)
    job["metadata"]["labels"] = {"federator.io/burst": "allow"}
    return job


def events_in(api: KubeApi, namespace: str, reason: str) -> list[dict[str, Any]]:
    listing = run_sync(api.request("GET", f"/api/v1/namespaces/{namespace}/events"))
    return [e for e in listing["items"] if e.get("reason") == reason]


def rewrite(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_stay_and_hold_are_told_once_each_and_a_budget_warning_once(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespace = namespace_factory(prefix="evt")

    def gated(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace
        config["queues"] = [{"kind": "Namespace", "name": namespace}]
        config["burst"]["min_pending_gpus"] = 1000

    instance = f"evt-{int(time.time()) % 100000}"
    path = configs.scenario_config(tmp_path, instance=instance, namespaces=[namespace], edit=gated)
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")
    run_sync(api.apply(plain_job(namespace)))

    with daemons(Daemon(path, tmp_path / "daemon.log")) as (daemon,):

        def decided(kind: str) -> float:
            return daemon.metric("federator_decisions_total", decision=kind) or 0.0

        wait_until(
            lambda: events_in(api, namespace, "FederatorStay"), timeout_s=90, what="a Stay Event"
        )
        stays_at_first_event = decided("stay")
        wait_until(
            lambda: decided("stay") >= stays_at_first_event + PASSES,
            timeout_s=60,
            what=f"{PASSES} more stay decisions",
        )
        stays = events_in(api, namespace, "FederatorStay")

        def held(config: dict[str, Any]) -> None:
            config["burst"]["min_pending_gpus"] = 0
            config["budgets"] = {"usd_per_hour": 0, "at_cap": "hold", "warn_at_fraction": 0.8}

        rewrite(path, held)
        wait_until(
            lambda: events_in(api, namespace, "FederatorHold"), timeout_s=60, what="a Hold Event"
        )
        holds_at_first_event = decided("hold")
        wait_until(
            lambda: decided("hold") >= holds_at_first_event + PASSES,
            timeout_s=60,
            what=f"{PASSES} more hold decisions",
        )
        holds = events_in(api, namespace, "FederatorHold")
        stays_after = events_in(api, namespace, "FederatorStay")
        warnings = events_in(api, namespace, "FederatorBudgetWarning")
        warned = daemon.metric("federator_budget_warnings_total", scope="hour")
        record = (run_sync(api.get("Job", "waits", namespace)) or {})["metadata"].get(
            "annotations", {}
        )

    assert [e["involvedObject"]["name"] for e in stays] == ["waits"]
    assert stays[0]["message"].startswith("Staying in the on-prem queue: 8 GPUs wait, ")
    assert "min_pending_gpus" in stays[0]["message"]
    assert len(stays_after) == 1, "the stay was told once, across many passes"
    # A hold names its pool; it is news again only if the pool changes (other tests share the
    # clouds, so the best pool may move): never two Events for the same target.
    targets = [e["message"].split(":")[0] for e in holds]
    assert holds
    assert len(targets) == len(set(targets)), [e["message"] for e in holds]
    assert all(e["involvedObject"]["name"] == "waits" for e in holds)
    assert "would exceed" in holds[0]["message"]
    assert len(warnings) == 1
    assert warnings[0]["type"] == "Warning"
    assert warnings[0]["message"].startswith("cloud spend in scope hour is $0.00 of its $0.00 cap")
    assert warned == 1.0
    assert "federator.io/placement" not in record, "a held job is not placed"
