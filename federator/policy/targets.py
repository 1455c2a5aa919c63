"""Check that what a policy file points at is really there (`federator validate --check-files`).

A file can be valid and still fail at start-up: a kubeconfig path with a typo, a context the
kubeconfig does not have, a credentials file that was never mounted, an unset environment
variable. These checks read the local filesystem and environment only — no cluster or store
is contacted — and report each problem at the line of the field that points there. They are
opt-in because a file is often validated where it will not run (CI, a laptop).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from federator.errors import UserError
from federator.policy.clusters import CatalogPrice
from federator.policy.config import FederatorConfig, PathKey, Problem
from federator.policy.credentials import resolve_credentials
from federator.policy.references import Connection, CredentialsRef


def target_problems(
    config: FederatorConfig, environ: Mapping[str, str] | None = None
) -> list[Problem]:
    """Every file, kubeconfig context and credentials reference that cannot be used here."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    for index, cluster in enumerate(config.clusters):
        path: PathKey = ("clusters", index)
        problems.extend(_connection_problems(cluster.connection, (*path, "connection")))
        if cluster.object_store is not None:
            ref_path: PathKey = (*path, "object_store", "credentials")
            problems.extend(_credentials_problems(cluster.object_store.credentials, ref_path, env))
            if cluster.object_store.ca_bundle is not None:
                ca_path: PathKey = (*path, "object_store", "ca_bundle")
                problems.extend(_file_problems(cluster.object_store.ca_bundle, ca_path))
        for number, pool in enumerate(cluster.pools):
            if isinstance(pool.price, CatalogPrice):
                file_path: PathKey = (*path, "pools", number, "price", "file")
                problems.extend(_file_problems(pool.price.file, file_path))
    if config.prices.interruption_data is not None:
        problems.extend(
            _file_problems(config.prices.interruption_data, ("prices", "interruption_data"))
        )
    return problems


def _file_problems(path: Path, where: PathKey) -> Iterator[Problem]:
    if not path.exists():
        yield Problem(where, f"{path} does not exist")
    elif not path.is_file():
        yield Problem(where, f"{path} is not a file")
    elif not os.access(path, os.R_OK):
        yield Problem(where, f"{path} is not readable by this user")


def _connection_problems(connection: Connection, where: PathKey) -> Iterator[Problem]:
    if connection.kubeconfig is None:
        return
    problems = list(_file_problems(connection.kubeconfig, (*where, "kubeconfig")))
    if problems:
        yield from problems
        return
    if connection.context is None:
        return
    contexts = _contexts(connection.kubeconfig)
    if contexts is None:
        yield Problem((*where, "kubeconfig"), f"{connection.kubeconfig} is not a kubeconfig")
    elif connection.context not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        yield Problem(
            (*where, "context"),
            f"{connection.kubeconfig} has no context {connection.context!r} (contexts: {known})",
        )


def _contexts(kubeconfig: Path) -> set[str] | None:
    try:
        data = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("contexts", []), list):
        return None
    return {
        str(entry.get("name"))
        for entry in data.get("contexts") or []
        if isinstance(entry, dict) and entry.get("name")
    }


def _credentials_problems(
    ref: CredentialsRef, where: PathKey, environ: Mapping[str, str]
) -> Iterator[Problem]:
    if ref.file is not None:
        problems = list(_file_problems(ref.file, (*where, "file")))
        if problems:
            yield from problems
            return
    if ref.env is None and ref.file is None:
        return  # a Secret or the default chain: only the daemon can look
    try:
        resolve_credentials(ref, where="", environ=environ)
    except UserError as error:
        field = "file" if ref.file is not None else "env"
        yield Problem((*where, field), str(error).removeprefix(": "))
