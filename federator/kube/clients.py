"""One connection per cluster, speaking raw JSON, with the cluster's health beside it.

federator talks to several clusters at once, so every cluster gets its own kubernetes-asyncio
`ApiClient` built from its kubeconfig context (`new_client_from_config(..., persist_config=
False)`); the process-global default configuration is never used, so clusters cannot share
credentials or a connection pool by accident.

Requests go through `ApiClient.call_api` with raw JSON bodies instead of the generated typed
models: Kueue's resources have no generated models anyway, and one representation (the dict
the apiserver sent) keeps the conversion code in `convert.py` uniform and testable. The client
library still does what it is good at: auth, TLS, the connection pool, and watch parsing.

`Health` records whether the cluster answered its last request. A cluster is never "down"
because of one slow call of another cluster: each has its own client and health.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.rest import ApiException

from federator import errors, metrics
from federator.kube import errors as kube_errors

log = structlog.get_logger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
REQUEST_TIMEOUT_S = 20.0


@dataclass
class Health:
    """Whether a cluster answers; `down_since` is what the lost-cluster timeout measures."""

    cluster: str
    up: bool = False
    down_since: float | None = None
    last_error: str = ""
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def mark_ok(self) -> None:
        if not self.up:
            log.info("cluster_up", cluster=self.cluster)
        self.up = True
        self.down_since = None
        metrics.CLUSTER_UP.labels(cluster=self.cluster).set(1)

    def mark_failed(self, reason: str) -> None:
        if self.up or self.down_since is None:
            log.warning("cluster_down", cluster=self.cluster, reason=reason)
            self.down_since = self.clock()
        self.up = False
        self.last_error = reason
        metrics.CLUSTER_UP.labels(cluster=self.cluster).set(0)


class Cluster:
    """The raw-JSON API of one cluster: get, list, create, patch, delete, and watch requests."""

    def __init__(self, name: str, api: ApiClient, *, clock: Callable[[], float] = time.time):
        self.name = name
        self.api = api
        self.health = Health(name, clock=clock)

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        creating: bool = False,
    ) -> dict[str, Any]:
        """One request; returns the decoded JSON or raises a `federator.kube.errors` error."""
        try:
            response = await self._send(method, path, params=params, body=body, ct=content_type)
            try:
                data = await response.read()
            finally:
                response.release()
        except ApiException as e:
            raise self.failure(e, creating) from e
        except kube_errors.TRANSPORT_ERRORS as e:
            raise self.failure(e, creating) from e
        if not 200 <= response.status < 300:
            failure = ApiException(status=response.status, reason=_reason(data, response.reason))
            raise self.failure(failure, creating) from failure
        self.health.mark_ok()
        return json.loads(data) if data else {}

    async def open_watch(self, path: str, **params: Any) -> Any:
        """The streaming response of a watch request (for `kubernetes_asyncio.watch.Watch`).

        Watch passes `watch=True` and `_preload_content=False`; the response's lines are the
        events. A non-2xx answer is a `Status` line that Watch turns into an ApiException.
        """
        params.pop("_preload_content", None)
        timeout = params.pop("_request_timeout", None)
        query = {_camel(k): v for k, v in params.items() if v is not None}
        return await self._send("GET", path, params=query, body=None, ct=JSON, timeout=timeout)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        body: Any,
        ct: str,
        timeout: float | None = REQUEST_TIMEOUT_S,  # noqa: ASYNC109 - passed to aiohttp per request
    ) -> Any:
        return await self.api.call_api(
            path,
            method,
            query_params=list((params or {}).items()),
            header_params={"Accept": JSON, "Content-Type": ct},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )

    def failure(self, error: BaseException, creating: bool) -> Exception:
        translated = kube_errors.translate(self.name, error, creating=creating)
        if isinstance(translated, errors.ClusterUnavailable):
            self.health.mark_failed(translated.reason)
        else:
            self.health.mark_ok()  # it answered, even if it said no
        return translated


def _reason(data: bytes, fallback: str | None) -> str:
    try:
        status = json.loads(data)
        return f"{status.get('reason', '')}: {status.get('message', '')}"
    except ValueError:
        return str(fallback or "")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def connect(
    kubeconfig: Path,
    context: str,
    *,
    name: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Cluster:
    """A `Cluster` for one kubeconfig context (nothing is sent until the first request)."""
    try:
        api = await kube_config.new_client_from_config(
            config_file=str(kubeconfig), context=context, persist_config=False
        )
    except (kube_config.ConfigException, OSError, KeyError) as e:
        raise errors.UserError(f"{kubeconfig}: context {context!r}: {e}") from e
    if not api.configuration.verify_ssl:
        # Allowed (some labs run self-signed apiservers) but never silent: anyone on the path
        # could impersonate the cluster and read every job and credential federator sends.
        log.warning(
            "tls_verification_disabled",
            cluster=name or context,
            source=f"{kubeconfig} (insecure-skip-tls-verify)",
            hint="trust the cluster's CA (certificate-authority-data) instead",
        )
    return Cluster(name or context, api, clock=clock)
