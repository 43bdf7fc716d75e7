"""Rules about regular expressions."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ast_pbx.config.loader import Loaded
from ast_pbx.config.model import Regex
from ast_pbx.config.problems import Level
from ast_pbx.lint.registry import Finding, rule


def all_regexes(loaded: Loaded) -> Iterator[tuple[str, Regex]]:
    config = loaded.config
    for trunk in config.trunks:
        if trunk.match is not None:
            yield f"trunk {trunk.name} match", trunk.match
    for owner in config.handler_owners:
        for handler in owner.handlers:
            if handler.digits is not None:
                yield f"digits handler of {owner.label}", handler.digits
    for rule_ in config.rules:
        for regex in rule_.caller_patterns or ():
            yield f"caller pattern of the rule for {rule_.number}", regex


@rule("bad-regex", Level.ERROR)
def bad_regex(loaded: Loaded) -> Iterator[Finding]:
    """
    A trunk `match`, a `digits` handler or a rule's `caller_patterns` entry is not a valid
    regular expression (Python `re` syntax; it must match the whole number).

    A common slip is a leading `*` meant as the DTMF star key: write `\\*` or `[*]`.
    """
    for owner, regex in all_regexes(loaded):
        if regex.pattern is None:
            yield (
                regex.where,
                f"{owner} '{regex.source}' is not a valid regex: {_reason(regex.source)}",
            )


def _reason(source: str) -> str:
    try:
        re.compile(source)
    except re.error as exc:
        position = f" at position {exc.pos}" if exc.pos is not None else ""
        return f"{exc.msg}{position}"
    except (OverflowError, RecursionError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return "it does not compile"
