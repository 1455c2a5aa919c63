"""Price catalogs in SkyPilot's `vms.csv` format, read exactly as the clouds' price lists are.

Why a catalog: it is the one offline price list that covers AWS and GCP GPU machines per zone,
and it is what the simulator and a daemon without cloud credentials price pools with.

The two clouds need different arithmetic (see `../shared/data/catalog/SOURCE.md`):
* AWS: one row per (instance type, AZ ID); the GPUs are included in the instance price;
  empty `SpotPrice` = no spot offering there; `SpotPrice == Price` = spot capped at on-demand.
* GCP: the GPU is priced apart from the host. A row with an empty `InstanceType` is an
  accelerator row (`AcceleratorName` x `AcceleratorCount` in one zone); a GPU VM costs
  host row + accelerator row of the same zone.

A row that cannot be read (a price that is not a number) is kept as a problem for its
(type, zone), so a pool pointing there is refused as `malformed` with the file and line,
instead of the whole catalog failing or the row silently disappearing.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from federator.core.models import CapacityType
from federator.errors import UserError
from federator.prices.quotes import PricePart, PriceQuote, PriceRef, Rejection, RejectReason
from federator.prices.validation import compare_spot_to_on_demand
from federator.textfiles import numbered_rows, read_utf8

AWS_HEADER = [
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "GpuInfo",
    "Price",
    "SpotPrice",
    "Region",
    "AvailabilityZone",
    "Arch",
]
GCP_HEADER = [
    "InstanceType",
    "vCPUs",
    "MemoryGiB",
    "AcceleratorName",
    "AcceleratorCount",
    "GpuInfo",
    "Region",
    "AvailabilityZone",
    "Price",
    "SpotPrice",
]

# A region whose on-demand price is this many times the cheapest region's gets a note:
# catalogs really do differ several-fold (GCP H100x8: us-central1 33.6 vs us-east4 78.4).
REGIONAL_SPREAD_NOTE_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One readable row. `instance_type` is empty for GCP accelerator rows."""

    line: int
    instance_type: str
    accelerator: str
    accelerator_count: int
    region: str
    zone: str
    on_demand_usd_per_hour: float
    spot_usd_per_hour: float | None  # None: no spot offering in this zone
    parts: tuple[CatalogRow, ...] = ()  # GCP: the host and accelerator rows summed here

    def label(self, catalog: Catalog) -> str:
        shape = self.instance_type or f"{self.accelerator}x{self.accelerator_count}"
        return f"{catalog.label}:{self.line} {shape}"


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """A row that could not be read, kept so lookups landing on it can say why."""

    line: int
    instance_type: str
    accelerator: str
    zone: str
    detail: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """All rows of one `vms.csv`, for one cloud (`aws` or `gcp`)."""

    path: Path
    cloud: str
    rows: tuple[CatalogRow, ...]
    problems: tuple[CatalogProblem, ...]
    # Rows by InstanceType and by (AcceleratorName, AcceleratorCount) of accelerator rows:
    # lookups happen every decision round, the rows never change.
    by_host: Mapping[str, tuple[CatalogRow, ...]] = field(default_factory=dict)
    by_accelerator: Mapping[tuple[str, int], tuple[CatalogRow, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    def hosts(self, instance_type: str) -> list[CatalogRow]:
        return list(self.by_host.get(instance_type, ()))

    def accelerators(self, name: str, count: int | None) -> list[CatalogRow]:
        if count is not None:
            return list(self.by_accelerator.get((name, count), ()))
        return [r for (n, _), rows in self.by_accelerator.items() if n == name for r in rows]


def load_catalog(path: Path) -> Catalog:
    """Read a SkyPilot `vms.csv`; the cloud is recognised from the header.

    UTF-8, with or without the byte-order mark spreadsheets write ("CSV UTF-8"); bytes that
    are not UTF-8 and rows the csv module cannot read are a `UserError` naming the line.
    """
    text = read_utf8(path, "price catalog")
    reader = csv.reader(io.StringIO(text, newline=""))
    numbered = numbered_rows(reader, path, "the price catalog's row")
    _, header = next(numbered, (1, None))
    if header == AWS_HEADER:
        cloud = "aws"
    elif header == GCP_HEADER:
        cloud = "gcp"
    else:
        raise UserError(
            f"{path}:1: not a SkyPilot catalog header (expected the AWS or GCP "
            f"vms.csv columns, got {','.join(header or [])[:120]!r})"
        )
    records = [(line, dict(zip(header, values, strict=False))) for line, values in numbered]
    rows, problems = _parse_records(records)
    by_host: dict[str, list[CatalogRow]] = defaultdict(list)
    by_accelerator: dict[tuple[str, int], list[CatalogRow]] = defaultdict(list)
    for row in rows:
        if row.instance_type:
            by_host[row.instance_type].append(row)
        elif row.accelerator:
            by_accelerator[(row.accelerator, row.accelerator_count)].append(row)
    return Catalog(
        path=path,
        cloud=cloud,
        rows=tuple(rows),
        problems=tuple(problems),
        by_host={k: tuple(v) for k, v in by_host.items()},
        by_accelerator={k: tuple(v) for k, v in by_accelerator.items()},
    )


def _parse_records(
    records: Iterable[tuple[int, Mapping[str, str]]],
) -> tuple[list[CatalogRow], list[CatalogProblem]]:
    """Each (line, record) as a row, or as a problem at its line."""
    rows: list[CatalogRow] = []
    problems: list[CatalogProblem] = []
    for line, record in records:
        instance_type = (record.get("InstanceType") or "").strip()
        accelerator = (record.get("AcceleratorName") or "").strip()
        zone = (record.get("AvailabilityZone") or "").strip()
        try:
            rows.append(
                CatalogRow(
                    line=line,
                    instance_type=instance_type,
                    accelerator=accelerator,
                    accelerator_count=_count(record.get("AcceleratorCount")),
                    region=(record.get("Region") or "").strip(),
                    zone=zone,
                    on_demand_usd_per_hour=_price(record.get("Price"), "Price"),
                    spot_usd_per_hour=_optional_price(record.get("SpotPrice")),
                )
            )
        except ValueError as error:
            problems.append(CatalogProblem(line, instance_type, accelerator, zone, str(error)))
    return rows, problems


def _count(text: str | None) -> int:
    """`8`, `8.0` or empty (host rows) -> 8, 8, 0."""
    if not text or not text.strip():
        return 0
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError(f"AcceleratorCount {text!r} is not a whole number")
    return int(value)


def _price(text: str | None, column: str) -> float:
    if text is None or not text.strip():
        raise ValueError(f"{column} is empty")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None


def _optional_price(text: str | None) -> float | None:
    return None if text is None or not text.strip() else _price(text, "SpotPrice")


def _row_is_sane(row: CatalogRow) -> bool:
    return _is_sane(row.on_demand_usd_per_hour) and _is_sane(row.spot_usd_per_hour)


def _is_sane(price: float | None) -> bool:
    return price is None or (math.isfinite(price) and price > 0)


class CatalogPriceSource:
    """`PriceSource` over one or more loaded catalogs (one per cloud).

    Catalog prices are list prices with no capture time, so a quote is stamped with the
    caller's `now` (the catalog is as current as it can be) and named by file and line, so a
    person can always find the row behind a decision.
    """

    def __init__(self, catalogs: Iterable[Catalog]) -> None:
        self._catalogs = tuple(catalogs)

    @property
    def name(self) -> str:
        return "catalog"

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        return self.quote_for(ref, now, prefer=ref.capacity or CapacityType.SPOT)

    def quote_for(self, ref: PriceRef, now: float, prefer: CapacityType) -> PriceQuote | Rejection:
        """Like `quote`; with `ref.zone=None`, pick the cheapest zone for `prefer`."""
        catalog = self._catalog_for(ref)
        if catalog is None:
            return Rejection(
                RejectReason.UNKNOWN_INSTANCE_TYPE,
                f"no loaded catalog lists {ref.describe()} "
                f"(catalogs: {', '.join(c.label for c in self._catalogs) or 'none'})",
            )
        if catalog.cloud == "gcp":
            return _quote_gcp(catalog, ref, now, prefer)
        return _quote_aws(catalog, ref, now, prefer)

    def _catalog_for(self, ref: PriceRef) -> Catalog | None:
        for catalog in self._catalogs:
            if ref.instance_type and (
                catalog.hosts(ref.instance_type)
                or any(p.instance_type == ref.instance_type for p in catalog.problems)
            ):
                return catalog
            if (
                not ref.instance_type
                and ref.accelerator
                and catalog.accelerators(ref.accelerator, ref.accelerator_count)
            ):
                return catalog
        return None


def _quote_aws(
    catalog: Catalog, ref: PriceRef, now: float, prefer: CapacityType
) -> PriceQuote | Rejection:
    rows = catalog.hosts(ref.instance_type)
    chosen = _pick_zone(catalog, rows, ref, prefer)
    if isinstance(chosen, Rejection):
        return chosen
    gpus = chosen.accelerator_count
    if gpus <= 0:
        return Rejection(
            RejectReason.UNKNOWN_INSTANCE_TYPE,
            f"{catalog.label}:{chosen.line}: {ref.instance_type} has no GPUs in the catalog",
        )
    return PriceQuote(
        instance_type=ref.instance_type,
        region=chosen.region,
        zone=chosen.zone,
        gpus_per_instance=gpus,
        on_demand_usd_per_hour=chosen.on_demand_usd_per_hour,
        spot_usd_per_hour=chosen.spot_usd_per_hour,
        source=f"catalog:{catalog.label}:{chosen.line}",
        observed_at=now,
        notes=_spread_note(rows, chosen),
    )


def _quote_gcp(
    catalog: Catalog, ref: PriceRef, now: float, prefer: CapacityType
) -> PriceQuote | Rejection:
    if not ref.accelerator:
        return Rejection(
            RejectReason.MALFORMED,
            f"{catalog.label}: GCP prices GPUs apart from the host; {ref.describe()} must name "
            "its accelerator (e.g. H100 x8)",
        )
    accelerators = catalog.accelerators(ref.accelerator, ref.accelerator_count)
    if not accelerators:
        return Rejection(
            RejectReason.UNKNOWN_INSTANCE_TYPE,
            f"{catalog.label}: no accelerator rows for {ref.accelerator}x{ref.accelerator_count}",
        )
    hosts = {r.zone: r for r in catalog.hosts(ref.instance_type)} if ref.instance_type else {}
    if ref.instance_type and not hosts:
        return Rejection(
            RejectReason.UNKNOWN_INSTANCE_TYPE,
            f"{catalog.label}: no host rows for {ref.instance_type}",
        )
    combined = [_gcp_vm(accel, hosts.get(accel.zone), ref) for accel in accelerators]
    usable = [row for row in combined if row is not None]
    chosen = _pick_zone(catalog, usable, ref, prefer)
    if isinstance(chosen, Rejection):
        return chosen
    host = hosts.get(chosen.zone)
    lines = f"{host.line}+{chosen.line}" if host else str(chosen.line)
    notes = _spread_note(usable, chosen)
    if host is None:
        notes += ("GPU-only price: the host VM is not in the catalog",)
    return PriceQuote(
        instance_type=ref.instance_type or ref.accelerator,
        region=chosen.region,
        zone=chosen.zone,
        gpus_per_instance=chosen.accelerator_count,
        on_demand_usd_per_hour=chosen.on_demand_usd_per_hour,
        spot_usd_per_hour=chosen.spot_usd_per_hour,
        source=f"catalog:{catalog.label}:{lines}",
        observed_at=now,
        notes=notes,
        parts=tuple(
            PricePart(part.label(catalog), part.on_demand_usd_per_hour, part.spot_usd_per_hour)
            for part in chosen.parts
        ),
    )


def _gcp_vm(accel: CatalogRow, host: CatalogRow | None, ref: PriceRef) -> CatalogRow | None:
    """Host + accelerator of one zone as one row (None if the pool needs a host and has none)."""
    if host is None:
        return None if ref.instance_type else accel
    spot = (
        None
        if host.spot_usd_per_hour is None or accel.spot_usd_per_hour is None
        else host.spot_usd_per_hour + accel.spot_usd_per_hour
    )
    return CatalogRow(
        line=accel.line,
        instance_type=host.instance_type,
        accelerator=accel.accelerator,
        accelerator_count=accel.accelerator_count,
        region=accel.region,
        zone=accel.zone,
        on_demand_usd_per_hour=host.on_demand_usd_per_hour + accel.on_demand_usd_per_hour,
        spot_usd_per_hour=spot,
        parts=(host, accel),
    )


def _pick_zone(
    catalog: Catalog, rows: list[CatalogRow], ref: PriceRef, prefer: CapacityType
) -> CatalogRow | Rejection:
    """The row for `ref.zone`, or the cheapest sane row in `ref.region` for `prefer`."""
    in_region = [r for r in rows if r.region == ref.region]
    if ref.zone is not None:
        in_region = [r for r in in_region if r.zone == ref.zone]
    if not in_region:
        return _no_row(catalog, rows, ref)
    if ref.zone is not None:
        return in_region[0]
    sane = [r for r in in_region if all(_row_is_sane(part) for part in (r, *r.parts))]
    if prefer is CapacityType.SPOT:
        discounted = [r for r in sane if _spot_not_above(r)]
        if discounted:
            return min(discounted, key=lambda r: (r.spot_usd_per_hour or 0.0, r.zone))
    # On-demand pools, or no sane spot anywhere in the region: let validation explain.
    candidates = sane or in_region
    return min(candidates, key=lambda r: (r.on_demand_usd_per_hour, r.zone))


def _spot_not_above(row: CatalogRow) -> bool:
    return all(
        part.spot_usd_per_hour is not None
        and compare_spot_to_on_demand(part.on_demand_usd_per_hour, part.spot_usd_per_hour)
        != "above"
        for part in (row, *row.parts)
    )


def _no_row(catalog: Catalog, rows: list[CatalogRow], ref: PriceRef) -> Rejection:
    problem = next(
        (
            p
            for p in catalog.problems
            if p.instance_type == ref.instance_type and (ref.zone is None or p.zone == ref.zone)
        ),
        None,
    )
    if problem is not None:
        return Rejection(
            RejectReason.MALFORMED, f"{catalog.label}:{problem.line}: {problem.detail}"
        )
    places = sorted({r.zone for r in rows if r.region == ref.region}) or sorted(
        {r.region for r in rows}
    )
    kind = "zones of the region" if any(r.region == ref.region for r in rows) else "regions"
    return Rejection(
        RejectReason.NO_ZONE_DATA,
        f"{catalog.label}: no row for {ref.describe()}; {kind} with data: {', '.join(places[:12])}",
    )


def _spread_note(rows: list[CatalogRow], chosen: CatalogRow) -> tuple[str, ...]:
    """Say so when the chosen region costs several times the cheapest region for this shape."""
    cheapest_by_region: dict[str, float] = defaultdict(lambda: math.inf)
    for row in rows:
        if _is_sane(row.on_demand_usd_per_hour):
            cheapest_by_region[row.region] = min(
                cheapest_by_region[row.region], row.on_demand_usd_per_hour
            )
    if not cheapest_by_region:
        return ()
    region, floor = min(cheapest_by_region.items(), key=lambda item: (item[1], item[0]))
    ratio = chosen.on_demand_usd_per_hour / floor if floor > 0 else math.inf
    if ratio >= REGIONAL_SPREAD_NOTE_RATIO and math.isfinite(ratio):
        return (f"on-demand is {ratio:.1f}x the cheapest region ({region}: {floor:g}/h)",)
    return ()
