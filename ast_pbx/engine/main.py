"""Wiring of the engine: config version, database, TTS and ARI put together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ast_pbx.audio import convert_all
from ast_pbx.config.configuration import Config
from ast_pbx.engine.engine import Clock, Engine
from ast_pbx.engine.leader import Leadership
from ast_pbx.engine.version import ConfigVersion, prepare
from ast_pbx.errors import AstPbxError
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database, open_database
from ast_pbx.storage.dialer import DialerStore
from ast_pbx.storage.operators import OperatorStore
from ast_pbx.storage.queues import QueueStats
from ast_pbx.tts import TtsCache, asterisk_media, ensure_async, make_engine
from ast_pbx.web.app import create_app, load_secret
from ast_pbx.web.interactions import start_interactions
from ast_pbx.web.server import HttpServer

log = logging.getLogger("astpbx")

ARI_LOST = 1.0  # seconds: twice this without ARI and a leader leaves the site to a standby


def _converted(config: Config, audio_dir: Path) -> dict[str, Path]:
    return dict(convert_all(config, audio_dir).paths)


def prepare_version(path: str) -> ConfigVersion:
    """Load, check and get ready a config for the engine (blocking)."""
    return prepare(path, _converted)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def serve(
    path: str,
    version: ConfigVersion,
    stop: asyncio.Event,
    *,
    clock: Clock = _utc_now,
    started: Callable[[Engine], None] | None = None,
    hand_over: bool = False,
) -> bool:
    """Run the engine until `stop` is set: True then. False when it stopped leading the
    site (its lock connection failed, or it lost ARI while a standby may take over): it
    may stand by again. With `hand_over` the calls are left for the next engine."""
    system = version.config.system
    database = open_database(system.database_url)
    leadership = Leadership(database.engine, system.ari.app)
    try:
        if not await _lead(leadership, stop):
            return True
        return await _serve_leading(
            path, version, stop, database, leadership, clock, started, hand_over
        )
    finally:
        leadership.release()
        database.dispose()


async def _lead(leadership: Leadership, stop: asyncio.Event) -> bool:
    """Wait to lead the site; False if `stop` came first."""
    acquiring = asyncio.ensure_future(leadership.acquire())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([acquiring, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not acquiring.done():
        acquiring.cancel()
        return False
    acquiring.result()
    return True


async def _watch_leading(engine: Engine, leadership: Leadership, stop: asyncio.Event) -> None:
    """Set `stop` when this engine must stop acting: its lock is lost, or (when a
    standby can take over) ARI is unreachable for ARI_LOST seconds."""
    lost = asyncio.ensure_future(leadership.lost())
    while not lost.done():
        await asyncio.wait([lost], timeout=ARI_LOST)
        if leadership.shared and not engine.ari.connected and not lost.done():
            await asyncio.sleep(ARI_LOST)
            if not engine.ari.connected:
                log.error("ARI unreachable for %.0f s: leaving the site to a standby", ARI_LOST)
                break
    lost.cancel()
    engine.stop_mode = "abandon"  # another engine may act already: no request any more
    stop.set()


async def _serve_leading(  # noqa: PLR0917 - serve's own arguments, passed on
    path: str,
    version: ConfigVersion,
    stop: asyncio.Event,
    database: Database,
    leadership: Leadership,
    clock: Clock,
    started: Callable[[Engine], None] | None,
    hand_over: bool,
) -> bool:
    system = version.config.system
    await asyncio.to_thread(database.migrate)
    cache = TtsCache(Path(system.paths.dir("tts-cache")), make_engine(system.tts), system.tts.voice)

    spoken: dict[str, str] = {}  # text → media: the same prompts come back all day

    async def say(text: str) -> str:
        media = spoken.get(text)
        if media is None:
            media = spoken[text] = asterisk_media(await ensure_async(cache, text))
        return media

    engine = Engine(
        path,
        version,
        clock=clock,
        prepare=prepare_version,
        call_log=CallLog(database),
        queue_stats=QueueStats(database),
        operators=OperatorStore(database),
        dialer=DialerStore(database),
        callbacks=CallbackStore(database),
        tts=say,
    )

    async def dial_now(task: int) -> None:
        engine.dialer.wake()

    app = create_app(
        database=database,
        config=lambda: engine.current.config,
        clock=clock,
        engine=engine,
        api_username=system.api.username,
        api_password=system.api.password,
        secret_key=await asyncio.to_thread(load_secret, system.paths.data),
        timezone=system.zone(),
        dial_now_hook=dial_now,
        call_back_hook=engine.callback_calls.call,
    )
    http = HttpServer(app, system.http_listen)
    log.info(
        "astpbx engine: config %s version %s, ARI %s app %s",
        path,
        version.version,
        system.ari.url,
        system.ari.app,
    )
    # History entries for the calls operators pick up (the operator page's right pane).
    interactions = start_interactions(engine, database)
    await http.start()
    if started is not None:
        started(engine)
    watching = asyncio.ensure_future(_watch_leading(engine, leadership, stop))
    serving = asyncio.ensure_future(_watch_http(http, stop))
    try:
        await engine.run(stop, hand_over=hand_over)
    finally:
        watching.cancel()
        interactions.cancel()
        app.state.live.close()  # open event streams would hold the server
        http_failed = serving.done() and not serving.cancelled() and serving.result()
        serving.cancel()
        await http.stop()
        app.state.auth.close()
    if http_failed:  # a supervisor (systemd) starts the engine again; the calls wait for it
        raise AstPbxError(f"the HTTP server on {system.http_listen} stopped")
    return engine.stop_mode != "abandon"


async def _watch_http(http: HttpServer, stop: asyncio.Event) -> bool:
    """True (and `stop` set) if the HTTP server ends on its own: the engine hands its
    calls over and exits with an error rather than run on without pages and API."""
    await http.stopped()
    if stop.is_set():
        return False
    log.error("the HTTP server stopped; the engine stops and leaves its calls to the next")
    stop.set()
    return True
