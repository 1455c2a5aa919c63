"""Keeping the process's credentials out of sight.

Every credential the process will hold (object store keys, kubeconfig keys, tokens and
passwords) is registered with the log redactor before anything can log it, so it is masked by
value wherever it turns up; a store reached without TLS verification is named loudly, since
credentials and data cross that link.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import structlog

from federator import policy

log = structlog.get_logger(__name__)


def secrets_of(config: policy.FederatorConfig) -> list[str]:
    """Every credential the process will hold, so the log redactor can mask it by value too."""
    values: list[str] = []
    for cluster in config.clusters:
        if cluster.object_store is not None:
            with contextlib.suppress(Exception):  # unresolvable now: it fails loudly later
                keys = policy.store_access(config, cluster.name).credentials
                if keys is not None:
                    values += [keys.secret_access_key, keys.session_token or ""]
        kubeconfig = policy.cluster_access(config, cluster.name).kubeconfig
        if kubeconfig is not None:
            values += _kubeconfig_secrets(kubeconfig)
    return [v for v in values if v]


def _kubeconfig_secrets(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # connecting reports an unreadable file by name
        return []
    return kubeconfig_text_secrets(text)


def kubeconfig_text_secrets(text: str) -> list[str]:
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    users = loaded.get("users", []) if isinstance(loaded, dict) else []
    if not isinstance(users, list):  # `users: 5`: connecting says what is wrong
        return []
    fields = ("client-key-data", "token", "password")
    return [
        str(user["user"][field])
        for user in users
        if isinstance(user, dict) and isinstance(user.get("user"), dict)
        for field in fields
        if user["user"].get(field)
    ]


def warn_about_insecure_stores(config: policy.FederatorConfig) -> None:
    """A store with TLS verification off is allowed only loudly (the policy says so explicitly)."""
    for cluster in config.clusters:
        store = cluster.object_store
        if store is not None and not store.verify_tls:
            log.warning(
                "tls_verification_disabled",
                cluster=cluster.name,
                source=f"clusters.{cluster.name}.object_store.verify_tls: false",
                hint="trust the store's CA instead; credentials and data cross this link",
            )
