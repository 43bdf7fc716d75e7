"""Turn merged, schema-checked YAML into `Config`.

Compilation is forgiving: a value of the wrong type reads as missing (the
schema check has already reported it), an item without its identifying key is
left out. So `check` can still run every semantic rule on a broken config and
report all problems in one run, and the result never raises.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import (
    DTMF_MODES,
    Audio,
    CallTest,
    Dialer,
    Directory,
    DtmfMode,
    Handler,
    Menu,
    Phone,
    Playlist,
    Prompt,
    Queue,
    Regex,
    Rule,
    Transfer,
    Trunk,
    User,
)
from ast_pbx.config.problems import Where
from ast_pbx.config.system import Api, Ari, Paths, System, Tts
from ast_pbx.config.timespec import DAYS, SpanError, TimeSpan
from ast_pbx.config.yamlread import LMap, LSeq

_T = TypeVar("_T")
PROMPT_KINDS = ("say", "audio", "scenario")


class Raw:
    """Typed, forgiving reads of one YAML mapping."""

    def __init__(self, node: LMap) -> None:
        self.node = node

    def at(self, key: str) -> Where:
        return self.node.value_at.get(key, self.node.where)

    @property
    def place(self) -> dict[str, Any]:
        # Views, not copies: the loaded tree is never changed after loading.
        lists = {k: tuple(v.item_at) for k, v in self.node.items() if isinstance(v, LSeq)}
        return {
            "where": self.node.where,
            "fields": MappingProxyType(self.node.value_at),
            "lists": MappingProxyType(lists),
        }

    def get(self, key: str, kind: type[_T] | tuple[type, ...]) -> Any:
        value = self.node.get(key)
        if isinstance(value, bool) and kind is not bool:
            return None  # YAML true is not a number or a string here
        return value if isinstance(value, kind) else None

    def text(self, key: str) -> str | None:
        value: str | None = self.get(key, str)
        return value

    def number(self, key: str) -> str | None:
        return as_number(self.node.get(key))

    def integer(self, key: str, default: int) -> int:
        value = self.get(key, int)
        return default if value is None else int(value)

    def real(self, key: str, default: float) -> float:
        seconds = as_seconds(self.get(key, (int, float)))
        return default if seconds is None else seconds

    def flag(self, key: str, default: bool) -> bool:
        value = self.node.get(key)
        return value if isinstance(value, bool) else default

    def seq(self, key: str) -> LSeq | None:
        value = self.node.get(key)
        return value if isinstance(value, LSeq) else None

    def map(self, key: str) -> Raw:
        value = self.node.get(key)
        return Raw(value if isinstance(value, LMap) else LMap(self.node.where))


def as_seconds(value: Any) -> float | None:
    """A number of seconds or minutes; an integer too large for a float reads as missing
    (the schema reports it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def as_number(value: Any) -> str | None:
    """A number as the config language reads it: a string, or a YAML integer (warned about)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def compile_regex(source: str, where: Where) -> Regex:
    try:
        pattern: re.Pattern[str] | None = re.compile(source)
    except (re.error, OverflowError, RecursionError, ValueError):
        pattern = None
    return Regex(source, pattern, where=where)


def _maps(items: Iterable[Any]) -> Iterable[Raw]:
    return (Raw(item) for item in items if isinstance(item, LMap))


def _collect(items: Iterable[Any], build: Callable[[Raw], _T | None]) -> tuple[_T, ...]:
    return tuple(obj for obj in (build(raw) for raw in _maps(items)) if obj is not None)


def build_phone(raw: Raw) -> Phone | None:
    number = raw.number("number")
    if number is None:
        return None
    return Phone(
        number,
        raw.text("password") or "",
        raw.text("name"),
        raw.text("type") or "simple",
        dtmf=_dtmf(raw),
        **raw.place,
    )


def build_trunk(raw: Raw) -> Trunk | None:
    name = raw.text("name")
    if name is None:
        return None
    match = raw.text("match")
    username = raw.node.get("username")
    return Trunk(
        name,
        compile_regex(match, raw.at("match")) if match is not None else None,
        raw.number("inbound"),
        raw.flag("external", False),
        raw.text("host"),
        raw.get("port", int),
        None if username is None else str(username),
        raw.text("password"),
        raw.text("endpoint"),
        raw.get("lines", int),
        dtmf=_dtmf(raw),
        **raw.place,
    )


def _dtmf(raw: Raw) -> DtmfMode:
    """The DTMF mode; an unknown one is the schema's error, compiled as the default."""
    value = raw.text("dtmf")
    return next((mode for mode in DTMF_MODES if mode == value), "rfc4733")


def build_audio(raw: Raw) -> Audio | None:
    ident, file = raw.text("id"), raw.text("file")
    if ident is None or file is None:
        return None
    base = os.path.dirname(raw.node.where.file)
    return Audio(ident, os.path.abspath(os.path.join(base, file)), raw.text("title"), **raw.place)


def build_prompt(raw: Raw) -> Prompt | None:
    """The first of say/audio/scenario; `exactly-one` reports when there are several."""
    for kind in PROMPT_KINDS:
        value = raw.text(kind)
        if value is not None:
            return Prompt(kind, value, where=raw.at(kind))  # type: ignore[arg-type]
    return None


def build_playlist(raw: Raw) -> Playlist | None:
    ident = raw.text("id")
    if ident is None:
        return None
    items = _collect(raw.seq("items") or (), build_prompt)
    order: Literal["in_order", "random"] = "random" if raw.text("order") == "random" else "in_order"
    return Playlist(ident, items, raw.text("title"), order, **raw.place)


def build_handler(raw: Raw) -> Handler | None:
    goto = raw.number("goto")
    key = raw.number("key")
    if key is not None:
        return Handler("key", goto, key=key, **raw.place)
    digits = raw.text("digits")
    if digits is not None:
        return Handler("digits", goto, digits=compile_regex(digits, raw.at("digits")), **raw.place)
    timeout = as_seconds(raw.get("timeout", (int, float)))
    if timeout is not None:
        return Handler("timeout", goto, timeout=timeout, **raw.place)
    return None


def build_menu(raw: Raw) -> Menu | None:
    number = raw.number("number")
    if number is None:
        return None
    handlers = _collect(raw.seq("on") or (), build_handler)
    return Menu(
        number, build_prompt(raw), handlers, raw.text("name"), raw.flag("entry", False), **raw.place
    )


def build_queue(raw: Raw) -> Queue | None:
    number = raw.number("number")
    if number is None:
        return None
    members = tuple(m for m in map(as_number, raw.seq("members") or ()) if m is not None)
    return Queue(
        number,
        members,
        raw.text("name"),
        raw.integer("ring_at_once", 1),
        raw.real("ring_timeout", 15.0),
        raw.text("playlist"),
        raw.flag("leave_when_empty", False),
        raw.flag("sticky", False),
        _collect(raw.seq("on") or (), build_handler),
        **raw.place,
    )


def _spans(values: Iterable[Any]) -> tuple[TimeSpan, ...]:
    spans = []
    for value in values:
        try:
            spans.append(TimeSpan.parse(value if isinstance(value, str) else ""))
        except SpanError:
            continue  # `bad-hours` reports it
    return tuple(spans)


def build_rule(raw: Raw) -> Rule | None:
    number = raw.number("number")
    if number is None:
        return None
    callers = raw.seq("callers")
    patterns = raw.seq("caller_patterns")
    days = raw.seq("days")
    hours = raw.seq("hours")
    return Rule(
        number,
        raw.number("goto"),
        None if callers is None else frozenset(filter(None, map(as_number, callers))),
        None
        if patterns is None
        else tuple(
            compile_regex(source, where)
            for source, where in zip(patterns, patterns.item_at, strict=True)
            if isinstance(source, str)
        ),
        None if days is None else frozenset(DAYS.index(d) for d in days if d in DAYS),
        None if hours is None else _spans(hours),
        **raw.place,
    )


def build_dialer(raw: Raw) -> Dialer:
    hours = _spans([raw.node["hours"]]) if "hours" in raw.node else ()
    return Dialer(
        raw.flag("enabled", False),
        raw.integer("lines", 2),
        raw.real("retry_after", 30.0),
        raw.integer("max_unanswered", 3),
        raw.integer("max_failed", 5),
        hours[0] if hours else None,
        raw.real("ring_timeout", 40.0),
        **raw.place,
    )


def build_user(raw: Raw) -> User | None:
    login = as_number(raw.node.get("login"))  # a numeric personnel number reads as text
    if login is None:
        return None
    role = raw.text("role")
    if role not in ("operator", "manager", "admin"):
        role = "operator"
    return User(login, role, raw.text("name"), raw.text("password_hash"), **raw.place)  # type: ignore[arg-type]


def build_directory(raw: Raw) -> Directory:
    queries = raw.map("queries").node
    texts = {name: sql for name, sql in queries.items() if isinstance(sql, str)}
    return Directory(raw.text("url"), MappingProxyType(texts), **raw.place)


def parse_local_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M")
    except ValueError:
        return None


def _texts(raw: Raw, key: str) -> Mapping[str, str]:
    return MappingProxyType({k: v for k, v in raw.map(key).node.items() if isinstance(v, str)})


def build_test(raw: Raw) -> CallTest | None:
    name, to = raw.text("name"), raw.number("to")
    if name is None or to is None:
        return None
    expect, directory = raw.map("expect"), raw.map("directory")
    at = raw.text("at")
    visits = expect.seq("visits")
    cases = {
        phone: tuple(str(c) for c in found)
        for phone, found in directory.map("cases_in_work").node.items()
        if isinstance(found, list)
    }
    return CallTest(
        name,
        to,
        raw.number("from"),
        parse_local_time(at) if at else None,
        raw.text("input") or "",
        None if visits is None else tuple(filter(None, map(as_number, visits))),
        expect.text("ends"),
        tuple(s for s in expect.seq("says") or () if isinstance(s, str)),
        _texts(directory, "case_status"),
        MappingProxyType(cases),
        _texts(directory, "caller_name"),
        **raw.place,
    )


def build_system(raw: Raw) -> System:
    ari, http, paths, tts, api = (raw.map(k) for k in ("ari", "http", "paths", "tts", "api"))
    asterisk = raw.map("asterisk")
    base = os.path.dirname(raw.node.where.file)

    def path(section: Raw, key: str) -> str | None:
        value = section.text(key)
        return None if value is None else os.path.abspath(os.path.join(base, value))

    yandex = tts.map("yandex")
    yandex_keys = {k: v for k, v in yandex.node.items() if isinstance(v, str)}
    if "private_key_path" in yandex_keys:
        yandex_keys["private_key_path"] = path(yandex, "private_key_path") or ""
    return System(
        raw.text("timezone"),
        Ari(
            ari.text("url") or Ari.url,
            ari.text("username") or Ari.username,
            ari.text("password") or "",
            ari.text("app") or Ari.app,
            **ari.place,
        ),
        path(asterisk, "config_dir") or System.asterisk_config_dir,
        asterisk.text("sip") or System.asterisk_sip,
        asterisk.text("phone_dial") or System.phone_dial,
        asterisk.text("presence") or System.presence,
        raw.text("database"),
        http.text("listen") or System.http_listen,
        Paths(
            path(paths, "data") or Paths.data,
            path(paths, "audio"),
            path(paths, "tts_cache"),
            path(paths, "recordings"),
            path(paths, "tmp"),
            **paths.place,
        ),
        Tts(
            tts.text("engine") or Tts.engine,
            tts.text("voice") or Tts.voice,
            tuple(yandex_keys.items()),
            **tts.place,
        ),
        Api(api.text("username") or Api.username, api.text("password") or "", **api.place),
        engine_wait=asterisk.real("engine_wait", System.engine_wait),
        handover_grace=asterisk.real("handover_grace", System.handover_grace),
        unavailable_sound=asterisk.text("unavailable_sound") or System.unavailable_sound,
        **raw.place,
    )


def compile_config(
    lists: dict[str, list[Any]], maps: dict[str, LMap], files: tuple[str, ...] = ()
) -> Config:
    """Build the `Config` from merged sections (lists in file order, mappings found once)."""

    def section(name: str) -> Raw:
        return Raw(maps.get(name) or LMap(Where("<default>")))

    def items(name: str) -> list[Any]:
        return lists.get(name, [])

    return Config(
        system=build_system(section("system")),
        phones=_collect(items("phones"), build_phone),
        trunks=_collect(items("trunks"), build_trunk),
        audio=_collect(items("audio"), build_audio),
        playlists=_collect(items("playlists"), build_playlist),
        menus=_collect(items("menus"), build_menu),
        queues=_collect(items("queues"), build_queue),
        rules=_collect(items("rules"), build_rule),
        dialer=build_dialer(section("dialer")),
        transfer=Transfer(section("transfer").text("playlist"), **section("transfer").place),
        users=_collect(items("users"), build_user),
        directory=build_directory(section("directory")),
        tests=_collect(items("tests"), build_test),
        files=files,
    )
