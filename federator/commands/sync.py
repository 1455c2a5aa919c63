"""`federator sync` (placeholder until its owner lands the real command)."""

from __future__ import annotations

import argparse

from federator import errors


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sync", help="(not built yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise errors.UserError("'federator sync' is not built yet")
