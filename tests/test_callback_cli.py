"""`astpbx callback list|done` on each kind of database, and `call` without an engine.

`call` against a running engine is tested on the sandbox (tests/test_dialer_live.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.db import Database
from tests.conftest import WriteConfig
from tests.sandbox_fixture import free_port
from tests.storage_fixtures import database_fixture, postgres_url_fixture, url_fixture  # noqa: F401
from tests.test_cli import astpbx

NOW = datetime.now(UTC)


@pytest.fixture(name="config")
def config_fixture(write_config: WriteConfig, url: str, tmp_path: Path) -> Path:
    system = f"""\
        system:
          timezone: Europe/Moscow
          database: "{url}"
          paths: {{data: "{tmp_path / "data"}"}}
          http: {{listen: "127.0.0.1:{free_port()}"}}
          api: {{username: mfc, password: not-running}}
        users:
          - {{login: ivanova}}
        """
    return write_config(**{"system.yaml": system})


@pytest.fixture(name="store")
def store_fixture(database: Database, config: Path) -> CallbackStore:
    return CallbackStore(database)


def test_list_shows_open_requests_oldest_first(config: Path, store: CallbackStore) -> None:
    old = store.add("+79001110001", NOW - timedelta(hours=2))
    new = store.add("+79001110002", NOW - timedelta(hours=1))
    closed = store.add("+79001110003", NOW - timedelta(hours=3))
    store.update(closed.id, done=True)
    result = astpbx("callback", "list", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        [str(old.id), "+79001110001"],
        [str(new.id), "+79001110002"],
    ]
    everything = astpbx("callback", "list", str(config), "--all").stdout
    assert f"{closed.id}\t+79001110003" in everything and "\tdone" in everything


def test_done_closes_and_later_puts_off(config: Path, store: CallbackStore) -> None:
    first = store.add("+79001110001", NOW - timedelta(hours=2))
    second = store.add("+79001110002", NOW - timedelta(hours=1))
    assert astpbx("callback", "done", str(first.id), str(config)).returncode == 0
    later = astpbx("callback", "done", str(second.id), str(config), "--later", "2099-01-02 10:30")
    assert later.returncode == 0 and "from 2099-01-02 10:30" in later.stdout
    assert astpbx("callback", "list", str(config)).stdout == "no callback requests\n"
    record = store.get(second.id)
    assert record is not None and not record.done
    assert record.call_not_before == datetime(2099, 1, 2, 7, 30, tzinfo=UTC)  # Moscow time


def test_usage_errors_say_what(config: Path, store: CallbackStore) -> None:
    missing = astpbx("callback", "done", "999", str(config))
    assert missing.returncode == 2 and "no callback request 999" in missing.stderr
    bad = astpbx("callback", "done", "1", str(config), "--later", "tomorrow")
    assert bad.returncode == 2 and "expected 'YYYY-MM-DD HH:MM'" in bad.stderr


def test_call_without_a_running_engine_says_so(config: Path, store: CallbackStore) -> None:
    request = store.add("+79001110001", NOW)
    result = astpbx("callback", "call", str(request.id), str(config), "--operator", "ivanova")
    assert result.returncode == 2
    assert "no engine answers on http://127.0.0.1:" in result.stderr
    assert "is `astpbx run` up?" in result.stderr
