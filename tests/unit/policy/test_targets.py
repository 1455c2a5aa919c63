"""`--check-files`: what the policy points at must exist here, reported at the pointing line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator.policy import PolicyFileError, load_policy

POLICY = """\
clusters:
  - name: onprem
    role: onprem
    connection: {kubeconfig: kubeconfig, context: onprem}
    object_store:
      credentials: {file: keys.json}
  - name: cloud-a
    role: cloud
    connection: {kubeconfig: kubeconfig, context: cloud-a}
    object_store:
      credentials:
        env: {access_key_id: FEDERATOR_TEST_KEY_ID, secret_access_key: FEDERATOR_TEST_SECRET}
    pools:
      - name: a100-spot
        gpu_type: A100
        gpus_per_node: 8
        capacity_type: spot
        max_gpus: 16
        price: {source: catalog, file: vms.csv, instance_type: p4d.24xlarge, region: us-east-1}
queues:
  - {kind: ClusterQueue, name: onprem}
"""
KUBECONFIG = "apiVersion: v1\nkind: Config\ncontexts:\n  - name: onprem\n    context: {}\n"


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDERATOR_TEST_KEY_ID", "id")
    monkeypatch.setenv("FEDERATOR_TEST_SECRET", "secret")
    (tmp_path / "kubeconfig").write_text(
        KUBECONFIG.replace("onprem\n", "onprem\n  - name: cloud-a\n    context: {}\n", 1)
    )
    (tmp_path / "keys.json").write_text(
        json.dumps({"access_key_id": "a", "secret_access_key": "b"})
    )
    (tmp_path / "vms.csv").write_text("InstanceType\n")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def located(path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path, check_files=True)
    return [(e.line, e.field_path, e.message) for e in caught.value.errors]


def test_everything_in_place_passes(policy: Path) -> None:
    load_policy(policy, check_files=True)


def test_without_the_flag_nothing_is_looked_up(policy: Path) -> None:
    (policy.parent / "keys.json").unlink()
    load_policy(policy)


def test_a_missing_credentials_file(policy: Path) -> None:
    (policy.parent / "keys.json").unlink()
    [(line, path, message)] = located(policy)
    assert (line, path) == (6, "clusters[0].object_store.credentials.file")
    assert message.endswith("keys.json does not exist")


def test_a_credentials_file_without_keys(policy: Path) -> None:
    (policy.parent / "keys.json").write_text("{}")
    [(line, path, message)] = located(policy)
    assert (line, path) == (6, "clusters[0].object_store.credentials.file")
    assert "has no non-empty 'access_key_id'" in message


def test_an_unset_environment_variable(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDERATOR_TEST_SECRET")
    [(line, path, message)] = located(policy)
    assert (line, path) == (12, "clusters[1].object_store.credentials.env")
    assert message == "environment variable FEDERATOR_TEST_SECRET is not set or empty"


def test_a_missing_context(policy: Path) -> None:
    (policy.parent / "kubeconfig").write_text(KUBECONFIG)
    [(line, path, message)] = located(policy)
    assert (line, path) == (9, "clusters[1].connection.context")
    assert "has no context 'cloud-a' (contexts: onprem)" in message


def test_a_missing_catalog(policy: Path) -> None:
    (policy.parent / "vms.csv").unlink()
    [(line, path, _)] = located(policy)
    assert (line, path) == (19, "clusters[1].pools[0].price.file")


def test_a_kubeconfig_that_is_not_one(policy: Path) -> None:
    (policy.parent / "kubeconfig").write_text("- a list\n")
    errors = located(policy)
    assert [(line, path) for line, path, _ in errors] == [
        (4, "clusters[0].connection.kubeconfig"),
        (9, "clusters[1].connection.kubeconfig"),
    ]
