"""Where the sandbox lives: pinned versions, the port plan, and the files under `.sandbox/`.

Every other sandbox module asks this one for a path or a port, so the whole port plan can be
read (and checked for clashes) in one place. All servers bind to 127.0.0.1 on fixed,
non-default ports: the sandbox contract promises fixed endpoints to the rest of federator,
and fixed ports let `down` check that nothing is left listening.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KUEUE_VERSION = "v0.19.2"
VERSITYGW_VERSION = "v1.7.0"

REGION = "us-east-1"
SITES = ("onprem", "cloud-a", "cloud-b")
KUEUE_SITE = "onprem"


@dataclass(frozen=True, slots=True)
class SitePorts:
    """The ports one site (a cluster plus its object store) listens on."""

    apiserver: int
    etcd_client: int
    etcd_peer: int
    controller_manager: int
    scheduler: int
    kwok: int
    s3: int

    @property
    def s3_internal(self) -> dict[str, int]:
        """SeaweedFS's own servers, placed right after the S3 port (gRPC = HTTP + 10000)."""
        return {
            "master": self.s3 + 1,
            "volume": self.s3 + 2,
            "filer": self.s3 + 3,
            "admin": self.s3 + 4,
        }


def _site_ports(index: int) -> SitePorts:
    base = 16600 + 10 * index
    return SitePorts(
        apiserver=16443 + index,
        etcd_client=base,
        etcd_peer=base + 1,
        controller_manager=base + 2,
        scheduler=base + 3,
        kwok=base + 4,
        s3=18310 + 10 * index,
    )


PORTS: dict[str, SitePorts] = {site: _site_ports(i) for i, site in enumerate(SITES)}


@dataclass(frozen=True, slots=True)
class KueuePorts:
    """Kueue's servers: every one moved off its default so nothing clashes with other tools."""

    webhook: int = 16605
    health: int = 16606
    metrics: int = 16607
    visibility: int = 16608


KUEUE_PORTS = KueuePorts()

GRPC_OFFSET = 10000


def all_ports() -> dict[str, int]:
    """Every port the sandbox binds, by a readable owner name (used by `down` and `status`)."""
    ports: dict[str, int] = {}
    for site, p in PORTS.items():
        ports[f"{site}/apiserver"] = p.apiserver
        ports[f"{site}/etcd"] = p.etcd_client
        ports[f"{site}/etcd-peer"] = p.etcd_peer
        ports[f"{site}/controller-manager"] = p.controller_manager
        ports[f"{site}/scheduler"] = p.scheduler
        ports[f"{site}/kwok"] = p.kwok
        ports[f"{site}/s3"] = p.s3
        for name, port in p.s3_internal.items():
            ports[f"{site}/s3-{name}"] = port
    ports["onprem/kueue-webhook"] = KUEUE_PORTS.webhook
    ports["onprem/kueue-health"] = KUEUE_PORTS.health
    ports["onprem/kueue-metrics"] = KUEUE_PORTS.metrics
    ports["onprem/kueue-visibility"] = KUEUE_PORTS.visibility
    return ports


def repo_root() -> Path:
    """The repository this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def cache_dir() -> Path:
    """The build cache outside the repo, keyed by version (same rule as build.sh)."""
    explicit = os.environ.get("FEDERATOR_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "federator"


@dataclass(frozen=True, slots=True)
class Layout:
    """The files of one sandbox, all under `<repo>/.sandbox/`."""

    root: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(repo_root() / ".sandbox")

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def s3_json(self) -> Path:
        return self.root / "s3.json"

    @property
    def state_json(self) -> Path:
        return self.root / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    def credentials_file(self, store: str) -> Path:
        return self.credentials / f"{store}.json"

    def site_dir(self, site: str) -> Path:
        return self.root / "sites" / site

    def admin_kubeconfig(self, site: str) -> Path:
        return self.site_dir(site) / "admin.kubeconfig"

    def log_file(self, site: str, component: str) -> Path:
        return self.logs / f"{site}-{component}.log"

    def data_dir(self, site: str, component: str) -> Path:
        """Data of stateful servers; etcd goes to shared memory when available (much faster)."""
        if component == "etcd":
            shm = Path("/dev/shm")
            if shm.is_dir() and os.access(shm, os.W_OK):
                return shm / f"federator-sandbox-{_path_key(self.root)}" / site / "etcd"
        return self.site_dir(site) / component

    @property
    def shm_dir(self) -> Path:
        return Path("/dev/shm") / f"federator-sandbox-{_path_key(self.root)}"


def _path_key(path: Path) -> str:
    """A short stable key so two checkouts never share an etcd data directory."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]


def binary_dir(name: str, version: str) -> Path:
    return cache_dir() / "bin" / f"{name}-{version}"
