"""Number resolution: override rules first, then phones/menus/queues, then trunks.

Rules are looked up by the called number (`Config.rules_for`), so resolving a number
costs the same however many rules other numbers have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ast_pbx.config.configuration import Config, Target
from ast_pbx.config.model import Trunk
from ast_pbx.core.steps import Reached, RuleApplied, Step

# Far more hops than any sane chain of rules; a chain this long is a loop in disguise.
MAX_HOPS = 32


@dataclass(frozen=True)
class Resolution:
    """Where a number leads: a target, a trunk, or nowhere (then `hangup` says why)."""

    number: str  # the number finally reached
    steps: tuple[Step, ...]
    visits: tuple[str, ...]  # every number routed to, overridden ones included
    target: Target | None = None
    trunk: Trunk | None = None
    hangup: str | None = None  # rule | rule-loop | unknown-number


def resolve(config: Config, number: str, caller: str | None, local: datetime) -> Resolution:
    """Resolve `number` for `caller` at `local` (wall-clock time in the system timezone)."""
    steps: list[Step] = []
    visits: list[str] = []
    while True:
        if number in visits or len(visits) >= MAX_HOPS:
            return Resolution(number, tuple(steps), tuple(visits), hangup="rule-loop")
        visits.append(number)
        rule = next((r for r in config.rules_for.get(number, ()) if r.applies(caller, local)), None)
        if rule is None:
            break
        steps.append(RuleApplied(number, rule.goto, where=rule.where))
        if rule.goto is None:
            return Resolution(number, tuple(steps), tuple(visits), hangup="rule")
        number = rule.goto
    return _final(config, number, steps, visits)


def _final(config: Config, number: str, steps: list[Step], visits: list[str]) -> Resolution:
    target = config.targets.get(number)
    if target is not None:
        what = type(target).__name__.lower()
        steps.append(Reached(number, what, where=target.where))
        return Resolution(number, tuple(steps), tuple(visits), target=target)
    trunk = config.trunk_for(number)
    if trunk is not None:
        steps.append(Reached(number, f"trunk {trunk.name}", where=trunk.where))
        return Resolution(number, tuple(steps), tuple(visits), trunk=trunk)
    steps.append(Reached(number, "unknown"))
    return Resolution(number, tuple(steps), tuple(visits), hangup="unknown-number")
