"""The three ways a policy file connects to a cluster, and start-up errors that leak nothing.

No cluster is needed: clients are built but never sent a request (kubernetes-asyncio connects
lazily), except `read_secret`, which runs against a `Cluster` whose transport is replaced.
The sandbox test `tests/integration/test_daemon_connections_sandbox.py` uses real apiservers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml

from federator import daemon, errors, policy
from federator.daemon import connections
from federator.kube import clients
from tests.support.configs import sandbox_config


def kubeconfig_text(contexts: dict[str, int], current: str | None = None) -> str:
    """A token-authenticated kubeconfig with one context per name, each its own port."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": current or next(iter(contexts)),
            "clusters": [
                {"name": n, "cluster": {"server": f"https://127.0.0.1:{port}"}}
                for n, port in contexts.items()
            ],
            "users": [{"name": n, "user": {"token": f"token-of-{n}-0123456789"}} for n in contexts],
            "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
        }
    )


def service_account(tmp_path: Path, token: str = "sa-token-0123456789") -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(token)
    # any well-formed CA bundle will do: no connection is made; the client loads it eagerly
    (directory / "ca.crt").write_text(Path(certifi.where()).read_text())
    return directory


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


# ---- in-cluster --------------------------------------------------------------------------------


async def test_in_cluster_uses_the_service_account_token_ca_and_service_address(
    tmp_path: Path,
) -> None:
    directory = service_account(tmp_path)
    cluster = await clients.connect_in_cluster(
        name="onprem", service_account_dir=directory, environ=IN_CLUSTER_ENV
    )
    try:
        configuration = cluster.api.configuration
        assert cluster.name == "onprem"
        assert configuration.host == "https://10.96.0.1:443"
        assert configuration.ssl_ca_cert == str(directory / "ca.crt")
        auth = await configuration.auth_settings()
        assert auth["BearerToken"]["value"] == "Bearer sa-token-0123456789"
    finally:
        await cluster.close()


async def test_in_cluster_re_reads_a_rotated_token(tmp_path: Path) -> None:
    from kubernetes_asyncio.config import incluster_config

    directory = service_account(tmp_path)
    cluster = await clients.connect_in_cluster(
        name="onprem", service_account_dir=directory, environ=IN_CLUSTER_ENV
    )
    try:
        (directory / "token").write_text("rotated-token-0123456789")
        # the loader re-reads the file once its refresh period is over; skip the wait
        hook = cluster.api.configuration.refresh_api_key_hook
        assert hook is not None
        loader = hook.__closure__[0].cell_contents  # type: ignore[attr-defined]
        assert isinstance(loader, incluster_config.InClusterConfigLoader)
        loader.token_expires_at = loader.token_expires_at.replace(year=2000)
        auth = await cluster.api.configuration.auth_settings()
        assert auth["BearerToken"]["value"] == "Bearer rotated-token-0123456789"
    finally:
        await cluster.close()


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("env", "Service host/port is not set"),
        ("token", "token file does not exist"),
        ("ca.crt", "certification file does not exist"),
    ],
)
async def test_in_cluster_outside_a_pod_is_a_clear_user_error(
    tmp_path: Path, missing: str, message: str
) -> None:
    directory = service_account(tmp_path)
    environ = {} if missing == "env" else IN_CLUSTER_ENV
    if missing != "env":
        (directory / missing).unlink()
    with pytest.raises(errors.UserError) as caught:
        await clients.connect_in_cluster(
            name="onprem", service_account_dir=directory, environ=environ
        )
    assert "clusters.onprem.connection.in_cluster" in str(caught.value)
    assert message.lower() in str(caught.value).lower()


# ---- kubeconfig held in memory (from a Secret) ------------------------------------------------


async def test_a_kubeconfig_text_connects_to_its_named_or_current_context() -> None:
    text = kubeconfig_text({"cloud-a": 16444, "cloud-b": 16445}, current="cloud-b")
    named = await clients.connect_kubeconfig_text(text, "cloud-a", name="a", source="s")
    current = await clients.connect_kubeconfig_text(text, None, name="b", source="s")
    try:
        assert named.api.configuration.host == "https://127.0.0.1:16444"
        assert current.api.configuration.host == "https://127.0.0.1:16445"
        auth = await current.api.configuration.auth_settings()
        assert auth["BearerToken"]["value"] == "Bearer token-of-cloud-b-0123456789"
    finally:
        await named.close()
        await current.close()


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("clusters: [unclosed", None, "not valid YAML at line 1, column 20"),
        ("just a string", None, "not a kubeconfig"),
        (kubeconfig_text({"cloud-a": 1}), "cloud-z", "cloud-z"),
    ],
    ids=["broken YAML", "not a mapping", "unknown context"],
)
async def test_a_bad_kubeconfig_text_is_a_user_error_naming_its_source(
    text: str, context: str | None, expected: str
) -> None:
    with pytest.raises(errors.UserError) as caught:
        await clients.connect_kubeconfig_text(
            text, context, name="cloud-a", source="Secret federator/kc"
        )
    assert str(caught.value).startswith("Secret federator/kc: ")
    assert expected in str(caught.value)


async def test_a_broken_kubeconfig_text_is_reported_without_quoting_its_lines() -> None:
    # The YAML error's own text would show the broken line: here, the bearer token.
    token = "sha256~s3cr3t-token-never-printed"
    text = f"users:\n- name: u\n  user: {{token: {token}\ncontexts: ]]]\n"
    with pytest.raises(errors.UserError) as caught:
        await clients.connect_kubeconfig_text(text, None, name="cloud-a", source="Secret ns/kc")
    assert "line 4" in str(caught.value)
    assert token not in str(caught.value)


class AnsweringCluster(clients.Cluster):
    """A Cluster whose requests are answered from a dict (path -> body) instead of the wire."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        super().__init__("onprem", api=None)  # type: ignore[arg-type]
        self.answers = answers
        self.asked: list[str] = []

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.asked.append(f"{method} {path}")
        if path not in self.answers:
            raise errors.FederatorError(f"NotFound: {path}")
        return self.answers[path]

    async def close(self) -> None:
        pass


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_read_secret_decodes_text_values_and_skips_binary_ones() -> None:
    cluster = AnsweringCluster(
        {
            "/api/v1/namespaces/ns/secrets/kc": {
                "data": {"kubeconfig": b64("apiVersion: v1"), "blob": "//79"}  # 0xff 0xfe 0xfd
            }
        }
    )
    assert await clients.read_secret(cluster, "ns", "kc") == {"kubeconfig": "apiVersion: v1"}
    assert cluster.asked == ["GET /api/v1/namespaces/ns/secrets/kc"]


# ---- the daemon's connection of every cluster of a policy ------------------------------------


def policy_with(tmp_path: Path, connections: dict[str, dict[str, Any]]) -> policy.FederatorConfig:
    raw = sandbox_config()
    for cluster in raw["clusters"]:
        if cluster["name"] in connections:
            cluster["connection"] = connections[cluster["name"]]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


async def test_a_kubeconfig_secret_is_read_through_the_onprem_cluster(tmp_path: Path) -> None:
    text = kubeconfig_text({"cloud-a": 16444})
    onprem = AnsweringCluster(
        {"/api/v1/namespaces/federator/secrets/kc": {"data": {"config": b64(text)}}}
    )
    config = policy_with(
        tmp_path, {"cloud-a": {"kubeconfig_secret": {"name": "kc", "key": "config"}}}
    )
    cloud = await connections.connect_cluster(config, "cloud-a", onprem)
    try:
        assert cloud.name == "cloud-a"
        assert cloud.api.configuration.host == "https://127.0.0.1:16444"
        # the namespace defaults to state_namespace (`federator` in the sandbox policy)
        assert onprem.asked == ["GET /api/v1/namespaces/federator/secrets/kc"]
    finally:
        await cloud.close()


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, "cannot read it from onprem"),
        ({"/api/v1/namespaces/federator/secrets/kc": {"data": {"other": b64("x")}}},
         "has no key 'kubeconfig' (keys: other)"),
    ],
    ids=["missing Secret", "missing key"],
)  # fmt: skip
async def test_a_kubeconfig_secret_that_cannot_be_used_says_which_and_why(
    tmp_path: Path, answers: dict[str, Any], expected: str
) -> None:
    config = policy_with(tmp_path, {"cloud-a": {"kubeconfig_secret": {"name": "kc"}}})
    with pytest.raises(errors.UserError) as caught:
        await connections.connect_cluster(config, "cloud-a", AnsweringCluster(answers))
    message = str(caught.value)
    assert message.startswith("clusters.cloud-a.connection.kubeconfig_secret (Secret federator/kc")
    assert expected in message


@pytest.mark.parametrize("made", ["missing", "directory"])
async def test_a_kubeconfig_file_that_is_not_there_is_named_with_its_field(
    tmp_path: Path, made: str
) -> None:
    path = tmp_path / "kubeconfig"
    if made == "directory":
        path.mkdir()
    config = policy_with(tmp_path, {"cloud-a": {"kubeconfig": str(path)}})
    with pytest.raises(errors.UserError) as caught:
        await connections.connect_cluster(config, "cloud-a", None)
    state = "does not exist" if made == "missing" else "is not a file"
    assert str(caught.value) == f"clusters.cloud-a.connection.kubeconfig: {path} {state}"


async def test_the_onprem_cluster_cannot_come_from_a_secret(tmp_path: Path) -> None:
    config = policy_with(tmp_path, {"onprem": {"kubeconfig_secret": {"name": "kc"}}})
    with pytest.raises(errors.UserError, match="on-prem cluster's own connection"):
        await connections.connect_cluster(config, "onprem", None)


@contextlib.contextmanager
def unclosed_sessions() -> Iterator[list[str]]:
    """What aiohttp reports about sessions nobody closed, while the block runs and after a
    garbage collection (it reports from `__del__`: to the loop's handler and as a warning)."""
    gc.collect()  # what earlier tests left unclosed is theirs: said before the block, not in it
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found: list[str] = []
            yield found
            gc.collect()
        found += [m for m in reported + [str(w.message) for w in caught] if "nclosed" in m]
    finally:
        loop.set_exception_handler(previous)


async def test_a_start_up_error_closes_the_clients_already_connected(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text({"onprem": 16443, "cloud-a": 16444}))
    config = policy_with(
        tmp_path,
        {
            "onprem": {"kubeconfig": str(kubeconfig), "context": "onprem"},
            "cloud-a": {"kubeconfig": str(kubeconfig), "context": "cloud-a"},
            "cloud-b": {"kubeconfig": str(kubeconfig), "context": "no-such-context"},
        },
    )
    with unclosed_sessions() as found, pytest.raises(errors.UserError, match="no-such-context"):
        await connections.connect_clusters(config)
    assert found == []


async def test_run_with_a_bad_connection_exits_with_the_error_and_no_unclosed_session(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text({"onprem": 16443, "cloud-a": 16444}))
    raw = sandbox_config()
    for cluster in raw["clusters"]:
        context = "no-such-context" if cluster["name"] == "cloud-b" else cluster["name"]
        cluster["connection"] = {"kubeconfig": str(kubeconfig), "context": context}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    with unclosed_sessions() as found, pytest.raises(errors.UserError, match="no-such-context"):
        await daemon.run(path, log_level="warning")
    assert found == []


# ---- object-store keys kept in a Secret ------------------------------------------------------


def store_secret_policy(tmp_path: Path) -> policy.FederatorConfig:
    raw = sandbox_config()
    for cluster in raw["clusters"]:
        if cluster["name"] == "cloud-a":
            cluster["object_store"]["credentials"] = {"kubernetes_secret": {"name": "s3-keys"}}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


async def test_store_keys_in_a_secret_are_read_at_start_and_given_to_the_stores(
    tmp_path: Path,
) -> None:
    config = store_secret_policy(tmp_path)
    onprem = AnsweringCluster(
        {
            "/api/v1/namespaces/federator/secrets/s3-keys": {
                "data": {
                    "access_key_id": b64("AKIAEXAMPLEKEY000001"),
                    "secret_access_key": b64("secret-key-from-the-secret-0123456789"),
                }
            }
        }
    )
    read = await connections.read_store_secrets(config, onprem)
    assert onprem.asked == ["GET /api/v1/namespaces/federator/secrets/s3-keys"]
    access = policy.store_access(config, "cloud-a", read_secret=read)
    assert access.credentials is not None
    assert access.credentials.secret_access_key == "secret-key-from-the-secret-0123456789"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, "cannot read Secret federator/s3-keys from onprem"),
        ({"/api/v1/namespaces/federator/secrets/s3-keys": {"data": {"access_key_id": b64("A")}}},
         "has no non-empty key 'secret_access_key'"),
    ],
    ids=["missing Secret", "missing key"],
)  # fmt: skip
async def test_store_keys_that_cannot_be_read_stop_the_start_naming_the_field(
    tmp_path: Path, answers: dict[str, Any], expected: str
) -> None:
    config = store_secret_policy(tmp_path)
    with pytest.raises(errors.UserError) as caught:
        await connections.read_store_secrets(config, AnsweringCluster(answers))
    assert str(caught.value).startswith("clusters.cloud-a.object_store.credentials")
    assert expected in str(caught.value)
