"""The `rule-loop` rule: override rules that can send a call round in a circle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import Loaded
from ast_pbx.config.model import Rule
from ast_pbx.config.problems import Level
from ast_pbx.config.timespec import MINUTES_PER_DAY
from ast_pbx.lint.registry import Finding, rule

_ALL_DAYS = (1 << 7) - 1
_ALL_MINUTES = (1 << MINUTES_PER_DAY) - 1


@dataclass(frozen=True)
class When:
    """When a chain of rules can all apply at once: days, minutes of the day, callers.

    `callers` None means any caller; caller patterns are not intersected (that would be
    regex language intersection), so a rule with patterns counts as any caller.
    """

    days: int = _ALL_DAYS
    minutes: int = _ALL_MINUTES
    callers: frozenset[str] | None = None

    @classmethod
    def of(cls, rule_: Rule) -> When:
        days = _ALL_DAYS if rule_.days is None else sum(1 << d for d in rule_.days)
        minutes = _ALL_MINUTES
        if rule_.hours is not None:
            minutes = 0
            for span in rule_.hours:
                minutes |= span.minutes()
        exact_only = rule_.callers is not None and not rule_.caller_patterns
        return cls(days, minutes, rule_.callers if exact_only else None)

    def __and__(self, other: When) -> When | None:
        callers = self.callers
        if other.callers is not None:
            callers = other.callers if callers is None else callers & other.callers
        days, minutes = self.days & other.days, self.minutes & other.minutes
        if not days or not minutes or callers == frozenset():
            return None
        return When(days, minutes, callers)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm without recursion (a chain of 2,000 rules must not overflow)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root, children_of_root in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children_of_root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _cycles(config: Config, component: set[str]) -> Iterator[list[Rule]]:
    """Chains of rules inside one component that return to their start and can all apply."""
    for start in sorted(component):
        for first in config.rules_for[start]:
            stack: list[tuple[list[Rule], When]] = [([first], When.of(first))]
            while stack:
                chain, when = stack.pop()
                target = chain[-1].goto
                if target == start:
                    yield chain
                    continue
                if target not in component or any(r.number == target for r in chain):
                    continue
                for nxt in config.rules_for[target]:
                    both = when & When.of(nxt)
                    if nxt.goto is not None and both is not None:
                        stack.append(([*chain, nxt], both))


@rule("rule-loop", Level.ERROR)
def rule_loop(loaded: Loaded) -> Iterator[Finding]:
    """
    Override rules can send a call in a circle: the rule for A goes to B, a rule for B goes
    back to A, and their days, hours and callers can all hold at the same moment.

    At run time such a call is hung up. Rules whose conditions cannot hold together (one
    on Mondays, the other on Tuesdays) do not loop and are not reported.
    """
    config = loaded.config
    graph = {
        number: {r.goto for r in rules if r.goto is not None and r.goto in config.rules_for}
        for number, rules in config.rules_for.items()
    }
    seen: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        looping = len(component) > 1 or any(n in graph[n] for n in component)
        if not looping:
            continue
        for chain in _cycles(config, component):
            numbers = tuple(r.number for r in chain)
            turn = numbers.index(min(numbers))
            key = numbers[turn:] + numbers[:turn]
            if key in seen:
                continue
            seen.add(key)
            circle = " → ".join((*numbers, numbers[0]))
            yield chain[0].at("goto"), f"rules loop: {circle}; such a call would be hung up"
