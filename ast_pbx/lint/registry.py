"""The rules of `check`: an id, a level, a docstring that documents it, a check.

A check is a generator of (where, message) pairs over a `Loaded` config; the
registry stamps each with the rule's id and level. Rules whose problems the
loader itself finds (YAML syntax, schema, ${VAR}) are registered with no check
so that they are documented and listed like the others.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import MAX_SHOWN, Level, Problem, Where, quoted, shown

Finding = tuple[Where, str]
Check = Callable[[Loaded], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    doc: str
    check: Check | None = None
    # True when the rule compares items across files: its findings are not trusted (and
    # not shown) while some file could not be read, since the missing items cause them.
    whole: bool = False

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n", 1)[0].replace("\n", " ")

    def run(self, loaded: Loaded) -> Iterator[Problem]:
        if self.check is None:
            return
        for where, message in self.check(loaded):
            yield Problem(where, self.level, self.id, as_shown(message, where, loaded))


# In a rule's message, a value: quoted, or a run without spaces (a number, an id, a URL).
_LONG_VALUE = re.compile(f"'([^'\\n]{{{MAX_SHOWN + 1},}})'|(?<!\\S)\\S{{{MAX_SHOWN + 1},}}")


def as_shown(message: str, where: Where, loaded: Loaded) -> str:
    """A rule's message as `check` shows it.

    Values that came from ${VAR} as written, not as expanded: what the environment gave
    may be a secret. That is the value at `where`, and any other of its file (the number
    of the rule a problem is about, say) at least _MIN_SECRET long that the message holds.
    Values longer than MAX_SHOWN are cut, with the full length noted (but not the place of
    a config file, `a/b.yaml:3:5`, that a message names).
    """
    here = loaded.expansions.get(where)
    for expanded, written in loaded.expansions_in(where.file).items():
        if expanded in message and (len(expanded) >= _MIN_SECRET or here == (expanded, written)):
            message = _as_written(message, expanded, written)

    def cut(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return quoted(match.group(1))
        token = match.group()
        if token.startswith(loaded.files):
            return token
        return shown(token)

    return _LONG_VALUE.sub(cut, message)


# Shorter values are replaced only where the problem stands: `1` is in `a.yaml:1:3` too.
_MIN_SECRET = 4


def _as_written(message: str, expanded: str, written: str) -> str:
    # The value whole, not in a longer word, nor a line or column in `a.yaml:12:3`.
    value = re.compile(f"(?<![\\w:]){re.escape(expanded)}(?!\\w|:\\d)")
    # Not inside what is already shown as written: `${N:-1001}` holds its default.
    return written.join(value.sub(lambda _: written, part) for part in message.split(written))


RULES: dict[str, Rule] = {}


def rule(rule_id: str, level: Level, *, whole: bool = False) -> Callable[[Check], Check]:
    """Register a check under `rule_id`; its docstring is the rule's documentation."""

    def register(check: Check) -> Check:
        _add(Rule(rule_id, level, inspect.cleandoc(check.__doc__ or ""), check, whole))
        return check

    return register


def loader_rule(rule_id: str, level: Level, doc: str) -> None:
    _add(Rule(rule_id, level, inspect.cleandoc(doc)))


def _add(new: Rule) -> None:
    if new.id in RULES:
        raise RuntimeError(f"rule {new.id} registered twice")
    if not new.doc:
        raise RuntimeError(f"rule {new.id} has no documentation")
    RULES[new.id] = new
