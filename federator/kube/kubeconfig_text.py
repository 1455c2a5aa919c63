"""A kubeconfig's text turned into a mapping, with errors that never quote the text.

Every path that reads a kubeconfig parses it here: a file at start (`clients.connect`), a
kubeconfig kept in a Secret (`clients.connect_kubeconfig_text`), and the credential watcher
while the daemon runs (`rotation`). So a broken kubeconfig is reported the same way on all of
them, by position only: a YAML error's own message shows the offending line, and that line may
be a bearer token or a client key. `check_context` then checks what the client library would
trip over (with a TypeError, or silently, for a user that is not there) for the context used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class KubeconfigUnreadable(Exception):
    """This version of a kubeconfig cannot be used; the message never quotes its text."""


def parse(raw: bytes) -> dict[str, Any]:
    """The kubeconfig as a mapping; errors say where and what, never quoting the text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KubeconfigUnreadable(f"not UTF-8 text (byte {e.start})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise KubeconfigUnreadable(f"not valid YAML{at}: {e.problem or e.context}") from None
    except yaml.YAMLError:
        raise KubeconfigUnreadable("not valid YAML") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("contexts"), list):
        raise KubeconfigUnreadable("not a kubeconfig (no list of contexts)")
    for section in _SECTIONS:
        entries = loaded.get(section)
        if entries is not None and not isinstance(entries, list):
            raise KubeconfigUnreadable(f"not a kubeconfig ({section} is not a list)")
        for index, entry in enumerate(entries or ()):
            if not isinstance(entry, dict) or "name" not in entry:
                raise KubeconfigUnreadable(
                    f"not a kubeconfig ({section}[{index}] is not a mapping with a name)"
                )
            if not isinstance(entry["name"], str):  # `name: no` is a boolean, `2024` a number
                kind = type(entry["name"]).__name__
                raise KubeconfigUnreadable(
                    f"{section}[{index}]: YAML reads its name as {kind} "
                    f"{entry['name']!r}, not text; quote the name"
                )
    return loaded


_SECTIONS = ("contexts", "clusters", "users")


def check_context(loaded: Mapping[str, Any], context: str | None) -> None:
    """Raise `KubeconfigUnreadable` unless `context` (None: the current-context) of a parsed
    kubeconfig names a cluster with a server, and a user (if it names one), that are there.

    The client library checks little of this: a missing user is ignored (requests go out
    with no credentials), a cluster or user entry of the wrong type is a TypeError.
    """
    name = context if context is not None else loaded.get("current-context")
    if not isinstance(name, str) or not name:
        raise KubeconfigUnreadable("no context given and no current-context set")
    entry = named(loaded, "contexts", name)
    if entry is None:
        raise KubeconfigUnreadable(f"no context {name!r} (contexts: {_names(loaded, 'contexts')})")
    body = entry.get("context")
    if not isinstance(body, dict) or not isinstance(body.get("cluster"), str):
        raise KubeconfigUnreadable(f"context {name!r} is not a mapping naming a cluster")
    for section, kind in (("clusters", "cluster"), ("users", "user")):
        wanted = body.get(kind)
        if kind == "user" and wanted in (None, ""):
            continue  # no user: requests go out without credentials, as the file says
        found = named(loaded, section, wanted)
        if found is None:
            raise KubeconfigUnreadable(
                f"context {name!r} names {kind} {wanted!r}, which is not in {section} "
                f"({section}: {_names(loaded, section)})"
            )
        settings = found.get(kind)
        if kind == "cluster" and not (
            isinstance(settings, dict) and isinstance(settings.get("server"), str)
        ):
            raise KubeconfigUnreadable(f"cluster {wanted!r} has no server")
        if kind == "user" and not isinstance(settings, dict):
            raise KubeconfigUnreadable(f"user {wanted!r} is not a mapping")


def named(loaded: Mapping[str, Any], section: str, name: Any) -> dict[str, Any] | None:
    """The entry of `section` (contexts, clusters, users) called `name`, if there is one."""
    entries = loaded.get(section)
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def _names(loaded: Mapping[str, Any], section: str) -> str:
    names = sorted({str(e.get("name")) for e in loaded.get(section) or () if isinstance(e, dict)})
    return ", ".join(names) or "none"
