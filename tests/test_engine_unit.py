"""The engine without Asterisk: ARI-shaped events in, the requests it makes out.

`engine.ari` is replaced by a fake that records every request and answers from a
table; the call log and TTS are fakes too. Events are fed to `engine.on_event` inside
an event loop, as the ARI client would.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ast_pbx.ari import AriError
from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.engine.callstate import TALKING, Saved, Transferring
from ast_pbx.engine.dialer import DialerCall
from ast_pbx.engine.engine import EVENTS, Engine
from ast_pbx.engine.session import CallSession
from ast_pbx.engine.version import ConfigVersion
from ast_pbx.errors import ConfigInvalid
from tests.async_helpers import eventually, run

MSK = ZoneInfo("Europe/Moscow")
APP = "astpbx"  # the default system.ari.app

CONFIG = """\
phones:
  - {number: "1001", password: long-enough-secret}
menus:
  - number: "100"
    say: Hi
    on:
      - {key: "1", goto: "200"}
  - number: "200"
    say: Bye
"""

Request = tuple[str, str, dict[str, Any] | None]  # method, path, params
Entry = tuple[str, tuple[Any, ...], dict[str, Any]]  # call log method, args, kwargs


async def settle() -> None:
    """Let queued events be handled (when nothing is expected to happen)."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


def make_config(tmp_path: Path, text: str = CONFIG, name: str = "config") -> Config:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "a.yaml").write_text(textwrap.dedent(text))
    loaded = load(str(directory), {})
    assert [p for p in loaded.problems if p.level.value == "error"] == []
    return loaded.config


class FakeAri:
    """Records requests; answers from `responses`; raises what `failures` says."""

    def __init__(self) -> None:
        self.calls: list[Request] = []
        self.saved: list[tuple[str, str]] = []  # (path, state) of each call state written
        self.responses: dict[tuple[str, str], Any] = {
            ("POST", "channels"): {"id": "peer-1"},
            ("POST", "bridges"): {"id": "b1"},
        }
        self.failures: dict[tuple[str, str], Exception] = {}
        self.hooks: dict[tuple[str, str], Callable[[], None]] = {}  # run before answering

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        if str((params or {}).get("variable", "")).startswith(("ASTPBX_STATE_", "ASTPBX_END_")):
            self.saved.append((path, str((params or {}).get("value"))))  # tests of adoption
        else:
            self.calls.append((method, path, dict(params) if params is not None else None))
        await asyncio.sleep(0)  # a real request yields to the loop
        failure = self.failures.get((method, path))
        if failure is not None:
            raise failure
        hook = self.hooks.get((method, path))
        if hook is not None:
            hook()
        return self.responses.get((method, path))

    async def quiet(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        with contextlib.suppress(AriError):  # as the real client: only AriError is quiet
            return await self.request(method, path, params)
        return None

    def to(self, method: str, path: str) -> list[Request]:
        return [c for c in self.calls if c[:2] == (method, path)]

    def plays(self, channel: str) -> list[dict[str, Any]]:
        return [c[2] or {} for c in self.to("POST", f"channels/{channel}/play")]


class FakeCallLog:
    """The call log's interface; called from worker threads (Engine.record)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._lock = threading.Lock()

    def _add(self, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.entries.append((what, args, kwargs))

    def started(self, *args: Any, **kwargs: Any) -> None:
        self._add("started", args, kwargs)

    def open_channels(self) -> list[tuple[str, datetime]]:
        with self._lock:
            started = {e[1][0] for e in self.entries if e[0] == "started"}
            ended = {e[1][0] for e in self.entries if e[0] == "ended"}
        return [(c, datetime(2026, 1, 1, tzinfo=UTC)) for c in started - ended]

    def answered(self, *args: Any, **kwargs: Any) -> None:
        self._add("answered", args, kwargs)

    def visited(self, *args: Any, **kwargs: Any) -> None:
        self._add("visited", args, kwargs)

    def ended(self, *args: Any, **kwargs: Any) -> None:
        self._add("ended", args, kwargs)

    def of(self, call: str, what: str | None = None) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e[1][:1] == (call,) and what in (None, e[0])]

    def ended_of(self, call: str) -> dict[str, Any] | None:
        found = self.of(call, "ended")
        return found[-1][2] if found else None


class Harness:
    def __init__(self, tmp_path: Path, text: str = CONFIG) -> None:
        self.config = make_config(tmp_path, text)
        self.version = ConfigVersion(self.config, "v1", MSK, {})
        self.log = FakeCallLog()
        self.said: list[str] = []
        self.engine = Engine(
            str(tmp_path / "config"), self.version, tts=self.tts, call_log=self.log
        )
        self.ari = FakeAri()
        self.engine.ari = self.ari  # type: ignore[assignment]

    async def tts(self, text: str) -> str:
        self.said.append(text)
        return "sound:fake"

    # ARI-shaped events

    def start(self, channel: str, exten: str = "100", caller: str = "+7900") -> None:
        self.engine.on_event(
            {
                "type": "StasisStart",
                "application": APP,
                "args": ["internal"],
                "channel": {
                    "id": channel,
                    "name": f"PJSIP/x-{channel}",
                    "state": "Ring",
                    "caller": {"name": "", "number": caller},
                    "dialplan": {"context": "from-internal", "exten": exten, "priority": 1},
                },
            }
        )

    def finished(self, channel: str, playback: str) -> None:
        self.engine.on_event(
            {
                "type": "PlaybackFinished",
                "playback": {"id": playback, "target_uri": f"channel:{channel}", "state": "done"},
            }
        )

    def key(self, channel: str, digit: str) -> None:
        self.engine.on_event(
            {"type": "ChannelDtmfReceived", "channel": {"id": channel}, "digit": digit}
        )

    def end(self, channel: str) -> None:
        self.engine.on_event({"type": "StasisEnd", "channel": {"id": channel}})

    async def playing(self, channel: str, count: int = 1) -> str:
        """Wait for the `count`th play on `channel`; its playback id."""
        await eventually(lambda: len(self.ari.plays(channel)) >= count)
        return str(self.ari.plays(channel)[count - 1]["playbackId"])

    async def ended(self, channel: str) -> dict[str, Any]:
        await eventually(
            lambda: self.log.ended_of(channel) is not None and channel not in self.engine.sessions
        )
        ended = self.log.ended_of(channel)
        assert ended is not None
        return ended

    async def drain(self) -> None:
        """End what is still running so that asyncio.run() leaves no task behind."""
        for session in list(self.engine.sessions.values()):
            session.put({"type": "StasisEnd", "channel": {"id": session.id}})
        tasks = [s.task for s in self.engine.sessions.values() if s.task is not None]
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2.0)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# a. The happy path


def test_menu_key_barge_in_and_hangup_in_a_menu_without_handlers(harness: Harness) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        h.start("c1")
        first = await h.playing("c1")
        assert ari.calls == [
            ("POST", "channels/c1/answer", None),
            ("POST", "channels/c1/play", {"media": "sound:fake", "playbackId": first}),
        ]
        session = h.engine.sessions["c1"]
        assert session.version.version == "v1"

        h.key("c1", "1")  # while "Hi" plays: barge-in
        second = await h.playing("c1", 2)
        assert second != first
        assert ari.calls[2:] == [
            ("DELETE", f"playbacks/{first}", None),
            ("POST", "channels/c1/play", {"media": "sound:fake", "playbackId": second}),
        ]
        assert h.said == ["Hi", "Bye"]

        h.finished("c1", first)  # the stopped prompt's end comes late: nothing happens
        await settle()
        assert len(ari.calls) == 4
        assert "c1" in h.engine.sessions

        h.finished("c1", second)  # 200 has no handlers: hang up
        ended = await h.ended("c1")
        assert ari.calls[4] == ("DELETE", "channels/c1", None)
        assert all(c == ("DELETE", "channels/c1", None) for c in ari.calls[4:])
        assert (ended["outcome"], ended["reason"]) == ("hangup", "menu without handlers")

        log = h.log.of("c1")
        # Two writes a call: its start, and its end with the path and the answer time.
        assert [e[0] for e in log] == ["started", "ended"]
        started = log[0]
        assert started[1] == ("c1", "+7900", "100")
        assert started[2]["config_version"] == "v1"
        assert started[2]["trunk"] is None and started[2]["external"] is False
        assert log[1][2]["path"] == ["100", "200"]
        assert log[1][2]["answered_at"] is not None

        h.end("c1")  # Asterisk's StasisEnd after the hang-up: an unknown channel now
        await settle()
        assert h.engine.sessions == {} and h.engine.peers == {}
        assert len(h.log.of("c1", "ended")) == 1

    run(scenario())


def test_key_after_the_prompt_and_the_key_latency_metric(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.start("c1")
        first = await h.playing("c1")
        h.finished("c1", first)  # now waiting for a key: no barge-in
        await settle()
        h.key("c1", "7")  # not handled: ignored
        h.key("c1", "1")
        await h.playing("c1", 2)
        assert h.ari.to("DELETE", f"playbacks/{first}") == []
        await h.drain()
        ended = await h.ended("c1")
        assert (ended["outcome"], ended["reason"]) == ("hangup", "caller hung up")
        # Only the key that made the engine act was timed: "7" led to no request.
        assert h.engine.key_latency.summary()["count"] == 1

    run(scenario())


def test_a_copy_for_the_endpoints_application_is_not_handled_again(harness: Harness) -> None:
    """Asterisk forwards a SIP channel's events to whoever follows its endpoint: the
    engine follows endpoints in `<app>-endpoints`, whose copies of call events it drops
    (a key pressed once is handled once); its endpoint states it takes."""

    async def scenario() -> None:
        h = harness
        h.start("c1")
        first = await h.playing("c1")
        copy = {"type": "ChannelDtmfReceived", "channel": {"id": "c1"}, "digit": "1"}
        h.engine.on_event({**copy, "application": f"{APP}-endpoints"})
        await settle()
        assert h.ari.to("DELETE", f"playbacks/{first}") == []  # the copy did nothing
        h.engine.on_event({**copy, "application": APP})
        await h.playing("c1", 2)  # the key itself did
        state = {"technology": "PJSIP", "resource": "1001", "state": "online"}
        h.engine.on_event(
            {"type": "EndpointStateChange", "endpoint": state, "application": f"{APP}-endpoints"}
        )
        assert h.engine.presence.online["1001"] is True

    run(scenario())


def test_caller_hangs_up_during_the_prompt(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.start("c1")
        await h.playing("c1")
        h.end("c1")
        ended = await h.ended("c1")
        assert ended["outcome"] == "hangup"
        # The channel is gone: no request to hang it up again.
        assert ("DELETE", "channels/c1", None) not in h.ari.calls

    run(scenario())


# b. Failures stay inside one call


def test_an_exception_in_one_call_hangs_it_up_and_spares_the_others(harness: Harness) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        ari.failures["POST", "channels/c1/play"] = RuntimeError("boom")
        h.start("c1")
        h.start("c2")
        ended = await h.ended("c1")
        assert ari.to("DELETE", "channels/c1")  # not left in the application
        assert ended["outcome"] == "hangup"

        first = await h.playing("c2")
        assert "c2" in h.engine.sessions
        h.key("c2", "1")
        await h.playing("c2", 2)
        assert ari.to("DELETE", f"playbacks/{first}")
        assert ari.to("DELETE", "channels/c2") == []
        assert h.log.ended_of("c2") is None
        await h.drain()

    run(scenario())


def test_a_failing_tts_or_call_log_never_leaves_the_channel(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness

        async def broken_tts(text: str) -> str:
            raise OSError("festival is not installed")

        h.engine.tts = broken_tts
        h.start("c1")
        await eventually(lambda: "c1" not in h.engine.sessions)
        assert h.ari.to("DELETE", "channels/c1")
        await eventually(lambda: h.log.ended_of("c1") is not None)

        h.engine.tts = h.tts

        def broken(*args: Any, **kwargs: Any) -> None:
            raise OSError("database is locked")

        h.log.started = broken  # type: ignore[method-assign]
        h.start("c2")
        await h.playing("c2")  # the call goes on without its log entry
        await h.drain()

    run(scenario())


def test_a_failing_ari_error_in_one_call_spares_the_others(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.ari.failures["POST", "channels/c1/answer"] = AriError("channel gone", 404)
        h.start("c1")
        h.start("c2")
        await h.ended("c1")
        await h.playing("c2")
        assert h.ari.plays("c1") == []
        await h.drain()

    run(scenario())


def test_a_failure_while_finishing_still_closes_the_log_and_forgets_the_call(
    harness: Harness,
) -> None:
    async def scenario() -> None:
        h = harness
        h.start("c1")
        first = await h.playing("c1")
        h.ari.failures["DELETE", "channels/c1"] = ConnectionResetError("socket closed")
        h.key("c1", "1")
        second = await h.playing("c1", 2)
        h.finished("c1", second)  # 200 has no handlers: the engine hangs up, which fails
        del first
        await eventually(lambda: bool(h.ari.to("DELETE", "channels/c1")))
        await settle()
        task = h.engine.sessions["c1"].task if "c1" in h.engine.sessions else None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        assert "c1" not in h.engine.sessions
        assert h.log.ended_of("c1") is not None

    run(scenario())


# Timers and the directory


def test_a_menu_timeout_fires_and_a_stale_timer_does_not(tmp_path: Path) -> None:
    text = CONFIG.replace(
        '- {key: "1", goto: "200"}',
        '- {key: "1", goto: "200"}\n      - {timeout: 0.05, goto: "300"}',
    )
    text += '  - {number: "300", scenario: cases_in_work}\n'
    h = Harness(tmp_path, text)

    async def scenario() -> None:
        asked: list[tuple[str, str]] = []

        async def lookup(
            version: ConfigVersion, scenario: str, key: str, call: str | None = None
        ) -> list[str]:
            asked.append((scenario, key))
            return ["A-1", "B-2"]

        h.engine.lookup = lookup  # type: ignore[method-assign]
        h.start("c1")
        first = await h.playing("c1")
        h.finished("c1", first)  # the timeout counts from here
        second = await h.playing("c1", 2)  # 300 looked the cases up and says them
        assert asked == [("cases_in_work", "+7900")]
        assert h.said[-1] == "Дел в работе: 2. A-1. B-2."
        h.finished("c1", second)
        await h.ended("c1")
        assert h.log.of("c1", "ended")[0][2]["path"] == ["100", "300"]

        h.start("c2")
        first = await h.playing("c2")
        h.finished("c2", first)
        h.key("c2", "1")  # before the timeout: its timer is stale when it fires
        second = await h.playing("c2", 2)
        await asyncio.sleep(0.1)
        assert asked == [("cases_in_work", "+7900")]
        h.finished("c2", second)
        await h.ended("c2")
        assert h.log.of("c2", "ended")[0][2]["path"] == ["100", "200"]
        await h.drain()

    run(scenario())


def test_a_failing_directory_answers_nothing_found(tmp_path: Path) -> None:
    h = Harness(tmp_path, CONFIG + '  - {number: "300", scenario: cases_in_work}\n')

    async def scenario() -> None:
        async def lookup(
            version: ConfigVersion, scenario: str, key: str, call: str | None = None
        ) -> list[str]:
            raise OSError("the database is down")

        h.engine.lookup = lookup  # type: ignore[method-assign]
        h.start("c1", exten="300")
        await h.playing("c1")
        assert h.said == ["Дел в работе по вашему номеру не найдено."]
        await h.drain()

    run(scenario())


# c. What is not ours, or not well formed


def test_unknown_channels_and_malformed_events_are_ignored(harness: Harness) -> None:
    async def scenario() -> None:
        h, engine = harness, harness.engine
        h.start("c1")
        first = await h.playing("c1")
        before = list(h.ari.calls)
        junk: list[dict[str, Any]] = [
            {},
            {"type": "StasisStart"},
            {"type": "StasisStart", "channel": {}},
            {"type": "StasisStart", "channel": {"id": ""}},
            {"type": "StasisStart", "channel": None, "args": None},
            {"type": "StasisStart", "channel": {"id": "c1"}},  # c1 is up already
            {"type": "StasisStart", "channel": {"id": "x"}, "args": ["dialed"]},
            {"type": "StasisStart", "channel": {"id": "x"}, "args": ["dialed", "nobody"]},
            {"type": "StasisEnd"},
            {"type": "StasisEnd", "channel": {"id": "nobody"}},
            {"type": "ChannelDtmfReceived", "channel": {"id": "nobody"}, "digit": "1"},
            {"type": "ChannelDtmfReceived", "digit": "1"},
            {"type": "PlaybackFinished"},
            {"type": "PlaybackFinished", "playback": {"id": first}},
            {"type": "PlaybackFinished", "playback": {"id": first, "target_uri": "bridge:c1"}},
            {"type": "PlaybackFinished", "playback": {"id": first, "target_uri": "channel:x"}},
            {"type": "ChannelVarset", "channel": {"id": "c1"}, "variable": "X", "value": "1"},
            {"channel": {"id": "c1"}},  # no type
            {"type": "ChannelDtmfReceived", "channel": {"id": "c1"}},  # no digit
            {"type": "PlaybackFinished", "playback": {"target_uri": "channel:c1"}},  # no id
            {"type": "SomethingNew", "channel": {"id": "c1"}},
        ]
        for event in junk:
            engine.on_event(event)
        await settle()
        assert h.ari.calls == before
        assert set(engine.sessions) == {"c1"} and engine.peers == {}
        assert h.log.ended_of("c1") is None

        h.key("c1", "1")  # c1 is unaffected
        await h.playing("c1", 2)
        await h.drain()

    run(scenario())


def test_stasis_start_without_args_or_dialplan_is_a_call(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.engine.on_event({"type": "StasisStart", "channel": {"id": "c5"}})
        ended = await h.ended("c5")  # "" is no number: hung up, not left behind
        assert h.ari.to("DELETE", "channels/c5")
        assert ended["outcome"] == "hangup"

    run(scenario())


# d. Resynchronising after a reconnect


def test_resync_ends_gone_calls_and_hangs_up_strays(harness: Harness) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        h.start("c1")
        h.start("c2")
        first = await h.playing("c1")
        await h.playing("c2")
        ari.responses["GET", f"applications/{APP}"] = {
            "name": APP,
            "channel_ids": ["c1", "c9"],
            "bridge_ids": [],
            "endpoint_ids": [],
            "device_names": [],
        }
        await h.engine.resync()
        assert ari.to("GET", f"applications/{APP}")
        ended = await h.ended("c2")
        assert ended["outcome"] == "hangup"
        assert ari.to("DELETE", "channels/c9")
        assert ari.to("DELETE", "channels/c1") == []
        assert "c1" in h.engine.sessions

        h.key("c1", "1")  # c1 goes on
        await h.playing("c1", 2)
        assert ari.to("DELETE", f"playbacks/{first}")
        await h.drain()

    run(scenario())


def test_resync_leaves_dialed_peers_and_survives_a_failed_listing(harness: Harness) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        h.start("c1", exten="1001")
        await eventually(lambda: "peer-1" in h.engine.peers)
        ari.responses["GET", f"applications/{APP}"] = {"channel_ids": ["channel:c1", "peer-1"]}
        await h.engine.resync()
        await settle()
        assert ari.to("DELETE", "channels/peer-1") == []
        assert ari.to("DELETE", "channels/c1") == []
        assert "c1" in h.engine.sessions

        ari.failures["GET", f"applications/{APP}"] = AriError("connection lost")
        await h.engine.resync()  # only logged
        assert "c1" in h.engine.sessions
        await h.drain()

    run(scenario())


# e. Reloading the config


def test_reload_applies_to_new_calls_only(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        h, engine = harness, harness.engine
        h.start("c1")
        await h.playing("c1")

        def invalid(path: str) -> ConfigVersion:
            assert path == engine.config_path
            raise ConfigInvalid("config has errors", problems=("a.yaml:3: unknown key",))

        engine._prepare = invalid
        assert await engine.reload() is False
        assert engine.current.version == "v1"

        text = CONFIG.replace("say: Hi", "say: Hello from v2")
        v2 = ConfigVersion(make_config(tmp_path, text, name="v2"), "v2", MSK, {})
        engine._prepare = lambda path: v2
        assert await engine.reload() is True
        assert engine.current is v2
        assert await engine.reload() is True  # the same version again: nothing changes
        assert engine.current is v2

        h.start("c2")
        await h.playing("c2")
        assert engine.sessions["c2"].version.version == "v2"
        assert engine.sessions["c1"].version.version == "v1"
        assert h.said == ["Hi", "Hello from v2"]
        await eventually(lambda: bool(h.log.of("c2", "started")))  # written in a thread
        assert h.log.of("c2", "started")[0][2]["config_version"] == "v2"

        h.key("c1", "1")  # the old call still runs on v1
        await h.playing("c1", 2)
        assert h.said[-1] == "Bye"
        await h.drain()

    run(scenario())


def test_a_reload_with_another_directory_url_looks_up_there(
    harness: Harness, tmp_path: Path
) -> None:
    async def scenario() -> None:
        engine = harness.engine
        first = engine.directory
        same = CONFIG + "\nusers: []\n"  # another version, the same directory
        v2 = ConfigVersion(make_config(tmp_path, same, name="v2"), "v2", MSK, {})
        engine._prepare = lambda path: v2
        assert await engine.reload() is True
        assert engine.directory is first
        moved = CONFIG + f"\ndirectory: {{url: 'sqlite:///{tmp_path}/other.db'}}\n"
        v3 = ConfigVersion(make_config(tmp_path, moved, name="v3"), "v3", MSK, {})
        engine._prepare = lambda path: v3
        assert await engine.reload() is True
        assert engine.directory is not first
        assert str(engine.directory._engine.url) == f"sqlite:///{tmp_path}/other.db"  # type: ignore[union-attr]

    run(scenario())


# f. Dialing a phone


def test_dialing_a_phone_bridges_and_the_peer_hanging_up_ends_the_call(
    harness: Harness,
) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        h.start("c1", exten="1001")
        await eventually(lambda: bool(ari.to("POST", "channels/c1/ring")))
        assert ari.calls == [
            ("POST", "channels/c1/answer", None),
            (
                "POST",
                "channels",
                {
                    "endpoint": "PJSIP/1001",
                    "app": APP,
                    "appArgs": "dialed,c1",
                    "timeout": 30,
                    "callerId": "+7900",
                    "originator": "c1",
                    "channelId": "c1-d0",  # ours: a successor tells a call's leg by it
                },
            ),
            ("POST", "channels/c1/ring", None),
        ]
        assert h.engine.peers["peer-1"] is h.engine.sessions["c1"]

        h.engine.on_event(
            {"type": "StasisStart", "args": ["dialed", "c1"], "channel": {"id": "peer-1"}}
        )
        await eventually(lambda: bool(ari.to("POST", "bridges/b1/addChannel")))
        assert ari.calls[3:] == [
            ("POST", "bridges", {"type": "mixing"}),
            ("POST", "bridges/b1/addChannel", {"channel": "c1,peer-1"}),
            # The recording follows the caller: a snoop on their channel, recorded once
            # it is in the app.
            (
                "POST",
                "channels/c1/snoop",
                {"spy": "both", "app": APP, "appArgs": "recorder", "snoopId": "rec-astpbx-c1-1"},
            ),
        ]
        assert "peer-1" not in h.engine.sessions  # the peer is no call of its own
        h.engine.on_event(
            {"type": "StasisStart", "args": ["recorder"], "channel": {"id": "rec-astpbx-c1-1"}}
        )
        await eventually(lambda: bool(ari.to("POST", "channels/rec-astpbx-c1-1/record")))
        assert ari.to("POST", "channels/rec-astpbx-c1-1/record")[0][2] == {
            "name": "astpbx-c1-1",
            "format": "wav",
            "ifExists": "overwrite",
            "beep": False,
            "terminateOn": "none",
        }
        assert "rec-astpbx-c1-1" not in h.engine.sessions

        h.end("peer-1")
        ended = await h.ended("c1")
        assert ari.calls[7] == ("DELETE", "channels/c1", None)
        assert ari.to("DELETE", "bridges/b1")
        assert (ended["outcome"], ended["reason"]) == ("phone 1001", "dialed")
        assert h.engine.peers == {}
        assert h.log.of("c1", "ended")[0][2]["path"] == ["1001"]

    run(scenario())


def test_dial_with_a_custom_phone_dial_and_the_caller_hanging_up(tmp_path: Path) -> None:
    text = CONFIG.replace('goto: "200"', 'goto: "1001"')
    text += 'system:\n  asterisk: {phone_dial: "Local/{number}@phones"}\n'
    h = Harness(tmp_path, text)

    async def scenario() -> None:
        h.start("c1")
        first = await h.playing("c1")
        h.key("c1", "1")
        await eventually(lambda: bool(h.ari.to("POST", "channels/c1/ring")))
        assert h.ari.to("DELETE", f"playbacks/{first}")
        params = h.ari.to("POST", "channels")[0][2]
        assert params is not None
        assert (params["endpoint"], params["appArgs"]) == ("Local/1001@phones", "dialed,c1")
        h.end("c1")  # the caller gives up while the phone rings: the peer is hung up
        ended = await h.ended("c1")
        assert h.ari.to("DELETE", "channels/peer-1")
        assert ended["outcome"] == "phone 1001"
        assert h.engine.peers == {}
        assert h.ari.to("POST", "bridges") == []

    run(scenario())


def test_the_peer_may_enter_the_app_before_the_originate_returns(harness: Harness) -> None:
    async def scenario() -> None:
        h, ari = harness, harness.ari
        ari.hooks["POST", "channels"] = lambda: h.engine.on_event(
            {"type": "StasisStart", "args": ["dialed", "c1"], "channel": {"id": "peer-1"}}
        )
        h.start("c1", exten="1001")
        await eventually(lambda: bool(ari.to("POST", "channels/c1/snoop")))
        assert [c[1] for c in ari.calls] == [
            "channels/c1/answer",
            "channels",
            "channels/c1/ring",
            "bridges",
            "bridges/b1/addChannel",
            "channels/c1/snoop",
        ]
        h.end("c1")
        await h.ended("c1")
        assert ari.to("DELETE", "channels/peer-1") and ari.to("DELETE", "bridges/b1")
        assert h.engine.peers == {}

    run(scenario())


def test_a_peer_that_never_answers_ends_the_call(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.start("c1", exten="1001")
        await eventually(lambda: bool(h.ari.to("POST", "channels/c1/ring")))
        # No answer in time: Asterisk destroys the peer, which never entered the app.
        h.engine.on_event({"type": "ChannelDestroyed", "channel": {"id": "peer-1"}})
        ended = await h.ended("c1")
        assert h.ari.to("DELETE", "channels/c1")
        assert ended["outcome"] == "phone 1001"
        assert h.engine.peers == {}

    run(scenario())


def test_a_failed_dial_hangs_up_the_caller(harness: Harness) -> None:
    async def scenario() -> None:
        h = harness
        h.ari.failures["POST", "channels"] = AriError("POST channels: 400 Bad Request", 400)
        h.start("c1", exten="1001")
        await h.ended("c1")
        assert h.ari.to("DELETE", "channels/c1")
        assert h.engine.peers == {}

    run(scenario())


def test_sessions_are_call_sessions(harness: Harness) -> None:
    async def scenario() -> None:
        harness.start("c1")
        await harness.playing("c1")
        assert isinstance(harness.engine.sessions["c1"], CallSession)
        await harness.drain()

    run(scenario())


QUEUE_CONFIG = """\
phones:
  - {number: "1001", password: long-enough-secret}
playlists:
  - id: hold
    items:
      - scenario: queue_position
      - say: Please hold
menus:
  - number: "300"
    say: After the queue
queues:
  - number: "92000"
    members: ["1001"]
    playlist: hold
    on:
      - {key: "1", goto: "300"}
system:
  asterisk: {presence: always}
"""


def test_a_queued_caller_hears_the_playlist_with_their_position(tmp_path: Path) -> None:
    h = Harness(tmp_path, QUEUE_CONFIG)

    async def scenario() -> None:
        h.start("a", exten="92000")
        first = await h.playing("a")
        h.start("b", exten="92000")
        await h.playing("b")
        assert h.said[:2] == ["Ваш номер в очереди: 1.", "Ваш номер в очереди: 2."]
        h.finished("a", first)
        second = await h.playing("a", 2)
        assert h.said[-1] == "Please hold"
        h.finished("a", second)
        await h.playing("a", 3)  # round and round
        assert h.said[-1] == "Ваш номер в очереди: 1."
        # The member 1001 was rung for the first caller only.
        rung = [p for m, path, p in h.ari.calls if (m, path) == ("POST", "channels")]
        assert [p["appArgs"] for p in rung if p] == ["queued,a,1001"]
        h.key("b", "1")  # b leaves the queue for menu 300: the music stops first
        await h.playing("b", 2)
        assert h.said[-1] == "After the queue"
        hold_of_b = h.ari.plays("b")[0]["playbackId"]
        assert ("DELETE", f"playbacks/{hold_of_b}", None) in h.ari.calls
        h.end("a")
        h.end("b")
        await h.ended("a")

    run(scenario())


RACE_CONFIG = """\
phones:
  - {number: "1001", password: long-enough-secret}
  - {number: "1002", password: long-enough-secret}
queues:
  - number: "92000"
    members: ["1001", "1002"]
system:
  asterisk: {presence: always}
"""


def test_two_members_answering_at_once_are_never_rung_again_while_busy(
    tmp_path: Path,
) -> None:
    """Found by bench/queue.py: both members' StasisStarts in one read of the socket;
    the one connected second was seen free and rung for the third caller."""
    h = Harness(tmp_path, RACE_CONFIG)

    def rung() -> list[str]:
        return [
            p["appArgs"] for m, path, p in h.ari.calls if (m, path) == ("POST", "channels") and p
        ]

    async def scenario() -> None:
        for caller in "abc":
            h.start(caller, exten="92000")
            await eventually(lambda c=caller: c in h.engine.queues.calls)
        await eventually(lambda: len(rung()) == 2)
        ringing = {member: channel for channel, (_, member) in h.engine.queues.ringing.items()}
        for member in ("1001", "1002"):
            h.engine.on_event(
                {
                    "type": "StasisStart",
                    "args": ["queued", "x", member],
                    "channel": {"id": ringing[member]},
                }
            )
        await eventually(lambda: len(h.engine.queues.talking) == 2)
        await asyncio.sleep(0.05)
        assert rung() == ["queued,a,1001", "queued,b,1002"]  # c waits: nobody is free
        assert h.engine.queues.talking == {"1001": "a", "1002": "b"}
        assert h.engine.queues.position("c") == 1
        await h.drain()

    run(scenario())


TRUNK_CONFIG = """\
trunks:
  - {name: city, match: '7\\\\d{10}', inbound: "100", endpoint: PJSIP/city, lines: 2}
menus:
  - number: "100"
    say: Hello
"""


def test_a_trunks_lines_are_shared_by_inbound_outbound_and_dialer_calls(tmp_path: Path) -> None:
    h = Harness(tmp_path, TRUNK_CONFIG)
    trunk = h.engine.current.config.trunk_by_name["city"]

    async def scenario() -> None:
        assert h.engine.trunk_calls("city") == 0 and h.engine.dialer._line_free(trunk)
        h.engine.on_event(
            {
                "type": "StasisStart",
                "args": ["trunk", "city"],
                "channel": {"id": "in1", "caller": {"number": "+79001112233"}},
            }
        )
        await h.playing("in1")
        assert h.engine.trunk_calls("city") == 1 and h.engine.dialer._line_free(trunk)
        h.engine.dialer.calls["dialer-1-1"] = DialerCall(1, 1, "79001112233", "x", 1, "city")
        assert h.engine.trunk_calls("city") == 2
        assert not h.engine.dialer._line_free(trunk)  # both lines busy: the dialer waits
        await h.drain()

    run(scenario())


def test_asterisk_sends_every_event_type_the_engine_reads() -> None:
    """The call application's event filter (engine.EVENTS) must name every ARI event
    type the engine's code looks at: one left out would never arrive."""
    names = re.compile(
        r'"((?:Stasis|Channel|Playback|Recording|Bridge|Contact|Peer|Device)[A-Za-z]+|Dial)"'
    )
    read: set[str] = set()
    for source in (Path(__file__).parents[1] / "ast_pbx" / "engine").glob("*.py"):
        read |= set(names.findall(source.read_text(encoding="utf-8")))
    assert read, "no event type found: the pattern is wrong"
    assert read - set(EVENTS) == set()


def test_features_depend_on_ports_not_on_the_engine() -> None:
    """engine.py builds the features; they know it only through engine.ports: the
    imports point one way (even those made for the type checker only)."""
    package = Path(__file__).parent.parent / "ast_pbx" / "engine"
    for path in package.glob("*.py"):
        if path.name in ("engine.py", "main.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "ast_pbx.engine.engine" not in imported, path.name


# Adoption: another engine's calls (the live proof is tests/test_survival*.py)


def _adopting(harness: Harness, states: dict[str, str], channels: list[dict[str, Any]]) -> None:
    ari = harness.ari
    ari.responses["GET", f"applications/{APP}"] = {"channel_ids": [c["id"] for c in channels]}
    ari.responses["GET", "channels"] = channels
    answers = {f"ASTPBX_STATE_{c}": {"value": s} for c, s in states.items()}
    real = ari.request

    async def request(method: str, path: str, params: Any = None, body: Any = None) -> Any:
        if (method, path) == ("GET", "asterisk/variable"):
            return answers.get(str((params or {}).get("variable")), {"value": ""})
        return await real(method, path, params, body)

    ari.request = request  # type: ignore[method-assign]


def test_a_transfer_under_way_is_undone_when_adopted(harness: Harness) -> None:
    saved = Saved(
        TALKING,
        "+7900",
        "1001",
        visits=["1001"],
        ends="phone 1001",
        peer="c1-d0",
        bridge="b1",
        parties=["c1", "c1-d0"],
        phones={"c1-d0": "1001"},
        recordings=1,
        transfer=Transferring("c1-d0", target="c1-x2", consulting="b2", playbacks=["c1-t1"]),
    )
    channels = [{"id": c, "state": "Up"} for c in ("c1", "c1-d0", "c1-x2", "rec-astpbx-c1-1")]

    async def scenario() -> None:
        h, ari = harness, harness.ari
        _adopting(h, {"c1": saved.encode()}, channels)
        await h.engine.resync()
        await eventually(lambda: bool(ari.to("POST", "bridges/b1/addChannel")))
        assert ari.to("DELETE", "playbacks/c1-t1")  # the held side's music stops
        assert ari.to("DELETE", "channels/c1-x2")  # the target is hung up
        assert ari.to("DELETE", "bridges/b2")  # the consultation is gone
        assert ari.to("POST", "bridges/b1/addChannel")[0][2] == {"channel": "c1-d0"}
        # The conversation's own channels are the call's, not strays to hang up.
        assert not ari.to("DELETE", "channels/c1-d0") and not ari.to("DELETE", "channels/c1")
        assert not ari.to("DELETE", "channels/rec-astpbx-c1-1")
        assert not ari.to("POST", "bridges")  # no new bridge: the old one goes on
        assert h.engine.queues.talking == {"1001": "c1"}  # the operator is busy
        h.end("c1")
        ended = await h.ended("c1")
        assert ended["outcome"] == "phone 1001" and ended["path"] == ["1001"]

    run(scenario())


def test_a_caller_whose_engine_wrote_nothing_starts_over(harness: Harness) -> None:
    channels = [
        {"id": "c7", "state": "Up", "dialplan": {"context": "astpbx-phones", "exten": "100"}},
        {"id": "c7-d0", "state": "Up", "dialplan": {"context": "astpbx-phones", "exten": "s"}},
        {"id": "snoop-1", "state": "Up"},
    ]

    async def scenario() -> None:
        h, ari = harness, harness.ari
        _adopting(h, {}, channels)
        await h.engine.resync()
        await h.playing("c7")  # the menu of the number it dialed, from the start
        assert set(h.engine.sessions) == {"c7"}  # its leg is not taken for a caller
        assert ari.to("DELETE", "channels/c7-d0") and ari.to("DELETE", "channels/snoop-1")
        # Logged once, whichever engine did.
        assert [e[2]["once"] for e in h.log.of("c7", "started")] == [True]
        await h.drain()

    run(scenario())


def test_after_an_asterisk_restart_the_dialer_files_its_dead_calls(harness: Harness) -> None:
    """Asterisk restarted: its channels are gone, and so must the dialer's calls be — a
    line held and a lease renewed for ever would stop every engine dialing that task."""
    finished: list[tuple[int, str]] = []

    class Store:
        def finish(self, attempt: int, outcome: str, *args: Any, **kwargs: Any) -> None:
            finished.append((attempt, outcome))

        def open_attempts(self) -> list[Any]:
            return []

    async def scenario() -> None:
        h = harness
        h.engine.dialer.store = Store()  # type: ignore[assignment]
        call = DialerCall(7, 70, "79001112233", "x", 1, "city", rang=True, answered=True)
        h.engine.dialer.calls["astpbx-dialer-7-70"] = call
        h.ari.responses["GET", f"applications/{APP}"] = {"channel_ids": []}
        h.ari.responses["GET", "channels"] = []
        await h.engine.resync()
        await eventually(lambda: finished == [(70, "answered")])
        assert h.engine.dialer.calls == {}
        assert h.engine.trunk_calls("city") == 0

    run(scenario())


def test_a_reloaded_queue_rings_its_new_members_for_callers_already_waiting(
    tmp_path: Path,
) -> None:
    """A queue kept the members it had when its first caller came; a reload that moves
    the queue to other members must ring them from the next decision on."""
    h = Harness(tmp_path, RACE_CONFIG.replace('members: ["1001", "1002"]', 'members: ["1001"]'))

    def rung() -> list[str]:
        return [
            p["appArgs"] for m, path, p in h.ari.calls if (m, path) == ("POST", "channels") and p
        ]

    async def scenario() -> None:
        h.ari.failures["POST", "channels"] = AriError("1001 is out of order", 503)
        h.start("a", exten="92000")
        await eventually(lambda: "queued,a,1001" in rung())
        moved = RACE_CONFIG.replace('members: ["1001", "1002"]', 'members: ["1002"]')
        v2 = ConfigVersion(make_config(tmp_path, moved, name="v2"), "v2", MSK, {})
        h.engine._prepare = lambda path: v2
        assert await h.engine.reload() is True
        del h.ari.failures["POST", "channels"]
        await h.engine.queues.dispatch("92000")
        await eventually(lambda: "queued,a,1002" in rung())
        await h.drain()

    run(scenario())


def test_a_member_that_cannot_be_rung_passes_the_caller_to_the_next(tmp_path: Path) -> None:
    """A ring that fails at once (the phone cannot be dialed) used to leave the caller
    waiting for ever: nobody else rung, no timer set."""
    h = Harness(tmp_path, RACE_CONFIG)
    real = h.ari.request

    async def request(method: str, path: str, params: Any = None, body: Any = None) -> Any:
        if (method, path) == ("POST", "channels") and (params or {}).get("endpoint") == (
            "PJSIP/1001"
        ):
            h.ari.calls.append((method, path, dict(params)))
            raise AriError("allocation failed", 500)
        return await real(method, path, params, body)

    h.ari.request = request  # type: ignore[method-assign]

    async def scenario() -> None:
        h.start("a", exten="92000")
        await eventually(
            lambda: any(p and p.get("endpoint") == "PJSIP/1002" for _, _, p in h.ari.calls), 5
        )
        await h.drain()

    run(scenario())


def test_the_engine_stops_when_its_ari_connection_task_dies(harness: Harness) -> None:
    """A connection task that ends with an error (a bug, not a lost socket: those are
    retried inside it) must not leave an engine that answers no call: it stops."""

    async def broken() -> None:
        raise RuntimeError("the ARI task failed")

    async def closed() -> None:
        return None

    async def scenario() -> None:
        harness.ari.run = broken  # type: ignore[attr-defined]
        harness.ari.close = closed  # type: ignore[attr-defined]
        stop = asyncio.Event()
        await asyncio.wait_for(harness.engine.run(stop), 5)
        assert stop.is_set()

    run(scenario())
