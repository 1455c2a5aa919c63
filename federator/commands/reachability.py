"""One quick look at the on-prem apiserver before a one-shot command waits for its caches,
and how a cluster's connection is named in what a person reads (`plan`, `run --once`,
`status`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from federator import policy
    from federator.kube import clients


async def stop_unless_onprem_answers(config_path: Path) -> None:
    """Raise a `UserError` when the on-prem apiserver is not there or refuses who we are.

    `plan`, `run --once` (and any one-shot command that waits for the on-prem caches) call
    this first: without it a stopped cluster cost a 60 s wait for the caches before its
    error. Only what cannot pass within a command's life stops it (nothing listening, no
    such host, 401/403); a slow or erring apiserver still gets the cache wait. Only on-prem
    is probed: it is the one cluster the commands wait for, while a cloud that is down is
    left out of the pass, as the daemon does, so one cloud's outage cannot stop a cron pass.
    """
    from federator import daemon, errors, policy
    from federator.kube import clients

    try:
        config = policy.load_policy(config_path)
    except errors.UserError:
        return  # the command reports its own policy file's errors, in its own words
    name = config.onprem_cluster.name
    cluster = await daemon.connect_cluster(config, name, None)
    try:
        found = await clients.probe(cluster)
    finally:
        await cluster.close()
    if problem := unreachable(found, where=connection_source(config, name)):
        raise errors.UserError(problem)


def unreachable(found: clients.Reachability, *, where: str) -> str:
    """What stops a one-shot command, said for a person at a terminal; "" if nothing does."""
    cluster = f"cluster {found.cluster} ({found.server})"
    tries = f"{found.tries} times over {found.within_s:.0f} s"
    if found.nothing_there == "did not resolve":
        return f"{cluster}: the host name did not resolve, {tries}; check the server in {where}"
    if found.nothing_there:
        hint = "; is it running?"
        if urlsplit(found.server).hostname in ("127.0.0.1", "localhost", "::1"):
            hint += " For the local sandbox: federator sandbox up"
        return f"{cluster} {found.nothing_there} {tries} ({where}){hint}"
    if found.credentials_refused:
        return (
            f"{cluster} refused our credentials ({found.status} {found.answer}): check the "
            f"user's token or client certificate in {where}"
        )
    return ""


def connection_source(config: policy.FederatorConfig, name: str) -> str:
    """Where a cluster's server and credentials come from, as a person would look them up."""
    from federator import policy

    access = policy.cluster_access(config, name)
    field = f"clusters.{name}.connection"
    if access.kubeconfig is not None:
        return f"{field}.kubeconfig: {access.kubeconfig}, context {access.context or name}"
    if access.in_cluster:
        return f"{field}.in_cluster (the pod's service account)"
    namespace, secret, key = access.kubeconfig_secret or (None, "", "")
    namespace = namespace or config.state_namespace
    return f"{field}.kubeconfig_secret: Secret {namespace}/{secret}, key {key!r}"
