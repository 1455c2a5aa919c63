"""`federator schema`: print the JSON Schema of the policy file."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Print the JSON Schema (draft 2020-12) of the federator policy file.

Editors use it to complete keys and check values while you type. The repository commits it
as config/federator.schema.json; with the YAML language server (VS Code, Neovim, ...) put
this comment on the first line of a policy file:

    # yaml-language-server: $schema=federator.schema.json

examples:
  federator schema > config/federator.schema.json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the policy file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from federator.policy import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=False))
    return 0
