"""Turn a policy file into a `FederatorConfig`, or into every problem it has, each located.

The steps, each adding to one list of problems: read the file; parse the YAML (syntax
errors, duplicate keys); look for inline secrets; validate the fields with pydantic; check the
references between sections. pydantic's messages are rewritten for a person editing YAML —
"expected a mapping, found a list", "unknown field `regoin`; did you mean `region`?" — and
each is placed at the line and column of the key or value it is about.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from federator.policy import base
from federator.policy.config import (
    DEFER_REFERENCES_CONTEXT,
    FederatorConfig,
    Problem,
    reference_problems,
)
from federator.policy.errors import LocatedError, PathKey, PolicyFileError
from federator.policy.secrets import find_inline_secrets
from federator.policy.sourcemap import Position, SourceMap, load_document
from federator.policy.targets import target_problems
from federator.textfiles import line_and_column

STRING_SOURCE = "<string>"
MAX_FILE_BYTES = 4 * 2**20  # real policy files are a few KiB; this refuses a runaway file at once


def load_policy(path: str | os.PathLike[str], *, check_files: bool = False) -> FederatorConfig:
    """Read and validate the policy file at `path`; raise `PolicyFileError` listing every
    problem. Relative paths inside the file are resolved against the file's directory. With
    `check_files`, also check that the files, contexts and credentials it points at exist."""
    source = os.fspath(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise _single(
                source,
                f"the file is {size / 2**20:.1f} MiB; a policy file is at most "
                f"{MAX_FILE_BYTES // 2**20} MiB (is this the right file?)",
            )
        text = _utf8(source, Path(path).read_bytes())
    except OSError as error:
        reason = error.strerror or str(error)
        raise _single(source, f"cannot read the file: {reason}") from None
    base_dir = Path(path).absolute().parent
    return parse_policy(text, source, base_dir=base_dir, check_files=check_files)


def parse_policy(
    text: str,
    source_name: str = STRING_SOURCE,
    *,
    base_dir: Path | None = None,
    check_files: bool = False,
) -> FederatorConfig:
    """Validate policy text; `source_name` prefixes each error. Relative paths in the text are
    resolved against `base_dir`, or left relative (to the current directory) when it is None.
    `check_files` also checks what the file points at (see `federator.policy.targets`).
    """
    document = load_document(text)
    errors = [
        LocatedError(source_name, p.position.line, p.position.column, p.path, p.message)
        for p in document.problems
    ]
    if document.data is None and errors:
        raise PolicyFileError(source_name, errors)
    secrets = list(find_inline_secrets(document.data))
    for secret in secrets:
        position = document.source_map.key_position(secret.path)
        errors.append(_located(source_name, position, secret.path, secret.message))
    context = {base.BASE_DIR_CONTEXT: base_dir, DEFER_REFERENCES_CONTEXT: True}
    try:
        config = FederatorConfig.model_validate(document.data, context=context)
    except ValidationError as error:
        # A value the YAML itself could not give (an unknown tag) is told once, as syntax.
        told = [problem.path for problem in document.problems if problem.path]
        skip = [secret.path for secret in secrets] + told
        errors.extend(_field_errors(error, document.data, document.source_map, source_name, skip))
        for problem in _references_of_valid_sections(document.data, context):
            position = document.source_map.value_position(problem.path)
            errors.append(_located(source_name, position, problem.path, problem.message))
        raise PolicyFileError(source_name, errors) from None
    problems = reference_problems(config)
    if check_files and not problems:
        problems = target_problems(config)
    for problem in problems:
        position = document.source_map.value_position(problem.path)
        errors.append(_located(source_name, position, problem.path, problem.message))
    if errors:
        raise PolicyFileError(source_name, errors)
    return config


def _references_of_valid_sections(data: object, context: dict[str, Any]) -> list[Problem]:
    """Reference problems among the top-level sections that are valid on their own, so one
    run reports them together with the field errors elsewhere in the file."""
    if not isinstance(data, dict):
        return []
    sections: dict[str, Any] = {}
    for name, field in FederatorConfig.model_fields.items():
        if name not in data:
            continue
        form: Any = Annotated
        adapter: TypeAdapter[Any] = TypeAdapter(form[field.annotation, field])
        try:
            sections[name] = adapter.validate_python(data[name], context=context)
        except ValidationError:
            continue
    if "clusters" not in sections:
        return []  # every check needs the clusters
    valid = frozenset(sections) | (frozenset(FederatorConfig.model_fields) - frozenset(data))
    partial = FederatorConfig.model_construct(**{"queues": (), **sections})
    return reference_problems(partial, valid)


def _utf8(source: str, data: bytes) -> str:
    """The file's text; a byte that is not UTF-8 is an error at its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = line_and_column(data, error.start)
        byte = f"byte 0x{data[error.start]:02x}: {error.reason}"
        located = LocatedError(source, line, column, (), f"the file is not UTF-8 text ({byte})")
        raise PolicyFileError(source, [located]) from None


def _single(source: str, message: str) -> PolicyFileError:
    return PolicyFileError(source, [LocatedError(source, 1, 1, (), message)])


def _located(source: str, position: Position, path: PathKey, message: str) -> LocatedError:
    return LocatedError(source, position.line, position.column, path, message)


def _field_errors(
    error: ValidationError,
    data: object,
    source_map: SourceMap,
    source: str,
    skip: Sequence[PathKey],
) -> list[LocatedError]:
    details = error.errors(include_url=False)
    located = []
    for detail in details:
        if detail["type"] == "too_short" and _has_errors_below(detail["loc"], details):
            continue  # "0 items after validation" only echoes the errors of its items
        path, is_key = _yaml_path(detail["loc"], data)
        if any(path[: len(prefix)] == prefix for prefix in skip):
            continue  # already reported as an inline secret
        position = _position_for(detail, path, is_key, source_map)
        located.append(_located(source, position, path, _message(detail, path)))
    return located


def _has_errors_below(loc: tuple[int | str, ...], details: Iterable[ErrorDetails]) -> bool:
    return any(len(d["loc"]) > len(loc) and d["loc"][: len(loc)] == loc for d in details)


def _yaml_path(loc: tuple[int | str, ...], data: object) -> tuple[PathKey, bool]:
    """Map pydantic's location to keys of the YAML document: drop union tags (`catalog` in
    `price.catalog.region`) and the `[key]` marker of a bad mapping key."""
    path: list[str | int] = []
    current: object = data
    for index, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        if isinstance(current, dict) and part not in current and current.get("source") == part:
            continue  # discriminated-union tag, not a key of the document
        path.append(part)
        if _has_child(current, part):
            current = current[part]  # type: ignore[index]
        else:
            path.extend(loc[index + 1 :])
            return tuple(path), False
    return tuple(path), False


def _has_child(container: object, part: int | str) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _position_for(
    detail: ErrorDetails, path: PathKey, is_key: bool, source_map: SourceMap
) -> Position:
    if detail["type"] == "missing":
        return source_map.value_position(path[:-1])
    if detail["type"] == "extra_forbidden" or is_key:
        return source_map.key_position(path)
    return source_map.value_position(path)


_PATTERN_MEANINGS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "must be lowercase letters, digits and dashes, starting and ending with a letter or "
        "digit (e.g. cloud-a)"
    ),
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$": (
        "must be a Kubernetes object name: lowercase letters, digits, dashes and dots"
    ),
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$": (
        "must be an S3 location such as s3://bucket-name/prefix/ (bucket names are 3-63 "
        "lowercase letters, digits, dots and dashes)"
    ),
    r"^[A-Za-z_][A-Za-z0-9_]*$": (
        "must be the NAME of an environment variable (letters, digits and _), not its value"
    ),
    r"^https?://[^\s/]+(/.*)?$": "must be an http:// or https:// URL",
}


def _message(detail: ErrorDetails, path: PathKey) -> str:
    kind, found = detail["type"], detail.get("input")
    ctx: Mapping[str, Any] = detail.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field_message(str(path[-1]), _allowed_keys(detail["loc"][:-1]))
    if kind == "missing":
        return f"required field `{path[-1]}` is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (`key: value` lines) here, found {_describe(found)}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list (lines starting with `- `) here, found {_describe(found)}"
    if kind == "union_tag_invalid":
        return (
            f"`source: {ctx.get('tag')}` is not a known kind; use one of {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        return f"say which kind this is with `{ctx.get('discriminator', 'source')}: ...`".replace(
            "'", ""
        )
    if kind == "too_short":
        count = int(ctx.get("min_length", 1))
        return f"needs at least {count} entr{'y' if count == 1 else 'ies'}"
    if kind == "literal_error":
        return _choice_message(found, str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        meaning = _PATTERN_MEANINGS.get(str(ctx.get("pattern")), "has the wrong form")
        return f"{found!r} {meaning}"
    return _plain_message(detail["msg"], found)


def _plain_message(message: str, found: object) -> str:
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = re.sub(r"^Input should be", "must be", message)
    message = re.sub(r"^(String|Tuple|Dictionary) should", "must", message)
    if message.startswith("must") and not isinstance(found, dict | list):
        message += f" (found {_describe(found)})"
    return message


def _choice_message(found: object, expected: str) -> str:
    choices = re.findall(r"'([^']*)'", expected) or [expected]
    text = f"{found!r} is not one of: {', '.join(choices)}"
    if isinstance(found, str) and found in choices:  # the number 1, quoted as the text "1"
        return f"{text}; write {found} without quotes (a number, not text)"
    close = difflib.get_close_matches(str(found), choices, n=1, cutoff=0.6)
    return f"{text}; did you mean {close[0]!r}?" if close else text


def _unknown_field_message(key: str, allowed: list[str] | None) -> str:
    message = f"unknown field `{key}`"
    if not allowed:
        return message
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean `{close[0]}`?"
    return f"{message}; allowed here: {', '.join(allowed)}"


def _describe(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str] | None:
    """The field names of the model that sits at pydantic location `loc`, if any."""
    current: object = FederatorConfig
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return None
    model = _unwrap(current)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def _unwrap(annotation: object) -> object:
    """Strip `Annotated[...]` and `X | None` down to the one type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _step(annotation: object, part: int | str) -> object | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return None if field is None else typing.cast(object, field.annotation)
    origin = typing.get_origin(annotation)
    args: tuple[object, ...] = typing.get_args(annotation)
    if origin is tuple and isinstance(part, int):
        return args[0]
    if origin is dict:
        return args[1]
    if origin in (typing.Union, types.UnionType):
        for member in args:
            tag = getattr(member, "model_fields", {}).get("source")
            if tag is not None and part in typing.get_args(tag.annotation):
                return member
    return None
