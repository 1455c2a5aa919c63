"""Options several commands share, spelled the same way everywhere."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

CONFIG_ENV = "FEDERATOR_CONFIG"


def add_policy_file_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`-c/--config FILE`, required unless $FEDERATOR_CONFIG names the file (as `sync` and
    `registry` read it). No file is assumed: `run` or `plan` against a file nobody chose
    would act on the wrong clusters."""
    named = os.environ.get(CONFIG_ENV)
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        required=not named,
        default=Path(named) if named else None,
        help=f"{what} (default: ${CONFIG_ENV}, when set)",
    )
