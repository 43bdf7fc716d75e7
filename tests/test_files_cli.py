"""`astpbx files`, `files purge`, `history` and `report` as users run them: a real
subprocess on a config whose database is SQLite or PostgreSQL (`storage_fixtures`)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ast_pbx.cli import files as files_cli
from ast_pbx.config.system import Paths, System
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database
from tests.conftest import WriteConfig
from tests.storage_fixtures import database_fixture, postgres_url_fixture, url_fixture  # noqa: F401
from tests.test_cli import astpbx

MARCH_1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 15:00 in Moscow
MARCH_2 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def write_file(path: Path, size: int, modified: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


@pytest.fixture(name="data")
def data_fixture(tmp_path: Path) -> Path:
    return tmp_path / "data"


def system_config(write_config: WriteConfig, url: str, data: Path) -> Path:
    system = f"""\
        system:
          timezone: Europe/Moscow
          database: "{url}"
          paths:
            data: "{data}"
        """
    return write_config(**{"system.yaml": system})


@pytest.fixture(name="config")
def config_fixture(write_config: WriteConfig, url: str, data: Path) -> Path:
    """A config on each kind of database (an empty one: see `log`)."""
    return system_config(write_config, url, data)


@pytest.fixture(name="sqlite_config")
def sqlite_config_fixture(write_config: WriteConfig, data: Path) -> Path:
    """For usage errors, which the database kind does not change."""
    return system_config(write_config, f"sqlite:///{data}/astpbx.db", data)


@pytest.fixture(name="log")
def log_fixture(database: Database, config: Path) -> CallLog:
    """The config's (migrated) database, and its call log."""
    return CallLog(database)


@pytest.fixture(name="recordings")
def recordings_fixture(data: Path, log: CallLog) -> tuple[Path, Path]:
    """A recording of 1 March and one of 2 March, each linked to its call."""
    old = write_file(data / "recordings" / "2026-03-01" / "astpbx-c1-1.wav", 1000, MARCH_1)
    new = write_file(data / "recordings" / "2026-03-02" / "astpbx-c2-1.wav", 3000, MARCH_2)
    for channel, at, path in (("c1", MARCH_1, old), ("c2", MARCH_2, new)):
        log.started(channel, "+79610000001", "90000", at=at)
        log.ended(channel, at=at, outcome="queue 92000", reason="caller hung up")
        log.recorded(channel, str(path))
    write_file(data / "tts-cache" / "ab" / "abcd.wav", 5 * 1024 * 1024, MARCH_1)
    return old, new


# files


def test_files_counts_each_kind(config: Path, data: Path, recordings: tuple[Path, Path]) -> None:
    result = astpbx("files", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "kind        files  size    directory",
        f"recordings      2  3.9 KB  {data}/recordings",
        f"tmp             0  0 B     {data}/tmp (no such directory)",
        f"tts-cache       1  5 MB    {data}/tts-cache",
    ]


def test_files_of_a_period(config: Path, data: Path, recordings: tuple[Path, Path]) -> None:
    result = astpbx("files", str(config), "--from", "2026-03-02", "--to", "2026-03-02")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "files modified from 2026-03-02 to 2026-03-02 (Europe/Moscow)"
    assert lines[2] == f"recordings      1  2.9 KB  {data}/recordings"
    assert lines[4].startswith("tts-cache       0  0 B ")


def test_purge_dry_run_deletes_nothing(
    config: Path, data: Path, recordings: tuple[Path, Path], log: CallLog
) -> None:
    result = astpbx("files", "purge", "recordings", str(config), "--before", "2026-03-02")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"dry run: would delete 1 file (1000 B) of {data}/recordings modified before "
        "2026-03-02; nothing deleted (add --yes to delete)\n"
    )
    assert all(path.exists() for path in recordings)
    assert log.get("c1").recording_purged_at is None


def test_purge_deletes_only_older_recordings_and_marks_their_calls(
    config: Path, data: Path, recordings: tuple[Path, Path], log: CallLog
) -> None:
    old, new = recordings
    before = datetime.now(tz=UTC)
    args = ("files", "purge", "recordings", str(config), "--before", "2026-03-02", "--yes")
    result = astpbx(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"deleted 1 file (1000 B) of {data}/recordings modified before 2026-03-02; "
        "1 call marked purged\n"
    )
    assert not old.exists()
    assert new.exists()
    purged = log.get("c1").recording_purged_at
    assert purged is not None
    assert before <= purged <= datetime.now(tz=UTC)
    assert log.get("c2").recording_purged_at is None
    # Again: nothing left to delete, the mark stays as it was.
    again = astpbx(*args)
    assert again.stdout.startswith("deleted 0 files (0 B)")
    assert log.get("c1").recording_purged_at == purged


def test_purge_tts_cache_by_local_day(config: Path, data: Path) -> None:
    cache = data / "tts-cache"
    # 23:30 on 1 March in Moscow is still 1 March: purged before 2 March.
    late = write_file(cache / "ab" / "a.wav", 10, datetime(2026, 3, 1, 20, 30, tzinfo=UTC))
    # 00:30 on 2 March in Moscow (21:30 UTC on 1 March) is kept.
    early = write_file(cache / "cd" / "b.wav", 10, datetime(2026, 3, 1, 21, 30, tzinfo=UTC))
    result = astpbx("files", "purge", "tts-cache", str(config), "--before", "2026-03-02", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted 1 file (10 B) of ")
    assert "marked" not in result.stdout
    assert not late.exists()
    assert early.exists()
    assert (data / "tts-cache" / "ab").is_dir()  # directories stay


def test_purge_usage_errors(sqlite_config: Path) -> None:
    config = sqlite_config
    cases = {
        ("files", "purge", "audio", str(config), "--before", "2026-03-02"): (
            "no kind of files 'audio'; the kinds are: recordings, tmp, tts-cache"
        ),
        ("files", "purge", "tmp", str(config)): "needs --before DAY",
        ("files", "purge", "tmp", str(config), "--before", "March"): (
            "--before 'March' is not a date YYYY-MM-DD"
        ),
        ("files", str(config), "--yes"): "--before and --yes go with",
        ("files", str(config), "--from", "2026-03-01"): "--from and --to go together",
        ("files", "x", str(config)): "expected CONFIG or `purge KIND CONFIG`",
    }
    for args, message in cases.items():
        result = astpbx(*args)
        assert result.returncode == 2, args
        assert message in result.stderr, (args, result.stderr)


def test_failed_deletions_leave_their_calls_unmarked(
    data: Path,
    recordings: tuple[Path, Path],
    log: CallLog,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = recordings
    real_unlink = os.unlink

    def unlink(path: str) -> None:
        if path == str(new):
            raise PermissionError(13, "Permission denied")
        real_unlink(path)

    monkeypatch.setattr(files_cli.os, "unlink", unlink)
    system = System(database=url, paths=Paths(data=str(data)))
    found = [files_cli.Found(str(old), 1000), files_cli.Found(str(new), 3000)]
    deleted, failed, marked = files_cli._purge_recordings(system, found)
    assert (deleted, failed, marked) == ([found[0]], [found[1]], 1)
    assert log.get("c1").recording_purged_at is not None
    assert log.get("c2").recording_purged_at is None
    assert new.exists()


def test_human_sizes() -> None:
    sizes = [0, 1023, 1024, 1536, 630 * 1024, 35 * 1024**2 + 1, 3 * 1024**4, 5000 * 1024**4]
    assert [files_cli.human_size(n) for n in sizes] == [
        "0 B",
        "1023 B",
        "1 KB",
        "1.5 KB",
        "630 KB",
        "35 MB",
        "3 TB",
        "5000 TB",
    ]


# history


@pytest.fixture(name="calls")
def calls_fixture(log: CallLog, recordings: tuple[Path, Path]) -> CallLog:
    """c1 and c2 (recorded), c3 marked and still going, c4 the next day."""
    log.started("c3", None, "91000", at=datetime(2026, 3, 2, 13, 0, 5, tzinfo=UTC))
    log.mark_channel("c3")
    log.started("c4", "+79620000002", "90000", at=datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    log.ended(
        "c4",
        at=datetime(2026, 3, 3, 9, 1, 40, tzinfo=UTC),
        outcome="hangup",
        reason="menu without handlers",
    )
    return log


def test_history_table(config: Path, calls: CallLog) -> None:
    result = astpbx("history", str(config), "--from", "2026-03-01", "--to", "2026-03-02")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "id  caller        called  start                end                  duration  mark  recording  outcome",  # noqa: E501
        "3   -             91000   2026-03-02 16:00:05  -                    -         !     -          -",  # noqa: E501
        "2   +79610000001  90000   2026-03-02 15:00:00  2026-03-02 15:00:00  0 s             yes        queue 92000",  # noqa: E501
        "1   +79610000001  90000   2026-03-01 15:00:00  2026-03-01 15:00:00  0 s             yes        queue 92000",  # noqa: E501
        "3 calls",
    ]


def test_history_filters_and_json(config: Path, calls: CallLog) -> None:
    period = ("--from", "2026-03-01", "--to", "2026-03-03")
    result = astpbx("history", str(config), *period, "--caller", "7962", "--format", "json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry == {
        "id": 4,
        "channel_id": "c4",
        "caller": "+79620000002",
        "called": "90000",
        "started_at": "2026-03-03T12:00:00+03:00",
        "answered_at": None,
        "ended_at": "2026-03-03T12:01:40+03:00",
        "duration": 100,
        "marked": False,
        "recording": None,
        "recording_purged_at": None,
        "path": [],
        "outcome": "hangup",
        "reason": "menu without handlers",
        "trunk": None,
        "external": False,
    }
    marked = json.loads(astpbx("history", str(config), *period, "--marked", "-f", "json").stdout)
    assert [c["channel_id"] for c in marked] == ["c3"]
    called = astpbx("history", str(config), *period, "--called", "910").stdout.splitlines()
    assert [line.split()[0] for line in called[1:-1]] == ["3"]
    assert called[-1] == "1 call"
    none = astpbx("history", str(config), *period, "--caller", "%")
    assert none.stdout == "no calls\n"


def test_history_shows_purged_recordings_and_the_limit(
    config: Path, calls: CallLog, data: Path
) -> None:
    astpbx("files", "purge", "recordings", str(config), "--before", "2026-03-02", "--yes")
    period = ("--from", "2026-03-01", "--to", "2026-03-03")
    result = astpbx("history", str(config), *period, "--limit", "2")
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["4", "3"]
    assert lines[-1] == "2 calls"
    assert "more calls match: the newest 2 are shown" in result.stderr
    first = astpbx("history", str(config), "--from", "2026-03-01", "--to", "2026-03-01")
    assert "  purged  " in first.stdout.splitlines()[1]


def test_history_refuses_a_database_without_tables(config: Path) -> None:
    result = astpbx("history", str(config), "--from", "2026-03-01", "--to", "2026-03-01")
    assert result.returncode == 2
    assert "has no astpbx tables" in result.stderr
    assert "astpbx run" in result.stderr


def test_history_period_must_be_in_order(sqlite_config: Path) -> None:
    result = astpbx("history", str(sqlite_config), "--from", "2026-03-02", "--to", "2026-03-01")
    assert result.returncode == 2
    assert "--to 2026-03-01 is before --from 2026-03-02" in result.stderr


# report


def test_report_writes_a_workbook(config: Path, calls: CallLog, tmp_path: Path) -> None:
    out = tmp_path / "out" / "calls.xlsx"
    out.parent.mkdir()
    args = ("--from", "2026-03-01", "--to", "2026-03-03")
    result = astpbx("report", "calls", str(config), *args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}: 3 rows\n"
    sheet = load_workbook(out).active
    assert [row[:2] for row in sheet.iter_rows(min_row=3, values_only=True)] == [
        (datetime(2026, 3, 1), 1),
        (datetime(2026, 3, 2), 2),
        (datetime(2026, 3, 3), 1),
        ("Итого", 4),
    ]
    assert [p.name for p in out.parent.iterdir()] == ["calls.xlsx"]  # no temporary left
    # The default name, in the current directory.
    default = astpbx("report", "missed", str(config), *args, cwd=tmp_path)
    assert default.stdout == "missed-2026-03-01-2026-03-03.xlsx: 0 rows\n"
    assert (tmp_path / "missed-2026-03-01-2026-03-03.xlsx").is_file()


def test_report_rejects_an_unknown_name(sqlite_config: Path) -> None:
    result = astpbx(
        "report", "nope", str(sqlite_config), "--from", "2026-03-01", "--to", "2026-03-01"
    )
    assert result.returncode == 2
    assert (
        "no report 'nope'; the reports are: calls, answered, missed, waits, dialer, callbacks"
        in result.stderr
    )


def test_report_rejects_a_filter_it_does_not_take(
    config: Path, log: CallLog, tmp_path: Path
) -> None:
    period = ("--from", "2026-03-01", "--to", "2026-03-01")
    result = astpbx("report", "missed", str(config), *period, "--operator", "alice")
    assert result.returncode == 2
    assert "report missed does not filter by operator (it takes no filters)" in result.stderr
    taken = astpbx("report", "answered", str(config), *period, "--operator", "alice", cwd=tmp_path)
    assert taken.returncode == 0
