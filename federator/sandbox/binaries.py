"""Find the sandbox's Go-built programs in the version-keyed cache, building what is missing.

Building is `scripts/sandbox/build.sh`'s job (it owns the Go module proxy route); this module
only knows where each program lands and calls the script for the missing ones, streaming its
output so a cold build shows progress instead of looking hung.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from federator.errors import FederatorError
from federator.sandbox.layout import (
    ETCD_VERSION,
    K8S_VERSION,
    KUEUE_VERSION,
    KWOK_VERSION,
    VERSITYGW_VERSION,
    binary_dir,
    repo_root,
)

# build.sh component -> (cache dir name, version, programs it provides)
COMPONENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "etcd": ("etcd", ETCD_VERSION, ("etcd",)),
    "kwok": ("kwok", KWOK_VERSION, ("kwok",)),
    "k8s": ("k8s", K8S_VERSION, ("kube-apiserver", "kube-controller-manager", "kube-scheduler")),
    "kubectl": ("kubectl", K8S_VERSION, ("kubectl",)),
    "kueue": ("kueue", KUEUE_VERSION, ("kueue",)),
    "versitygw": ("versitygw", VERSITYGW_VERSION, ("versitygw",)),
}


class BuildFailed(FederatorError):
    """scripts/sandbox/build.sh failed; its output was streamed above."""


def program(name: str) -> Path:
    """Where program `name` (e.g. "kube-apiserver") lives in the cache (it may not exist)."""
    for directory, version, programs in COMPONENTS.values():
        if name in programs:
            return binary_dir(directory, version) / name
    raise KeyError(name)


def is_built(component: str) -> bool:
    directory, version, programs = COMPONENTS[component]
    folder = binary_dir(directory, version)
    return (folder / ".complete").exists() and all((folder / p).exists() for p in programs)


def missing(components: Iterable[str]) -> list[str]:
    return [c for c in components if not is_built(c)]


def build(components: list[str], echo: Callable[[str], None]) -> None:
    """Run build.sh for `components`, echoing each output line; raise BuildFailed on error."""
    script = repo_root() / "scripts" / "sandbox" / "build.sh"
    echo(f"building {', '.join(components)} with {script} (a cold build takes minutes)")
    with subprocess.Popen(
        [str(script), *components],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            echo(line.rstrip())
        code = process.wait()
    if code != 0:
        raise BuildFailed(f"scripts/sandbox/build.sh {' '.join(components)} exited with {code}")


def assets_dir(component: str) -> Path:
    """Extra files build.sh copies next to a program (KWOK stages, Kueue CRDs/webhooks)."""
    directory, version, _ = COMPONENTS[component]
    return binary_dir(directory, version) / "assets"


def module_dir(module: str, version: str) -> Path | None:
    """A module's source in the Go module cache (where build.sh downloaded it), if present."""
    try:
        out = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    path = Path(out) / f"{escaped}@{version}"
    return path if path.is_dir() else None
