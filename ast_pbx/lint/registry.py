"""The rules of `check`: an id, a level, a docstring that documents it, a check.

A check is a generator of (where, message) pairs over a `Loaded` config; the
registry stamps each with the rule's id and level. Rules whose problems the
loader itself finds (YAML syntax, schema, ${VAR}) are registered with no check
so that they are documented and listed like the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import Level, Problem, Where

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
            yield Problem(where, self.level, self.id, message)


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
