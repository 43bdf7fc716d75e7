"""Conversation recordings: what the caller says and hears, from the moment they are
connected until they hang up, recorded by Asterisk.

The recording is of a snoop channel on the caller's channel (spy both: both directions
mixed), not of the conversation's bridge: a `*2` transfer takes the transferor out of
the bridge and leaves the caller alone in it with the hold playlist, and Asterisk's
bridge recording gets no audio while a bridge has one member (a 22 s call with a
transfer left a 3.3 s file). The snoop follows the caller through every bridge.

Asterisk writes the file into its own spool; when the recording finishes (the bridge is
gone) the engine fetches it over ARI into `paths.recordings/YYYY-MM-DD/` — which works
the same when Asterisk runs on another host — deletes Asterisk's copy and links the file
to the call's log entry.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.engine.legs import Leg, app_args

if TYPE_CHECKING:
    from ast_pbx.engine.ports import Host

log = logging.getLogger("astpbx.recording")

FORMAT = "wav"


def recording_name(call: str, part: int) -> str:
    """Asterisk's name of a recording: one per bridge a call is in (a transfer makes a
    second). Channel ids are `[0-9.]+` or ours, safe in a file name."""
    return f"astpbx-{call}-{part}"


class Recorder:
    def __init__(self, engine: Host) -> None:
        self.engine = engine
        self.pending: dict[str, str] = {}  # recording name → call id
        self.snoops: dict[str, str] = {}  # snoop channel → its recording's name

    async def start(self, call: str, part: int) -> None:
        """Record call `call` (the caller's channel id) from now until it hangs up."""
        name = recording_name(call, part)
        snoop = f"rec-{name}"
        self.snoops[snoop] = name
        self.pending[name] = call
        try:
            await self.engine.ari.request(
                "POST",
                f"channels/{call}/snoop",
                {
                    "spy": "both",
                    "app": self.engine.app,
                    "appArgs": app_args(Leg.RECORDER),
                    "snoopId": snoop,
                },
            )
        except AriError as exc:  # the call goes on unrecorded rather than not at all
            log.error("call %s: recording did not start: %s", call, exc)
            self.snoops.pop(snoop, None)
            self.pending.pop(name, None)

    def adopt(self, call: str, parts: int) -> None:
        """The recordings a predecessor engine started for `call` go on: their snoops
        are ours, and their files are collected when they finish."""
        for part in range(1, parts + 1):
            name = recording_name(call, part)
            self.snoops[f"rec-{name}"] = name
            self.pending[name] = call

    async def collect_left(self, ended: set[str]) -> None:
        """Recordings of calls that ended while no engine ran (`ended`: their channel
        ids): Asterisk finished them; fetch each like any other."""
        try:
            stored = await self.engine.ari.request("GET", "recordings/stored")
        except AriError as exc:
            log.warning("cannot list the stored recordings: %s", exc)
            return
        for recording in stored if isinstance(stored, list) else []:
            name = str(recording.get("name", ""))
            call = name.removeprefix("astpbx-").rpartition("-")[0]
            if name.startswith("astpbx-") and call in ended and name not in self.pending:
                await self._collect(call, name, failed=False)

    def owns(self, channel: str) -> bool:
        return channel in self.snoops

    def snoop_started(self, channel: str) -> None:
        """The snoop entered the app (its StasisStart can come before the answer to
        the request that made it): start recording it."""
        name = self.snoops.get(channel)
        if name is not None:
            self.engine.spawn(self._record(channel, name))

    async def _record(self, snoop: str, name: str) -> None:
        try:
            await self.engine.ari.request(
                "POST",
                f"channels/{snoop}/record",
                {
                    "name": name,
                    "format": FORMAT,
                    "ifExists": "overwrite",
                    "beep": False,
                    "terminateOn": "none",
                },
            )
        except AriError as exc:
            log.error("call %s: recording did not start: %s", self.pending.get(name), exc)
            self.pending.pop(name, None)
            await self.engine.ari.quiet("DELETE", f"channels/{snoop}")

    def snoop_gone(self, channel: str) -> None:
        self.snoops.pop(channel, None)

    def handles(self, event: dict[str, Any]) -> bool:
        recording = event.get("recording") or {}
        return str(recording.get("name", "")) in self.pending

    def on_event(self, event: dict[str, Any]) -> None:
        name = str((event.get("recording") or {}).get("name", ""))
        if event.get("type") in ("RecordingFinished", "RecordingFailed"):
            call = self.pending.pop(name, None)
            if call is not None:
                self.engine.spawn(self._collect(call, name, event.get("type") == "RecordingFailed"))

    async def _collect(self, call: str, name: str, failed: bool) -> None:
        if failed:
            log.error("call %s: recording %s failed", call, name)
            return
        target = self._target(name, self.engine.clock())
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            size = await self.engine.ari.download(f"recordings/stored/{name}/file", target)
        except (AriError, OSError) as exc:
            # Asterisk keeps its copy: nothing is lost, an administrator can fetch it.
            log.error("call %s: recording %s not fetched: %s", call, name, exc)
            return
        await self.engine.ari.quiet("DELETE", f"recordings/stored/{name}")
        log.info("call %s: recording %s (%d bytes)", call, target, size)
        self.engine.record("recorded", call, str(target))

    def _target(self, name: str, now: datetime) -> Path:
        system = self.engine.current.config.system
        day = now.astimezone(system.zone()).date().isoformat()
        return Path(system.paths.dir("recordings")) / day / f"{name}.{FORMAT}"
