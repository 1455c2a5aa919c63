"""The real Kueue controller on the onprem cluster, run out of cluster with its webhooks.

Kueue is built to run in a pod, so a few things are wired by hand (see the recipe, §5.6):
its CRDs come from the Kueue module as shipped; internal certificate management is off, so
the webhook serves our CA-signed certificate, and the metrics and visibility servers find
theirs at the paths compiled into Kueue (`/etc/kueue/metrics/certs`, `/visibility`); the
webhook configurations are Kueue's own, limited to batch/Job and Kueue's types, pointed at
`https://127.0.0.1:<port>` instead of a Service, and created only once Kueue is ready
(their failure policy is Fail). Objects use `kueue.x-k8s.io/v1beta2` only: the CRDs have no
conversion webhook here.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from federator.sandbox.binaries import assets_dir, module_dir, program
from federator.sandbox.kubeapi import KubeApi, object_path
from federator.sandbox.layout import KUEUE_PORTS, KUEUE_SITE, KUEUE_VERSION, Layout, binary_dir
from federator.sandbox.pki import Pki
from federator.sandbox.pools import GPU_PRODUCT_LABEL, GPU_RESOURCE, POOLS
from federator.sandbox.probes import ComponentFailed, http_probe
from federator.sandbox.supervisor import ProcessSpec

if TYPE_CHECKING:
    from federator.sandbox.orchestrator import Component, Report, Sandbox

NAMESPACE = "kueue-system"
CLUSTER_QUEUE = "onprem"
FLAVOR = "gpu"
TEAMS = ("team-a", "team-b")
# config/sandbox.yaml's `state_namespace`: where `federator run` keeps its Lease and records.
# Without it the daemon decides but never leads, so `sandbox up` then `run` bursted nothing.
STATE_NAMESPACE = "federator"
# Where Kueue v0.19 looks for certificates when internal cert management is off.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
VISIBILITY_CERT_DIR = Path("/visibility")
CRD_ESTABLISHED_TIMEOUT_S = 60.0


class Kueue:
    """Kueue on the onprem site: its process, CRDs, webhooks and queues."""

    def __init__(self, layout: Layout, report: Report) -> None:
        self.layout = layout
        self.report = report
        self.pki = Pki(layout.pki)
        self.workdir = layout.site_dir(KUEUE_SITE) / "kueue"

    def components(self) -> list[Component]:
        from federator.sandbox.orchestrator import PART_KUEUE, Component

        return [
            Component(
                site=KUEUE_SITE,
                name="kueue",
                part=PART_KUEUE,
                spec=self._spec,
                probe=lambda: http_probe(f"http://127.0.0.1:{KUEUE_PORTS.health}/readyz"),
                ports=(
                    KUEUE_PORTS.webhook,
                    KUEUE_PORTS.health,
                    KUEUE_PORTS.metrics,
                    KUEUE_PORTS.visibility,
                ),
                timeout_s=120.0,
                configure=self.configure,
            )
        ]

    async def up(self, sandbox: Sandbox) -> None:
        api = KubeApi.for_site(self.layout, KUEUE_SITE)
        await api.apply(_namespace(NAMESPACE))
        await self._ensure_crds(api)
        self._write_certificates()
        await sandbox.ensure(self.components()[0])

    async def configure(self) -> None:
        """After Kueue is ready: its webhooks, then the flavor, queues, team namespaces and
        federator's own namespace."""
        api = KubeApi.for_site(self.layout, KUEUE_SITE)
        for webhook in self._webhook_configurations():
            await api.apply(webhook)
        for obj in queue_objects():
            await api.apply(obj)
        await release_stuck_workloads(api, self.report)
        self.report(f"{KUEUE_SITE}: Kueue ClusterQueue {CLUSTER_QUEUE!r}, queues {TEAMS} ready")

    # ---- process ---------------------------------------------------------------------------

    def _spec(self) -> ProcessSpec:
        config = self.workdir / "config.yaml"
        config.write_text(yaml.safe_dump(self._configuration(), sort_keys=False))
        argv = (
            str(program("kueue")),
            f"--config={config}",
            # The visibility server reads the --kubeconfig flag, not $KUBECONFIG.
            f"--kubeconfig={self.layout.admin_kubeconfig(KUEUE_SITE)}",
            "--zap-log-level=info",
        )
        return ProcessSpec(KUEUE_SITE, "kueue", argv, self.layout.log_file(KUEUE_SITE, "kueue"))

    def _configuration(self) -> dict[str, Any]:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": NAMESPACE,
            "manageJobsWithoutQueueName": False,
            "internalCertManagement": {"enable": False},
            "webhook": {
                "host": "127.0.0.1",
                "port": KUEUE_PORTS.webhook,
                "certDir": str(self.workdir / "webhook-certs"),
            },
            "health": {"healthProbeBindAddress": f"127.0.0.1:{KUEUE_PORTS.health}"},
            "metrics": {"bindAddress": f"127.0.0.1:{KUEUE_PORTS.metrics}"},
            "leaderElection": {"leaderElect": False},
            "visibilityServer": {"bindAddress": "127.0.0.1", "bindPort": KUEUE_PORTS.visibility},
            "clientConnection": {"qps": 200, "burst": 400},
            "integrations": {"frameworks": ["batch/job"]},
        }

    def _write_certificates(self) -> None:
        self.pki.ensure()
        for directory in (self.workdir / "webhook-certs", METRICS_CERT_DIR, VISIBILITY_CERT_DIR):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.pki.serving.cert, directory / "tls.crt")
                shutil.copyfile(self.pki.serving.key, directory / "tls.key")
            except PermissionError as error:
                raise ComponentFailed(
                    f"{KUEUE_SITE}/kueue",
                    f"cannot write {directory}/tls.*, a path compiled into Kueue "
                    f"({error.strerror}); run the sandbox as root or make it writable",
                    None,
                ) from None

    # ---- CRDs and webhooks -----------------------------------------------------------------

    async def _ensure_crds(self, api: KubeApi) -> None:
        crds = [yaml.safe_load(p.read_text()) for p in sorted(_config_dir().glob("crd/*.yaml"))]
        if not crds:
            raise FileNotFoundError(f"no Kueue CRDs under {_config_dir() / 'crd'}")
        created = 0
        for crd in crds:
            if await api.get("CustomResourceDefinition", crd["metadata"]["name"]) is None:
                await api.request(
                    "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd
                )
                created += 1
        deadline = asyncio.get_running_loop().time() + CRD_ESTABLISHED_TIMEOUT_S
        names = [crd["metadata"]["name"] for crd in crds]
        while not await _all_established(api, names):
            if asyncio.get_running_loop().time() > deadline:
                raise ComponentFailed(
                    f"{KUEUE_SITE}/apiserver",
                    "did not establish Kueue's CRDs in time",
                    self.layout.log_file(KUEUE_SITE, "apiserver"),
                )
            await asyncio.sleep(0.5)
        if created:
            self.report(f"{KUEUE_SITE}: created {created} Kueue CRDs")

    def _webhook_configurations(self) -> list[dict[str, Any]]:
        ca_bundle = base64.b64encode(self.pki.ca.cert.read_bytes()).decode()
        manifests = list(yaml.safe_load_all((_config_dir() / "webhook-manifests.yaml").read_text()))
        configurations = []
        for manifest in manifests:
            if not manifest:
                continue
            kept = [w for w in manifest["webhooks"] if _wanted(w)]
            for webhook in kept:
                path = webhook["clientConfig"]["service"]["path"]
                webhook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{KUEUE_PORTS.webhook}{path}",
                    "caBundle": ca_bundle,
                }
            manifest["metadata"] = {"name": f"kueue-{manifest['metadata']['name']}"}
            manifest["webhooks"] = kept
            configurations.append(manifest)
        return configurations


async def release_stuck_workloads(
    api: KubeApi, report: Report, *, now: float | None = None, stuck_after_s: float = 60.0
) -> list[str]:
    """Let go of Workloads that are being deleted, whose Job is gone, and that Kueue still holds.

    Kueue removes its `resource-in-use` finalizer when it sees the deletion; if it was down or
    restarting at that moment (a test that kills the apiserver, an interrupted run), the
    Workload can stay "admitted" for ever and keep its quota, so every later on-prem job of
    the shared 16-GPU ClusterQueue waits. Only a Workload past `stuck_after_s` of deletion
    with no owner Job left is touched.
    """
    now = time.time() if now is None else now
    released = []
    every = await api.request("GET", "/apis/kueue.x-k8s.io/v1beta2/workloads")
    for workload in every.get("items", []):
        meta = workload["metadata"]
        deleting = meta.get("deletionTimestamp")
        if not deleting or not meta.get("finalizers"):
            continue
        since = datetime.fromisoformat(deleting.replace("Z", "+00:00")).timestamp()
        if now - since < stuck_after_s:
            continue
        owners = [r for r in meta.get("ownerReferences") or () if r.get("kind") == "Job"]
        if any([await api.get("Job", r["name"], meta["namespace"]) for r in owners]):
            continue
        await _drop_finalizers(api, meta["namespace"], meta["name"])
        name = f"{meta['namespace']}/{meta['name']}"
        released.append(name)
        report(f"{KUEUE_SITE}: released Workload {name}: deleted at {deleting}, its Job is gone")
    return released


async def _drop_finalizers(api: KubeApi, namespace: str, name: str) -> None:
    """Clear a Workload's finalizers; the apiserver refuses writes in a namespace that is
    already gone, so such a namespace comes back for the moment it takes."""
    path = object_path("Workload", name, namespace)
    body = {"metadata": {"finalizers": None}}
    patch = "application/merge-patch+json"
    if await api.get("Namespace", namespace) is not None:
        await api.request("PATCH", path, body=body, content_type=patch)
        return
    await api.apply(_namespace(namespace))
    try:
        await api.request("PATCH", path, body=body, content_type=patch)
    finally:
        await api.delete("Namespace", namespace)


def _wanted(webhook: dict[str, Any]) -> bool:
    """Job and Kueue's own webhooks; webhooks of integrations we do not run would block."""
    path: str = webhook["clientConfig"]["service"]["path"]
    return path.endswith("-batch-v1-job") or "-kueue-x-k8s-io-" in path


async def _all_established(api: KubeApi, names: list[str]) -> bool:
    for name in names:
        crd = await api.get("CustomResourceDefinition", name)
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
    return True


def _config_dir() -> Path:
    """Kueue's CRDs and webhook manifests: build.sh's copy, else the Go module cache."""
    copied = assets_dir("kueue")
    if (copied / "crd").is_dir():
        return copied
    source = module_dir("sigs.k8s.io/kueue", KUEUE_VERSION)
    if source is None:
        raise FileNotFoundError(f"Kueue {KUEUE_VERSION} sources not found; run build.sh kueue")
    staged = binary_dir("kueue-assets-from-modcache", KUEUE_VERSION)
    (staged / "crd").mkdir(parents=True, exist_ok=True)
    for crd in (source / "config" / "components" / "crd" / "bases").glob("*.yaml"):
        shutil.copyfile(crd, staged / "crd" / crd.name)
    shutil.copyfile(
        source / "config" / "components" / "webhook" / "manifests.yaml",
        staged / "webhook-manifests.yaml",
    )
    return staged


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def queue_objects() -> list[dict[str, Any]]:
    """ResourceFlavor `gpu`, ClusterQueue `onprem` sized to the onprem nodes, team queues."""
    pools = POOLS[KUEUE_SITE]
    gpus = sum(p.nodes * p.gpus_per_node for p in pools)
    cpus = sum(p.nodes * p.cpu for p in pools)
    memory_gi = sum(p.nodes * p.memory_gi for p in pools)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {GPU_PRODUCT_LABEL: pools[0].gpu_product}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": CLUSTER_QUEUE},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU_RESOURCE],
                        "flavors": [
                            {
                                "name": FLAVOR,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": str(cpus)},
                                    {"name": "memory", "nominalQuota": f"{memory_gi}Gi"},
                                    {"name": GPU_RESOURCE, "nominalQuota": str(gpus)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        _namespace(STATE_NAMESPACE),
    ]
    for team in TEAMS:
        objects.append(_namespace(team))
        objects.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": team, "namespace": team},
                "spec": {"clusterQueue": CLUSTER_QUEUE},
            }
        )
    return objects
