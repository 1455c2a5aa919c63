"""`make demo`: federator bursting a real GPU trace slice on local clusters, live.

1. Builds (first time) and starts the sandbox: three Kubernetes clusters, Kueue, KWOK GPU
   nodes and three S3 stores, all on 127.0.0.1.
2. Seeds the on-prem dataset bucket and starts `federator run --config config/sandbox.yaml`.
3. Replays the busiest 3 hours of trace A (Microsoft Philly), time-compressed 60x and thinned
   to ~30 jobs, as real Kueue Jobs into team-a and team-b against the 16-GPU on-prem queue.
4. Shows a live view: on-prem queue, jobs per cluster and pool, spend, data synced.
5. Ends with a table comparing what happened with what `federator simulate` predicts for the
   same slice, then tears everything down (also on Ctrl-C). `--keep` leaves the sandbox up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from kubernetes_asyncio import client as kube
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from federator.core.models import GANG_SIZES
from federator.replay import (
    ReplayJob,
    SliceSpec,
    TraceRow,
    busiest_window,
    kueue_gpu_job,
    scale_slice,
)

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "traces" / "trace_a_philly.csv"
CONFIG = ROOT / "config" / "sandbox.yaml"
SANDBOX = ROOT / ".sandbox"
BIN = Path(sys.executable).parent
METRICS_URL = "http://127.0.0.1:18090/metrics"
DATASET = "imagenet-mini"
console = Console()


@dataclass
class Outcome:
    job: ReplayJob
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    placement: str = "onprem"
    state: str = "pending"


@dataclass
class Demo:
    jobs: list[ReplayJob]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    started: float = field(default_factory=time.time)


def load_slice(hours: float, compression: float, target_jobs: int) -> list[ReplayJob]:
    with TRACE.open() as handle:
        rows = [
            TraceRow(r["job_id"], float(r["submit_time_s"]), int(r["num_gpus"]),
                     float(r["duration_s"]))
            for r in csv.DictReader(handle)
        ]  # fmt: skip
    length = hours * 3600
    start = busiest_window(rows, length)
    in_window = sum(1 for r in rows if start <= r.submit_time_s < start + length)
    spec = SliceSpec(
        start_s=start, length_s=length, trace_cluster_gpus=576, target_cluster_gpus=16,
        time_compression=compression, gpu_scale=4, keep_every=max(1, in_window // target_jobs),
        min_duration_s=10.0, max_duration_s=120.0,
    )  # fmt: skip
    return scale_slice(rows, spec)


def sandbox_up() -> None:
    console.rule("[bold]1/4  sandbox: 3 clusters, Kueue, KWOK GPU nodes, 3 S3 stores")
    subprocess.run([BIN / "federator", "sandbox", "up"], check=True, cwd=ROOT)


def seed_dataset() -> None:
    """A small dataset on the on-prem store, so bursted jobs have data to wait for."""
    store = json.loads((SANDBOX / "s3.json").read_text())["onprem"]
    s3 = boto3.client(
        "s3", endpoint_url=store["endpoint"], region_name=store["region"],
        aws_access_key_id=store["access_key_id"], aws_secret_access_key=store["secret_access_key"],
    )  # fmt: skip
    bucket = store["buckets"]["datasets"]
    for index in range(16):
        key = f"{DATASET}/shard-{index:03d}.bin"
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(256 * 1024))
    console.print(f"seeded s3://{bucket}/{DATASET}/ with 16 shards (4 MiB)")


def start_federator() -> subprocess.Popen[bytes]:
    console.rule("[bold]2/4  federator run --config config/sandbox.yaml")
    log = (SANDBOX / "logs").joinpath("demo-federator.log").open("wb")
    process = subprocess.Popen(
        [BIN / "federator", "run", "--config", CONFIG], cwd=ROOT, stdout=log, stderr=log
    )
    console.print(f"federator pid {process.pid}; logs: .sandbox/logs/demo-federator.log")
    console.print(f"metrics: {METRICS_URL}   decisions: http://127.0.0.1:18090/debug/decisions")
    return process


def job_manifest(job: ReplayJob, index: int) -> dict[str, Any]:
    annotations = {"federator.io/trace-job": job.trace_job_id}
    if index % 3 == 0:
        annotations["federator.io/datasets"] = DATASET
    return kueue_gpu_job(
        name=job.name, namespace=job.queue, queue=job.queue, gpus=job.gpus,
        duration_s=job.duration_s, annotations=annotations, labels={"app": "federator-demo"},
    )  # fmt: skip


async def ensure_namespace(core: kube.CoreV1Api, name: str) -> None:
    """federator keeps its Lease and state there; a Deployment would live in it."""
    with contextlib.suppress(ApiException):  # 409: it exists
        await core.create_namespace({"metadata": {"name": name}})


async def forget_previous_run(batch: kube.BatchV1Api) -> None:
    """Delete the Jobs a previous demo left (a kept sandbox), so this run starts clean."""
    for namespace in ("team-a", "team-b"):
        await batch.delete_collection_namespaced_job(
            namespace, label_selector="app=federator-demo", propagation_policy="Background"
        )
    for _ in range(60):
        listings = [
            await batch.list_namespaced_job(ns, label_selector="app=federator-demo")
            for ns in ("team-a", "team-b")
        ]
        if not any(listing.items for listing in listings):
            return
        await asyncio.sleep(0.5)


async def submit_all(batch: kube.BatchV1Api, demo: Demo) -> None:
    for index, job in enumerate(demo.jobs):
        await asyncio.sleep(max(0.0, demo.started + job.submit_after_s - time.time()))
        with contextlib.suppress(ApiException):  # already there from an interrupted run
            await batch.create_namespaced_job(job.queue, job_manifest(job, index))
        demo.outcomes[job.name] = Outcome(job, submitted_at=time.time())


async def observe(batch: kube.BatchV1Api, demo: Demo) -> None:
    for namespace in ("team-a", "team-b"):
        listing = await batch.list_namespaced_job(namespace, label_selector="app=federator-demo")
        for item in listing.items:
            outcome = demo.outcomes.get(item.metadata.name)
            if outcome is not None:
                update(outcome, item)


def update(outcome: Outcome, job: Any) -> None:
    annotations = job.metadata.annotations or {}
    outcome.placement = annotations.get("federator.io/placement", "onprem") or "onprem"
    status = job.status
    conditions = {c.type: c.status for c in (status.conditions or [])}
    if conditions.get("Complete") == "True":
        outcome.state = "complete"
        outcome.finished_at = outcome.finished_at or time.time()
    elif conditions.get("Failed") == "True":
        outcome.state = "failed"
        outcome.finished_at = outcome.finished_at or time.time()
    elif (status.active or 0) > 0 or annotations.get("federator.io/remote-state") == "running":
        outcome.state = "running"
        outcome.started_at = outcome.started_at or time.time()
    if outcome.finished_at and not outcome.started_at:
        outcome.started_at = outcome.finished_at - outcome.job.duration_s


def scrape() -> dict[str, float]:
    try:
        with urllib.request.urlopen(METRICS_URL, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("federator_cloud_spend_usd_total", "federator_sync_bytes_total",
                               "federator_queue_pending_gpus", "federator_queue_pending_workloads",
                               "federator_preemptions_total"):  # fmt: skip
                values[sample.name] += sample.value
            if sample.name == "federator_decisions_total":
                values[f"decisions_{sample.labels.get('decision')}"] += sample.value
            if sample.name.startswith("federator_onprem_wait_"):  # per gang size
                values[f"{sample.name}:{sample.labels.get('gpus')}"] += sample.value
    return dict(values)


def forecast_rows(metrics: dict[str, float], simulated: dict[str, Any]) -> list[tuple[str, ...]]:
    """Mean first wait forecast -> real wait of the jobs that stayed and started on-prem, by
    gang size, on the sandbox (the daemon's counters) and in the simulator (its JSON)."""
    prefix = "federator_onprem_wait_"
    by_size = {row["gpus"]: row for row in simulated.get("wait_forecast", [])}
    rows = []
    for size, _, _ in GANG_SIZES:
        jobs = metrics.get(f"{prefix}forecasts_total:{size}", 0.0)
        sandbox = "—"
        if jobs:
            forecast = metrics.get(f"{prefix}forecast_seconds_total:{size}", 0.0) / jobs
            real = metrics.get(f"{prefix}real_seconds_total:{size}", 0.0) / jobs
            sandbox = f"{forecast:.0f} -> {real:.0f} ({jobs:.0f})"
        sim = by_size.get(size)
        simulated_cell = "—"
        if sim is not None:
            forecast, real = sim["forecast_mean_wait_s"], sim["real_mean_wait_s"]
            simulated_cell = f"{forecast:.0f} -> {real:.0f} ({sim['jobs']})"
        if jobs or sim is not None:
            label = f"on-prem wait forecast -> real, {size} GPU{'' if size == '1' else 's'} (s)"
            rows.append((label, sandbox, simulated_cell))
    return rows


def view(demo: Demo, metrics: dict[str, float]) -> Group:
    outcomes = list(demo.outcomes.values())
    header = Table.grid(padding=(0, 3))
    header.add_row(
        f"elapsed [bold]{time.time() - demo.started:5.0f}s[/]",
        f"submitted [bold]{len(outcomes)}/{len(demo.jobs)}[/]",
        f"on-prem queue [bold]{metrics.get('federator_queue_pending_workloads', 0):.0f}[/] jobs"
        f" / [bold]{metrics.get('federator_queue_pending_gpus', 0):.0f}[/] GPUs",
        f"cloud spend [bold]${metrics.get('federator_cloud_spend_usd_total', 0):.2f}[/]",
        f"data synced [bold]{metrics.get('federator_sync_bytes_total', 0) / 2**20:.1f} MiB[/]",
    )
    table = Table(title="jobs per cluster and pool")
    for column in ("where", "pending", "running", "complete", "failed"):
        table.add_column(column, justify="right" if column != "where" else "left")
    places = sorted({o.placement for o in outcomes} | {"onprem"})
    for place in places:
        counts = Counter(o.state for o in outcomes if o.placement == place)
        table.add_row(place, *(str(counts.get(s, 0)) for s in
                               ("pending", "running", "complete", "failed")))  # fmt: skip
    decisions = ", ".join(
        f"{k.removeprefix('decisions_')}={v:.0f}"
        for k, v in metrics.items()
        if k.startswith("decisions_")
    )
    return Group(Panel(header, title="federator demo"), table, f"decisions so far: {decisions}")


async def replay(demo: Demo, deadline_s: float) -> None:
    console.rule("[bold]3/4  replaying trace A's busiest 3 hours, 60x faster")
    api = await kube_config.new_client_from_config(
        config_file=str(SANDBOX / "kubeconfig"), context="onprem", persist_config=False
    )
    async with api:
        batch = kube.BatchV1Api(api)
        await ensure_namespace(kube.CoreV1Api(api), "federator")  # the policy's state_namespace
        await forget_previous_run(batch)
        demo.started = time.time()
        submitter = asyncio.create_task(submit_all(batch, demo))
        with Live(view(demo, {}), console=console, refresh_per_second=2) as live:
            while time.time() - demo.started < deadline_s:
                await observe(batch, demo)
                live.update(view(demo, scrape()))
                done = [o for o in demo.outcomes.values() if o.finished_at]
                if submitter.done() and len(done) == len(demo.jobs):
                    break
                await asyncio.sleep(1.0)
        submitter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await submitter


def simulate(jobs: list[ReplayJob]) -> dict[str, Any] | None:
    trace = SANDBOX / "demo-trace.csv"
    with trace.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job_id", "submit_time_s", "num_gpus", "duration_s", "queue"])
        for job in jobs:
            writer.writerow([job.name, f"{job.submit_after_s:.1f}", job.gpus, job.duration_s,
                             job.queue])  # fmt: skip
    out = SANDBOX / "demo-simulated.json"
    command = [BIN / "federator", "simulate", "--config", CONFIG, "--trace", trace,
               "--onprem-gpus", "16", "--policy", "federator", "--json", out]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        console.print(f"[yellow]simulate failed:[/] {result.stderr.strip()[-500:]}")
        return None
    runs = json.loads(out.read_text())
    return runs[0] if runs else None


def summary(demo: Demo, metrics: dict[str, float]) -> None:
    if not console.is_terminal:  # a redirected Live view ends without its newline
        console.print()
    console.rule("[bold]4/4  what happened, and what the simulator predicted")
    outcomes = [o for o in demo.outcomes.values() if o.finished_at]
    jcts = [o.finished_at - o.submitted_at for o in outcomes if o.finished_at]
    bursted = [o for o in outcomes if o.placement != "onprem"]
    predicted = simulate(demo.jobs)
    table = Table()
    table.add_column("")
    table.add_column("sandbox (real clusters)", justify="right")
    table.add_column("simulator (same slice)", justify="right")
    p = predicted or {}
    rows = [
        ("jobs finished", f"{len(outcomes)}/{len(demo.jobs)}", f"{len(demo.jobs)}"),
        ("jobs bursted", str(len(bursted)), str(p.get("bursted_jobs", "—"))),
        ("mean JCT (s)", f"{statistics.fmean(jcts):.1f}" if jcts else "—",
         f"{p['mean_jct_s']:.1f}" if "mean_jct_s" in p else "—"),
        ("cloud cost (USD)", f"{metrics.get('federator_cloud_spend_usd_total', 0):.2f}",
         f"{p['cloud_cost_usd']:.2f}" if "cloud_cost_usd" in p else "—"),
    ]  # fmt: skip
    for row in rows + forecast_rows(metrics, p):
        table.add_row(*row)
    console.print(table)
    places = Counter(o.placement for o in outcomes)
    console.print("placements: " + ", ".join(f"{k}: {v}" for k, v in sorted(places.items())))
    console.print("Sandbox durations are compressed 60x: the cost model prices them as they are.")
    console.print(
        "Wait forecasts: the first 'expected wait' of each job that stayed, against its real wait"
        " (jobs); the sandbox sees a start at the daemon's next pass."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--jobs", type=int, default=30, help="about how many jobs to replay")
    parser.add_argument("--timeout", type=float, default=420.0, help="stop after this many s")
    args = parser.parse_args()
    demo = Demo(load_slice(hours=3, compression=60, target_jobs=args.jobs))
    federator: subprocess.Popen[bytes] | None = None
    try:
        sandbox_up()
        seed_dataset()
        federator = start_federator()
        demo.started = time.time()
        asyncio.run(replay(demo, args.timeout))
        summary(demo, scrape())
        return 0 if all(o.state == "complete" for o in demo.outcomes.values()) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    finally:
        if federator is not None:
            federator.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                federator.wait(timeout=25)
        cleanup(keep=args.keep)


def cleanup(*, keep: bool) -> None:
    if keep:
        console.print("sandbox left running (`federator sandbox down` stops it)")
        return
    subprocess.run([BIN / "federator", "sandbox", "down"], cwd=ROOT, check=False)


if __name__ == "__main__":
    raise SystemExit(main())
