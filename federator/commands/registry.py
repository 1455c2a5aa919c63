"""`federator registry`: look into the model registry, check it, publish and move aliases."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from federator.storage.registry import ModelRegistry

DEFAULT_CONFIG = "config/sandbox.yaml"

DESCRIPTION = """\
The model registry lives on the on-prem object store: each model version is a manifest
listing its files by SHA-256, and the files are stored once, by content. A version is
published atomically (its manifest is written last, only if absent) and never changes;
aliases such as `latest` are pointers moved with compare-and-swap.

  federator registry list [MODEL]            models, or the versions and aliases of MODEL
  federator registry show MODEL REF          the files and metadata of a version (REF is a
                                             version or @alias)
  federator registry verify MODEL REF        read every file back and check size and SHA-256
  federator registry publish MODEL VERSION PATH=FILE...
                                             upload files and publish a new version
  federator registry alias MODEL ALIAS VERSION [--expect OLD]
                                             move ALIAS to VERSION if it still points at OLD

--cluster CLUSTER works on that cloud cluster's staging area instead (what jobs there publish
and `federator sync models --from CLUSTER` brings back). Checkpoints of job J are the model
`checkpoints/J`, one version per step.

examples:
  federator registry list
  federator registry show llama-ft @latest
  federator registry verify llama-ft 3
  federator registry publish llama-ft 3 model.safetensors=./out/model.safetensors
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="list, show, verify and publish model versions",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("FEDERATOR_CONFIG", DEFAULT_CONFIG),
        help="the policy file (default: $FEDERATOR_CONFIG or %(default)s)",
    )
    parser.add_argument(
        "--cluster", metavar="CLUSTER", help="use CLUSTER's staging area, not the registry"
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="models, or the versions of one model")
    listing.add_argument("model", nargs="?", metavar="MODEL")
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="the manifest of a version")
    show.add_argument("model", metavar="MODEL")
    show.add_argument("ref", metavar="REF", help="a version, or @alias")
    show.set_defaults(run=run_show)
    verify = actions.add_parser("verify", help="check every file of a version")
    verify.add_argument("model", metavar="MODEL")
    verify.add_argument("ref", metavar="REF", help="a version, or @alias")
    verify.set_defaults(run=run_verify)
    publish = actions.add_parser("publish", help="upload files and publish a version")
    publish.add_argument("model", metavar="MODEL")
    publish.add_argument("version", metavar="VERSION")
    publish.add_argument("files", nargs="+", metavar="PATH=FILE")
    publish.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    publish.set_defaults(run=run_publish)
    alias = actions.add_parser("alias", help="move an alias with compare-and-swap")
    alias.add_argument("model", metavar="MODEL")
    alias.add_argument("alias", metavar="ALIAS")
    alias.add_argument("version", metavar="VERSION")
    alias.add_argument("--expect", metavar="OLD", help="the version ALIAS points at now")
    alias.set_defaults(run=run_alias)


def _registry(args: argparse.Namespace) -> ModelRegistry:
    from federator.policy import load_policy
    from federator.storage.stores import Stores

    stores = Stores(load_policy(args.config))
    return stores.staging(args.cluster) if args.cluster else stores.registry()


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    registry = _registry(args)
    console = Console()
    if args.model is None:
        for name in registry.models():
            console.print(name)
        return 0
    table = Table(
        "version", "files", "size", "created", title=f"{args.model} ({registry.location})"
    )
    for version in registry.versions(args.model):
        manifest = registry.manifest(args.model, version)
        table.add_row(
            version, str(len(manifest.files)), f"{manifest.size:,} B", manifest.created_at
        )
    console.print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    manifest = _registry(args).manifest(args.model, args.ref)
    console = Console()
    console.print(f"[bold]{manifest.name}[/] version {manifest.version}, {manifest.created_at}")
    for key, value in sorted(manifest.metadata.items()):
        console.print(f"  {key}: {value}")
    table = Table("path", "size", "digest")
    for entry in manifest.files:
        table.add_row(entry.path, f"{entry.size:,}", entry.digest)
    console.print(table)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    with console.status("reading every file back"):
        result = _registry(args).verify(args.model, args.ref)
    for problem in result.problems:
        console.print(f"[red]bad[/] {problem}")
    state = "ok" if result.ok else f"{len(result.problems)} bad file(s)"
    console.print(
        f"{result.name} {result.version}: {result.files} file(s), "
        f"{result.bytes_checked:,} bytes checked: {state}"
    )
    return 0 if result.ok else 1


def run_publish(args: argparse.Namespace) -> int:
    from federator.errors import UserError

    files: dict[str, Path] = {}
    for item in args.files:
        path, sep, local = item.partition("=")
        if not sep or not path or not local:
            raise UserError(
                f"{item!r}: write each file as PATH=FILE, e.g. model.bin=./out/model.bin"
            )
        if not Path(local).is_file():
            raise UserError(f"{local}: no such file")
        files[path] = Path(local)
    metadata = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--meta {item!r}: write KEY=VALUE")
        metadata[key] = value
    manifest = _registry(args).publish(args.model, args.version, files, metadata=metadata)
    print(f"published {manifest.name} {manifest.version}: {len(manifest.files)} file(s)")
    return 0


def run_alias(args: argparse.Namespace) -> int:
    _registry(args).move_alias(args.model, args.alias, args.version, expected=args.expect)
    print(f"{args.model}@{args.alias} -> {args.version}")
    return 0
