"""`federator validate FILE`: check a policy file and say what it sets up."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from federator.policy import FederatorConfig
    from federator.policy.config import PathKey

DESCRIPTION = """\
Check a federator policy file without connecting to anything.

Every problem is printed on its own line as

    FILE:LINE:COL: field.path: what is wrong and how to fix it

covering YAML syntax, unknown or misspelt keys (with a "did you mean"), values without
units (write 15m, not 15), secrets written inline (reference them instead), and references
between sections (a tenant naming a cluster that does not exist). The exit status is 0 when
the file is valid, and 2 when it has any problem.

A valid file is summarised: its clusters and pools, the queues watched, the bursting policy,
tenants, budgets and datasets, so you can check it says what you meant.

Relative paths inside the file are resolved against the file's own directory. With
--check-files, validate also checks what the file points at on this machine: kubeconfig
files, read as connecting reads them (the context, by default the cluster's name, its
cluster with a server and its user must be there), credentials files and environment
variables, price catalogs (each is read as a SkyPilot vms.csv, and must have a row for
each catalog-priced pool's instance type in its region or zone, with prices the daemon
accepts: above zero, finite, and for a spot pool a spot price not above on-demand), and
prices.interruption_data (read as the Spot Advisor feed the daemon reads). Every problem
of every file is reported in the same run. It still contacts no cluster and no store
(Kubernetes Secrets are not read).

examples:
  federator validate config/sandbox.yaml
  federator validate --quiet /etc/federator/policy/federator.yaml && echo ok
  federator validate --check-files config/sandbox.yaml    # after `federator sandbox up`
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a policy file and summarise what it sets up",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the policy file (YAML) to check")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when the file is valid"
    )
    parser.add_argument(
        "--check-files",
        action="store_true",
        help="also check the files, kubeconfig contexts and credentials the policy points at",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from federator.policy import PolicyFileError, load_policy
    from federator.policy.summary import describe

    try:
        config = load_policy(args.file)
        if args.check_files:
            _raise_located(args.file, _file_problems(config))
    except PolicyFileError as error:
        for problem in error.errors:
            print(problem, file=sys.stderr)
        count = len(error.errors)
        print(f"{args.file}: invalid ({count} problem{'s' if count != 1 else ''})", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{args.file}: valid")
        for line in describe(config):
            print(f"  {line}")
    return 0


def _file_problems(config: FederatorConfig) -> list[tuple[PathKey, str]]:
    """Everything --check-files finds, in one pass: each file that is missing or unreadable,
    and then what is wrong inside each file that can be read (a missing kubeconfig does not
    hide a catalog without the pool's row)."""
    from federator.policy.targets import target_problems

    missing = [(problem.path, problem.message) for problem in target_problems(config)]
    # A connection already found wrong (no file, no such context) is not read again: its
    # kubeconfig's deeper check would only say the same thing a second time.
    told = {path[:3] for path, _ in missing if path[:1] == ("clusters",)}
    inside = [
        *[problem for problem in _kubeconfig_problems(config) if problem[0][:3] not in told],
        *_catalog_problems(config),
        *_interruption_problems(config),
    ]
    return missing + inside


def _interruption_problems(config: FederatorConfig) -> list[tuple[PathKey, str]]:
    """`prices.interruption_data` read as the daemon reads it (the Spot Advisor feed)."""
    from federator.errors import UserError
    from federator.prices.interruption import load_spot_advisor

    path = config.prices.interruption_data
    if path is None or not path.is_file():
        return []  # absent, or reported as a missing file
    try:
        load_spot_advisor(path)
    except UserError as error:
        return [(("prices", "interruption_data"), str(error))]
    return []


def _kubeconfig_problems(config: FederatorConfig) -> list[tuple[PathKey, str]]:
    """Each kubeconfig file checked as connecting checks it (`kubeconfig_text.parse` and
    `check_context`, the context defaulting to the cluster's name as the daemon's does): a
    missing user, cluster or server is found here rather than at `federator run`."""
    from federator.kube import kubeconfig_text

    problems: list[tuple[PathKey, str]] = []
    for index, cluster in enumerate(config.clusters):
        connection = cluster.connection
        if connection.kubeconfig is None:
            continue
        where: PathKey = ("clusters", index, "connection", "kubeconfig")
        try:
            loaded = kubeconfig_text.parse(connection.kubeconfig.read_bytes())
            kubeconfig_text.check_context(loaded, connection.context or cluster.name)
        except OSError:  # missing or unreadable: `target_problems` says so at this path
            continue
        except kubeconfig_text.KubeconfigUnreadable as error:
            problems.append((where, f"{connection.kubeconfig}: {error}"))
    return problems


def _catalog_problems(config: FederatorConfig) -> list[tuple[PathKey, str]]:
    """Read each price catalog the file names, and look up each catalog-priced pool's row
    there as the daemon would: every catalog that cannot be read (at `price.file`) and every
    pool it has no row for, or a row whose prices the daemon would refuse (at `price`)."""
    from federator.core.models import CapacityType
    from federator.errors import UserError
    from federator.policy.clusters import CatalogPrice
    from federator.prices.catalog import Catalog, CatalogPriceSource, load_catalog
    from federator.prices.pools import catalog_ref
    from federator.prices.quotes import Rejection
    from federator.prices.validation import check_quote

    catalogs: dict[Path, Catalog | UserError] = {}
    problems: list[tuple[PathKey, str]] = []
    for c_index, cluster in enumerate(config.clusters):
        for p_index, pool in enumerate(cluster.pools):
            price = pool.price
            if not isinstance(price, CatalogPrice):
                continue
            where: PathKey = ("clusters", c_index, "pools", p_index, "price")
            if not price.file.is_file():
                continue  # missing: `target_problems` says so at `price.file`
            if price.file not in catalogs:
                try:
                    catalogs[price.file] = load_catalog(price.file)
                except UserError as error:
                    catalogs[price.file] = error
            catalog = catalogs[price.file]
            if isinstance(catalog, UserError):
                problems.append(((*where, "file"), str(catalog)))
                continue
            quote = CatalogPriceSource([catalog]).quote(catalog_ref(pool, price), 0.0)
            if isinstance(quote, Rejection):
                detail = f"{price.file} has no usable price for this pool: {quote.detail}"
                problems.append((where, detail))
                continue
            # The row's prices pass the daemon's gate (zero, negative, spot above on-demand
            # are refused there), so a file that validates gets a price when it runs.
            capacity = CapacityType(pool.capacity_type)
            checked = check_quote(quote, capacity, quote.observed_at, math.inf)
            if isinstance(checked, Rejection):
                detail = f"the daemon would refuse this pool's price: {checked.detail}"
                problems.append((where, detail))
    return problems


def _raise_located(file: str, problems: list[tuple[PathKey, str]]) -> None:
    """A `PolicyFileError` placing each problem at its field's line, if there are any."""
    from federator.policy.errors import LocatedError, PolicyFileError
    from federator.policy.sourcemap import load_document

    if not problems:
        return
    source_map = load_document(Path(file).read_text(encoding="utf-8")).source_map
    located = []
    for path, message in problems:
        position = source_map.value_position(path)
        located.append(LocatedError(file, position.line, position.column, path, message))
    raise PolicyFileError(file, located)
