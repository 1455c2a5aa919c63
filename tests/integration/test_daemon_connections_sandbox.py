"""The two connections a Deployment uses, against the sandbox's real apiservers.

- `in_cluster: true`: a real service-account token (TokenRequest API) and the cluster's CA in a
  directory laid out as the kubelet mounts them, the service address in the environment; the
  apiserver must then see federator as that service account.
- `kubeconfig_secret`: a cloud cluster's kubeconfig stored in a Secret on the on-prem cluster;
  the daemon reads it through its on-prem client and reaches the cloud cluster with it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator import policy
from federator.daemon import connections
from federator.kube import clients
from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from federator.sandbox.pki import Pki
from tests.support.configs import sandbox_config

pytestmark = pytest.mark.sandbox


def service_account_token(api: KubeApi, namespace: str, name: str) -> str:
    async def issue() -> str:
        await api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )
        review = await api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        )
        return str(review["status"]["token"])

    return run_sync(issue())


async def who_am_i(cluster: clients.Cluster) -> str:
    review = await cluster.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(review["status"]["userInfo"]["username"])


def test_in_cluster_talks_to_the_apiserver_as_the_pod_s_service_account(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    layout = Layout(sandbox.root)
    api = KubeApi.for_site(layout, "onprem")
    namespace = namespace_factory(prefix="incl")
    token = service_account_token(api, namespace, "federator")
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(token)
    (mounted / "ca.crt").write_bytes(Pki(layout.pki).ca.cert.read_bytes())
    host, port = api.base_url.removeprefix("https://").rsplit(":", 1)

    async def connect_and_ask() -> str:
        cluster = await clients.connect_in_cluster(
            name="onprem",
            service_account_dir=mounted,
            environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
        )
        try:
            return await who_am_i(cluster)
        finally:
            await cluster.close()

    assert run_sync(connect_and_ask()) == f"system:serviceaccount:{namespace}:federator"


def kubeconfig_of(kubeconfig: Path, context: str) -> str:
    """The one context `context` of a kubeconfig, as its own kubeconfig (current-context set)."""
    full = yaml.safe_load(kubeconfig.read_text())
    chosen = next(c for c in full["contexts"] if c["name"] == context)
    cluster, user = chosen["context"]["cluster"], chosen["context"]["user"]
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "contexts": [chosen],
            "clusters": [c for c in full["clusters"] if c["name"] == cluster],
            "users": [u for u in full["users"] if u["name"] == user],
        }
    )


def test_a_cloud_cluster_is_reached_with_the_kubeconfig_kept_in_an_onprem_secret(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")
    namespace = namespace_factory(prefix="kcs")
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloud-a-access"},
        "data": {"config": base64.b64encode(kubeconfig_of(sandbox.kubeconfig, "cloud-a").encode())
                 .decode()},
    }  # fmt: skip
    run_sync(api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=secret))
    raw = sandbox_config()
    for cluster in raw["clusters"]:
        if cluster["name"] == "cloud-a":
            cluster["connection"] = {
                "kubeconfig_secret": {"name": "cloud-a-access", "namespace": namespace,
                                      "key": "config"}
            }  # fmt: skip
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = policy.load_policy(path)

    async def connect_and_list() -> list[str]:
        connected = await connections.connect_clusters(config)
        try:
            nodes = await connected["cloud-a"].request(
                "GET", "/api/v1/nodes", params={"labelSelector": "federator.io/pool=a100-spot"}
            )
            return sorted(str(n["metadata"]["name"]) for n in nodes["items"])
        finally:
            await connections.close_clusters(connected.values())

    nodes = run_sync(connect_and_list())
    assert len(nodes) == 4, nodes  # cloud-a's a100-spot pool: 4 nodes (docs/sandbox.md)
