"""The daemon as `_assemble` wires it follows `clusters[].draining` at the next pass after a
reload, and keeps the namespaces its on-prem observer watches (fixed at start) over reloads.

Before, the policy had no `draining`, and neither the decision round nor the collection knew
which clusters drain or which namespaces are watched (the copies of an unwatched namespace were
collected as "source deleted")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
