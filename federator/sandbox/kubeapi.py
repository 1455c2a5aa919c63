"""A minimal Kubernetes REST client for wiring up the sandbox: apply, get, delete.

Why not kubernetes-asyncio here: the sandbox applies arbitrary manifests (Kueue's CRDs and
webhook configurations as shipped in its module, our Nodes, queues) with server-side apply,
which is one PATCH per object with `application/apply-patch+yaml`. The typed client has no
generic apply and its dynamic client runs discovery first; a dozen lines over aiohttp are
simpler and faster. federator itself talks to clusters through kubernetes-asyncio.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from federator.sandbox.layout import PORTS, Layout
from federator.sandbox.pki import Pki
from federator.sandbox.probes import client_ssl

FIELD_MANAGER = "federator-sandbox"

# kind -> (API group/version path, plural, namespaced) for the kinds the sandbox applies.
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("api/v1", "namespaces", False),
    "Node": ("api/v1", "nodes", False),
    "ConfigMap": ("api/v1", "configmaps", True),
    "CustomResourceDefinition": (
        "apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        False,
    ),
    "ValidatingWebhookConfiguration": (
        "apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
    "MutatingWebhookConfiguration": (
        "apis/admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        False,
    ),
    "ResourceFlavor": ("apis/kueue.x-k8s.io/v1beta2", "resourceflavors", False),
    "ClusterQueue": ("apis/kueue.x-k8s.io/v1beta2", "clusterqueues", False),
    "LocalQueue": ("apis/kueue.x-k8s.io/v1beta2", "localqueues", True),
    "Workload": ("apis/kueue.x-k8s.io/v1beta2", "workloads", True),
    "Job": ("apis/batch/v1", "jobs", True),
}


class KubeError(Exception):
    """The apiserver answered a request with an error status."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")
        self.status = status


def object_path(kind: str, name: str | None = None, namespace: str | None = None) -> str:
    group, plural, namespaced = KINDS[kind]
    path = f"/{group}"
    if namespaced:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced; give a namespace")
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    return f"{path}/{name}" if name else path


def _not_ready_yet(error: BaseException) -> bool:
    """An apiserver that has just (re)started answers 429 "storage is (re)initializing" and
    503 until its caches are ready; both pass within seconds."""
    return isinstance(error, KubeError) and error.status in (429, 503)


@dataclass(frozen=True, slots=True)
class KubeApi:
    """Admin access to one sandbox apiserver."""

    base_url: str
    ssl_context: ssl.SSLContext

    @classmethod
    def for_site(cls, layout: Layout, site: str) -> KubeApi:
        pki = Pki(layout.pki)
        context = client_ssl(pki.ca.cert, pki.admin.cert, pki.admin.key)
        return cls(f"https://127.0.0.1:{PORTS[site].apiserver}", context)

    # Waited out rather than failed: `sandbox up` right after an apiserver restart (a
    # reliability scenario does exactly that) otherwise dies on its first Kueue read.
    @retry(
        retry=retry_if_exception(_not_ready_yet),
        wait=wait_exponential(multiplier=0.25, max=2.0),
        stop=stop_after_delay(60.0),
        reraise=True,
    )
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                params=params,
                ssl=self.ssl_context,
            ) as response,
        ):
            text = await response.text()
            if response.status >= 400:
                raise KubeError(response.status, method, path, text)
            return json.loads(text) if text else None

    async def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply `obj` (create or update; our field manager wins conflicts)."""
        meta = obj["metadata"]
        path = object_path(obj["kind"], meta["name"], meta.get("namespace"))
        return await self.request(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Any | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", object_path(kind, name, namespace))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None = None, **params: str) -> list[Any]:
        found = await self.request("GET", object_path(kind, None, namespace), params=params)
        items: list[Any] = found.get("items", [])
        return items

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            await self.request(
                "DELETE",
                object_path(kind, name, namespace),
                body={"propagationPolicy": "Background"},
            )
        except KubeError as error:
            if error.status != 404:
                raise
