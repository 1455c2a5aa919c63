"""Kubeconfig credentials rotated under a live `Cluster`: what is noticed, what is adopted, what
is kept, and what is said (never a credential). Real kubeconfig files and kubernetes-asyncio's
own loader; nothing is sent to an apiserver (that is tests/reliability/test_kubeconfig_rotation.py).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.rest import ApiException

from federator import errors, logs
from federator.kube import rotation
from federator.kube.clients import Cluster
from tests.support.tlsfiles import make_ca_and_server_cert

TOKEN_A = "token-aaaaaaaaaaaaaaaa"
TOKEN_B = "token-bbbbbbbbbbbbbbbb"


def kubeconfig(user: Mapping[str, Any], *, server: str = "http://127.0.0.1:1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "cloud-a",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": dict(user)}],
        "contexts": [{"name": "cloud-a", "context": {"cluster": "c", "user": "u"}}],
    }


def write_atomically(path: Path, text: str | bytes) -> None:
    """As an operator (or the kubelet) replaces a file: write beside it, then rename over it."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(temporary, path)


def pem(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def token_of(cluster: Cluster) -> str:
    return str(cluster.api.configuration.api_key.get("BearerToken"))


async def watched_file(path: Path) -> tuple[Cluster, rotation.CredentialWatcher]:
    source = rotation.KubeconfigFile(path, "cloud-a")
    loaded = await rotation.baseline(source)
    cluster = Cluster("cloud-a", await source.client(await source.read()))
    return cluster, rotation.CredentialWatcher(cluster, source, loaded=loaded, min_gap_s=0)


async def test_a_rewritten_token_is_adopted_by_the_same_client_object(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"token": TOKEN_A})))
    cluster, watcher = await watched_file(path)
    api, pool = cluster.api, cluster.api.rest_client
    try:
        assert not await watcher.check(), "an unchanged kubeconfig must not rebuild anything"
        write_atomically(path, yaml.safe_dump(kubeconfig({"token": TOKEN_B})))
        woken = asyncio.create_task(cluster.new_credentials(within_s=5))
        await asyncio.sleep(0)
        with structlog.testing.capture_logs() as logged:
            assert await watcher.check()
        assert await woken, "a reflector waiting out a refusal must be woken"
        assert cluster.api is api, "holders of the ApiClient must see the new credentials"
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
        assert cluster.api.rest_client is not pool, "a new connection pool (new TLS identity)"
        assert cluster.credentials_version == 1
        assert [e["event"] for e in logged] == ["kubeconfig_reloaded"]
        assert logged[0]["source"] == str(path)
        assert not await watcher.check()
    finally:
        await cluster.close()
    assert pool.pool_manager.closed, "the retired pool is closed with the cluster"


async def test_a_token_file_the_kubeconfig_names_is_watched_too(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN_A)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"tokenFile": "token"})))  # relative to the file
    cluster, watcher = await watched_file(path)
    try:
        assert token_of(cluster) == f"Bearer {TOKEN_A}"
        write_atomically(tmp_path / "token", TOKEN_B)
        assert await watcher.check()
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
    finally:
        await cluster.close()


async def test_a_new_client_certificate_gets_a_new_tls_identity(tmp_path: Path) -> None:
    first, second = (make_ca_and_server_cert(tmp_path / d) for d in ("one", "two"))

    def with_cert(tls: Any) -> str:
        user = {
            "client-certificate-data": base64.b64encode(tls.cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(tls.key.read_bytes()).decode(),
        }
        return yaml.safe_dump(kubeconfig(user, server="https://127.0.0.1:1"))

    path = tmp_path / "kubeconfig"
    path.write_text(with_cert(first))
    cluster, watcher = await watched_file(path)
    try:
        before = cluster.api.configuration.cert_file
        write_atomically(path, with_cert(second))
        assert await watcher.check()
        after = cluster.api.configuration.cert_file
        assert pem(before) == pem(first.cert)
        assert pem(after) == pem(second.cert)
    finally:
        await cluster.close()


@pytest.mark.parametrize(
    "garbage",
    [
        f"users: [{{name: u, user: {{token: {TOKEN_B}}}\n  contexts: ]]]",  # broken YAML
        b"\xff\xfe binary " + TOKEN_B.encode(),  # not text
        f"just a string {TOKEN_B}",  # YAML, but no kubeconfig
        "",  # truncated to nothing (a writer that does not rename)
    ],
    ids=["yaml", "binary", "scalar", "empty"],
)
async def test_an_unreadable_kubeconfig_keeps_the_client_and_warns_once_without_quoting_it(
    tmp_path: Path, garbage: str | bytes
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"token": TOKEN_A})))
    cluster, watcher = await watched_file(path)
    try:
        write_atomically(path, garbage)
        with structlog.testing.capture_logs() as logged:
            assert not await watcher.check()
            assert not await watcher.check()
        assert token_of(cluster) == f"Bearer {TOKEN_A}", "the client in hand is kept"
        assert [e["event"] for e in logged] == ["kubeconfig_unreadable"], "warned once"
        assert logged[0]["source"] == str(path)
        assert logged[0]["cluster"] == "cloud-a"
        assert TOKEN_B not in repr(logged), "the warning must not quote the file"
        write_atomically(path, yaml.safe_dump(kubeconfig({"token": TOKEN_B})))
        with structlog.testing.capture_logs() as fixed:
            assert await watcher.check()
        assert [e["event"] for e in fixed] == ["kubeconfig_readable_again", "kubeconfig_reloaded"]
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
    finally:
        await cluster.close()


async def test_yaml_errors_say_where_and_a_missing_context_or_file_says_what(
    tmp_path: Path,
) -> None:
    with pytest.raises(rotation.KubeconfigUnreadable, match=r"line 2, column \d+") as error:
        rotation.parse(f"users: [{{token: {TOKEN_B}}}\n  contexts: ]]]".encode())
    assert TOKEN_B not in str(error.value)
    path = tmp_path / "kubeconfig"
    config = kubeconfig({"tokenFile": "gone"})
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(rotation.KubeconfigUnreadable, match=r"tokenFile .*gone: cannot read"):
        await rotation.KubeconfigFile(path, "cloud-a").read()
    with pytest.raises(rotation.KubeconfigUnreadable, match="no context 'elsewhere'"):
        await rotation.KubeconfigFile(path, "elsewhere").read()
    assert await rotation.baseline(rotation.KubeconfigFile(tmp_path / "none", None)) is None


async def test_a_kubeconfig_in_a_secret_is_read_again_and_an_unreadable_secret_is_named() -> None:
    held = {"config": yaml.safe_dump(kubeconfig({"token": TOKEN_A}))}
    missing = False

    async def read_secret(namespace: str, name: str) -> dict[str, str]:
        assert (namespace, name) == ("federator", "cloud-a-access")
        if missing:
            raise errors.ClusterUnavailable("onprem", "Cannot connect")
        return dict(held)

    source = rotation.KubeconfigInSecret(read_secret, "federator", "cloud-a-access", "config", None)
    loaded = await rotation.baseline(source)
    cluster = Cluster("cloud-a", await source.client(await source.read()))
    watcher = rotation.CredentialWatcher(cluster, source, loaded=loaded, min_gap_s=0)
    try:
        held["config"] = yaml.safe_dump(kubeconfig({"token": TOKEN_B}))
        assert await watcher.check()
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
        missing = True
        with structlog.testing.capture_logs() as logged:
            assert not await watcher.check()
        assert logged[0]["event"] == "kubeconfig_unreadable"
        assert logged[0]["source"] == "Secret federator/cloud-a-access, key 'config'"
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
    finally:
        await cluster.close()


async def test_a_401_or_403_wakes_the_watcher_at_once_and_other_refusals_do_not() -> None:
    cluster = Cluster("cloud-a", ApiClient(Configuration()))
    try:
        cluster.failure(ApiException(status=422, reason="Invalid"), False)
        assert not await cluster.credentials_refused(within_s=0.01)
        refused = cluster.failure(ApiException(status=401, reason="Unauthorized"), False)
        assert isinstance(refused, errors.CredentialsRefused)
        assert isinstance(refused, errors.TransientError), "an outage, not this request's fault"
        assert "refused our credentials (401 Unauthorized)" in logs.redact_text(str(refused))
        assert await cluster.credentials_refused(within_s=5)
        assert not await cluster.credentials_refused(within_s=0.01), "reset once seen"
        forbidden = cluster.failure(ApiException(status=403, reason="Forbidden"), False)
        assert not isinstance(forbidden, errors.CredentialsRefused), "RBAC says no: a refusal"
        assert await cluster.credentials_refused(within_s=5), "a rotation may fix RBAC too"
        cluster.health.mark_failed("401 Unauthorized")  # as a refused reflector does
        cluster.failure(ApiException(status=401, reason="Unauthorized"), False)
        assert not cluster.health.up, "a 401 must not count as the cluster being usable"
    finally:
        await cluster.close()


async def test_the_watcher_loop_rebuilds_soon_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"token": TOKEN_A})))
    source = rotation.KubeconfigFile(path, "cloud-a", every_s=0.05)
    cluster = Cluster("cloud-a", await source.client(await source.read()))
    watcher = rotation.CredentialWatcher(
        cluster, source, loaded=await rotation.baseline(source), min_gap_s=0
    )
    running = asyncio.create_task(watcher.run())
    try:
        write_atomically(path, yaml.safe_dump(kubeconfig({"token": TOKEN_B})))
        assert await cluster.new_credentials(within_s=5)
        assert token_of(cluster) == f"Bearer {TOKEN_B}"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await cluster.close()
