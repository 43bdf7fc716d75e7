"""Rules about where astpbx keeps its data."""

from __future__ import annotations

from collections.abc import Iterator

from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import Level
from ast_pbx.lint.registry import Finding, rule


def _relative_sqlite(url: str | None) -> bool:
    if url is None or not url.startswith("sqlite:///"):
        return False
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return path not in ("", ":memory:") and not path.startswith("/")


@rule("sqlite-relative-path", Level.WARNING)
def sqlite_relative_path(loaded: Loaded) -> Iterator[Finding]:
    """
    A SQLite URL with three slashes names a path relative to the working directory of
    the process: `sqlite:///var/lib/astpbx/astpbx.db` is `./var/lib/astpbx/astpbx.db`.

    A service's working directory is rarely the one you think; write four slashes for an
    absolute path: `sqlite:////var/lib/astpbx/astpbx.db`.
    """
    config = loaded.config
    for what, url, where in (
        ("system.database", config.system.database, config.system.at("database")),
        ("directory.url", config.directory.url, config.directory.at("url")),
    ):
        if not _relative_sqlite(url):
            continue
        if where in loaded.expansions:  # from ${VAR}: show it as written, not what it holds
            yield (
                where,
                f"{what} {url} is a path relative to the working directory; for an absolute "
                "path write four slashes: sqlite:////…",
            )
            continue
        absolute = f"sqlite:////{(url or '').removeprefix('sqlite:///')}"
        yield (
            where,
            f"{what} {url} is relative to the working directory; for an absolute "
            f"path write {absolute}",
        )
