"""Run every rule over a loaded config and return the problems, sorted; never print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ast_pbx.config.loader import Loaded, load
from ast_pbx.config.problems import Level, Problem, Where, error
from ast_pbx.errors import ConfigInvalid
from ast_pbx.lint import rules as _rules  # noqa: F401  (registers the rules)
from ast_pbx.lint.registry import RULES, as_shown

# Schema problems that a semantic rule explains better at the same place (an invalid day:
# the enum error and bad-day) are dropped in favour of the rule's message.
_GENERIC = frozenset({"schema"})


@dataclass
class Report:
    path: str
    files: tuple[str, ...]
    problems: list[Problem]

    def count(self, level: Level) -> int:
        return sum(1 for p in self.problems if p.level is level)


def check(path: str, env: Mapping[str, str] | None = None) -> Report:
    """Load the config at `path` and run every rule on it."""
    loaded = load(path, env)
    return Report(path, loaded.files, run_rules(loaded))


def load_for_use(
    path: str, env: Mapping[str, str] | None = None, *, need_env: bool = True
) -> Loaded:
    """The config at `path` for a command that uses it: ConfigInvalid (carrying the
    problems) when any rule finds an error. Warnings are `check`'s business."""
    loaded = load(path, env, need_env=need_env)
    errors = [p for p in run_rules(loaded) if p.level is Level.ERROR]
    if errors:
        raise ConfigInvalid(
            f"{path}: {len(errors)} error(s) in the configuration; "
            "`astpbx check` shows every problem",
            tuple(errors),
        )
    return loaded


def run_rules(loaded: Loaded) -> list[Problem]:
    # A file or a directory that could not be read: items are missing from the config.
    unreadable = any(parsed.data is None for parsed in loaded.parsed) or any(
        p.rule == "file-unreadable" for p in loaded.problems
    )
    found: list[Problem] = []
    for rule in RULES.values():
        if rule.whole and unreadable:
            continue
        try:
            found.extend(rule.run(loaded))
        except Exception as exc:  # a bug in one rule must not hide the other problems
            where = Where(loaded.files[0] if loaded.files else "?")
            failed = f"rule {rule.id} failed ({type(exc).__name__}: {exc}); please report this"
            found.append(error(where, "internal-error", as_shown(failed, where, loaded)))
    return _sorted(_dedupe([*loaded.problems, *found]), loaded.files)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    # Only an error explains a schema error: a warning at the same place (number-not-quoted
    # at `number: -5`) must not hide it, nor turn a failing check into a passing one.
    specific = {p.where for p in problems if p.rule not in _GENERIC and p.level is Level.ERROR}
    unique = dict.fromkeys(p for p in problems if p.rule not in _GENERIC or p.where not in specific)
    return list(unique)


def _sorted(problems: list[Problem], files: tuple[str, ...]) -> list[Problem]:
    order = {name: index for index, name in enumerate(files)}
    return sorted(problems, key=lambda p: (order.get(p.where.file, len(order)), p.sort_key()))
