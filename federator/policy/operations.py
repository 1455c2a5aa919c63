"""How the federator daemon runs: its HTTP endpoint, leader election, garbage collection.

Several replicas of the daemon may run for availability; a Kubernetes Lease elects the one
that acts. Its state lives in Kubernetes objects in `state_namespace`, so a restart resumes
where the previous leader stopped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, model_validator

from federator.policy.base import KubeName, NotBoolean, Section, Switch
from federator.policy.units import Duration, PositiveDuration, parse_duration


class Server(Section):
    """The daemon's HTTP endpoint: Prometheus metrics at `/metrics`, probes at `/healthz` and
    `/readyz`."""

    bind_address: str = "0.0.0.0"
    """Address to listen on; `127.0.0.1` to accept local connections only."""

    port: Annotated[int, Field(ge=1, le=65535), NotBoolean] = 9090
    """TCP port to listen on."""


MIN_RETRY_PERIOD = timedelta(seconds=1)
RETRY_JITTER = 1.2  # kubernetes_asyncio.leaderelection.electionconfig.Config.jitter_factor


class LeaderElection(Section):
    """A Kubernetes Lease on the on-prem cluster makes exactly one replica act at a time."""

    enabled: Switch = True
    """Turn off only when exactly one replica can ever run."""

    lease_name: KubeName = "federator"
    """Name of the Lease object (in `state_namespace`)."""

    lease_duration: PositiveDuration = parse_duration("15s")
    """How long a lease is valid without renewal; a new leader takes over after this. Must be
    longer than `renew_deadline` + `retry_period`: the old leader sends no write later than
    `renew_deadline` after its last renewal and waits for none past `lease_duration` after it
    (a write's timeout is cut to what the lease has left), so its last write still gets more
    than `retry_period`."""

    renew_deadline: PositiveDuration = parse_duration("10s")
    """The leader gives up leadership if it could not renew for this long."""

    retry_period: PositiveDuration = parse_duration("2s")
    """How often candidates try to acquire or renew the lease, and how long one lease request
    may take; at least 1s, and `renew_deadline` must be longer than 1.2 times it."""

    @model_validator(mode="after")
    def _timings_leave_a_margin(self) -> LeaderElection:
        # The first two are the Kubernetes client's own rules (it raises at every election
        # round otherwise, so the replica would never lead); the last is our fence's margin.
        if self.retry_period < MIN_RETRY_PERIOD:
            raise ValueError(
                f"`retry_period` ({_seconds(self.retry_period)}) must be at least "
                f"{_seconds(MIN_RETRY_PERIOD)}; the Kubernetes client's election refuses less"
            )
        if not self.renew_deadline > self.retry_period * RETRY_JITTER:
            raise ValueError(
                f"`renew_deadline` ({_seconds(self.renew_deadline)}) must be longer than "
                f"{RETRY_JITTER:g} x `retry_period` "
                f"({_seconds(self.retry_period * RETRY_JITTER)}), or a leader gets no retry"
            )
        needed = self.renew_deadline + self.retry_period
        if not self.lease_duration > needed:
            # Equal is not enough either: the old leader's last write may still be in flight
            # at the very moment another replica is allowed to take the lease.
            raise ValueError(
                f"`lease_duration` ({_seconds(self.lease_duration)}) must be longer than "
                f"`renew_deadline` + `retry_period` ({_seconds(needed)}), so the old leader "
                "has stopped writing before another replica may take the lease"
            )
        return self


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g}s"


class GarbageCollection(Section):
    """Cleanup of objects federator created in cloud clusters (found by label, never by name)."""

    interval: PositiveDuration = parse_duration("1m")
    """How often to look for objects to clean up."""

    grace_period: Duration = parse_duration("10m")
    """Delete a finished or orphaned object only after this long, so its status and logs can
    still be read."""
