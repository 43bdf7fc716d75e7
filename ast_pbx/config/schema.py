"""The JSON Schema of a config file, shipped in the package, and validation against it.

Validation uses jsonschema-rs: the same draft 2020-12 semantics as the
pure-Python `jsonschema`, about two hundred times faster, which is what lets
`check` lint a 10,000-phone config in well under a second. Each validation
error becomes a `schema` or `unknown-key` problem at the position of the value
(or, for an unknown key, of the key itself) that it is about.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from ast_pbx.config.problems import Problem, Where, error, quoted, shown
from ast_pbx.config.yamlread import LMap, key_position, position_of, written_text

SCHEMA_FILE = "astpbx.schema.json"


def schema_text() -> str:
    return resources.files("ast_pbx.schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(schema())


def validate(data: Any, path: str) -> list[Problem]:
    """Schema problems of one file's (expanded) data."""
    if not isinstance(data, dict):
        where = getattr(data, "where", None) or Where(path)
        return [error(where, "schema", "a config file must be a mapping of sections")]
    try:
        errors = list(_validator().iter_errors(data))
    except (ValueError, TypeError, OverflowError) as exc:
        # A value JSON cannot hold (a huge integer, say) stops the validator itself.
        return [
            error(Where(path), "schema", f"the file holds a value JSON Schema cannot check: {exc}")
        ]
    problems: list[Problem] = []
    for err in errors:
        problems.extend(_problems_of(err, data, path))
    return problems


def _problems_of(err: Any, data: Any, path: str) -> list[Problem]:
    instance_path = list(err.instance_path)
    parent, value = _resolve(data, instance_path)
    where = _value_where(data, instance_path, path)
    kind = err.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return [
            error(key_position(value, key) or where, "unknown-key", _unknown_key(err, key))
            for key in kind.unexpected
        ]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return [error(where, "schema", f"{_label(err)}: missing required key '{kind.property}'")]
    written = written_text(parent, instance_path[-1]) if instance_path else None
    return [error(where, "schema", f"{_label(err)}: {_message(err, kind, written)}")]


def _shown_instance(err: Any, written: str | None) -> str:
    """The value a schema error is about, as its message shows it: as written when it
    came from ${VAR} (the expanded value may be a secret), cut when it is long."""
    if written is not None:
        return shown(written, quote='"') + " (expanded)"
    if isinstance(err.instance, str):
        return shown(json.dumps(err.instance, ensure_ascii=False)[1:-1], quote='"')
    return shown(json.dumps(err.instance, ensure_ascii=False, default=str))


def _unknown_key(err: Any, key: str) -> str:
    typo = key[:100]  # a longer key is no typo of one of the language's (and difflib is slow)
    if not err.instance_path:
        close = difflib.get_close_matches(typo, sorted(schema()["properties"]), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown section {quoted(key)}{hint}"
    allowed = _allowed_keys(list(err.schema_path))
    close = difflib.get_close_matches(typo, allowed, n=1)
    if close:
        hint = f"; did you mean '{close[0]}'?"
    else:
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
    return f"{_label(err)}: unknown key {quoted(key)}{hint}"


def _allowed_keys(schema_path: list[Any]) -> list[str]:
    node: Any = schema()
    for part in schema_path[:-1]:  # the last part is "additionalProperties"
        if isinstance(node, dict) and "$ref" in node and part not in node:
            node = _deref(node["$ref"])
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return []
    if isinstance(node, dict) and "$ref" in node:
        node = _deref(node["$ref"])
    props = node.get("properties", {}) if isinstance(node, dict) else {}
    return sorted(props)


def _deref(ref: str) -> Any:
    node: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


# What a pattern of the schema means, for messages an administrator can act on.
_PATTERN_HINTS = {
    r"^\+?[0-9*#]+$": "is not a telephone number (digits, '*', '#', an optional leading '+')",
    r"^[a-z0-9_-]+$": "is not an id (lower-case letters, digits, '_' and '-')",
    r"^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$": "is not a span HH:MM-HH:MM",
    r"^[0-9*#]$": "is not one DTMF key (0-9, '*' or '#')",
    r"\.([mM][pP]3|[wW][aA][vV])$": "is not an mp3 or wav file name",
}


_NUMBER_DEFS = {("$defs", "number"), ("$defs", "target")}
_NUMBER_RULE = "digits, '*' and '#', with an optional leading '+'"


def _message(err: Any, kind: Any, written: str | None) -> str:
    kinds = jsonschema_rs.ValidationErrorKind
    value = _shown_instance(err, written)
    if isinstance(kind, kinds.Enum):
        return f"{value} is not one of: {', '.join(str(o) for o in kind.options)}"
    if isinstance(kind, kinds.Pattern) and kind.pattern in _PATTERN_HINTS:
        return f"{value} {_PATTERN_HINTS[kind.pattern]}"
    if isinstance(kind, kinds.Minimum) and tuple(err.schema_path)[:2] in _NUMBER_DEFS:
        # `number: -92233` is a YAML integer, and no quoting makes it a telephone number.
        return f"{value} is not a telephone number: {_NUMBER_RULE}, never negative"
    # jsonschema-rs's own message starts with the value as compact JSON: show it as above.
    message = str(err.message)
    compact = json.dumps(err.instance, ensure_ascii=False, separators=(",", ":"), default=str)
    if message.startswith(compact):
        return value + message[len(compact) :]
    return message


def _label(err: Any) -> str:
    """A JSON-path-like name for the value, e.g. menus[3].on[0].goto."""
    label = ""
    for part in err.instance_path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label or "file"


def _resolve(data: Any, instance_path: list[Any]) -> tuple[Any, Any]:
    parent, value = None, data
    for part in instance_path:
        parent = value
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return parent, None
    return parent, value


def _value_where(data: Any, instance_path: list[Any], path: str) -> Where:
    if not instance_path:
        return data.where if isinstance(data, LMap) else Where(path)
    parent, _ = _resolve(data, instance_path)
    return position_of(parent, instance_path[-1]) or Where(path)
