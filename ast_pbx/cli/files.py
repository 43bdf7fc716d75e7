"""`astpbx files` and `astpbx files purge`: the data files astpbx keeps, and deleting
old ones (the manual's "Удаление старых файлов")."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from ast_pbx.cli.common import config_timezone, load_valid
from ast_pbx.cli.report import local_period, parse_day
from ast_pbx.config.system import System
from ast_pbx.errors import EXIT_PROBLEMS, UsageError
from ast_pbx.reports import day_start
from ast_pbx.storage.db import Database
from ast_pbx.storage.reporting import mark_recordings_purged, open_reporting, unmark_recordings

# KIND → what it is; the directory is `system.paths.dir(KIND)`.
KINDS = {
    "recordings": "recordings of conversations",
    "tmp": "temporary audio",
    "tts-cache": "TTS cache",
}
PURGE = "purge"
# Recordings handled this many at a time: their calls marked, the files deleted.
BATCH = 200  # × 3 spellings of a path: under SQLite's old limit of 999 parameters
UNITS = ("KB", "MB", "GB", "TB")


@dataclass(frozen=True)
class Found:
    path: str
    size: int


def files(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[purge KIND] CONFIG",
            help="CONFIG: config directory (or one file) whose system.paths are meant; "
            "purge KIND: delete old files of KIND (recordings, tmp or tts-cache).",
            show_default=False,
        ),
    ],
    first: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="YYYY-MM-DD", help="Count only files modified from this day on."
        ),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="YYYY-MM-DD", help="... up to this day (included); with --from."
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            metavar="YYYY-MM-DD",
            help="purge: the files modified before this day (not included).",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="purge: really delete; without it, a dry run.")
    ] = False,
) -> None:
    """Count the files astpbx keeps, or delete old ones.

    `astpbx files CONFIG` prints the number and size of the recordings of
    conversations, the temporary audio and the TTS cache (paths.dir recordings, tmp,
    tts-cache), of the files modified from --from to --to if given (days in the system
    timezone).

    `astpbx files purge KIND CONFIG --before DAY` deletes the files of KIND modified
    before DAY; without --yes it only says what it would delete. Calls whose recording
    was deleted say "purged" in `astpbx history` from then on.
    """
    if len(words) == 1:
        if before is not None or yes:
            raise UsageError("--before and --yes go with `astpbx files purge KIND CONFIG`")
        _list(words[0], first, last)
    elif len(words) == 3 and words[0] == PURGE:
        if first is not None or last is not None:
            raise UsageError("`astpbx files purge` takes --before DAY, not --from and --to")
        if before is None:
            raise UsageError("`astpbx files purge` needs --before DAY")
        kind = words[1]
        if kind not in KINDS:
            raise UsageError(f"no kind of files {kind!r}; the kinds are: {', '.join(KINDS)}")
        _purge(kind, words[2], before, yes=yes)
    else:
        raise UsageError(
            f"expected CONFIG or `purge KIND CONFIG`, got {' '.join(words)!r}"
            if words
            else "expected CONFIG or `purge KIND CONFIG`"
        )


def _list(config_path: str, first: str | None, last: str | None) -> None:
    if (first is None) != (last is None):
        raise UsageError("--from and --to go together")
    config = load_valid(config_path)
    since = until = None
    if first is not None and last is not None:
        tz = config_timezone(config)
        start, end = local_period(first, last, tz)
        since, until = start.timestamp(), end.timestamp()
        typer.echo(f"files modified from {first} to {last} ({tz})")
    rows = [("kind", "files", "size", "directory")]
    for kind in KINDS:
        directory = config.system.paths.dir(kind)
        found = list(scan(directory, since=since, until=until))
        where = directory if os.path.isdir(directory) else f"{directory} (no such directory)"
        rows.append((kind, str(len(found)), human_size(sum(f.size for f in found)), where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for kind, count, size, where in rows:
        typer.echo(
            f"{kind:<{widths[0]}}  {count:>{widths[1]}}  {size:<{widths[2]}}  {where}".rstrip()
        )


def _purge(kind: str, config_path: str, before: str, *, yes: bool) -> None:
    config = load_valid(config_path)
    day = parse_day(before, "--before")
    limit = day_start(day, config_timezone(config)).timestamp()
    directory = config.system.paths.dir(kind)
    found = list(scan(directory, until=limit))
    size = human_size(sum(f.size for f in found))
    what = f"{_files(len(found))} ({size}) of {directory} modified before {day}"
    if not yes:
        typer.echo(f"dry run: would delete {what}; nothing deleted (add --yes to delete)")
        return
    if kind == "recordings":
        deleted, failed, marked = _purge_recordings(config.system, found)
    else:
        deleted, failed = _delete(found)
        marked = None
    freed = human_size(sum(f.size for f in deleted))
    message = f"deleted {_files(len(deleted))} ({freed}) of {directory} modified before {day}"
    if marked is not None:
        message += f"; {marked} {'call' if marked == 1 else 'calls'} marked purged"
    typer.echo(message)
    if failed:
        typer.echo(f"{_files(len(failed))} not deleted", err=True)
        raise typer.Exit(EXIT_PROBLEMS)


def _purge_recordings(system: System, found: list[Found]) -> tuple[list[Found], list[Found], int]:
    """Delete recordings in batches, never leaving a call pointing at a missing file:
    a batch's calls are marked purged first, the files deleted, and the calls of the
    files that could not be deleted unmarked again. (Should astpbx die in between, a
    call says "purged" while its file is still there: the next purge deletes it.)"""
    database: Database = open_reporting(system.database_url)
    deleted: list[Found] = []
    failed: list[Found] = []
    marked = 0
    try:
        for start in range(0, len(found), BATCH):
            batch = found[start : start + BATCH]
            names = {f.path: _names(f.path) for f in batch}
            now = datetime.now(tz=UTC)
            calls = mark_recordings_purged(
                database, [n for variants in names.values() for n in variants], now
            )
            done, not_done = _delete(batch)
            deleted += done
            failed += not_done
            keep = [i for f in not_done for n in names[f.path] for i in calls.get(n, [])]
            if keep:
                unmark_recordings(database, keep)
            marked += sum(len(ids) for ids in calls.values()) - len(keep)
    finally:
        database.dispose()
    return deleted, failed, marked


def _names(path: str) -> set[str]:
    """The ways the engine may have written `path` in `calls.recording`."""
    return {path, str(Path(path)), os.path.abspath(path)}


def _delete(found: list[Found]) -> tuple[list[Found], list[Found]]:
    deleted: list[Found] = []
    failed: list[Found] = []
    for item in found:
        try:
            os.unlink(item.path)
        except FileNotFoundError:
            deleted.append(item)  # gone already: as good as deleted
        except OSError as exc:
            typer.echo(f"cannot delete {item.path}: {exc.strerror or exc}", err=True)
            failed.append(item)
        else:
            deleted.append(item)
    return deleted, failed


def scan(
    directory: str, *, since: float | None = None, until: float | None = None
) -> Iterator[Found]:
    """Regular files below `directory` (symbolic links neither followed nor counted)
    modified in [since, until); a missing directory has none."""
    for root, _dirs, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # deleted meanwhile
            if not stat.S_ISREG(info.st_mode):
                continue
            if since is not None and info.st_mtime < since:
                continue
            if until is not None and info.st_mtime >= until:
                continue
            yield Found(path, info.st_size)


def human_size(size: int) -> str:
    """ "0 B", "630 KB", "35 MB", "1.5 GB": 1024-based, like the manual's page."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in UNITS:
        value /= 1024
        if value < 1024 or unit == UNITS[-1]:
            break
    text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{text.removesuffix('.0')} {unit}"


def _files(count: int) -> str:
    return f"{count} {'file' if count == 1 else 'files'}"


class _FilesCommand(TyperCommand):
    """Its usage line reads as the two forms it has, not as a list of words."""

    def collect_usage_pieces(self, ctx: object) -> list[str]:
        return ["[OPTIONS]", "[purge KIND] CONFIG"]


def register(app: typer.Typer) -> None:
    app.command(cls=_FilesCommand)(files)
