"""Reporters: the same problems as text lines, JSON, or GitHub workflow annotations."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ast_pbx.config.problems import Level, Problem
from ast_pbx.lint.linter import Report


def _summary(reports: Sequence[Report]) -> tuple[int, int, int]:
    errors = sum(r.count(Level.ERROR) for r in reports)
    warnings = sum(r.count(Level.WARNING) for r in reports)
    files = sum(len(r.files) for r in reports)
    return errors, warnings, files


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def text(reports: Sequence[Report]) -> str:
    lines = [str(p) for r in reports for p in r.problems]
    errors, warnings, files = _summary(reports)
    lines.append(
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {_plural(files, 'file')}"
    )
    return "\n".join(lines)


def _as_dict(problem: Problem) -> dict[str, object]:
    return {
        "file": problem.where.file,
        "line": problem.where.line,
        "column": problem.where.col,
        "level": problem.level.value,
        "rule": problem.rule,
        "message": problem.message,
    }


def as_json(reports: Sequence[Report]) -> str:
    errors, warnings, files = _summary(reports)
    document = {
        "problems": [_as_dict(p) for r in reports for p in r.problems],
        "summary": {"errors": errors, "warnings": warnings, "files": files},
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def _escape(value: str, *, prop: bool = False) -> str:
    # GitHub's workflow-command escaping; properties also escape ':' and ','.
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def github(reports: Sequence[Report]) -> str:
    lines = []
    for problem in (p for r in reports for p in r.problems):
        where = problem.where
        props = ",".join(
            [
                f"file={_escape(where.file, prop=True)}",
                f"line={where.line}",
                f"col={where.col}",
                f"title={_escape('astpbx ' + problem.rule, prop=True)}",
            ]
        )
        lines.append(f"::{problem.level.value} {props}::{_escape(problem.message)}")
    errors, warnings, files = _summary(reports)
    lines.append(
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {_plural(files, 'file')}"
    )
    return "\n".join(lines)


FORMATS: dict[str, Callable[[Sequence[Report]], str]] = {
    "text": text,
    "json": as_json,
    "github": github,
}
