"""How the federator daemon runs: its HTTP endpoint, leader election, garbage collection.

Several replicas of the daemon may run for availability; a Kubernetes Lease elects the one
that acts. Its state lives in Kubernetes objects in `state_namespace`, so a restart resumes
where the previous leader stopped.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from federator.policy.base import KubeName, NotBoolean, Section
from federator.policy.units import Duration, PositiveDuration, parse_duration


class Server(Section):
    """The daemon's HTTP endpoint: Prometheus metrics at `/metrics`, probes at `/healthz` and
    `/readyz`."""

    bind_address: str = "0.0.0.0"
    """Address to listen on; `127.0.0.1` to accept local connections only."""

    port: Annotated[int, Field(ge=1, le=65535), NotBoolean] = 9090
    """TCP port to listen on."""


class LeaderElection(Section):
    """A Kubernetes Lease on the on-prem cluster makes exactly one replica act at a time."""

    enabled: bool = True
    """Turn off only when exactly one replica can ever run."""

    lease_name: KubeName = "federator"
    """Name of the Lease object (in `state_namespace`)."""

    lease_duration: PositiveDuration = parse_duration("15s")
    """How long a lease is valid without renewal; a new leader takes over after this."""

    renew_deadline: PositiveDuration = parse_duration("10s")
    """The leader gives up leadership if it could not renew for this long."""

    retry_period: PositiveDuration = parse_duration("2s")
    """How often candidates try to acquire or renew the lease."""

    @model_validator(mode="after")
    def _timings_are_ordered(self) -> LeaderElection:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        return self


class GarbageCollection(Section):
    """Cleanup of objects federator created in cloud clusters (found by label, never by name)."""

    interval: PositiveDuration = parse_duration("1m")
    """How often to look for objects to clean up."""

    grace_period: Duration = parse_duration("10m")
    """Delete a finished or orphaned object only after this long, so its status and logs can
    still be read."""
