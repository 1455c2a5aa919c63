"""The building blocks every section of the policy file shares.

`Section` makes each part of the file strict (an unknown key is an error, not a silent
no-op) and immutable once loaded. The field types here carry the rules a value must follow
(`Name`, `S3Uri`, `ConfigPath`, ...), so the error a person sees names the exact field.

Paths in a policy file are relative to the directory of the file itself, as in
docker-compose and kustomize: the file works the same whichever directory federator is
started from. `load_policy` passes that directory in the validation context.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

BASE_DIR_CONTEXT = "base_dir"


class Section(BaseModel):
    """A strict, frozen part of the policy file; every field documents itself."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # `.inf` and `.nan` are YAML numbers, but no count, price, rate or fraction of the file
        # is infinite (a missing limit is written by leaving the field out).
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        validate_default=False,
        str_strip_whitespace=True,
    )


Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
"""A name federator puts in labels and object names: a DNS label (`cloud-a`, `a100-spot`)."""

KubeName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
]
"""The name of a Kubernetes object (namespace, queue, secret)."""

LabelKey = Annotated[
    str, StringConstraints(pattern=r"^([a-zA-Z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
]
"""A Kubernetes label or annotation key, optionally prefixed (`federator.io/burst`)."""

EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""The name of an environment variable (not its value)."""

S3Uri = Annotated[
    str,
    StringConstraints(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"),
]
"""An object store location: `s3://bucket/prefix/`."""


def _refuse_booleans(value: object) -> object:
    # pydantic's lax mode reads true as 1 and false as 0; in a YAML file that is a slip (a
    # boolean where a number belongs), never a way to write a number. Strings stay lax, because
    # YAML 1.1 reads `1e3` as the string "1e3".
    if isinstance(value, bool):
        raise ValueError(
            f"expected a number here, found {str(value).lower()} (a YAML boolean); "
            "write the number itself"
        )
    return value


NotBoolean = BeforeValidator(_refuse_booleans)
"""Refuses `true`/`false` where a number is expected; part of every numeric type below."""

# The bounds come before `NotBoolean`: pydantic applies a bound placed after a validator
# function as a separate check, and its JSON Schema then says `ge` instead of `minimum`.
Integer = Annotated[int, NotBoolean]
"""A whole number; `true`/`false` are refused (pydantic would read them as 1 and 0)."""

Count = Annotated[int, Field(ge=0), NotBoolean]
"""A whole number, 0 or more (a cap of 0 allows nothing)."""

PositiveCount = Annotated[int, Field(ge=1), NotBoolean]
"""A whole number, 1 or more."""

# A float field takes `3` as well as `3.5`; `.inf` and `.nan` are refused by `allow_inf_nan`.
NonNegative = Annotated[float, Field(ge=0), NotBoolean]
Positive = Annotated[float, Field(gt=0), NotBoolean]
Fraction = Annotated[float, Field(ge=0, le=1), NotBoolean]
# Dollars per hour, or a factor on them: a million is past any real value of waiting and keeps
# the cost model's sums finite (1e308 passed, and overflowed to inf once multiplied by GPUs).
UsdPerHour = Annotated[float, Field(ge=0, le=1e6), NotBoolean]
Multiplier = Annotated[float, Field(gt=0, le=1e6), NotBoolean]


_MEANT_TRUE = frozenset({"true", "yes", "on", "y", "1"})
_MEANT_FALSE = frozenset({"false", "no", "off", "n", "0"})


def _refuse_non_booleans(value: object) -> object:
    # pydantic's lax mode reads 0/1 and "yes"/"1"/"off" as booleans; in a YAML file a number or
    # a quoted word where a switch belongs is a slip (YAML has true and false), and reading it
    # as a boolean can silently turn a safety off (`verify_tls: 0`).
    if isinstance(value, bool):
        return value
    found, meant = _found_and_meant(value)
    raise ValueError(f"expected true or false here, found {found}; write {meant}")


def _found_and_meant(value: object) -> tuple[str, str]:
    """How to name a value found where a switch belongs, and the boolean to write instead."""
    if isinstance(value, int | float):
        meant = "false" if value == 0 else "true" if value == 1 else "true or false"
        return f"{value!r} (a number)", meant
    if isinstance(value, str):
        word = value.strip().lower()
        meant = "true" if word in _MEANT_TRUE else "false" if word in _MEANT_FALSE else ""
        return f"{value!r} (a string)", f"{meant}, unquoted" if meant else "true or false"
    if value is None:
        return "nothing (an empty value)", "true or false"
    if isinstance(value, list | dict):
        return ("a list" if isinstance(value, list) else "a mapping"), "true or false"
    return f"{value} (a {type(value).__name__})", "true or false"  # a YAML date, say


OnlyBoolean = BeforeValidator(_refuse_non_booleans)
"""Refuses anything but `true`/`false` (a YAML boolean) where a switch is expected."""

Switch = Annotated[bool, OnlyBoolean]
"""An on/off setting: `true` or `false`; numbers and strings are refused (pydantic would read
`0` as false and `"yes"` as true)."""


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = (info.context or {}).get(BASE_DIR_CONTEXT)
    if base is None or value.is_absolute():
        return value
    return Path(os.path.normpath(Path(base) / value))


ConfigPath = Annotated[
    Path,
    AfterValidator(_resolve_path),
    WithJsonSchema({"type": "string", "format": "path"}),
]
"""A file path; a relative one is taken relative to the policy file's own directory."""
