"""Refuse policy files that contain secrets, and say how to reference them instead.

The policy file is kept in git and mounted from a ConfigMap — both readable by far more
people than a secret should be. So a value that looks like a credential (an AWS key, a
private key, a password in a URL, a field named like a secret) is an error, and the message
names the three ways to point at it: an environment variable, a file, or a Kubernetes Secret.
This runs on the raw YAML, before any field is interpreted, so it also catches secrets under
keys federator does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

PathKey = tuple[str | int, ...]

HOW_TO_REFERENCE = (
    "secrets never go in the policy file; reference them instead with `credentials: {env: "
    "{access_key_id: VAR, secret_access_key: VAR}}` (environment variables), `credentials: "
    "{file: path/to/keys.json}` (a mounted file) or `credentials: {kubernetes_secret: {name: "
    "NAME}}` (a Kubernetes Secret)"
)

_SECRET_KEY_NAMES = frozenset(
    {
        "access_key_id",
        "aws_access_key_id",
        "secret_access_key",
        "aws_secret_access_key",
        "secret_key",
        "session_token",
        "aws_session_token",
        "password",
        "passwd",
        "token",
        "api_key",
        "apikey",
        "client_secret",
        "private_key",
    }
)
# Under these keys the values are names of environment variables, not secrets.
_REFERENCE_PARENTS = frozenset({"env"})

_SECRET_VALUE_SHAPES = (
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key ID"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with a password in it"),
    (
        re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9/+]{40}$"),
        "an AWS secret access key",
    ),
)


@dataclass(frozen=True, slots=True)
class InlineSecret:
    """A place in the raw document that holds what looks like a secret."""

    path: PathKey
    message: str


def find_inline_secrets(data: object, path: PathKey = ()) -> Iterator[InlineSecret]:
    """Every value in `data` that looks like a secret, with its path."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, key if isinstance(key, str | int) else str(key))
            if _is_secret_field(path, key, value):
                yield InlineSecret(child, f"`{key}` looks like a secret value; {HOW_TO_REFERENCE}")
            else:
                yield from find_inline_secrets(value, child)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_inline_secrets(item, (*path, index))
    elif isinstance(data, str):
        for pattern, what in _SECRET_VALUE_SHAPES:
            if pattern.search(data):
                yield InlineSecret(path, f"this value looks like {what}; {HOW_TO_REFERENCE}")
                return


def _is_secret_field(parent: PathKey, key: object, value: object) -> bool:
    if not isinstance(key, str) or key.lower() not in _SECRET_KEY_NAMES:
        return False
    if parent and parent[-1] in _REFERENCE_PARENTS:
        return False
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""
