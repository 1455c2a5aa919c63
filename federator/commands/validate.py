"""`federator validate FILE`: check a policy file and say what it sets up."""

from __future__ import annotations

import argparse
import sys

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
files and their contexts, credentials files and environment variables, price catalogs. It
still contacts no cluster and no store (Kubernetes Secrets are not read).

examples:
  federator validate config/sandbox.yaml
  federator validate --quiet /etc/federator/policy.yaml && echo ok
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
        config = load_policy(args.file, check_files=args.check_files)
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
