"""A kubeconfig's text turned into a mapping, with errors that never quote the text.

Two paths read kubeconfigs as text: the daemon's start (`clients.connect_kubeconfig_text`, a
kubeconfig kept in a Secret) and the credential watcher while it runs (`rotation`). Both parse
here, so a broken kubeconfig is reported the same way on both, by position only: a YAML error's
own message shows the offending line, and that line may be a bearer token or a client key.
"""

from __future__ import annotations

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
    return loaded
