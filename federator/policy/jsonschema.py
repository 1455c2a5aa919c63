"""The JSON Schema of the policy file, as editors and `docs/configuration.md` see it.

pydantic writes defaults the way Python holds them (`PT30M` for thirty minutes, 67108864 for
64 MiB); a person writes `30m` and `64Mi`, and the schema's own patterns demand that form. So
defaults are written back in the file's notation here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from federator.policy.config import FederatorConfig
from federator.policy.units import ByteCount, format_duration, format_size

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
