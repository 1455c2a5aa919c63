"""Kubeconfig credentials re-read while the daemon runs, so a rotation needs no restart.

A cluster's client is built once from its kubeconfig (a file, or a key of a Secret), and
kubernetes-asyncio keeps what it read then: a `token` or `tokenFile` is read once at load, and
client certificates go into the SSL context of the connection pool. (Only its in-cluster
loader re-reads the service-account token file, once a minute before a request, so
`clients.connect_in_cluster` needs nothing from here.) When an operator rotates credentials -
a new client certificate or bearer token written into the kubeconfig, the old one revoked -
the client would go on sending the old one and the cluster would stay down (401) until a
restart.

A `CredentialWatcher` looks at its cluster's kubeconfig every few seconds (a file every
`FILE_EVERY_S`, a Secret every `SECRET_EVERY_S`), and at once when the apiserver answers 401 or
403. When the bytes the client was built from have changed - the kubeconfig itself, or a file
its context names (`client-certificate`, `client-key`, `certificate-authority`, `tokenFile`) -
it builds a client from the new version and the `Cluster` adopts it in place
(`clients.Cluster.adopt`): the next request of every reader and writer carries the new
credentials, and reflectors waiting out a refusal retry at once.

Why poll a fingerprint rather than watch the file (inotify): a kubeconfig mounted from a Secret
is replaced by a symlink swap, files it names may change on their own, and a Secret has no
file at all; reading a few KiB every 2 s and hashing them catches every case with one rule.

A version that cannot be read or used (a half-written file, YAML garbage, a context that is
missing, a certificate that does not load) keeps the client in hand, which still works if the
old credentials do, and logs one `kubeconfig_unreadable` warning per distinct problem naming
the source and the position or kind of the error - never text from the file, which may be the
credential. Every credential read is registered with the log redactor before a client is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

from federator import errors, logs
from federator.kube import clients
from federator.kube.kubeconfig_text import KubeconfigUnreadable as KubeconfigUnreadable
from federator.kube.kubeconfig_text import check_context, named
from federator.kube.kubeconfig_text import parse as parse

log = structlog.get_logger(__name__)

FILE_EVERY_S = 2.0  # a stat-sized read and a hash: cheap enough to notice a rotation at once
SECRET_EVERY_S = 10.0  # one GET per cluster, like the store keys' refresh (`store_secrets`)
MIN_GAP_S = 1.0  # a burst of 401s from many readers leads to one look, not one per request

# Fields of a kubeconfig context's user and cluster that name files holding credentials.
_USER_FILES = ("client-certificate", "client-key", "tokenFile")
_CLUSTER_FILES = ("certificate-authority",)
_SECRET_FIELDS = ("token", "client-key-data", "password")


@dataclass(frozen=True, slots=True)
class Kubeconfig:
    """One version of a cluster's kubeconfig as read, and what identifies it."""

    loaded: dict[str, Any] = field(repr=False)
    fingerprint: str  # SHA-256 of the text and of every credential file its context names
    secrets: tuple[str, ...] = field(repr=False)  # values for the log redactor


class KubeconfigSource(Protocol):
    """Where a cluster's kubeconfig comes from; `where` names it in logs (never a value)."""

    @property
    def where(self) -> str: ...

    @property
    def every_s(self) -> float: ...

    async def read(self) -> Kubeconfig: ...

    async def client(self, version: Kubeconfig) -> ApiClient: ...


@dataclass(frozen=True, slots=True)
class KubeconfigFile:
    """A kubeconfig file on disk and the context of it the cluster uses."""

    path: Path
    context: str | None
    every_s: float = FILE_EVERY_S

    @property
    def where(self) -> str:
        return str(self.path)

    async def read(self) -> Kubeconfig:
        return await asyncio.to_thread(self._read)

    def _read(self) -> Kubeconfig:
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise KubeconfigUnreadable(
                f"cannot read it: {e.strerror or type(e).__name__}"
            ) from None
        loaded = parse(raw)
        check_context(loaded, self.context)  # a rotation may not drop the user or cluster
        digest = hashlib.sha256(raw)
        secrets = list(secret_values(loaded))
        user, cluster = selected(loaded, self.context)
        for entry, names in ((user, _USER_FILES), (cluster, _CLUSTER_FILES)):
            for name in names:
                if not isinstance(entry.get(name), str):
                    continue
                referenced = self.path.parent / entry[name]
                try:
                    content = referenced.read_bytes()
                except OSError as e:
                    why = e.strerror or type(e).__name__
                    raise KubeconfigUnreadable(
                        f"{name} {referenced}: cannot read it: {why}"
                    ) from None
                digest.update(name.encode() + b"\0" + content)
                if name != "client-certificate":
                    secrets.append(content.decode("utf-8", "replace").strip())
        return Kubeconfig(loaded, digest.hexdigest(), tuple(secrets))

    async def client(self, version: Kubeconfig) -> ApiClient:
        # Relative file names resolve against the kubeconfig's directory, as kubectl does.
        return await build_client(version.loaded, self.context, base_path=self.path.parent)


@dataclass(frozen=True, slots=True)
class KubeconfigInSecret:
    """A kubeconfig kept under `key` of a Secret, read through another cluster's client."""

    read_secret: Callable[[str, str], Awaitable[Mapping[str, str]]] = field(repr=False)
    namespace: str
    name: str
    key: str
    context: str | None
    every_s: float = SECRET_EVERY_S

    @property
    def where(self) -> str:
        return f"Secret {self.namespace}/{self.name}, key {self.key!r}"

    async def read(self) -> Kubeconfig:
        try:
            data = await self.read_secret(self.namespace, self.name)
        except errors.FederatorError as e:
            raise KubeconfigUnreadable(f"cannot read the Secret: {e}") from None
        if not data.get(self.key):
            raise KubeconfigUnreadable(f"the Secret has no non-empty key {self.key!r}")
        raw = data[self.key].encode()
        loaded = parse(raw)
        check_context(loaded, self.context)  # as at start: `clients.connect_kubeconfig_text`
        return Kubeconfig(loaded, hashlib.sha256(raw).hexdigest(), tuple(secret_values(loaded)))

    async def client(self, version: Kubeconfig) -> ApiClient:
        return await build_client(version.loaded, self.context, base_path=None)


def selected(
    loaded: Mapping[str, Any], context: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `user` and `cluster` entries `context` (None: the current one) refers to."""
    name = context or loaded.get("current-context")
    entry = (named(loaded, "contexts", name) or {}).get("context") or {}
    if not isinstance(entry, dict) or not entry:  # a string body was an AttributeError
        raise KubeconfigUnreadable(f"no context {name!r} (or it is not a mapping)")
    user = (named(loaded, "users", entry.get("user")) or {}).get("user") or {}
    cluster = (named(loaded, "clusters", entry.get("cluster")) or {}).get("cluster") or {}
    return (user if isinstance(user, dict) else {}), (cluster if isinstance(cluster, dict) else {})


def secret_values(loaded: Mapping[str, Any]) -> list[str]:
    """Every token, client key and password written in the kubeconfig itself."""
    users = loaded.get("users")
    return [
        str(user["user"][name])
        for user in (users if isinstance(users, list) else ())
        if isinstance(user, dict) and isinstance(user.get("user"), dict)
        for name in _SECRET_FIELDS
        if user["user"].get(name)
    ]


async def build_client(
    loaded: dict[str, Any], context: str | None, *, base_path: Path | None
) -> ApiClient:
    """A client for `context` of an already parsed kubeconfig, as kubernetes-asyncio builds one
    (its loader: token, certificates written to temp files, TLS settings)."""
    configuration = Configuration()
    try:
        loader = KubeConfigLoader(
            config_dict=loaded,
            config_base_path=None if base_path is None else str(base_path),
            active_context=context,
        )
        await loader.load_and_set(configuration)
        return ApiClient(configuration=configuration)
    # The loader raises ConfigException for what it checks, and KeyError, TypeError,
    # ValueError (base64) or ssl.SSLError (a key that does not match) for what it does not.
    except Exception as e:  # noqa: BLE001 - every failure means "keep the client in hand"
        raise KubeconfigUnreadable(
            f"cannot build a client from it: {type(e).__name__}: {e}"
        ) from None


async def baseline(source: KubeconfigSource) -> str | None:
    """The fingerprint of the version about to be connected with (None: unreadable now).

    Taken before the first client is built: if the kubeconfig changes in between, the first
    check sees a difference and rebuilds, so no rotation can slip between the two reads.
    """
    with contextlib.suppress(KubeconfigUnreadable):
        return (await source.read()).fingerprint
    return None


class CredentialWatcher:
    """Rebuilds one cluster's client whenever its kubeconfig's credentials change."""

    def __init__(
        self,
        cluster: clients.Cluster,
        source: KubeconfigSource,
        *,
        loaded: str | None,
        min_gap_s: float = MIN_GAP_S,
    ) -> None:
        self.cluster = cluster
        self.source = source
        self.loaded = loaded  # the fingerprint of the version the client in use came from
        self.rebuilds = 0
        self._min_gap_s = min_gap_s
        self._problem: str | None = None  # the last warning given, until the source is fine

    async def run(self) -> None:
        """Check every `source.every_s`, and at once after a 401/403; forever (cancel to stop)."""
        while True:
            refused = await self.cluster.credentials_refused(within_s=self.source.every_s)
            await self.check()
            if refused:
                await asyncio.sleep(self._min_gap_s)

    async def check(self) -> bool:
        """Read the source; adopt a client from it if it changed. True when one was adopted."""
        try:
            version = await self.source.read()
        except KubeconfigUnreadable as e:
            self._warn(str(e))
            return False
        logs.register_secrets(version.secrets)
        if version.fingerprint == self.loaded:
            self._fine()
            return False
        try:
            fresh = await self.source.client(version)
        except KubeconfigUnreadable as e:
            self._warn(str(e))
            return False
        self.cluster.adopt(fresh)
        self.loaded = version.fingerprint
        self.rebuilds += 1
        self._fine()
        log.info(
            "kubeconfig_reloaded",
            cluster=self.cluster.name,
            source=self.source.where,
            generation=self.cluster.credentials_version,  # not `credentials_…`: redacted
        )
        clients.warn_if_insecure(
            fresh, self.cluster.name, f"{self.source.where} (insecure-skip-tls-verify)"
        )
        return True

    def _warn(self, problem: str) -> None:
        if problem == self._problem:
            return  # said once; the next distinct problem (or the fix) is news again
        self._problem = problem
        log.warning(
            "kubeconfig_unreadable",
            cluster=self.cluster.name,
            source=self.source.where,
            error=problem,
            action="keeping the client in hand; read again at the next check",
        )

    def _fine(self) -> None:
        if self._problem is not None:
            log.info(
                "kubeconfig_readable_again", cluster=self.cluster.name, source=self.source.where
            )
        self._problem = None
