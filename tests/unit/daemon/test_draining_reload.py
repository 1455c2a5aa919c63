"""The daemon as `_assemble` wires it follows `clusters[].draining` at the next pass after a
reload, and keeps the namespaces its on-prem observer watches (fixed at start) over reloads.

Before, the policy had no `draining`, and neither the decision round nor the collection knew
which clusters drain or which namespaces are watched (the copies of an unwatched namespace were
collected as "source deleted")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog.testing
import yaml

from federator.daemon import reloading
from tests.support import configs
from tests.unit.daemon.test_reload_datasets import Daemon


def test_a_reload_reaches_the_round_at_once_and_keeps_the_watched_namespaces(
    tmp_path: Path,
) -> None:
    raw = configs.sandbox_config()
    configs.use_own_keys(raw, tmp_path)
    raw["queues"] = [q for q in raw["queues"] if q["kind"] == "LocalQueue"]  # not every namespace
    daemon = Daemon(tmp_path, raw)
    federation = daemon.parts.federation
    assert federation.decider.draining() == frozenset()
    assert federation.collection.watched_namespaces() == frozenset({"team-a", "team-b"})
    assert federation.collection.onprem is federation.onprem, "its Events go through the fence"

    cloud_b: Any = next(c for c in raw["clusters"] if c["name"] == "cloud-b")
    cloud_b["draining"] = True
    raw["queues"] = [q for q in raw["queues"] if q.get("namespace") != "team-b"]
    daemon.path.write_text(yaml.safe_dump(raw))
    assert daemon.holder.reload()
    reloading.apply_reloaded(daemon.parts)
    assert federation.decider.draining() == frozenset({"cloud-b"})
    # The observer still watches team-b until a restart: its copies are still its own.
    assert federation.collection.watched_namespaces() == frozenset({"team-a", "team-b"})


def _without_cloud_b(raw: dict[str, Any]) -> None:
    """The policy with cloud-b gone, every reference to it too (a valid file)."""
    raw["clusters"] = [c for c in raw["clusters"] if c["name"] != "cloud-b"]
    for tenant in raw.get("tenants", []):
        if "allowed_clusters" in tenant:
            tenant["allowed_clusters"] = [c for c in tenant["allowed_clusters"] if c != "cloud-b"]
    staging = (raw.get("registry") or {}).get("staging") or {}
    staging.pop("cloud-b", None)


def test_a_cloud_removed_by_a_reload_drains_until_the_restart(tmp_path: Path) -> None:
    """Review finding 1: the runbook's last step (remove the drained cloud from the file) made
    a reload rebuild `draining` without it, while the cloud stayed connected and priced until
    the restart: new jobs went there, and the restart then left them unmanaged."""
    raw = configs.sandbox_config()
    configs.use_own_keys(raw, tmp_path)
    cloud_b: Any = next(c for c in raw["clusters"] if c["name"] == "cloud-b")
    cloud_b["draining"] = True
    daemon = Daemon(tmp_path, raw)
    federation = daemon.parts.federation
    assert federation.decider.draining() == frozenset({"cloud-b"})

    _without_cloud_b(raw)
    daemon.path.write_text(yaml.safe_dump(raw))
    assert daemon.holder.reload()
    with structlog.testing.capture_logs() as logged:
        reloading.apply_reloaded(daemon.parts)
    assert "cloud-b" in daemon.parts.clouds, "connected until the restart"
    assert federation.decider.draining() == frozenset({"cloud-b"})
    warned = [e for e in logged if e["event"] == "cloud_removed_until_restart"]
    assert [e["clusters"] for e in warned] == [["cloud-b"]]
