"""Errors in a policy file, each tied to the place a person has to edit.

Every problem found in a file becomes a `LocatedError` printed as
`FILE:LINE:COL: field.path: message` — the form editors and CI logs turn into links. All
problems of a file are collected into one `PolicyFileError`, so a person fixes them in one
pass instead of one run per mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federator.errors import UserError

PathKey = tuple[str | int, ...]


def format_path(path: PathKey) -> str:
    """`("clusters", 1, "pools", 0, "gpu_type")` -> `clusters[1].pools[0].gpu_type`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass(frozen=True, slots=True)
class LocatedError:
    """One problem in a policy file: where it is and what to do about it."""

    source: str  # the file name as the user gave it, or "<string>"
    line: int
    column: int
    path: PathKey
    message: str

    @property
    def field_path(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.field_path}: {self.message}"


class PolicyFileError(UserError):
    """A policy file could not be used; `errors` lists every problem found, in file order."""

    def __init__(self, source: str, errors: Sequence[LocatedError]) -> None:
        self.source = source
        self.errors = tuple(sorted(errors, key=lambda e: (e.line, e.column, e.field_path)))
        count = len(self.errors)
        header = f"{source}: {count} problem{'s' if count != 1 else ''} in the policy file"
        super().__init__("\n".join([header, *(str(error) for error in self.errors)]))
