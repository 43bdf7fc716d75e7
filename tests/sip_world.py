"""A SIP world for conformance tests: examples/mfc on the sandbox, reached only by
third-party user agents (SIPp callers through trunks, pjsua2 phones registering).

- Three trunks on 127.0.0.1, one per DTMF mode, each identified by its port (the
  SIPp caller's): `rt` (rfc4733, the example's own trunk), `rt_info`, `rt_inband`.
- Phones register from 127.0.0.1 as well, on ports of their own: phones and trunks
  on one host must each be themselves.
- The engine runs in this process (`LiveEngine`) with its clock on a Tuesday morning;
  `Events` keeps every ARI event it was given, to prove each came once.
"""

from __future__ import annotations

import collections
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ast_pbx.core.scenarios import FixtureDirectory
from ast_pbx.core.simulator import simulate
from ast_pbx.engine.engine import Engine
from ast_pbx.lint.linter import load_for_use
from ast_pbx.storage.calls import CallLog, CallRecord
from tests.conftest import EXAMPLE
from tests.live_engine import LiveEngine, MovableClock, eventually
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sipp import Caller

MSK = ZoneInfo("Europe/Moscow")
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=MSK)
DTMF_MODES = ("rfc4733", "info", "inband")
TRUNK_OF_MODE = {"rfc4733": "rt", "info": "rt_info", "inband": "rt_inband"}


def write_config(
    sandbox: SandboxInfo,
    base: Path,
    ports: dict[str, int],
    extra: str = "",
    files: dict[str, str] | None = None,
) -> Path:
    """examples/mfc with a system section for the sandbox, its demo information system
    in `base`, and one trunk per DTMF mode on 127.0.0.1:`ports[mode]`."""
    config = base / "config"
    shutil.copytree(
        EXAMPLE,
        config,
        ignore=shutil.ignore_patterns("system.yaml", "trunks.yaml", "directory.yaml", "*.md"),
    )
    database = base / "mfc-demo.db"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "directory" / "create.py"), str(database)],
        check=True,
        capture_output=True,
    )
    directory = (EXAMPLE / "directory.yaml").read_text(encoding="utf-8")
    directory = directory.replace(
        "${MFC_DB_URL:-sqlite:////var/lib/astpbx/mfc-demo.db}", f"sqlite:///{database}"
    )
    (config / "directory.yaml").write_text(directory, encoding="utf-8")
    (config / "system.yaml").write_text(sandbox.system_yaml(base, extra), encoding="utf-8")
    trunks = ["trunks:"]
    for mode, port in ports.items():
        name = TRUNK_OF_MODE[mode]
        trunks.append(f"  - name: {name}")
        if name == "rt":
            trunks.append("    match: '\\+?\\d{7,}'")
        trunks += [
            '    inbound: "90000"',
            "    external: true",
            "    host: 127.0.0.1",
            f"    port: {port}",
            f"    dtmf: {mode}",
        ]
    (config / "trunks.yaml").write_text("\n".join(trunks) + "\n", encoding="utf-8")
    for name, text in (files or {}).items():
        (config / name).write_text(text, encoding="utf-8")
    return config


@dataclass
class Events:
    """Every ARI event the engine was handed, as JSON text, in order."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    # The engine's REST requests: (when, method, path), the clock of `_received`.
    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def wrap(self, engine: Engine) -> None:
        handler, request = engine.ari._on_event, engine.ari.request

        def record(event: dict[str, Any]) -> None:
            copy = json.loads(json.dumps(event, default=str))
            copy["_received"] = time.time()
            self.seen.append(copy)
            handler(event)

        async def requested(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            self.requests.append((time.time(), method, path))
            return await request(method, path, *args, **kwargs)

        engine.ari._on_event = record
        engine.ari.request = requested  # type: ignore[method-assign]

    def duplicates(self) -> list[str]:
        """Events that came more than once: their type, channel and time.

        ChannelVarset is left out: Asterisk itself sets BRIDGEPEER and BRIDGEPVTCALLID
        again, to the same value in the same millisecond, each time a bridge's members
        change (a recording joining), so identical copies of it are real events. So is
        ChannelHangupRequest: Asterisk marks a channel hung up once more, with the same
        cause, as it runs the channel's hangup handler (the dialplan's astpbx-ended),
        and the app sees that second one when it comes before the StasisEnd (one SIP
        call in a few dozen). A doubled delivery doubles every other event type as
        well, which this catches."""
        texts = collections.Counter(
            json.dumps({k: v for k, v in e.items() if not k.startswith("_")}, sort_keys=True)
            for e in self.seen
            if e.get("type") not in ("ChannelVarset", "ChannelHangupRequest")
        )
        return [_summary(json.loads(text)) for text, count in texts.items() if count > 1]

    def of_channel(self, channel: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.seen
            if (e.get("channel") or {}).get("id") == channel
            or str((e.get("playback") or {}).get("target_uri", "")).endswith(channel)
        ]


@dataclass
class SipWorld:
    sandbox: SandboxInfo
    config: Path
    runner: LiveEngine
    callers: dict[str, Caller]  # by DTMF mode
    events: Events
    spoken: list[str]  # every text the engine had TTS say

    @property
    def engine(self) -> Engine:
        assert self.runner.engine is not None
        return self.runner.engine

    @property
    def log(self) -> CallLog:
        log = self.engine.call_log
        assert isinstance(log, CallLog)
        return log

    def last_call(self) -> int:
        return self.log.last_id()

    def logged(self, after: int, number: str, timeout: float = 15) -> CallRecord:
        """The engine's closed log entry of the call to `number` after call `after`."""

        def closed() -> CallRecord | None:
            calls = [c for c in self.log.logged_after(after, called=number) if c.ended_at]
            return calls[-1] if calls else None

        found: CallRecord = eventually(closed, timeout)
        return found

    def simulated(self, number: str, input_text: str, trunk: str = "rt") -> list[str]:
        """The path `astpbx simulate` gives the same call."""
        config = load_for_use(str(self.config), need_env=False).config
        outcome = simulate(
            config,
            to=number,
            caller="+79001112233",
            at=TUESDAY,
            tz=MSK,
            input_text=input_text,
            directory=FixtureDirectory(),
            trunk=next(t for t in config.trunks if t.name == trunk),
        )
        return list(outcome.visits)


def start_world(
    sandbox: SandboxInfo,
    base: Path,
    extra: str = "",
    dialplan: str | None = None,
    files: dict[str, str] | None = None,
) -> tuple[SipWorld, Callable[[], None]]:
    """The world and a function that ends it; the config is applied to the sandbox.
    `files` are more config files (name → YAML)."""
    ports = {mode: free_port(socket.SOCK_DGRAM) for mode in DTMF_MODES}
    config = write_config(sandbox, base, ports, extra, files)
    applied = sandbox.applied(config, dialplan)
    applied.__enter__()
    clock = MovableClock()
    clock.set(TUESDAY)
    runner = LiveEngine(config, clock)
    spoken: list[str] = []
    try:
        engine = runner.start()
    except BaseException:
        applied.__exit__(None, None, None)
        raise
    say = engine.tts

    async def speak(text: str) -> str:
        spoken.append(text)
        assert say is not None
        media: str = await say(text)
        return media

    engine.tts = speak
    events = Events()
    events.wrap(engine)
    callers = {
        mode: Caller(sandbox.sip, port, base / f"sipp-{mode}") for mode, port in ports.items()
    }
    world = SipWorld(sandbox, config, runner, callers, events, spoken)

    def stop() -> None:
        runner.stop()
        applied.__exit__(None, None, None)

    return world, stop


def _summary(event: dict[str, Any]) -> str:
    channel = (event.get("channel") or {}).get("name", "")
    detail = event.get("variable") or event.get("digit") or ""
    return f"{event.get('type')} {channel} {detail} {event.get('timestamp')}"
