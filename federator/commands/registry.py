"""`federator registry`: look into the model registry, check it, publish and move aliases."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from federator.commands.output import literal, new_console

if TYPE_CHECKING:
    from federator.storage.registry import ModelRegistry

DESCRIPTION = """\
The model registry lives on the on-prem object store: each model version is a manifest
listing its files by SHA-256, and the files are stored once, by content. A version is
published atomically (its manifest is written last, only if absent) and never changes;
aliases such as `latest` are pointers moved with compare-and-swap.

  federator registry list [MODEL]            models, or the versions of MODEL, each with the
                                             aliases that point at it
  federator registry show MODEL REF          the files and metadata of a version (REF is a
                                             version or @alias)
  federator registry verify MODEL REF        read every file back and check size and SHA-256
  federator registry publish MODEL VERSION PATH=FILE...
                                             upload files and publish a new version
  federator registry alias MODEL ALIAS VERSION [--expect OLD]
                                             move ALIAS to VERSION if it still points at OLD

--cluster CLUSTER works on that cloud cluster's staging area instead (what jobs there publish
and `federator sync models --from CLUSTER` brings back); the on-prem cluster has none. Checkpoints
of Job NAME in NAMESPACE are the model `checkpoints/NAMESPACE/NAME`, one version per step.

MODEL is lowercase letters, digits, '.', '_', '-' with at most 3 '/' (e.g. team/llama-ft);
VERSION and ALIAS are letters, digits, '.', '_', '-'; PATH is relative, inside the model.
A mistake in the arguments exits 2; a store that does not answer (after retries) exits 1.

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
    _add_where(parser, here=True)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="models, or the versions of one model with their aliases"
    )
    listing.add_argument("model", nargs="?", metavar="MODEL", help=f"{MODEL}; omit for all")
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="the manifest of a version")
    show.add_argument("model", metavar="MODEL", help=MODEL)
    show.add_argument("ref", metavar="REF", help="a version, or @alias")
    show.set_defaults(run=run_show)
    verify = actions.add_parser("verify", help="check every file of a version")
    verify.add_argument("model", metavar="MODEL", help=MODEL)
    verify.add_argument("ref", metavar="REF", help="a version, or @alias")
    verify.set_defaults(run=run_verify)
    publish = actions.add_parser("publish", help="upload files and publish a version")
    publish.add_argument("model", metavar="MODEL", help=MODEL)
    publish.add_argument("version", metavar="VERSION", help="the new version, e.g. 3")
    publish.add_argument(
        "files", nargs="+", metavar="PATH=FILE", help="FILE on this machine, stored as PATH"
    )
    publish.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for the manifest (repeatable)",
    )
    publish.set_defaults(run=run_publish)
    alias = actions.add_parser("alias", help="move an alias with compare-and-swap")
    alias.add_argument("model", metavar="MODEL", help=MODEL)
    alias.add_argument("alias", metavar="ALIAS", help="e.g. latest")
    alias.add_argument("version", metavar="VERSION", help="the version ALIAS is to point at")
    alias.add_argument("--expect", metavar="OLD", help="the version ALIAS points at now")
    alias.set_defaults(run=run_alias)
    for action in (listing, show, verify, publish, alias):
        _add_where(action, here=False)


MODEL = "the model's name, e.g. team/llama-ft"


def _add_where(parser: argparse.ArgumentParser, *, here: bool) -> None:
    """--config and --cluster, before or after the action (see sync.add_config_argument)."""
    from federator.commands.sync import add_config_argument

    add_config_argument(parser, here=here)
    parser.add_argument(
        "--cluster",
        metavar="CLUSTER",
        default=None if here else argparse.SUPPRESS,
        help="use CLUSTER's staging area, not the registry",
    )


def _registry(args: argparse.Namespace) -> ModelRegistry:
    from federator.commands.sync import check_cloud_cluster
    from federator.policy import load_policy
    from federator.storage.stores import Stores

    _check_names(args)
    config = load_policy(args.config)
    if args.cluster is not None:
        check_cloud_cluster(config, "--cluster", args.cluster)
    stores = Stores(config)
    return stores.staging(args.cluster) if args.cluster else stores.registry()


def _check_names(args: argparse.Namespace) -> None:
    """Refuse a model name, version, alias or reference the registry's format does not allow
    before anything is read or uploaded, naming the argument."""
    from federator.syncing import manifests

    def alias(name: str) -> str:
        try:
            return manifests.check_version(name)
        except manifests.ManifestError:
            raise manifests.ManifestError(
                f"alias {name!r}: use letters, digits, '.', '_', '-'"
            ) from None

    def version_or_alias(ref: str) -> str:
        return alias(ref[1:]) if ref.startswith("@") else manifests.check_version(ref)

    checks: tuple[tuple[str, str, Callable[[str], str]], ...] = (
        ("model", "MODEL", manifests.check_name),
        ("ref", "REF", version_or_alias),
        ("version", "VERSION", manifests.check_version),
        ("alias", "ALIAS", alias),
        ("expect", "--expect", manifests.check_version),
    )
    for attribute, argument, check in checks:
        value = getattr(args, attribute, None)
        if value is not None:
            _checked(argument, check, value)


def _checked(argument: str, check: Callable[[str], object], value: str) -> None:
    from federator.errors import UserError
    from federator.syncing.manifests import ManifestError

    try:
        check(value)
    except ManifestError as error:
        raise UserError(f"argument {argument}: {error}") from None


def _check_file_path(path: str) -> str:
    """A PATH inside the model, by the rule a manifest's file entries follow."""
    from federator.syncing import manifests

    manifests.check_files((manifests.FileEntry(path, "sha256:" + "0" * 64, 0),))
    return path


def run_list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    registry = _registry(args)
    console = new_console()
    if args.model is None:
        names = registry.models()
        for name in names:
            console.print(name, markup=False, highlight=False)
        if not names:  # on stderr: stdout stays one model name a line, for scripts
            print(f"no models in {registry.location} yet", file=sys.stderr)
        return 0
    versions = registry.versions(args.model)
    if not versions:
        raise _no_such_model(args.model, registry)
    # The location on its own line: as the table's title rich folded it mid-word.
    console.print(f"{args.model} ({registry.location})", markup=False, highlight=False)
    aliases = registry.aliases(args.model)
    aliases_of = _aliases_by_version(aliases)
    table = Table("version", "aliases", "files", "size", "created")
    for version in versions:
        manifest = registry.manifest(args.model, version)
        table.add_row(  # what a manifest or an alias says, as it says it
            Text(version),
            Text(", ".join(aliases_of.get(version, ()))),
            str(len(manifest.files)),
            f"{manifest.size:,} B",
            Text(manifest.created_at),
        )
    console.print(table)
    # Written by hand or by a job in a staging area, an alias may name no version: no row shows it.
    for alias, version in aliases.items():
        if version not in versions:
            line = f"alias {alias} -> {version}: no such version"
            console.print(line, markup=False, highlight=False)
    return 0


def _aliases_by_version(aliases: dict[str, str]) -> dict[str, list[str]]:
    """alias -> version turned around: the aliases pointing at each version, in name order."""
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        by_version.setdefault(version, []).append(alias)
    return by_version


def _no_such_model(model: str, registry: ModelRegistry) -> Exception:
    """A model with no version is one the registry does not have: say so, as `show` does,
    and name the models it has (a typo is the usual cause)."""
    from federator.errors import UserError

    names = registry.models()
    known = f"models: {', '.join(names)}" if names else "it has no models yet"
    return UserError(f"{registry.location}: no model {model!r} ({known})")


def run_show(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    manifest = _registry(args).manifest(args.model, args.ref)
    console = new_console()
    console.print(
        f"[bold]{literal(manifest.name)}[/] version {literal(manifest.version)}, "
        f"{literal(manifest.created_at)}"
    )
    for key, value in sorted(manifest.metadata.items()):
        console.print(f"  {literal(key)}: {literal(value)}")
    table = Table("path", "size", "digest")
    for entry in manifest.files:
        table.add_row(Text(entry.path), f"{entry.size:,}", Text(entry.digest))
    console.print(table)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    console = new_console()
    with console.status("reading every file back"):
        result = _registry(args).verify(args.model, args.ref)
    for problem in result.problems:
        console.print(f"[red]bad[/] {literal(problem)}")
    state = "ok" if result.ok else f"{len(result.problems)} bad file(s)"
    console.print(
        f"{literal(result.name)} {literal(result.version)}: {result.files} file(s), "
        f"{result.bytes_checked:,} bytes checked: {state}"
    )
    return 0 if result.ok else 1


def run_publish(args: argparse.Namespace) -> int:
    from federator.errors import UserError

    _check_names(args)
    files: dict[str, Path] = {}
    for item in args.files:
        path, sep, local = item.partition("=")
        if not sep or not path or not local:
            raise UserError(
                f"{item!r}: write each file as PATH=FILE, e.g. model.bin=./out/model.bin"
            )
        _checked(f"PATH=FILE {item!r}", _check_file_path, path)
        if path in files:
            raise UserError(f"argument PATH=FILE {item!r}: {path!r} is given twice")
        if Path(local).is_dir():
            raise UserError(
                f"argument PATH=FILE {item!r}: {local} is a directory; FILE must be a regular "
                "file (publish each file of the directory as its own PATH=FILE)"
            )
        if not Path(local).exists():
            raise UserError(f"argument PATH=FILE {item!r}: {local}: no such file")
        if not Path(local).is_file():
            raise UserError(f"argument PATH=FILE {item!r}: {local} is not a regular file")
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
