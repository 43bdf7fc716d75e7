"""The `system` section: where astpbx finds Asterisk, its database, its files.

Every key has a default so that a config without `system` runs locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ast_pbx.config.model import Located

DEFAULT_DATA_DIR = "/var/lib/astpbx"


@dataclass(frozen=True)
class Ari(Located):
    url: str = "http://127.0.0.1:8088"
    username: str = "astpbx"
    password: str = ""
    app: str = "astpbx"


@dataclass(frozen=True)
class Paths(Located):
    data: str = DEFAULT_DATA_DIR
    audio: str | None = None
    tts_cache: str | None = None
    recordings: str | None = None
    tmp: str | None = None

    def dir(self, kind: str) -> str:
        """audio/, tts-cache/, recordings/, tmp/ below `data` unless set one by one."""
        own: str | None = getattr(self, kind.replace("-", "_"))
        return own or os.path.join(self.data, kind)


@dataclass(frozen=True)
class Tts(Located):
    engine: str = "festival"
    voice: str = "ru"
    yandex: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Api(Located):
    username: str = "api"
    password: str = ""


@dataclass(frozen=True)
class System(Located):
    timezone: str | None = None  # None: the host zone
    ari: Ari = Ari()
    asterisk_config_dir: str = "/etc/asterisk/custom"
    asterisk_sip: str = "127.0.0.1:5060"  # HOST:PORT of the PJSIP UDP transport
    # How the engine dials a phone; a test bench or another PBX may answer for the phones.
    phone_dial: str = "PJSIP/{number}"
    # When a queue member is online: "endpoint" (its PJSIP endpoint's state) or "always".
    presence: str = "endpoint"
    database: str | None = None  # None: SQLite file in the data directory
    http_listen: str = "127.0.0.1:8080"
    paths: Paths = Paths()
    tts: Tts = Tts()
    api: Api = Api()
    # When no engine takes a call (the generated dialplan's fallback, see man astpbx(1)).
    engine_wait: float = 10.0
    handover_grace: float = 60.0
    unavailable_sound: str = "pls-try-call-later"

    def zone(self) -> tzinfo:
        """The timezone rules and tests use: `timezone`, or the host's when none is set."""
        if self.timezone:
            try:
                return ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                pass  # `check` reports it (unknown-timezone); no command runs such a config
        host = datetime.now().astimezone().tzinfo
        assert host is not None
        return host

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{os.path.join(self.paths.data, 'astpbx.db')}"
