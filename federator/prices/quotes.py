"""Price quotes, the reasons a quote is refused, and the port every price source implements.

Why one port: the daemon (live AWS prices), the simulator (catalog rows, replayed price
history) and `federator prices` all ask the same question — "what does this instance cost in
this place, according to whom, and since when?" — so they can swap sources without caring
which one answers. A source answers with a `PriceQuote` or a `Rejection`; it never raises for
bad data, because bad data is an expected input here (see `validation`) and must be counted
and explained, not crash a loop.

Prices are USD per *instance*-hour, as the clouds publish them; the per-GPU-hour figure the
cost model uses is derived with `per_gpu_hour`, so the instance's GPU count travels with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from federator.core.models import CapacityType


class RejectReason(StrEnum):
    """Why a price was not believed. The values label `federator_price_inputs_rejected_total`."""

    NEGATIVE = "negative"  # below zero
    ZERO = "zero"  # exactly zero, or so small it is zero per GPU: a free GPU attracts every job
    NOT_FINITE = "not_finite"  # NaN or infinity
    SPOT_ABOVE_ON_DEMAND = "spot_above_on_demand"
    MALFORMED = "malformed"  # a row or an API answer we could not read
    STALE = "stale"  # older than the staleness limit: not used for new decisions
    UNKNOWN_INSTANCE_TYPE = "unknown_instance_type"
    NO_ZONE_DATA = "no_zone_data"  # the type exists, but nothing is known for this place
    # Nothing asked yet: live prices switched off (an offline run), or an AWS region before its
    # first successful refresh. Not a fact about the place, so not `no_zone_data`.
    NOT_FETCHED = "not_fetched"
    NO_SPOT_OFFERING = "no_spot_offering"  # a spot pool where the cloud sells no spot


@dataclass(frozen=True, slots=True)
class PriceRef:
    """What a pool asks a source about: one machine shape in one region (and maybe one zone).

    `zone=None` means "any zone of the region": sources answer with the cheapest zone, as
    SkyPilot's catalog does. GCP prices the GPUs apart from the host VM, so a GCP reference
    names the accelerator too; the source sums host and accelerator rows.
    """

    instance_type: str
    region: str
    zone: str | None = None
    accelerator: str | None = None
    accelerator_count: int | None = None
    gpus_per_instance: int | None = None  # from the pool config; sources without a GPU count use it
    # With `zone=None`: pick the cheapest zone for this capacity type (spot when None).
    capacity: CapacityType | None = None

    def describe(self) -> str:
        where = self.zone or self.region
        shape = self.instance_type or ""
        if self.accelerator:
            shape = f"{shape}+{self.accelerator}x{self.accelerator_count or '?'}".lstrip("+")
        return f"{shape} in {where}"


@dataclass(frozen=True, slots=True)
class PricePart:
    """One separately priced part of a machine (GCP: the host VM, the accelerators)."""

    label: str  # names the row, e.g. "gcp/vms.csv:116 H200x8"
    on_demand_usd_per_hour: float | None
    spot_usd_per_hour: float | None


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """A price as one source saw it. `None` means "this source does not know / not offered"."""

    instance_type: str
    region: str
    zone: str | None
    gpus_per_instance: int
    on_demand_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    source: str  # e.g. "catalog:aws/vms.csv:74", "aws:describe_spot_price_history", "fixed"
    observed_at: float  # seconds on the caller's clock: when the source last confirmed it
    notes: tuple[str, ...] = ()  # things a person should know ("spot capped at on-demand")
    placement_score: float | None = None  # AWS spot placement score 1..10 when known
    # The parts summed into the price, when there are several; each is checked on its own,
    # so an anomaly in one row is not hidden by the sum.
    parts: tuple[PricePart, ...] = ()

    def usd_per_hour(self, capacity: CapacityType) -> float | None:
        if capacity is CapacityType.SPOT:
            return self.spot_usd_per_hour
        return self.on_demand_usd_per_hour

    def per_gpu_hour(self, capacity: CapacityType) -> float | None:
        price = self.usd_per_hour(capacity)
        return None if price is None else price / self.gpus_per_instance

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.observed_at)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A price that must not reach a decision, and why, in words a person can act on."""

    reason: RejectReason
    detail: str  # names the place: file and line, API and zone, pool


class PriceSource(Protocol):
    """The port: anything that can price a machine shape at time `now`.

    `now` is the caller's clock (epoch seconds in the daemon, trace seconds in the simulator);
    sources that replay history use it to pick the price in force, live sources to age theirs.
    """

    @property
    def name(self) -> str: ...

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection: ...
