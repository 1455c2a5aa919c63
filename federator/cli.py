"""The `federator` command line: one subcommand per job a platform engineer does.

Each subcommand lives in `federator.commands.<name>` and exposes `add_parser(subparsers)`,
which registers its arguments and sets `run(args) -> int` as the handler. Command modules keep
heavy imports inside `run`, so `federator --help` stays fast.

Mistakes a person can fix (`errors.UserError`) are printed as one clear message and exit 2,
never as a traceback. Federator's other errors on purpose (`errors.FederatorError`: a store or
a cluster that does not answer, a copy that did not verify) are printed the same way and exit
1; a transient one (`errors.TransientError`, e.g. an on-prem cluster whose caches did not
sync) adds that a retry may succeed. With `--log-level debug` (`federator run`) their
traceback is printed too. Any other exception is a bug and keeps its traceback.

A reader that stops reading (`federator prices ... | head -1`) ends the command quietly with
exit 141 (128 + SIGPIPE), as other command-line tools end on SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from federator import __version__, errors

# The order here is the order `federator --help` lists them in.
COMMANDS = (
    "run",
    "plan",
    "status",
    "validate",
    "schema",
    "simulate",
    "prices",
    "sync",
    "registry",
    "sandbox",
)

DESCRIPTION = """\
federator watches the queue of an on-prem Kueue GPU cluster and, when it overflows, places
the jobs worth moving on cloud GPU pools (spot or on-demand), priced by a cost model that
weighs the cloud bill against the cost of waiting. It syncs datasets out before a job starts,
brings checkpoints and models back to the on-prem registry, and mirrors every job's status
to the object its owner submitted.

Start with `federator validate config/sandbox.yaml`, then `federator simulate --help`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="federator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"federator {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"federator.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "run", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code = int(handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not as "Exception ignored" at exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except errors.UserError as error:
        _report(args, error)
        return error.exit_code
    except errors.FederatorError as error:
        _report(args, error)
        return 1
    except KeyboardInterrupt:
        print("federator: interrupted", file=sys.stderr)
        return 130


def _report(args: argparse.Namespace, error: errors.FederatorError) -> None:
    """One line on stderr (the traceback too when the command runs at debug level)."""
    if str(getattr(args, "log_level", "")).lower() == "debug":
        traceback.print_exception(error, file=sys.stderr)
    hint = "; this may pass: retry later" if isinstance(error, errors.TransientError) else ""
    print(f"federator: error: {error}{hint}", file=sys.stderr)


def _stdout_closed() -> int:
    """The reader of stdout went away: stop without a traceback, like a tool SIGPIPE ends.

    What is still buffered cannot be written; stdout is pointed at /dev/null so that the flush
    at interpreter exit does not fail a second time (the recipe of Python's signal docs).
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE
