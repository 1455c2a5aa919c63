"""The entry points: `run` (serve, or one pass with `--once`) and `plan`, and the signals.

`run()` loads the policy, registers its credentials with the log redactor, assembles the
parts (`assembly`) and either runs one pass or serves: the HTTP endpoint, the observers, the
loops (`loops`, `reloading`) and, with leader election, the campaign for the Lease, all until
SIGTERM/SIGINT. Every replica observes (warm caches, metrics, health); only the holder of the
Lease writes.

Shutdown: the first signal sets `stop`; loops finish their current step and return; the lease
is released; a second signal, or 20 s without finishing, cancels the rest (SIGTERM must end
the process within 25 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from federator import errors, leadership, logs, policy, web
from federator.core.decisions import Decision
from federator.daemon.assembly import Parts, assemble
from federator.daemon.credentials import secrets_of, warn_about_insecure_stores
from federator.daemon.loops import (
    federate,
    refresh_prices,
    resync_replicas,
    save_evidence,
    sync_models_back,
)
from federator.daemon.policy_file import PolicyHolder, initialise_metrics
from federator.daemon.reloading import watch_config
from federator.daemon.telling import record_decisions, tell_decisions, watch_budgets
from federator.federation.federation import PassReport
from federator.prices.preemption import PreemptionLedger

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 20.0


async def run(
    config_path: Path, *, dry_run: bool = False, once: bool = False, log_level: str = "info"
) -> int:
    logs.configure(level=log_level.upper())
    holder = PolicyHolder(config_path)
    config = holder.config
    logs.register_secrets(secrets_of(config))
    initialise_metrics(config)
    warn_about_insecure_stores(config)
    parts = await assemble(holder, dry_run=dry_run, once=once)
    try:
        parts.evidence_at_start = await load_evidence(parts)
        if once:
            return await _run_once(parts)
        return await _serve(parts, dry_run=dry_run)
    finally:
        await parts.close()


async def load_evidence(parts: Parts) -> PreemptionLedger:
    """The saved preemption evidence; without it the priors alone are used, loudly (the
    error may say how to repair the ConfigMap)."""
    try:
        return await parts.evidence_store.load()
    except Exception as error:  # noqa: BLE001 - any failure means "start from the priors"
        # The error in one line, not a traceback: the usual cause is an on-prem cluster that
        # does not answer, which the cluster's own log line already explains.
        log.warning(
            "preemption_evidence_not_loaded",
            error=f"{type(error).__name__}: {error}",
            hint="spot pools start from their prior rates until evidence is saved again",
        )
        return parts.evidence_at_start


async def _run_once(parts: Parts) -> int:
    """One full pass (for cron and tests): wait for the caches, then observe, decide, act."""
    async with _observing(parts):
        await _wait_synced(parts)
        report = await parts.federation.run_once(time.time())
        record_decisions(parts, report)
        await tell_decisions(parts, report)
        await watch_budgets(parts, report)
    return 1 if report.failures else 0


async def _wait_synced(parts: Parts, timeout_s: float = 60.0) -> None:
    """Wait for the on-prem caches. A cluster that does not answer in time is a transient
    condition, not a mistake in the command: the CLI exits 1 with its retry hint (a CronJob's
    next run may well succeed); a kubeconfig that cannot be used failed earlier, at connect."""
    deadline = time.monotonic() + timeout_s
    while not parts.onprem.synced:
        if time.monotonic() > deadline:
            cluster = parts.onprem.cluster
            why = f": {cluster.health.problem}" if cluster.health.problem else ""
            raise errors.ClusterUnavailable(
                cluster.name,
                f"the on-prem cluster's caches did not sync within {timeout_s:.0f} s{why}",
            )
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _observing(parts: Parts) -> AsyncIterator[None]:
    """Keep every cluster's caches, and its credentials, fresh while the block runs."""
    observers = [asyncio.create_task(parts.onprem.run(), name="observe-onprem")]
    observers += [
        asyncio.create_task(cloud.run(), name=f"observe-{name}")
        for name, cloud in parts.clouds.items()
    ]
    observers += [
        asyncio.create_task(watcher.run(), name=f"credentials-{name}")
        for name, watcher in parts.watchers.items()
    ]
    try:
        yield
    finally:
        for task in observers:
            task.cancel()
        await asyncio.gather(*observers, return_exceptions=True)


async def plan(config_path: Path) -> tuple[list[Decision], PassReport]:
    """One pass against the live clusters that decides and explains, writing nothing."""
    holder = PolicyHolder(config_path)
    # stdout is the command's answer (a table, or JSON a script parses): its warnings go to
    # stderr, where they can neither break the document nor push the table down.
    logs.configure(level="WARNING", stream=sys.stderr)
    parts = await assemble(holder, dry_run=True)
    try:
        async with _observing(parts):
            await _wait_synced(parts)
            await asyncio.sleep(1.0)  # let the cloud caches fill too
            report = await parts.federation.run_once(time.time())
        return list(report.decisions), report
    finally:
        await parts.close()


async def _serve(parts: Parts, *, dry_run: bool) -> int:
    config = parts.holder.config
    stop, hup = asyncio.Event(), asyncio.Event()
    _install_signals(stop, hup)
    election = config.leader_election
    settings = leadership.ElectionSettings(
        lease_name=election.lease_name,
        namespace=config.state_namespace,
        identity=_identity(config.instance),
        lease_duration_s=election.lease_duration.total_seconds(),
        renew_deadline_s=election.renew_deadline.total_seconds(),
        retry_period_s=election.retry_period.total_seconds(),
    )
    onprem_api = parts.clusters[config.onprem_cluster.name].api
    elects = runs_election(config, dry_run=dry_run)
    status = lambda: readiness(parts, elects)  # noqa: E731 - a one-line callback
    server = config.server
    async with web.serving(server.bind_address, server.port, status, parts.decisions) as bound:
        log.info("serving", address=f"http://{bound[0]}:{bound[1]}", dry_run=dry_run)
        async with _observing(parts):
            tasks = [
                asyncio.create_task(federate(parts, stop), name="federate"),
                asyncio.create_task(refresh_prices(parts, stop), name="prices"),
                asyncio.create_task(save_evidence(parts, stop), name="evidence"),
                asyncio.create_task(watch_config(parts, stop, hup), name="config"),
            ]
            if config.registry is not None and not dry_run:
                tasks.append(asyncio.create_task(sync_models_back(parts, stop), name="models"))
            if not dry_run:  # even with no dataset yet: a reload may add the first one
                tasks.append(asyncio.create_task(resync_replicas(parts, stop), name="replicas"))
            if elects:
                tasks.append(asyncio.create_task(
                    leadership.campaign(onprem_api, settings, fence=parts.fence,
                                        lead=_lead_until(stop), stop=stop),
                    name="leader-election",
                ))  # fmt: skip
            await stop.wait()
            log.info("shutting_down", grace_s=SHUTDOWN_GRACE_S)
            parts.fence.mark_lost(stepping_down=True)  # no new writes from here on
            parts.stores.stop_transfers()  # a model blob in flight stops at its next part
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if elects:
                await leadership.release(onprem_api, settings)
    return 0


def runs_election(config: policy.FederatorConfig, *, dry_run: bool) -> bool:
    """Whether the serving daemon campaigns for the lease (a dry run writes nothing: it does
    not, and must not wait to learn who leads to be Ready)."""
    return config.leader_election.enabled and not dry_run


def readiness(parts: Parts, election_enabled: bool) -> web.Readiness:
    onprem = parts.clusters[parts.holder.config.onprem_cluster.name]
    return web.Readiness(
        config_loaded=True,
        onprem_reachable=onprem.health.up and parts.onprem.synced,
        leadership_known=parts.fence.leadership_known or not election_enabled,
        is_leader=parts.fence.is_leader,
        detail=onprem.health.problem,
    )


def _lead_until(stop: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    """While leading there is nothing extra to run: the fence opens the federation's writes."""

    async def lead() -> None:
        await stop.wait()

    return lead


def _identity(instance: str) -> str:
    import os
    import socket

    return f"{instance}-{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}"


def _install_signals(stop: asyncio.Event, hup: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def first_then_force(sig: signal.Signals) -> None:
        if stop.is_set():
            raise SystemExit(128 + sig.value)  # a second signal: stop waiting for the loops
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, first_then_force, sig)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
