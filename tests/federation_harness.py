"""Run the federation loop against the sandbox's real clusters, in-process or as a process.

A small composition root for tests (the daemon's `federator run` is the production one): it
connects to `onprem`, `cloud-a` and `cloud-b` from the sandbox kubeconfig, starts the
reflectors and `Federation.run`, and stops them cleanly. Run as a module it is a process that
tests can kill -9 and start again:

    python -m tests.federation_harness --kubeconfig .sandbox/kubeconfig --instance t1 \
        --namespaces ns-a,ns-b
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federator.core.models import CapacityType, Offer
from federator.core.policy import Budgets, DecisionPolicy, Strategy
from federator.federation import Federation, FederationSettings
from federator.kube import clients
from federator.kube.cloud import CloudCluster, CloudSettings
from federator.kube.onprem import OnPremCluster
from federator.kube.pool_block_store import ConfigMapPoolBlockStore
from federator.sandbox import kwok
from federator.sandbox.binaries import program
from federator.sandbox.clusters import Clusters
from federator.sandbox.env import SandboxEnv
from federator.sandbox.kubeapi import KubeApi, KubeError
from federator.sandbox.layout import Layout

CLOUDS = ("cloud-a", "cloud-b")

REWRITES = {
    "cloud-a": (("s3://onprem-datasets/", "s3://cloud-a-datasets/"),),
    "cloud-b": (("s3://onprem-datasets/", "s3://cloud-b-datasets/"),),
}


def sandbox_offers(*, startup_latency_s: float = 10.0) -> list[Offer]:
    """The sandbox's four pools, priced like their real counterparts (per GPU-hour)."""

    def pool(
        cluster: str, name: str, gpu: str, kind: CapacityType, price: float, gpus: int
    ) -> Offer:
        return Offer(
            cluster=cluster,
            pool=name,
            gpu_type=gpu,
            capacity_type=kind,
            price_per_gpu_hour_usd=price,
            free_gpus=gpus,
            preemption_rate_per_hour=0.05 if kind is CapacityType.SPOT else 0.0,
            startup_latency_s=startup_latency_s,
        )

    return [
        pool("cloud-a", "a100-spot", "A100", CapacityType.SPOT, 1.2, 32),
        pool("cloud-a", "a100-ondemand", "A100", CapacityType.ON_DEMAND, 3.7, 16),
        pool("cloud-b", "h100-spot", "H100", CapacityType.SPOT, 2.4, 32),
        pool("cloud-b", "h100-ondemand", "H100", CapacityType.ON_DEMAND, 6.9, 16),
    ]


def sandbox_policy(*, budget_usd_per_day: float = 50.0) -> DecisionPolicy:
    """Time is worth a lot in the sandbox (jobs last seconds), so overflow bursts quickly."""
    return DecisionPolicy(
        strategy=Strategy.FEDERATOR,
        value_of_time_usd_per_gpu_hour=60.0,
        burst_margin_fraction=0.1,
        default_checkpoint_interval_s=None,
        restart_overhead_s=5.0,
        budgets=Budgets(max_usd_per_day=budget_usd_per_day),
    )


class FixedOffers:
    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = list(offers)

    async def __call__(self) -> Sequence[Offer]:
        return self.offers


@dataclass
class Running:
    federation: Federation
    onprem: OnPremCluster
    clouds: dict[str, CloudCluster]
    reports: list[object] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_federation(
    kubeconfig: Path,
    *,
    instance: str,
    namespaces: Sequence[str],
    settings: FederationSettings | None = None,
    policy: DecisionPolicy | None = None,
    offers: Sequence[Offer] | None = None,
    cloud_names: Sequence[str] = CLOUDS,
    pool_blocks_in: tuple[str, str] | None = None,
) -> AsyncIterator[Running]:
    """Federation running against the sandbox until the block exits. `cloud_names`: the
    clouds it federates; `pool_blocks_in`: (namespace, name) of the ConfigMap it keeps its
    pool blocks in (none kept without it)."""
    settings = settings or FederationSettings(instance=instance, interval_s=2.0, gc_grace_s=5.0)
    onprem_cluster = await clients.connect(kubeconfig, "onprem")
    onprem = OnPremCluster(onprem_cluster, namespaces=namespaces, default_runtime_s=60.0)
    clouds: dict[str, CloudCluster] = {}
    for name in cloud_names:
        cluster = await clients.connect(kubeconfig, name)
        clouds[name] = CloudCluster(
            cluster,
            source=onprem,
            settings=CloudSettings(
                instance=instance, rewrites=REWRITES[name], copy_config_maps=True
            ),
        )
    federation = Federation(
        onprem=onprem,
        clouds=clouds,
        policy=policy or sandbox_policy(),
        offers=FixedOffers(offers or sandbox_offers()),
        settings=settings,
        pool_block_store=(
            None
            if pool_blocks_in is None
            else ConfigMapPoolBlockStore(
                onprem_cluster, namespace=pool_blocks_in[0], name=pool_blocks_in[1]
            )
        ),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(onprem.run(), name="onprem")]
    tasks += [asyncio.create_task(c.run(), name=n) for n, c in clouds.items()]
    tasks.append(asyncio.create_task(federation.run(stop), name="federation"))
    try:
        yield Running(federation, onprem, clouds)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await onprem_cluster.close()
        for cloud in clouds.values():
            await cloud.cluster.close()


async def _main(args: argparse.Namespace) -> None:
    settings = FederationSettings(
        instance=args.instance,
        interval_s=args.interval,
        gc_grace_s=args.gc_grace,
        default_lost_cluster_timeout_s=args.lost_timeout,
    )
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    async with running_federation(
        Path(args.kubeconfig),
        instance=args.instance,
        namespaces=args.namespaces.split(","),
        settings=settings,
    ):
        await done.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run federation against the sandbox.")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--namespaces", required=True)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--gc-grace", type=float, default=5.0)
    parser.add_argument("--lost-timeout", type=float, default=300.0)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()


# ---- helpers for scenarios on the sandbox --------------------------------------------------------


def gpu_job(
    name: str,
    namespace: str,
    *,
    gpus: int,
    seconds: float,
    queue: str | None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A suspended batch Job whose one pod asks for `gpus` and completes after `seconds` (KWOK)."""
    job_labels = dict(labels or {})
    if queue is not None:
        job_labels["kueue.x-k8s.io/queue-name"] = queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {
                "federator.io/runtime-estimate": f"{seconds:.0f}s",
                **(annotations or {}),
            },
        },
        "spec": {
            "suspend": True,
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": kwok.completion_annotations(seconds)},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.onprem/ml/train:1.0",
                            "env": [{"name": "DATA", "value": "s3://onprem-datasets/imagenet/"}],
                            "resources": {
                                "limits": {"nvidia.com/gpu": str(gpus)},
                                "requests": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }


def apis(env: SandboxEnv) -> dict[str, KubeApi]:
    layout = Layout(env.root)
    return {site: KubeApi.for_site(layout, site) for site in ("onprem", *CLOUDS)}


async def onprem_jobs(api: KubeApi, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for namespace in namespaces:
        found += await api.list("Job", namespace)
    return found


def finished(job: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or ()
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 2.0, what: str
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


async def delete_cloud_namespaces(env: SandboxEnv, namespaces: Sequence[str]) -> None:
    for site, api in apis(env).items():
        if site == "onprem":
            continue
        for namespace in namespaces:
            with contextlib.suppress(KubeError, OSError, asyncio.TimeoutError):
                await api.delete("Namespace", namespace)


def instance_name() -> str:
    return f"fed-{uuid.uuid4().hex[:6]}"


async def fill_onprem(
    api: KubeApi, namespace: str, *, queue: str, seconds: float, admitted_within_s: float = 240
) -> list[str]:
    """Two opted-out 8-GPU jobs that take the whole 16-GPU on-prem queue for `seconds`.

    Returns once Kueue has admitted both. Jobs a scenario submits next then really queue behind
    them: before, Kueue could admit some of those first (its Workloads were created in either
    order), the blockers waited instead, and the daemon rightly kept the rest on-prem - a
    scenario waiting for placements then timed out (seen in CI). Waiting here also covers an
    earlier scenario's blockers still holding the shared queue while their namespace goes.
    """
    names = []
    for i in range(2):
        job = gpu_job(
            f"blocker-{i}",
            namespace,
            gpus=8,
            seconds=seconds,
            queue=queue,
            labels={"federator.io/burst": "never"},
        )
        await api.apply(job)
        names.append(job["metadata"]["name"])

    async def both_admitted() -> bool:
        jobs = [await api.get("Job", name, namespace) for name in names]
        return all(job is not None and not job["spec"].get("suspend") for job in jobs)

    await wait_for(
        both_admitted,
        timeout_s=admitted_within_s,
        interval_s=0.5,
        what="Kueue to admit the blockers (is the shared on-prem queue held by another test?)",
    )
    return names


async def onprem_queue_empty(api: KubeApi) -> bool:
    """Nothing holds quota in the sandbox's shared on-prem ClusterQueue."""
    cluster_queue = await api.request("GET", "/apis/kueue.x-k8s.io/v1beta2/clusterqueues/onprem")
    return not (cluster_queue.get("status") or {}).get("reservingWorkloads")


async def job_record(api: KubeApi, namespace: str, name: str) -> dict[str, Any] | None:
    job = await api.get("Job", name, namespace)
    if job is None:
        return None
    text = (job["metadata"].get("annotations") or {}).get("federator.io/record")
    return json.loads(text) if text else None


async def copy_pods(api: KubeApi, namespace: str, source_uid: str) -> list[dict[str, Any]]:
    listed = await api.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": f"federator.io/source-uid={source_uid}"},
    )
    pods: list[dict[str, Any]] = listed.get("items", [])
    return pods


async def restore_nodes(env: SandboxEnv, site: str) -> None:
    """Recreate the site's fake GPU nodes a test deleted, and wait until they are Ready."""
    await Clusters(Layout(env.root), report=lambda message: None).ensure_nodes(site)


def kubectl(
    env: SandboxEnv, *args: str, context: str = "onprem"
) -> subprocess.CompletedProcess[str]:
    """Run the sandbox's own kubectl as a user would, against one of its clusters."""
    command = [str(program("kubectl")), "--kubeconfig", str(env.kubeconfig), "--context", context]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=False
    )
