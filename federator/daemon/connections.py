"""How the process reaches its clusters: one client per cluster, the way its `connection` says.

A cluster is connected from a kubeconfig file, the pod's service account, or a kubeconfig in
a Secret read through the on-prem client (so the on-prem cluster is connected first). If
start-up fails after some clients exist, they are closed before the error is reported. A
cluster connected from a kubeconfig gets a credential watcher, so a rotated kubeconfig is
adopted without a restart (`federator.kube.rotation`); the service account's token is re-read
by the client library. The object stores' Secrets are read, and checked, through the same
on-prem client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from pathlib import Path

from federator import errors, logs, policy, store_secrets
from federator.daemon.credentials import kubeconfig_text_secrets
from federator.kube import clients, rotation


async def connect_clusters(
    config: policy.FederatorConfig,
    watchers: dict[str, rotation.CredentialWatcher] | None = None,
) -> dict[str, clients.Cluster]:
    """A client per cluster, the on-prem one first: a `kubeconfig_secret` is read through it.

    With `watchers`, every cluster connected from a kubeconfig (a file or a Secret) gets a
    `CredentialWatcher` in it, which the daemon runs to follow credential rotations. If any
    cluster cannot be connected, the ones already connected are closed before the error
    propagates (no "Unclosed client session" on a start-up mistake).
    """
    connected: dict[str, clients.Cluster] = {}
    onprem = config.onprem_cluster.name
    ordered = sorted(config.clusters, key=lambda c: c.name != onprem)
    try:
        for cluster in ordered:
            name = cluster.name
            source = None if watchers is None else kubeconfig_source(config, name, connected)
            loaded = None if source is None else await rotation.baseline(source)
            connected[name] = await connect_cluster(config, name, connected.get(onprem))
            if source is not None and watchers is not None:
                watchers[name] = rotation.CredentialWatcher(connected[name], source, loaded=loaded)
    except BaseException:
        await close_clusters(connected.values())
        raise
    return connected


def _not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a file ("" if it can be tried); one stat, at start-up."""
    if path.is_file():
        return ""
    return "is not a file" if path.exists() else "does not exist"


async def connect_cluster(
    config: policy.FederatorConfig, name: str, onprem: clients.Cluster | None
) -> clients.Cluster:
    """One cluster, the way its `connection` says: kubeconfig file, service account, Secret."""
    access = policy.cluster_access(config, name)
    where = f"clusters.{name}.connection"
    if access.kubeconfig is not None:
        if problem := _not_a_file(Path(access.kubeconfig)):  # the client: "expected key contexts"
            raise errors.UserError(f"{where}.kubeconfig: {access.kubeconfig} {problem}")
        source = f"{where}.kubeconfig: {access.kubeconfig}"
        return await clients.connect(
            access.kubeconfig, access.context or name, name=name, source=source
        )
    if access.in_cluster:
        with contextlib.suppress(OSError):  # unreadable: connect_in_cluster says so clearly
            token = (clients.SERVICE_ACCOUNT_DIR / "token").read_text().strip()
            logs.register_secrets([token] if token else [])
        return await clients.connect_in_cluster(name=name)
    assert access.kubeconfig_secret is not None  # the policy file allows exactly one way
    namespace, secret, key = access.kubeconfig_secret
    namespace = namespace or config.state_namespace
    source = f"{where}.kubeconfig_secret (Secret {namespace}/{secret}, key {key!r})"
    if onprem is None:
        raise errors.UserError(
            f"{source}: the on-prem cluster's own connection cannot come from a Secret (it is "
            "read from the on-prem cluster); use in_cluster: true or a kubeconfig file"
        )
    try:
        data = await clients.read_secret(onprem, namespace, secret)
    except errors.FederatorError as e:
        raise errors.UserError(f"{source}: cannot read it from {onprem.name}: {e}") from None
    if key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise errors.UserError(f"{source}: the Secret has no key {key!r} (keys: {keys})")
    logs.register_secrets(kubeconfig_text_secrets(data[key]))
    return await clients.connect_kubeconfig_text(
        data[key], access.context, name=name, source=source
    )


def kubeconfig_source(
    config: policy.FederatorConfig, name: str, connected: dict[str, clients.Cluster]
) -> rotation.KubeconfigSource | None:
    """Where `name`'s kubeconfig is read again from while running; None for the service
    account (kubernetes-asyncio re-reads its token file by itself)."""
    access = policy.cluster_access(config, name)
    if access.kubeconfig is not None:
        return rotation.KubeconfigFile(access.kubeconfig, access.context or name)
    onprem = connected.get(config.onprem_cluster.name)
    if access.kubeconfig_secret is None or onprem is None:
        return None
    namespace, secret, key = access.kubeconfig_secret
    return rotation.KubeconfigInSecret(
        functools.partial(clients.read_secret, onprem),
        namespace or config.state_namespace,
        secret,
        key,
        access.context,
    )


async def close_clusters(clusters: Iterable[clients.Cluster]) -> None:
    for cluster in clusters:
        with contextlib.suppress(Exception):  # closing is best effort; the error that led
            await cluster.close()  # here, if any, is the one worth reporting


async def read_store_secrets(
    config: policy.FederatorConfig, onprem: clients.Cluster
) -> store_secrets.StoreSecrets:
    """The Secrets object stores take their keys from (`credentials.kubernetes_secret`), read
    at start through the on-prem client and checked (a missing Secret or key stops the start
    with the field named). The stores re-read them through the same client when their keys
    refresh, so a rotated Secret is used without a restart (`federator.store_secrets`)."""

    secrets = store_secrets.StoreSecrets(
        functools.partial(clients.read_secret, onprem),
        asyncio.get_running_loop(),
        default_namespace=config.state_namespace,
    )
    for cluster in config.clusters:
        store = cluster.object_store
        ref = store.credentials.kubernetes_secret if store is not None else None
        if ref is None:
            continue
        namespace = ref.namespace or config.state_namespace
        where = f"clusters.{cluster.name}.object_store.credentials.kubernetes_secret"
        try:
            await secrets.load(namespace, ref.name)
        except errors.FederatorError as e:
            raise errors.UserError(
                f"{where}: cannot read Secret {namespace}/{ref.name} from {onprem.name}: {e}"
            ) from None
        # a missing key fails here, at start, with the field named, not at the first copy
        policy.store_access(config, cluster.name, read_secret=secrets)
    return secrets
