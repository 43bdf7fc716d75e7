"""Parse one YAML file into plain Python values that remember where they came from.

The config language needs the line and column of every key and value so that
each problem can point at it. ruamel's round-trip loader keeps positions but is
pure Python and slow on large configs; instead the C parser composes nodes (which
carry marks) and this module turns them into `LMap`/`LSeq` (dict/list subclasses,
so JSON Schema validators accept them) plus position tables. Duplicate keys,
unknown tags, recursive aliases and alias bombs become problems, never exceptions.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.cyaml import CSafeLoader
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent, StreamEndEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from ast_pbx.config.problems import MAX_SHOWN, Problem, Where, error, quoted, shown

# No config needs more than a handful of levels; deeper documents are refused before
# the recursive builder could exhaust the interpreter's stack.
MAX_DEPTH = 100
# libyaml's composer is recursive C code: about 250 bytes of the thread's stack a level,
# so some 30,000 levels (60 KB of `[`) overflow an 8 MiB stack and kill the process, where
# no exception can be caught. A document is handed to it only when it cannot be deeper
# than this (1 MiB of stack at most); the builder then refuses what is past MAX_DEPTH.
# A document that might be deeper is walked event by event first (see _refuse_too_deep).
SAFE_COMPOSE_DEPTH = 4000
# An alias repeats what its anchor holds; past this many values built through aliases
# a file is refused, so that a "billion laughs" document cannot exhaust memory. Without
# aliases a document is no bigger than its (size-capped) text.
MAX_ALIAS_VALUES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
_STR_TAG = "tag:yaml.org,2002:str"
# Dates and binaries have no meaning in the config language: keep their text.
_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}


class LMap(dict[str, Any]):
    """A mapping that knows where it, each key and each value stand."""

    __slots__ = ("key_at", "templated", "value_at", "where", "written")

    def __init__(self, where: Where) -> None:
        super().__init__()
        self.where = where
        self.key_at: dict[str, Where] = {}
        self.value_at: dict[str, Where] = {}
        self.templated: set[str] = set()  # keys whose value came from ${VAR}
        self.written: dict[str, str] = {}  # their values as written, before expansion


class LSeq(list[Any]):
    """A sequence that knows where it and each item stand."""

    __slots__ = ("item_at", "where", "written")

    def __init__(self, where: Where) -> None:
        super().__init__()
        self.where = where
        self.item_at: list[Where] = []
        self.written: dict[int, str] = {}  # items that came from ${VAR}, as written


def position_of(container: Any, key: str | int) -> Where | None:
    """Where the value under `key` (a mapping key or a list index) stands, if known."""
    if isinstance(container, LMap) and isinstance(key, str):
        return container.value_at.get(key)
    if isinstance(container, LSeq) and isinstance(key, int) and 0 <= key < len(container.item_at):
        return container.item_at[key]
    return None


def written_text(container: Any, key: str | int) -> str | None:
    """The value under `key` as written, when it came from ${VAR} (and so must not be
    echoed as expanded: it may be a secret)."""
    if isinstance(container, LMap | LSeq):
        found: str | None = container.written.get(key)  # type: ignore[arg-type]
        return found
    return None


def key_position(container: Any, key: str) -> Where | None:
    if isinstance(container, LMap):
        return container.key_at.get(key)
    return None


@dataclass
class ParsedFile:
    path: str
    data: Any = None  # the top-level value, an LMap when the file is well-formed
    problems: list[Problem] = field(default_factory=list)


def parse_text(text: str, path: str) -> ParsedFile:
    """Parse YAML text; syntax errors become problems at their position."""
    with warnings.catch_warnings():
        # ruamel warns on stderr about YAML 1.1 spellings such as `1e3` or a reused
        # anchor; the document is read the 1.2 way regardless, and a linter's output
        # must stay its own.
        warnings.simplefilter("ignore")
        return _parse(text, path)


def _parse(text: str, path: str) -> ParsedFile:
    result = ParsedFile(path)
    try:
        node, construct = _compose(text)
    except _TooDeep as exc:
        mark = exc.problem_mark
        where = Where(path, mark.line + 1, mark.column + 1)
        result.problems.append(error(where, "yaml-syntax", str(exc.problem)))
        return result
    except MarkedYAMLError as exc:
        result.problems.append(_syntax_problem(exc, path, text))
        return result
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        result.problems.append(error(Where(path, line, col), "yaml-syntax", str(exc.reason)))
        return result
    except (YAMLError, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        result.problems.append(error(Where(path), "yaml-syntax", message))
        return result
    if node is None:
        result.data = LMap(Where(path))
        return result
    result.data = _Builder(path, construct, result.problems).build(node)
    return result


def _compose(text: str) -> tuple[Node | None, Callable[[Node], Any]]:
    """The document's node tree, and how to construct its scalars.

    libyaml (the C parser) follows YAML 1.1 where the config language needs 1.2: a ':'
    inside a flow plain scalar, as in `ari: {url: http://127.0.0.1:8088}`. ruamel's own
    parser reads 1.2 but is several times slower, so it only reads what libyaml refused,
    and its verdict (or its error) is the one reported.

    Neither composer sees a collection nested deeper than MAX_DEPTH: _TooDeep, at the
    first such collection.
    """
    try:
        if _depth_bound(text) > SAFE_COMPOSE_DEPTH:
            _refuse_too_deep(text)
        loader = CSafeLoader(text)
        return loader.get_single_node(), _constructor(loader)
    except _TooDeep:
        raise
    except MarkedYAMLError:
        pure = YAML(typ="safe", pure=True)
        pure.Composer = _GuardedComposer
        return pure.compose(text), _constructor(pure.constructor)


class _TooDeep(MarkedYAMLError):
    """A collection nested deeper than MAX_DEPTH, at its start."""

    def __init__(self, mark: Any) -> None:
        super().__init__(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)


# What may stand before the first entry of a block collection on its line: indentation
# and the indicators `- `, `? `, `: ` (and a byte order mark).
_PREFIX_CHARS = " \t-?:\ufeff"


def _depth_bound(text: str) -> int:
    """A cheap upper bound of how deep the document's collections nest.

    Every flow collection opens with `[` or `{`, and a `[` may hold one more level, a
    single-pair mapping (`[a: [b: …]]`). A block collection starts where its first line's
    prefix ends (or, for a mapping after an anchor or tag, `- &a key: …`, past it, but then
    all it holds starts on lines with longer prefixes); along any path the columns grow at
    least every second level: only a block sequence may stand at its parent's column, a
    mapping's. `splitlines` breaks lines wherever libyaml does, and at a few more places.
    """
    flow = 2 * text.count("[") + text.count("{")
    if flow > SAFE_COMPOSE_DEPTH:
        return flow
    widest = max(
        (len(line) - len(line.lstrip(_PREFIX_CHARS)) for line in text.splitlines()), default=0
    )
    return 2 + flow + 2 * (widest + 1)


def _refuse_too_deep(text: str) -> None:
    """Walk libyaml's events (no recursion) and raise _TooDeep at the first collection
    nested deeper than MAX_DEPTH; libyaml's own errors propagate."""
    loader = CSafeLoader(text)
    depth = 0
    while True:
        event = loader.get_event()
        if event is None or isinstance(event, StreamEndEvent):
            return
        if isinstance(event, CollectionStartEvent):
            if depth >= MAX_DEPTH:
                raise _TooDeep(event.start_mark)
            depth += 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


class _GuardedComposer(Composer):
    """ruamel's pure-Python composer, refusing collections nested deeper than MAX_DEPTH
    before its recursion could exhaust the interpreter's stack."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.open_collections = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.open_collections >= MAX_DEPTH:
            raise _TooDeep(event.start_mark)
        self.open_collections += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.open_collections -= 1


def _constructor(constructor: Any) -> Callable[[Node], Any]:
    def construct(node: Node) -> Any:
        return constructor.construct_object(node, deep=True)

    return construct


def parse_bytes(raw: bytes, path: str) -> ParsedFile:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = error(Where(path, line, col), "yaml-syntax", "the file is not valid UTF-8")
        return ParsedFile(path, None, [problem])
    return parse_text(text, path)


def _syntax_problem(exc: MarkedYAMLError, path: str, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    where = Where(path, mark.line + 1, mark.column + 1) if mark is not None else Where(path)
    parts = [p for p in (exc.context, exc.problem) if p]
    message = ", ".join(parts) if parts else "invalid YAML"
    # ruamel quotes what it found (an alias name, a character): a long one is cut.
    message = _LONG_QUOTED.sub(_cut_quoted, message)
    lines = text.splitlines()
    if "${" in (lines[where.line - 1] if 0 < where.line <= len(lines) else ""):
        # `{url: x, password: ${PW}}`: the braces of ${} end a flow mapping early.
        message += '; inside {…} or […] quote values that use ${VAR}: "${VAR}"'
    return error(where, "yaml-syntax", message)


_LONG_QUOTED = re.compile(f"'([^']{{{MAX_SHOWN + 1},}})'")


def _cut_quoted(match: re.Match[str]) -> str:
    return quoted(match.group(1))


# The line breaks libyaml counts (YAML 1.1 also breaks lines at NEL, LS and PS).
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """Line and column of a reader error; libyaml's offset counts UTF-8 bytes."""
    before = text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore")
    lines = _BREAK.split(before)
    return len(lines), len(lines[-1]) + 1


class _Builder:
    """Turns composed nodes into located values, collecting problems."""

    def __init__(
        self, path: str, construct: Callable[[Node], Any], problems: list[Problem]
    ) -> None:
        self.path = path
        self.construct = construct
        self.problems = problems
        self.active: set[int] = set()  # nodes being built: an alias back into one is a cycle
        self.built: set[int] = set()  # collections built once: building one again is an alias
        self.repeating = 0  # how many aliased collections are being built around us
        self.alias_values = 0
        self.too_big = False
        self.depth = 0

    def where(self, node: Node) -> Where:
        mark = node.start_mark
        return Where(self.path, mark.line + 1, mark.column + 1)

    def build(self, node: Node) -> Any:
        if self.repeating:
            self.alias_values += 1
        if isinstance(node, ScalarNode) and self.alias_values <= MAX_ALIAS_VALUES:
            return self.scalar(node)
        refusal = self.refusal(node)
        if refusal is not None:
            if not self.too_big:  # after an alias bomb, one problem is enough
                self.problems.append(error(self.where(node), "yaml-syntax", refusal))
            self.too_big = self.too_big or self.alias_values > MAX_ALIAS_VALUES
            return None
        if node.tag not in _COLLECTION_TAGS:
            self.problems.append(
                error(self.where(node), "yaml-syntax", f"unknown tag {quoted(node.tag)}")
            )
        again = id(node) in self.built
        self.built.add(id(node))
        self.repeating += again
        self.active.add(id(node))
        self.depth += 1
        try:
            if isinstance(node, SequenceNode):
                return self.sequence(node)
            return self.mapping(node) if isinstance(node, MappingNode) else None
        finally:
            self.depth -= 1
            self.repeating -= again
            self.active.discard(id(node))

    def refusal(self, node: Node) -> str | None:
        """Why this node is not built, if it is not."""
        if self.alias_values > MAX_ALIAS_VALUES:
            return f"aliases expand to more than {MAX_ALIAS_VALUES} values (alias bomb?)"
        if id(node) in self.active:
            return "an alias refers to itself"
        if self.depth >= MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        return None

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _STR_TAG or node.tag in _TEXT_TAGS:
            return node.value
        try:
            return self.construct(node)
        except Exception as exc:  # ruamel's constructors fail in many ways on `!!int ''`
            problem = getattr(exc, "problem", None)
            message = (
                _LONG_QUOTED.sub(_cut_quoted, str(problem))
                if problem
                else f"cannot read {quoted(node.value)} as {shown(node.tag)}"
            )
            self.problems.append(error(self.where(node), "yaml-syntax", message))
            return node.value

    def sequence(self, node: SequenceNode) -> LSeq:
        seq = LSeq(self.where(node))
        for item in node.value:
            seq.append(self.build(item))
            seq.item_at.append(self.where(item))
        return seq

    def mapping(self, node: MappingNode) -> LMap:
        mapping = LMap(self.where(node))
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self.key(key_node)
            if key is None:
                continue
            if key in mapping:
                first = mapping.key_at[key]
                self.problems.append(
                    error(
                        self.where(key_node),
                        "duplicate-key",
                        f"duplicate key {quoted(key)} (first at line {first.line}); "
                        "YAML keeps only one",
                    )
                )
                continue
            mapping[key] = self.build(value_node)
            mapping.key_at[key] = self.where(key_node)
            mapping.value_at[key] = self.where(value_node)
        for source in merges:
            self.merge_into(mapping, source)
        return mapping

    def key(self, node: Node) -> str | None:
        if isinstance(node, ScalarNode):
            # Keys are names in the config language: `true:` is the key "true", not True.
            return str(node.value)
        self.problems.append(error(self.where(node), "yaml-syntax", "a key must be a plain value"))
        return None

    def merge_into(self, mapping: LMap, source: Node) -> None:
        """`<<: *base` — keys written in the mapping win over merged ones."""
        sources = source.value if isinstance(source, SequenceNode) else [source]
        for item in sources:
            merged = self.build(item)
            if not isinstance(merged, LMap):
                self.problems.append(
                    error(self.where(item), "yaml-syntax", "'<<' merges only mappings")
                )
                continue
            for key, value in merged.items():
                if key not in mapping:
                    mapping[key] = value
                    mapping.key_at[key] = merged.key_at[key]
                    mapping.value_at[key] = merged.value_at[key]


def walk_strings(value: Any) -> Iterator[tuple[Any, str | int, str]]:
    """Every string value with its container and key, depth first."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if isinstance(item, str):
            yield value, key, item
        elif isinstance(item, dict | list):
            yield from walk_strings(item)
