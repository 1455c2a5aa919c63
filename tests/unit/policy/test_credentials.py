"""Credential references resolve at the edge, and every failure names what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator.errors import UserError
from federator.policy import (
    cluster_access,
    load_policy,
    parse_policy,
    resolve_credentials,
    store_access,
)
from federator.policy.references import CredentialsRef

REPO = Path(__file__).resolve().parents[3]


def ref(**fields: object) -> CredentialsRef:
    return CredentialsRef.model_validate(fields)


def test_env_credentials_read_the_named_variables() -> None:
    credentials = resolve_credentials(
        ref(env={"access_key_id": "K", "secret_access_key": "S"}),
        where="here",
        environ={"K": "key-id", "S": "secret"},
    )
    assert credentials is not None
    assert (credentials.access_key_id, credentials.secret_access_key) == ("key-id", "secret")
    assert "secret" not in repr(credentials)


def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(UserError, match="here: environment variable S is not set"):
        resolve_credentials(
            ref(env={"access_key_id": "K", "secret_access_key": "S"}),
            where="here",
            environ={"K": "key-id"},
        )


def test_a_json_credentials_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"access_key_id": "id", "secret_access_key": "sk"}))
    credentials = resolve_credentials(ref(file=str(path)), where="here")
    assert credentials is not None
    assert credentials.access_key_id == "id"


def test_an_ini_credentials_file_is_read_by_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = a\naws_secret_access_key = b\n"
        "[burst]\naws_access_key_id = c\naws_secret_access_key = d\n"
    )
    burst = resolve_credentials(ref(file=str(path), profile="burst"), where="here")
    default = resolve_credentials(ref(file=str(path)), where="here")
    assert burst is not None
    assert default is not None
    assert (burst.access_key_id, default.access_key_id) == ("c", "a")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not valid JSON"),
        ('{"access_key_id": "a"}', "has no non-empty 'secret_access_key'"),
        ("[other]\nx = 1\n", r"has no \[default\] section \(sections: other\)"),
    ],
)
def test_a_bad_credentials_file_is_explained(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        resolve_credentials(ref(file=str(path)), where="here")


def test_default_chain_leaves_credentials_to_boto3() -> None:
    assert resolve_credentials(ref(default_chain=True), where="here") is None


def test_a_kubernetes_secret_needs_a_reader() -> None:
    secret = ref(kubernetes_secret={"name": "s3"})
    with pytest.raises(UserError, match="can only be read by the daemon"):
        resolve_credentials(secret, where="here")
    credentials = resolve_credentials(
        secret,
        where="here",
        read_secret=lambda namespace, name: {"access_key_id": "i", "secret_access_key": "s"},
    )
    assert credentials is not None
    assert credentials.secret_access_key == "s"


@pytest.mark.parametrize(
    "fields", [{}, {"env": {"access_key_id": "A", "secret_access_key": "B"}, "file": "x"}]
)
def test_a_reference_must_name_exactly_one_source(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="set exactly one of env, file"):
        ref(**fields)


def test_store_access_for_the_sandbox_reads_its_credentials_file(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (tmp_path / ".sandbox" / "credentials").mkdir(parents=True)
    (tmp_path / ".sandbox" / "credentials" / "cloud-a.json").write_text(
        json.dumps({"access_key_id": "ak", "secret_access_key": "sk"})
    )
    policy = config_dir / "sandbox.yaml"
    policy.write_text((REPO / "config" / "sandbox.yaml").read_text())
    config = load_policy(policy)
    access = store_access(config, "cloud-a")
    assert access.endpoint_url == "http://127.0.0.1:18320"
    assert access.addressing_style == "path"
    assert access.credentials is not None
    assert access.credentials.access_key_id == "ak"
    cluster = cluster_access(config, "cloud-b")
    assert (cluster.kubeconfig, cluster.context) == (
        tmp_path / ".sandbox" / "kubeconfig",
        "cloud-b",
    )


def test_an_unknown_cluster_is_named() -> None:
    config = load_policy(REPO / "config" / "sandbox.yaml")
    with pytest.raises(UserError, match="no cluster named 'cloud-z'"):
        store_access(config, "cloud-z")


def test_a_cluster_without_an_object_store_is_explained() -> None:
    from tests.unit.policy.helpers import BASE

    with pytest.raises(UserError, match="has no object_store"):
        store_access(parse_policy(BASE), "cloud-a")
