"""`Config`: the whole compiled configuration, with the indexes routing needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TypeVar

from ast_pbx.config.model import (
    Audio,
    CallTest,
    Dialer,
    Directory,
    Menu,
    Phone,
    Playlist,
    Queue,
    Rule,
    Transfer,
    Trunk,
    User,
)
from ast_pbx.config.system import System

Target = Phone | Menu | Queue
_T = TypeVar("_T")


def _first_by(items: tuple[_T, ...], key: str) -> Mapping[str, _T]:
    index: dict[str, _T] = {}
    for item in items:
        index.setdefault(getattr(item, key), item)  # duplicates are a check error; first wins
    return MappingProxyType(index)


@dataclass(frozen=True)
class Config:
    system: System = System()
    phones: tuple[Phone, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    audio: tuple[Audio, ...] = ()
    playlists: tuple[Playlist, ...] = ()
    menus: tuple[Menu, ...] = ()
    queues: tuple[Queue, ...] = ()
    rules: tuple[Rule, ...] = ()
    dialer: Dialer = Dialer()
    transfer: Transfer = Transfer()
    users: tuple[User, ...] = ()
    directory: Directory = Directory()
    tests: tuple[CallTest, ...] = ()
    files: tuple[str, ...] = field(default=(), compare=False)

    @cached_property
    def targets(self) -> Mapping[str, Target]:
        """Phones, menus and queues by number."""
        return _first_by(self.numbered, "number")

    @property
    def handler_owners(self) -> tuple[Menu | Queue, ...]:
        """Menus and queues: everything with `on` handlers."""
        return (*self.menus, *self.queues)

    @property
    def numbered(self) -> tuple[Target, ...]:
        return (*self.phones, *self.menus, *self.queues)

    @cached_property
    def rules_for(self) -> Mapping[str, tuple[Rule, ...]]:
        """Rules by the number they override, in the order they are tried."""
        index: dict[str, list[Rule]] = {}
        for rule in self.rules:
            index.setdefault(rule.number, []).append(rule)
        return MappingProxyType({number: tuple(rules) for number, rules in index.items()})

    @cached_property
    def audio_by_id(self) -> Mapping[str, Audio]:
        return _first_by(self.audio, "id")

    @cached_property
    def playlist_by_id(self) -> Mapping[str, Playlist]:
        return _first_by(self.playlists, "id")

    @cached_property
    def trunk_by_name(self) -> Mapping[str, Trunk]:
        return _first_by(self.trunks, "name")

    def trunk_for(self, number: str) -> Trunk | None:
        """The first trunk whose `match` fully matches the number."""
        return next((t for t in self.trunks if t.match and t.match.fullmatch(number)), None)

    def is_routable(self, number: str) -> bool:
        """A goto may name a phone, menu, queue, a number with rules, or one a trunk matches."""
        known = number in self.targets or number in self.rules_for
        return known or self.trunk_for(number) is not None
