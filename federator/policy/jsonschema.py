"""The JSON Schema of the policy file, as editors and `docs/configuration.md` see it.

pydantic writes defaults the way Python holds them (`PT30M` for thirty minutes, 67108864 for
64 MiB); a person writes `30m` and `64Mi`, and the schema's own patterns demand that form. So
defaults are written back in the file's notation here.
"""

from __future__ import annotations

import typing
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from federator.policy.config import FederatorConfig
from federator.policy.units import Bound, ByteCount, bound_of, format_duration, format_size

SCHEMA_ID = "https://federator.io/schemas/federator.schema.json"


class _PolicySchema(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, ByteCount):
            return format_size(dft)
        return super().encode_default(dft)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the policy file (draft 2020-12), as committed in config/."""
    schema = FederatorConfig.model_json_schema(mode="validation", schema_generator=_PolicySchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "federator policy file",
    }


def field_bounds() -> dict[str, dict[str, str]]:
    """The lower bound of each duration and size field that has one (`> 0s`), by model name
    (as in the schema's `$defs`) and field name. JSON Schema cannot say "a duration longer
    than zero", so the field reference takes these from the models."""
    found: dict[str, dict[str, str]] = {}
    pending: list[type[BaseModel]] = [FederatorConfig]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        bounds = found.setdefault(model.__name__, {})
        for name, field in model.model_fields.items():
            text = next((m.text for m in field.metadata if isinstance(m, Bound)), None)
            text = text or bound_of(field.annotation)
            if text is not None:
                bounds[name] = text
            pending.extend(_models_in(field.annotation))
    return {name: bounds for name, bounds in found.items() if bounds}


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
