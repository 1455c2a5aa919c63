"""Resolve what the policy file references: object store keys, cluster connections.

This is an edge: it reads environment variables and credential files, at the moment a store
or cluster is about to be used (so a rotated file is picked up on the next resolve). A
Kubernetes Secret can only be read through a Kubernetes client, which this package may not
import; callers that allow Secret references pass a `read_secret` function. Every failure is
a `UserError` that names the cluster, the reference, and what to fix — never the secret.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from federator.errors import UserError
from federator.policy.clusters import Cluster
from federator.policy.config import FederatorConfig
from federator.policy.references import Connection, CredentialsRef

# (namespace or None for federator's own, secret name) -> the Secret's decoded data.
SecretReader = Callable[[str | None, str], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class S3Credentials:
    """Access keys for one object store; `repr` never shows the secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class StoreAccess:
    """Everything an S3 client needs to talk to one cluster's object store."""

    cluster: str
    endpoint_url: str | None
    region: str
    addressing_style: str
    verify_tls: bool
    # None: use boto3's standard provider chain (the policy said `default_chain: true`).
    credentials: S3Credentials | None
    ca_bundle: Path | None = None  # the CAs to verify the endpoint with; None: the system's


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """How to build a Kubernetes client for one cluster."""

    cluster: str
    kubeconfig: Path | None  # a kubeconfig file to load, or None
    context: str | None  # the context in it (or in the Secret's kubeconfig), None: current
    in_cluster: bool  # use the pod's service account
    kubeconfig_secret: tuple[str | None, str, str] | None  # (namespace, name, key)


def resolve_credentials(
    ref: CredentialsRef,
    *,
    where: str,
    environ: Mapping[str, str] | None = None,
    read_secret: SecretReader | None = None,
) -> S3Credentials | None:
    """The keys `ref` points at; None for boto3's default chain. `where` names the reference
    in error messages (e.g. `clusters.cloud-a.object_store.credentials`)."""
    env = os.environ if environ is None else environ
    if ref.env is not None:
        names = ref.env
        return S3Credentials(
            access_key_id=_from_env(env, names.access_key_id, where),
            secret_access_key=_from_env(env, names.secret_access_key, where),
            session_token=(
                None if names.session_token is None else _from_env(env, names.session_token, where)
            ),
        )
    if ref.file is not None:
        return _from_file(ref.file, ref.profile, where)
    if ref.kubernetes_secret is not None:
        secret = ref.kubernetes_secret
        if read_secret is None:
            raise UserError(
                f"{where}: credentials in Kubernetes Secret {secret.name!r} can only be read "
                "by the daemon; use `env` or `file` credentials for this command"
            )
        data = read_secret(secret.namespace, secret.name)
        return S3Credentials(
            access_key_id=_secret_key(data, secret.access_key_id_key, secret.name, where),
            secret_access_key=_secret_key(data, secret.secret_access_key_key, secret.name, where),
        )
    return None


def store_access(
    config: FederatorConfig,
    cluster_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    read_secret: SecretReader | None = None,
) -> StoreAccess:
    """Endpoint, settings and resolved keys of the object store of `cluster_name`."""
    cluster = _cluster(config, cluster_name)
    store = cluster.object_store
    if store is None:
        raise UserError(f"cluster {cluster_name!r} has no object_store in the policy file")
    credentials = resolve_credentials(
        store.credentials,
        where=f"clusters.{cluster_name}.object_store.credentials",
        environ=environ,
        read_secret=read_secret,
    )
    return StoreAccess(
        cluster=cluster_name,
        endpoint_url=store.endpoint,
        region=store.region,
        addressing_style=store.addressing_style,
        verify_tls=store.verify_tls,
        credentials=credentials,
        ca_bundle=store.ca_bundle,
    )


def cluster_access(config: FederatorConfig, cluster_name: str) -> ClusterAccess:
    """How to connect to `cluster_name` (no file is read here; the kube edge loads it)."""
    connection: Connection = _cluster(config, cluster_name).connection
    secret = connection.kubeconfig_secret
    return ClusterAccess(
        cluster=cluster_name,
        kubeconfig=connection.kubeconfig,
        context=connection.context,
        in_cluster=connection.in_cluster,
        kubeconfig_secret=None if secret is None else (secret.namespace, secret.name, secret.key),
    )


def _cluster(config: FederatorConfig, name: str) -> Cluster:
    try:
        return config.cluster(name)
    except KeyError:
        known = ", ".join(c.name for c in config.clusters)
        raise UserError(
            f"no cluster named {name!r} in the policy file (clusters: {known})"
        ) from None


def _from_env(environ: Mapping[str, str], name: str, where: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise UserError(f"{where}: environment variable {name} is not set or empty")
    return value


def _from_file(path: Path, profile: str | None, where: str) -> S3Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"{where}: cannot read {path}: {error.strerror or error}") from None
    if text.lstrip().startswith("{"):
        return _from_json(text, path, where)
    return _from_ini(text, path, profile or "default", where)


def _from_json(text: str, path: Path, where: str) -> S3Credentials:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: {path} is not valid JSON (line {error.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{where}: {path} must hold a JSON object with access_key_id and secret_access_key"
        )
    return S3Credentials(
        access_key_id=_required(data, "access_key_id", path, where),
        secret_access_key=_required(data, "secret_access_key", path, where),
        session_token=data.get("session_token") or None,
    )


def _from_ini(text: str, path: Path, profile: str, where: str) -> S3Credentials:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        raise UserError(f"{where}: {path} is neither JSON nor an INI file: {error}") from None
    if not parser.has_section(profile):
        sections = ", ".join(parser.sections()) or "none"
        raise UserError(f"{where}: {path} has no [{profile}] section (sections: {sections})")
    section = dict(parser[profile])
    return S3Credentials(
        access_key_id=_required(section, "aws_access_key_id", path, where),
        secret_access_key=_required(section, "aws_secret_access_key", path, where),
        session_token=section.get("aws_session_token") or None,
    )


def _required(data: Mapping[str, object], key: str, path: Path, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: {path} has no non-empty {key!r}")
    return value


def _secret_key(data: Mapping[str, str], key: str, name: str, where: str) -> str:
    value = data.get(key, "")
    if not value:
        raise UserError(f"{where}: Secret {name!r} has no non-empty key {key!r}")
    return value
