"""Live AWS spot prices and spot placement scores, cached and refreshed while the daemon runs.

Why this shape:
* One `describe_spot_price_history` query per region (all configured instance types, paged
  with boto3's paginator) returns every price change in the history window plus the price in
  force at its start; that gives both the latest price per (type, zone) and the
  `SpotPriceSeries` the cost model can read history from — the same type the simulator
  replays.
* `get_spot_placement_scores` (per type, for the pool's real node count, one AZ at a time)
  is the capacity signal. It answers with AZ *IDs*; price history uses AZ *names*; the
  mapping is per account, so it is read from `describe_availability_zones` each refresh.
* Results are cached per region and refreshed at most every `refresh_interval_s`. A failed
  refresh keeps the old prices, which then age; past `max_age_s` they are refused as `stale`
  by `validation` and the pool drops out of new decisions until a refresh succeeds.
* Throttling (and dropped connections) are retried by tenacity with exponential backoff and
  jitter; botocore's own retries are switched off so there is one retry policy, ours.
* Credentials come only from boto3's standard provider chain (environment, shared config,
  SSO, instance/pod role); nothing here accepts a key.

boto3 is synchronous: `refresh_async` runs a refresh in a worker thread so the event loop
never blocks on the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.paginate import TokenEncoder
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from federator.prices import metrics
from federator.prices.quotes import PriceQuote, PriceRef, PriceSource, Rejection, RejectReason
from federator.prices.replay import SpotPriceSeries, series_from_records

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

log = structlog.get_logger(__name__)

# The error codes AWS uses for "slow down"; EC2's own is RequestLimitExceeded.
THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestThrottled",
        "EC2ThrottledException",
    }
)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """How often to ask AWS, how old a price may get, how much history to keep."""

    refresh_interval_s: float = 300.0
    max_age_s: float = 900.0  # older prices are refused for new decisions
    history_window_s: float = 6 * 3600.0
    product_description: str = "Linux/UNIX"
    placement_scores: bool = True
    # Placement scores change slowly and AWS limits how often an account may ask for them
    # (the exact quota is not published in the API reference), so they refresh less often.
    placement_refresh_interval_s: float = 3600.0
    endpoint_url: str | None = None  # a local emulator in tests; None = the real AWS endpoint
    profile: str | None = None  # a named profile of the standard chain; None = default chain
    retry_attempts: int = 5


@dataclass(frozen=True, slots=True)
class PlacementScore:
    zone: str  # AZ name when the account mapping is known, else the AZ ID
    zone_id: str
    score: int  # 1..10, higher = launch more likely to succeed
    target_nodes: int


@dataclass(slots=True)
class _RegionState:
    fetched_at: float
    series: dict[tuple[str, str], SpotPriceSeries]
    scores: dict[str, list[PlacementScore]] = field(default_factory=dict)  # by instance type
    scores_fetched_at: float | None = None
    zone_ids: dict[str, str] = field(default_factory=dict)  # name -> id


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh did, per region: 'fresh' (not due), 'ok', or 'failed: <why>'."""

    outcomes: Mapping[str, str]

    @property
    def failed(self) -> dict[str, str]:
        return {r: o for r, o in self.outcomes.items() if o.startswith("failed")}


def default_client_factory(settings: AwsSettings) -> Callable[[str], EC2Client]:
    """EC2 clients from the standard credential chain, with botocore retries switched off.

    The session is made on first use, inside a refresh, so a missing profile or broken
    shared config fails that refresh (reported, retried next interval) instead of start-up.
    """
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30
    )

    def make(region: str) -> EC2Client:
        session = boto3.session.Session(profile_name=settings.profile)
        return session.client(
            "ec2", region_name=region, endpoint_url=settings.endpoint_url, config=config
        )

    return make


class AwsSpotSource:
    """`PriceSource` for AWS spot pools, backed by the EC2 API; on-demand from another source.

    `wanted` maps region -> instance type -> target node count (for placement scores).
    """

    def __init__(
        self,
        wanted: Mapping[str, Mapping[str, int]],
        *,
        on_demand: PriceSource | None = None,
        settings: AwsSettings = AwsSettings(),
        client_factory: Callable[[str], EC2Client] | None = None,
        retry_wait: wait_base | None = None,
    ) -> None:
        self._wanted = {region: dict(types) for region, types in wanted.items()}
        self._on_demand = on_demand
        self.settings = settings
        self._client_factory = client_factory or default_client_factory(settings)
        self._clients: dict[str, EC2Client] = {}
        self._retry_wait = retry_wait or wait_exponential(multiplier=1, max=30) + wait_random(0, 1)
        self._state: dict[str, _RegionState] = {}

    @property
    def name(self) -> str:
        return "aws"

    # ---- refreshing ---------------------------------------------------------------------------

    async def refresh_async(self, now: float, force: bool = False) -> RefreshReport:
        return await asyncio.to_thread(self.refresh, now, force)

    def refresh(self, now: float, force: bool = False) -> RefreshReport:
        """Ask AWS again for every region whose cache is older than the refresh interval."""
        outcomes: dict[str, str] = {}
        for region in sorted(self._wanted):
            state = self._state.get(region)
            if not force and state and now - state.fetched_at < self.settings.refresh_interval_s:
                outcomes[region] = "fresh"
                continue
            try:
                self._state[region] = self._fetch_region(region, now)
            except (ClientError, BotoCoreError, ValueError) as error:
                outcomes[region] = f"failed: {_describe(error)}"
                metrics.PRICE_REFRESHES.labels(source="aws", outcome="failed").inc()
                log.warning(
                    "aws price refresh failed; keeping the previous prices",
                    region=region,
                    error=_describe(error),
                    previous_age_s=None if state is None else round(now - state.fetched_at),
                )
                continue
            outcomes[region] = "ok"
            metrics.PRICE_REFRESHES.labels(source="aws", outcome="ok").inc()
        return RefreshReport(outcomes)

    def _fetch_region(self, region: str, now: float) -> _RegionState:
        client = self._client(region)
        types = sorted(self._wanted[region])
        zone_ids = self._zone_ids(client)
        start = datetime.fromtimestamp(now - self.settings.history_window_s, UTC)
        records = self._paged(
            client,
            "describe_spot_price_history",
            "SpotPriceHistory",
            InstanceTypes=types,
            ProductDescriptions=[self.settings.product_description],
            StartTime=start,
        )
        series = series_from_records(records)
        state = _RegionState(fetched_at=now, series=series, zone_ids=zone_ids)
        if self.settings.placement_scores:
            self._refresh_scores(client, region, state, self._state.get(region))
        log.info("aws prices refreshed", region=region, series=len(series),
                 records=len(records), types=types)  # fmt: skip
        return state

    def _refresh_scores(
        self, client: EC2Client, region: str, state: _RegionState, previous: _RegionState | None
    ) -> None:
        """Placement scores when due; on failure the previous ones stay (prices still count)."""
        if (
            previous is not None
            and previous.scores_fetched_at is not None
            and (
                state.fetched_at - previous.scores_fetched_at
                < self.settings.placement_refresh_interval_s
            )
        ):
            state.scores, state.scores_fetched_at = previous.scores, previous.scores_fetched_at
            return
        names_by_id = {zone_id: name for name, zone_id in state.zone_ids.items()}
        try:
            state.scores = {
                kind: self._scores(client, region, kind, nodes, names_by_id)
                for kind, nodes in sorted(self._wanted[region].items())
            }
            state.scores_fetched_at = state.fetched_at
        except (ClientError, BotoCoreError) as error:
            if previous is not None:
                state.scores, state.scores_fetched_at = previous.scores, previous.scores_fetched_at
            log.warning("aws placement scores not refreshed; prices are", region=region,
                        error=_describe(error))  # fmt: skip

    def _zone_ids(self, client: EC2Client) -> dict[str, str]:
        answer = self._call(lambda: client.describe_availability_zones())
        return {
            z["ZoneName"]: z["ZoneId"]
            for z in answer.get("AvailabilityZones", [])
            if "ZoneName" in z and "ZoneId" in z
        }

    def _scores(
        self,
        client: EC2Client,
        region: str,
        instance_type: str,
        nodes: int,
        names_by_id: Mapping[str, str],
    ) -> list[PlacementScore]:
        items = self._paged(
            client,
            "get_spot_placement_scores",
            "SpotPlacementScores",
            InstanceTypes=[instance_type],
            TargetCapacity=max(1, nodes),
            TargetCapacityUnitType="units",
            SingleAvailabilityZone=True,
            RegionNames=[region],
        )
        scores = []
        for item in items:
            zone_id = str(item.get("AvailabilityZoneId", ""))
            if item.get("Region") not in (None, region) or not zone_id:
                continue
            scores.append(
                PlacementScore(
                    zone=names_by_id.get(zone_id, zone_id),
                    zone_id=zone_id,
                    score=int(item.get("Score", 0)),
                    target_nodes=nodes,
                )
            )
        return scores

    def _paged(self, client: EC2Client, operation: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paged operation, read with boto3's paginator.

        A throttled page is retried from the last page read (the paginator resumes from
        `StartingToken`), so a retry neither loses nor repeats items.
        """
        paginator = client.get_paginator(operation)  # type: ignore[call-overload]
        items: list[Any] = []
        token: str | None = None

        def read_remaining_pages() -> None:
            nonlocal token
            config = {"StartingToken": TokenEncoder().encode({"NextToken": token})} if token else {}
            for page in paginator.paginate(**params, PaginationConfig=config):
                items.extend(page.get(key, []))
                token = page.get("NextToken") or None

        self._call(read_remaining_pages)
        return items

    def _call(self, action: Callable[[], Any]) -> Any:
        retrying = Retrying(
            retry=retry_if_exception(_is_throttling),
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=self._retry_wait,
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(action)

    def _client(self, region: str) -> EC2Client:
        if region not in self._clients:
            self._clients[region] = self._client_factory(region)
        return self._clients[region]

    # ---- answering ----------------------------------------------------------------------------

    def history(self, instance_type: str, zone: str) -> SpotPriceSeries | None:
        """The price-change history in the window of the last successful refresh."""
        for state in self._state.values():
            if (found := state.series.get((instance_type, zone))) is not None:
                return found
        return None

    def placement_scores(self, region: str, instance_type: str) -> list[PlacementScore]:
        state = self._state.get(region)
        return [] if state is None else list(state.scores.get(instance_type, []))

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        state = self._state.get(ref.region)
        if state is None:
            return Rejection(
                RejectReason.NOT_FETCHED, f"aws {ref.region}: no successful spot price refresh yet"
            )
        zone = _zone_name(ref.zone, state.zone_ids)
        candidates = [
            s
            for (kind, z), s in state.series.items()
            if kind == ref.instance_type and (zone is None or z == zone)
        ]
        if not candidates:
            return _missing(ref, state)
        chosen = min(candidates, key=lambda s: (s.prices_usd_per_hour[-1], s.zone))
        on_demand, gpus, od_source = self._on_demand_for(ref, now)
        if gpus is None:
            return Rejection(
                RejectReason.UNKNOWN_INSTANCE_TYPE,
                f"aws {ref.describe()}: GPU count unknown (not in the pool config "
                "nor the on-demand catalog)",
            )
        spot = chosen.prices_usd_per_hour[-1]
        score = max(
            (s.score for s in state.scores.get(ref.instance_type, []) if s.zone == chosen.zone),
            default=None,
        )
        window = chosen.window(now - self.settings.history_window_s, now)
        notes = [f"spot set {datetime.fromtimestamp(chosen.times_s[-1], UTC):%Y-%m-%d %H:%M}Z"]
        if window is not None:
            notes.append(
                f"{self.settings.history_window_s / 3600:g}h window mean "
                f"{window.mean_usd_per_hour:.4g}, max {window.max_usd_per_hour:.4g}"
            )
        if od_source:
            notes.append(f"on-demand from {od_source}")
        return PriceQuote(
            instance_type=ref.instance_type,
            region=ref.region,
            zone=chosen.zone,
            gpus_per_instance=gpus,
            on_demand_usd_per_hour=on_demand,
            spot_usd_per_hour=spot,
            source="aws:describe_spot_price_history",
            observed_at=state.fetched_at,
            notes=tuple(notes),
            placement_score=None if score is None else float(score),
        )

    def _on_demand_for(self, ref: PriceRef, now: float) -> tuple[float | None, int | None, str]:
        if self._on_demand is None:
            return None, ref.gpus_per_instance, ""
        answer = self._on_demand.quote(
            PriceRef(ref.instance_type, ref.region, gpus_per_instance=ref.gpus_per_instance), now
        )
        if isinstance(answer, Rejection):
            return None, ref.gpus_per_instance, ""
        return (
            answer.on_demand_usd_per_hour,
            ref.gpus_per_instance or answer.gpus_per_instance,
            (answer.source),
        )


def _zone_name(zone: str | None, zone_ids: Mapping[str, str]) -> str | None:
    """Accept an AZ name or an AZ ID (catalogs use IDs); answer with the name."""
    if zone is None or zone in zone_ids:
        return zone
    return next((name for name, zone_id in zone_ids.items() if zone_id == zone), zone)


def _missing(ref: PriceRef, state: _RegionState) -> Rejection:
    known = any(kind == ref.instance_type for kind, _ in state.series)
    if known:
        zones = sorted(z for kind, z in state.series if kind == ref.instance_type)
        return Rejection(
            RejectReason.NO_ZONE_DATA,
            f"aws {ref.describe()}: no spot price in that zone (zones with prices: "
            f"{', '.join(zones)})",
        )
    return Rejection(
        RejectReason.UNKNOWN_INSTANCE_TYPE,
        f"aws {ref.describe()}: AWS returned no spot price for this instance type "
        "(unknown type, or no spot offering in the region)",
    )


def _is_throttling(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in THROTTLING_CODES
    return isinstance(error, BotoConnectionError)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    metrics.PRICE_API_THROTTLED.labels(source="aws").inc()
    log.warning(
        "aws api throttled or unreachable; retrying",
        attempt=state.attempt_number,
        error=_describe(error) if error else "",
        sleep_s=round(state.upcoming_sleep, 2),
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".strip()
    return f"{type(error).__name__}: {error}"


def wanted_from(pairs: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """(region, instance type, nodes) triples -> the `wanted` mapping (max nodes per type)."""
    wanted: dict[str, dict[str, int]] = {}
    for region, instance_type, nodes in pairs:
        per_region = wanted.setdefault(region, {})
        per_region[instance_type] = max(nodes, per_region.get(instance_type, 0))
    return wanted
