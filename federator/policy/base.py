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

NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


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
