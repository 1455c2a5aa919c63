"""One connection per cluster, speaking raw JSON, with the cluster's health beside it.

federator talks to several clusters at once, so every cluster gets its own kubernetes-asyncio
`ApiClient`, built one of the three ways a policy file's `connection` allows: a kubeconfig
file (`connect`), the pod's service account (`connect_in_cluster`), or a kubeconfig kept in a
Kubernetes Secret (`connect_kubeconfig_text`, after `read_secret` fetched it). The
process-global default configuration is never used, so clusters cannot share credentials or
a connection pool by accident.

Requests go through `ApiClient.call_api` with raw JSON bodies instead of the generated typed
models: Kueue's resources have no generated models anyway, and one representation (the dict
the apiserver sent) keeps the conversion code in `convert.py` uniform and testable. The client
library still does what it is good at: auth, TLS, the connection pool, and watch parsing.

`Health` records whether the cluster answers: its last request, or a watch that opened or
delivered an event since (`Reflector` reports those). A watch counts because one failed write
(a 429, a 503, a slow webhook's timeout) must not leave a cluster whose watches keep working
"down" until its copies are taken as lost; a cluster whose apiserver is really gone breaks its
watches too. A cluster is never "down" because of one slow call of another cluster: each has
its own client and health.

A write waits no longer than the leader lease has left while a campaign runs
(`writes_within`, see `federator.leadership`): past that, another replica may be writing.

Credentials rotate under a running daemon (`federator.kube.rotation`): a `Cluster` adopts a
client built from the new kubeconfig in place (`adopt`), so everything that holds the cluster
or its `ApiClient` sends the new credentials from its next request on, and it tells the
rotation watcher at once when the apiserver refuses who we are (401/403).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import functools
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.rest import ApiException, RESTClientObject
from kubernetes_asyncio.config import incluster_config
from kubernetes_asyncio.config.kube_config import KubeConfigLoader
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from federator import errors, metrics
from federator.kube import errors as kube_errors
from federator.kube import kubeconfig_text

log = structlog.get_logger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
REQUEST_TIMEOUT_S = 20.0
# A replaced connection pool stays open this long: a watch opened just before the rotation
# (60 s server timeout + 15 s client margin, see `watching`) ends by itself on it, rather
# than being cut and counted as an outage.
RETIRED_POOL_GRACE_S = 90.0
AUTH_REFUSED = frozenset({401, 403})
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Health:
    """Whether a cluster answers; `down_since` is what the lost-cluster timeout measures.

    A read refused by RBAC (`refused`: a 403 on one kind the role does not grant) is not an
    outage: the apiserver answers, and the cluster's copies may well run on. Counted as one, it
    flapped (the other watches' events marked it up again every time), or, kept down, its jobs
    were taken as lost after the timeout and run a second time elsewhere while their copies
    ran on. The refused Reflector's cache stops counting as synced instead, so the cluster's
    jobs wait (nothing acted on, nothing taken as lost) until the read works again
    (`accepted`); `problem` names it, `federator_reads_refused` counts it. Credentials refused
    (a 401) are an outage: every read fails alike, and the Reflectors mark the cluster down.
    """

    cluster: str
    up: bool = False
    down_since: float | None = None
    last_error: str = ""
    clock: Callable[[], float] = field(default=time.time, repr=False)
    refusals: dict[str, str] = field(default_factory=dict, repr=False)  # read -> why refused

    @property
    def problem(self) -> str:
        """What is wrong with the cluster now, for /readyz and the start-up wait ("": nothing)."""
        if self.last_error:
            return self.last_error
        return "; ".join(f"{read} refused: {why}" for read, why in sorted(self.refusals.items()))

    def mark_ok(self) -> None:
        if not self.up:
            log.info("cluster_up", cluster=self.cluster)
        self.up = True
        self.down_since = None
        self.last_error = ""  # /readyz and the start-up wait name it: only while it is down
        metrics.CLUSTER_UP.labels(cluster=self.cluster).set(1)

    def mark_failed(self, reason: str) -> None:
        if self.up or self.down_since is None:
            log.warning("cluster_down", cluster=self.cluster, reason=reason)
            self.down_since = self.clock()
        self.up = False
        self.last_error = reason
        metrics.CLUSTER_UP.labels(cluster=self.cluster).set(0)

    def refused(self, read: str, reason: str) -> None:
        """`read` (e.g. the Nodes list) was refused: it stays refused until `accepted`."""
        self.refusals[read] = reason
        metrics.READS_REFUSED.labels(cluster=self.cluster).set(len(self.refusals))

    def accepted(self, read: str) -> None:
        """`read` succeeded again."""
        if self.refusals.pop(read, None) is not None:
            metrics.READS_REFUSED.labels(cluster=self.cluster).set(len(self.refusals))


class Cluster:
    """The raw-JSON API of one cluster: get, list, create, patch, delete, and watch requests."""

    def __init__(self, name: str, api: ApiClient, *, clock: Callable[[], float] = time.time):
        self.name = name
        self.api = api
        self.health = Health(name, clock=clock)
        self.credentials_version = 0  # how many times `adopt` swapped credentials in
        self._refused = asyncio.Event()  # set by a 401/403; the rotation watcher clears it
        self._adopted = asyncio.Event()  # replaced by a fresh one at every `adopt`
        self._retired: dict[RESTClientObject, asyncio.Task[None]] = {}

    async def close(self) -> None:
        for task in self._retired.values():
            task.cancel()
        for pool in list(self._retired):
            with contextlib.suppress(Exception):  # best effort, like the pool closed below
                await pool.close()
        self._retired.clear()
        await self.api.close()

    def adopt(self, fresh: ApiClient, *, grace_s: float = RETIRED_POOL_GRACE_S) -> None:
        """Use `fresh`'s configuration (host, TLS, credentials) and connection pool from now on.

        The swap happens inside the `ApiClient` every holder already has (the cluster's
        readers, the leader election, the state stores) rather than by handing out a new
        object, so none of them can keep using the old credentials. `configuration` and
        `rest_client` are the two attributes kubernetes-asyncio's `ApiClient` reads per
        request. The old pool is closed after `grace_s`.
        """
        retired = self.api.rest_client
        self.api.configuration = fresh.configuration
        self.api.rest_client = fresh.rest_client
        self.api.client_side_validation = fresh.configuration.client_side_validation
        self.credentials_version += 1
        self._retired[retired] = asyncio.create_task(self._close_later(retired, grace_s))
        adopted, self._adopted = self._adopted, asyncio.Event()
        adopted.set()

    async def _close_later(self, pool: RESTClientObject, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        self._retired.pop(pool, None)
        with contextlib.suppress(Exception):
            await pool.close()

    async def new_credentials(self, *, within_s: float) -> bool:
        """Wait up to `within_s` for `adopt`; True if new credentials came in meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._adopted.wait(), timeout=within_s)
            return True
        return False

    async def credentials_refused(self, *, within_s: float) -> bool:
        """Wait up to `within_s` for a 401/403 answer; True (and reset) if one came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._refused.wait(), timeout=within_s)
        refused = self._refused.is_set()
        self._refused.clear()
        return refused

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
        timeout = REQUEST_TIMEOUT_S if method == "GET" else self._write_timeout(method, path)
        try:
            response = await self._send(
                method, path, params=params, body=body, ct=content_type, timeout=timeout
            )
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

    def _write_timeout(self, method: str, path: str) -> float:
        """The usual timeout, or less: what the leader lease has left (`writes_within`)."""
        window = _lease_window()
        if window <= 0:
            # Only a write that skipped the fence gets here: sending it could race the replica
            # that may lead now, so it is not sent (and the cluster's health is not touched).
            raise errors.TransientError(
                f"cluster {self.name}: {method} {path} not sent: this replica's leader lease "
                "may have passed to another replica"
            )
        return min(REQUEST_TIMEOUT_S, window)

    async def open_watch(self, path: str, **params: Any) -> Any:
        """The streaming response of a watch request (for `kubernetes_asyncio.watch.Watch`).

        Watch passes `watch=True` and `_preload_content=False`; the response's lines are the
        events. A non-2xx answer is a `Status` line that Watch turns into an ApiException. A
        2xx answer marks the cluster up: the server ends each watch after its timeout (60 s),
        so even an idle cluster shows it answers within a minute.
        """
        params.pop("_preload_content", None)
        timeout = params.pop("_request_timeout", None)
        query = {_camel(k): v for k, v in params.items() if v is not None}
        response = await self._send("GET", path, params=query, body=None, ct=JSON, timeout=timeout)
        if 200 <= response.status < 300:
            self.health.mark_ok()
        return response

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
        if _refuses_who_we_are(translated):
            # Rotated credentials? The watcher looks at once. Health is left to the reflectors
            # (a watch opened before the refusal still streams events, which would mark the
            # cluster up again): refused as who we are, it is not usable, though it answered.
            self._refused.set()
        elif isinstance(translated, errors.ClusterUnavailable):
            self.health.mark_failed(translated.reason)
        else:
            self.health.mark_ok()  # it answered, even if it said no
        return translated


def _refuses_who_we_are(error: Exception) -> bool:
    """A 401 (`CredentialsRefused`, an outage until the kubeconfig is fixed) or a 403 (a
    `Refused`: RBAC says no to who we are)."""
    if isinstance(error, errors.CredentialsRefused):
        return True
    return isinstance(error, kube_errors.Refused) and error.status in AUTH_REFUSED


# ---- writes under a leader lease -----------------------------------------------------------

_lease_window: Callable[[], float] = lambda: math.inf  # noqa: E731 - no lease: no bound


@contextlib.contextmanager
def writes_within(window: Callable[[], float]) -> Iterator[None]:
    """While inside, a write sent through any `Cluster` gets at most `window()` seconds.

    Process-wide on purpose: one process holds one lease (or none), and every cluster's writes
    are that process's writes; the leader campaign sets it (`federator.leadership.campaign`).
    """
    global _lease_window
    before, _lease_window = _lease_window, window
    try:
        yield
    finally:
        _lease_window = before


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
    source: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Cluster:
    """A `Cluster` for one kubeconfig context (nothing is sent until the first request).

    The file is read and checked as the Secret path and the credential watcher read theirs
    (`kubeconfig_text`), so a malformed file is a `UserError` naming `source` (the policy
    field and the file; the file alone by default), never a traceback from the YAML parser
    or the client library. Relative file names in it resolve against its directory.
    """
    where = source or str(kubeconfig)
    try:
        raw, base = await asyncio.to_thread(_read_with_base, kubeconfig)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise errors.UserError(f"{where}: cannot read it: {why}") from None
    try:
        loaded = kubeconfig_text.parse(raw)
        kubeconfig_text.check_context(loaded, context)
    except kubeconfig_text.KubeconfigUnreadable as e:
        raise errors.UserError(f"{where}: {e}") from None
    configuration = Configuration()
    try:
        loader = KubeConfigLoader(
            config_dict=loaded,
            active_context=context,
            config_base_path=base,
        )
        await loader.load_and_set(configuration)
        # The client loads the certificates: a key that does not match its certificate, or a
        # CA file that is not PEM, is an ssl.SSLError (an OSError) here.
        api = ApiClient(configuration=configuration)
    except _LOADER_ERRORS as e:
        raise errors.UserError(f"{where}: context {context!r}: {_loader_error(e)}") from None
    warn_if_insecure(api, name or context, f"{kubeconfig} (insecure-skip-tls-verify)")
    return Cluster(name or context, api, clock=clock)


def _read_with_base(kubeconfig: Path) -> tuple[bytes, str]:
    """The file's bytes and the absolute directory its relative file names resolve against
    (as kubernetes-asyncio's `load_kube_config` resolves them)."""
    return kubeconfig.read_bytes(), str(kubeconfig.absolute().parent)


# What kubernetes-asyncio's loader raises for a kubeconfig it cannot use, past the checks of
# `kubeconfig_text`: ConfigException for what it checks, and KeyError, TypeError, ValueError
# (bad base64), AssertionError (a server that is not a string) or OSError (a certificate file
# that is missing, ssl.SSLError for a key that does not match) for what it does not.
_LOADER_ERRORS = (
    kube_config.ConfigException,
    OSError,
    KeyError,
    TypeError,
    ValueError,
    AssertionError,
)


def _loader_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def connect_kubeconfig_text(
    text: str,
    context: str | None,
    *,
    name: str,
    source: str,
    clock: Callable[[], float] = time.time,
) -> Cluster:
    """A `Cluster` from a kubeconfig held in memory (read from a Secret); `source` names where
    it came from in error messages. `context` None means the kubeconfig's current-context."""
    try:
        loaded = kubeconfig_text.parse(text.encode())
        kubeconfig_text.check_context(loaded, context)
    except kubeconfig_text.KubeconfigUnreadable as e:
        raise errors.UserError(f"{source}: {e}") from None
    try:
        api = await kube_config.new_client_from_config_dict(config_dict=loaded, context=context)
    except _LOADER_ERRORS as e:
        what = _loader_error(e)
        raise errors.UserError(f"{source}: context {context or '(current)'}: {what}") from None
    warn_if_insecure(api, name, f"{source} (insecure-skip-tls-verify)")
    return Cluster(name, api, clock=clock)


async def connect_in_cluster(
    *,
    name: str,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Cluster:
    """A `Cluster` for the cluster federator's pod runs in, as its service account.

    kubernetes-asyncio's loader reads KUBERNETES_SERVICE_HOST/PORT, the token and the CA, and
    re-reads the token file before requests once a minute has passed, so the projected token
    the kubelet rotates keeps working. The directory and environment are parameters for tests.
    """
    configuration = Configuration()
    loader = incluster_config.InClusterConfigLoader(
        token_filename=str(service_account_dir / "token"),
        cert_filename=str(service_account_dir / "ca.crt"),
        environ=dict(os.environ if environ is None else environ),
    )
    try:
        loader.load_and_set(configuration)
    except (kube_config.ConfigException, OSError) as e:
        raise errors.UserError(
            f"clusters.{name}.connection.in_cluster: {e} (is federator running in a pod with a "
            f"service account token mounted at {service_account_dir}?)"
        ) from None
    return Cluster(name, ApiClient(configuration=configuration), clock=clock)


async def read_secret(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """The decoded `data` of a Secret (UTF-8 text values), read through `cluster`."""
    secret = await cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    decoded: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue  # binary values are nothing federator reads; skip rather than fail
    return decoded


def warn_if_insecure(api: ApiClient, cluster: str, source: str) -> None:
    if not api.configuration.verify_ssl:
        # Allowed (some labs run self-signed apiservers) but never silent: anyone on the path
        # could impersonate the cluster and read every job and credential federator sends.
        log.warning(
            "tls_verification_disabled",
            cluster=cluster,
            source=source,
            hint="trust the cluster's CA (certificate-authority-data) instead",
        )


# ---- reachability: one quick look before a one-shot command waits for its caches ----------

PROBE_TRIES = 3
PROBE_WAIT_S = 2.5  # between tries: 3 tries span 5 s, longer than a restart's blip
PROBE_TIMEOUT_S = 5.0  # per try; no answer within it may be a slow apiserver, not a dead one


@dataclass(frozen=True)
class Reachability:
    """What a probe of one apiserver found: nothing there, our credentials refused, or an
    answer of some kind (whatever else it was, the caller's usual path deals with it)."""

    cluster: str
    server: str
    tries: int
    within_s: float  # the span the tries were spread over
    nothing_there: str = ""  # "refused the connection" / "did not resolve", on every try
    status: int = 0  # the HTTP status of the answer; 0 when there was none
    answer: str = ""  # the answer's reason, or why there was none (a timeout)

    @property
    def credentials_refused(self) -> bool:
        return self.status in AUTH_REFUSED


class _NothingThere(Exception):
    """A try that found no listener or no such host name: worth another try, briefly."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


async def probe(
    cluster: Cluster,
    *,
    tries: int = PROBE_TRIES,
    wait_s: float = PROBE_WAIT_S,
    timeout_s: float = PROBE_TIMEOUT_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Reachability:
    """GET /version through the cluster's own client (its TLS and credentials), trying again
    only while nothing listens at the server or its name does not resolve; `sleep` is the
    wait between tries (a parameter for tests)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(tries),
        wait=wait_fixed(wait_s),
        retry=retry_if_exception_type(_NothingThere),
        sleep=sleep,
        reraise=True,
    )
    server = str(cluster.api.configuration.host or "")
    found = functools.partial(Reachability, cluster.name, server, within_s=(tries - 1) * wait_s)
    made, status, answer = 0, 0, ""
    try:
        async for attempt in retrying:
            with attempt:
                made = attempt.retry_state.attempt_number
                status, answer = await _ask_version(cluster, timeout_s)
    except _NothingThere as e:
        return found(made, nothing_there=e.cause)
    return found(made, status=status, answer=answer)


async def _ask_version(cluster: Cluster, timeout_s: float) -> tuple[int, str]:
    """(status, reason) of GET /version; raises `_NothingThere` when nobody could be asked."""
    try:
        response = await cluster._send(
            "GET", "/version", params=None, body=None, ct=JSON, timeout=timeout_s
        )
        try:
            data = await response.read()
        finally:
            response.release()
    except ApiException as e:
        return int(e.status or 0), str(e.reason or "")
    except aiohttp.ClientConnectorError as e:
        if cause := _nothing_there(e):
            raise _NothingThere(cause) from e
        return 0, f"{type(e).__name__}: {e}"
    except kube_errors.TRANSPORT_ERRORS as e:  # a timeout, a cut connection: someone is there
        return 0, f"{type(e).__name__}: {e}"
    return response.status, _reason(data, response.reason)


def _nothing_there(error: aiohttp.ClientConnectorError) -> str:
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "did not resolve"
    if isinstance(error, aiohttp.ClientSSLError):
        return ""  # something answered, in TLS the client did not accept
    if getattr(error.os_error, "errno", None) == errno.ECONNREFUSED:
        return "refused the connection"
    return ""
