"""Read YAML into plain values while remembering where every key and value was written.

pydantic reports an error by its path (`clusters.1.pools.0.gpu_type`); a person fixes it in
an editor by line and column. This module keeps the map between the two. PyYAML's composer
already knows each node's position, so we compose the node tree and build the values
ourselves, recording a `Position` for every value and every mapping key on the way.

It also catches what PyYAML lets through silently: a key written twice in one mapping (the
second would win and the first would vanish without a word).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from federator.textfiles import line_and_column

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A 1-based line and column in the source text."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> Position:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """Something wrong in the YAML itself, before any field is looked at."""

    position: Position
    path: PathKey
    message: str


@dataclass(slots=True)
class SourceMap:
    """Where each value (`values`) and each mapping key (`keys`) of a document was written."""

    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)

    def value_position(self, path: PathKey) -> Position:
        """The value at `path`, or the closest enclosing value that exists."""
        for end in range(len(path), -1, -1):
            position = self.values.get(path[:end])
            if position is not None:
                return position
        return Position(1, 1)

    def key_position(self, path: PathKey) -> Position:
        """The key that introduces `path`, falling back to its value's position."""
        return self.keys.get(path) or self.value_position(path)


@dataclass(slots=True)
class LoadedDocument:
    """The plain data of a YAML document, its source map, and what was wrong with its syntax."""

    data: object
    source_map: SourceMap
    problems: list[SyntaxProblem]


# A real policy file has a few hundred nodes and is a few levels deep. These bounds stop hostile
# input (an alias "billion laughs", thousands of nested brackets) before it exhausts memory, time
# or the interpreter's stack, with a message instead of a hang or a traceback.
MAX_NODES = 200_000
MAX_DEPTH = 64


class _TooComplex(Exception):
    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark


class _PolicyLoader(yaml.SafeLoader):
    """PyYAML's safe loader without two YAML 1.1 readings that YAML 1.2 dropped and no one
    means in a policy file: base-60 numbers (`max_gpus: 1:30` was 90, and
    `decision_interval: 1:30` read "'90' has no unit") and dates (`2024-01-01` was reported
    as `datetime.date(2024, 1, 1)`). Such a word stays a string, so the field's own check
    names it as written. (yes/no/on/off stay booleans: tests/unit/policy/test_booleans.py.)"""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_DATE = "tag:yaml.org,2002:timestamp"
_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT, _DATE)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(  # PyYAML's, less its base-60 form
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_PolicyLoader.add_implicit_resolver(  # PyYAML's, less its base-60 form
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_document(text: str) -> LoadedDocument:
    """Parse one YAML document; syntax errors come back as problems, never as exceptions."""
    source_map = SourceMap()
    try:
        root = yaml.compose(text, Loader=_PolicyLoader)
    except RecursionError:
        message = f"the document nests too deeply (a policy file needs at most {MAX_DEPTH} levels)"
        return LoadedDocument(None, source_map, [SyntaxProblem(Position(1, 1), (), message)])
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = _describe_yaml_error(error)
        return LoadedDocument(None, source_map, [SyntaxProblem(Position.of(mark), (), message)])
    except yaml.reader.ReaderError as error:  # a character YAML refuses, at its place
        where = Position(*line_and_column(text, error.position))
        code = error.character if isinstance(error.character, int) else ord(error.character)
        message = f"character U+{code:04X} is not allowed in YAML ({error.reason})"
        return LoadedDocument(None, source_map, [SyntaxProblem(where, (), message)])
    except yaml.YAMLError as error:  # no position known
        return LoadedDocument(None, source_map, [SyntaxProblem(Position(1, 1), (), str(error))])
    if root is None:
        problem = SyntaxProblem(
            Position(1, 1),
            (),
            "the file is empty; it needs at least a"
            " `clusters` list (see config/federator.example.yaml)",
        )
        return LoadedDocument(None, source_map, [problem])
    builder = _Builder(source_map)
    try:
        data = builder.build(root, ())
    except _TooComplex as error:
        problem = SyntaxProblem(Position.of(error.mark), (), str(error))
        return LoadedDocument(None, source_map, [problem])
    return LoadedDocument(data, source_map, builder.problems)


def _key_problem(key: object, node: yaml.Node) -> str:
    """Every key of a policy file is a name: say what YAML made of this one instead."""
    if isinstance(key, bool) or key is None:
        kind = "a boolean" if isinstance(key, bool) else "null"
    elif isinstance(key, int | float):
        kind = "a number"
    else:
        return "a mapping key must be a word"
    written = node.value if isinstance(node, yaml.ScalarNode) else str(key)
    return (
        f"a mapping key must be text, but YAML reads `{written}` as {kind}; quote it ('{written}')"
    )


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    parts = [error.context or "", error.problem or ""]
    text = "; ".join(part.strip() for part in parts if part and part.strip())
    if "'\\t'" in text:
        text += " (YAML indents with spaces, never tabs)"
    return f"YAML syntax error: {text or 'cannot parse'}"


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Turns a composed node tree into dicts, lists and scalars, recording positions."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.problems: list[SyntaxProblem] = []
        self.constructor = yaml.SafeLoader("")
        self.nodes = 0
        # Ids of the mapping nodes `_check_merges` read: each is checked once, however often
        # it is merged in or aliased.
        self._checked: set[int] = set()

    def build(self, node: yaml.Node, path: PathKey) -> object:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooComplex(
                node.start_mark,
                f"the document expands to more than {MAX_NODES:,} values (aliases repeating "
                "aliases?); a policy file is far smaller",
            )
        if len(path) > MAX_DEPTH:
            raise _TooComplex(node.start_mark, f"the document nests deeper than {MAX_DEPTH} levels")
        self.source_map.values[path] = Position.of(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error)
            if problem.startswith("could not determine a constructor for the tag"):
                problem = f"unknown YAML tag `{node.tag}`: a policy file uses none; remove it"
            self.problems.append(SyntaxProblem(Position.of(node.start_mark), path, problem))
            return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, object]:
        written = {id(key_node) for key_node, _ in node.value}
        first_visit = id(node) not in self._checked  # an alias visits the same node again
        self._check_merges(node, path, merged_in=False)
        self.constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[str, object] = {}
        written_here: set[str] = set()
        for key_node, value_node in node.value:
            key = self.build(key_node, (*path, "<key>"))
            if not isinstance(key, str):
                where = Position.of(key_node.start_mark)
                self.problems.append(SyntaxProblem(where, path, _key_problem(key, key_node)))
                continue
            child: PathKey = (*path, key)
            if id(key_node) in written:
                # A merged-in key may be overridden; a key written twice here is a mistake.
                if key in written_here and first_visit:
                    self._duplicate(key, child, key_node)
                written_here.add(key)
            self.source_map.keys[child] = Position.of(key_node.start_mark)
            result[key] = self.build(value_node, child)
        self.source_map.values.pop((*path, "<key>"), None)
        return result

    def _check_merges(self, node: yaml.MappingNode, path: PathKey, *, merged_in: bool) -> None:
        """What `flatten_mapping` would hide or choke on, found before it runs: two `<<` keys in
        one mapping (PyYAML merges both without a word, though YAML allows one, and a reader
        cannot tell which wins a key both bring), a `<<` of something that is not a mapping
        (dropped with a problem, not a crash), and, in the mappings merged in, which the builder
        never visits (they are spliced into `node`), a key written twice. Each node once."""
        if id(node) in self._checked:  # an anchor merged in more than once, or an alias
            return
        self._checked.add(id(node))
        if merged_in:
            self._duplicates_in_merged(node, path)
        merges = [(key, value) for key, value in node.value if key.tag == _MERGE_TAG]
        for again, _ in merges[1:]:
            first = Position.of(merges[0][0].start_mark)
            self.problems.append(
                SyntaxProblem(
                    Position.of(again.start_mark),
                    path,
                    f"`<<` is written twice in the same mapping (first at line {first.line}); "
                    "merge several anchors with one `<<: [*first, *second]`",
                )
            )
        for key, value in merges:
            if not self._mergeable(value, path):
                node.value.remove((key, value))
                continue
            for inner in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                assert isinstance(inner, yaml.MappingNode)  # `_mergeable` made sure
                self._check_merges(inner, path, merged_in=True)

    def _mergeable(self, value: yaml.Node, path: PathKey) -> bool:
        """A `<<` value `flatten_mapping` accepts (a mapping, or a list of only mappings); else
        the problem is noted and the `<<` is to be dropped."""
        if isinstance(value, yaml.MappingNode):
            return True
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        wrong = [item for item in items if not isinstance(item, yaml.MappingNode)]
        for item in wrong:
            found = "a list" if isinstance(item, yaml.SequenceNode) else "a single value"
            self.problems.append(
                SyntaxProblem(
                    Position.of(item.start_mark),
                    path,
                    f"`<<` merges a mapping (`<<: *anchor`) or a list of mappings "
                    f"(`<<: [*first, *second]`), not {found}",
                )
            )
        return not wrong

    def _duplicates_in_merged(self, node: yaml.MappingNode, path: PathKey) -> None:
        """A key written twice in a mapping that is merged in (PyYAML keeps the first)."""
        first_at: dict[object, yaml.Mark] = {}
        for key, _ in node.value:
            if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in first_at:
                first = Position.of(first_at[key.value])
                self._written_twice(key.value, path, Position.of(key.start_mark), first)
            else:
                first_at[key.value] = key.start_mark

    def _duplicate(self, key: object, child: PathKey, key_node: yaml.Node) -> None:
        first = self.source_map.keys[child]
        self._written_twice(key, child, Position.of(key_node.start_mark), first)

    def _written_twice(self, key: object, path: PathKey, again: Position, first: Position) -> None:
        message = f"`{key}` is written twice in the same mapping (first at line {first.line})"
        self.problems.append(SyntaxProblem(again, path, f"{message}; keep one"))
