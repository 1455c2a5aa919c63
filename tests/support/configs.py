"""Per-test copies of `config/sandbox.yaml`: a unique instance, lease and port, own queues.

Scenarios run `federator run` as a process against the shared sandbox while other tests (and
perhaps the demo) run too; a copy with its own `instance`, Lease, HTTP port and LocalQueue
namespaces acts only on the scenario's own jobs and never collides with another run's state.
Relative paths of the original file are made absolute, so the copy can live in `tmp_path`.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SANDBOX_CONFIG = REPO / "config" / "sandbox.yaml"
_PATH_KEYS = frozenset({"kubeconfig", "file", "interruption_data"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sandbox_config() -> dict[str, Any]:
    """config/sandbox.yaml as a dict, with every relative file path made absolute."""
    loaded: dict[str, Any] = _absolute(
        yaml.safe_load(SANDBOX_CONFIG.read_text()), SANDBOX_CONFIG.parent
    )
    return loaded


def _absolute(node: Any, base: Path) -> Any:
    if isinstance(node, dict):
        return {
            k: str((base / v).resolve())
            if k in _PATH_KEYS and isinstance(v, str) and not v.startswith("/")
            else _absolute(v, base)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute(v, base) for v in node]
    return node


def scenario_config(
    tmp_path: Path,
    *,
    instance: str,
    namespaces: Sequence[str],
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Write a copy of the sandbox policy that watches only `namespaces` (LocalQueue `q`)."""
    config = copy.deepcopy(sandbox_config())
    config["instance"] = instance
    config["queues"] = [{"kind": "LocalQueue", "namespace": ns, "name": "q"} for ns in namespaces]
    config["tenants"] = [
        {
            "name": "tests",
            "namespaces": list(namespaces),
            "allowed_clusters": ["cloud-a", "cloud-b"],
            "budget_usd_per_month": 20000,
        }
    ]
    config["leader_election"]["lease_name"] = f"{instance}-leader"
    config["server"]["port"] = free_port()
    if edit is not None:
        edit(config)
    path = tmp_path / f"{instance}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def use_own_keys(config: dict[str, Any], tmp_path: Path) -> None:
    """Point every store's credentials at a key file in tmp_path, so a unit test that loads a
    scenario config does not need the sandbox's keys (made by `federator sandbox up`)."""
    keys = tmp_path / "store-keys.json"
    keys.write_text('{"access_key_id": "id", "secret_access_key": "secret"}')
    for cluster in config["clusters"]:
        if cluster.get("object_store"):
            cluster["object_store"]["credentials"] = {"file": str(keys)}


def offline_sandbox_policy(tmp_path: Path) -> Path:
    """config/sandbox.yaml written to tmp_path for tests that run no sandbox: its stores on dead
    ports, its metrics server on port 1, and every file it names (kubeconfig, credentials) in
    tmp_path, so loading it and building clients works and any request fails fast."""
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "config" / "sandbox.yaml").read_text()
    for port, dead in (("18310", "1"), ("18320", "2"), ("18330", "3")):
        text = text.replace(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dead}")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    text = text.replace("../.sandbox/kubeconfig", str(tmp_path / "kubeconfig"))
    (tmp_path / "credentials").mkdir()
    for name in ("onprem", "cloud-a", "cloud-b"):
        keys = {"access_key_id": "id", "secret_access_key": "secret"}
        (tmp_path / "credentials" / f"{name}.json").write_text(json.dumps(keys))
    text = text.replace("../.sandbox/credentials/", f"{tmp_path / 'credentials'}/")
    text = text.replace("../../shared/", f"{repo.parent / 'shared'}/")
    text = text.replace("port: 18090", "port: 1")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path
