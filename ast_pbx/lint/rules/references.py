"""Rules about names that must refer to something defined."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import Level
from ast_pbx.lint.graph import edges
from ast_pbx.lint.registry import Finding, rule


@rule("unknown-goto", Level.ERROR, whole=True)
def unknown_goto(loaded: Loaded) -> Iterator[Finding]:
    """
    A `goto`, a trunk's `inbound` number or a test's `to` names a number that nothing
    answers: no phone, menu, queue or rule has it and no trunk `match`es it.

    At run time such a call ends as `unknown-number`. Also reported: a test expecting
    `ends: phone N` or `queue N` for a phone or queue that does not exist.
    """
    config = loaded.config
    for edge in edges(config):
        if not config.is_routable(edge.target):
            yield (
                edge.where,
                f"{edge.label} goes to {edge.target}, which is not a "
                "phone, menu, queue or rule number and matches no trunk",
            )
    for test in config.tests:
        if not config.is_routable(test.to):
            yield test.at("to"), f"test calls {test.to}, which nothing answers"
        kind, _, name = (test.ends or "").partition(" ")
        target = config.targets.get(name)
        if kind in ("phone", "queue") and (target is None or _kind(target) != kind):
            yield test.at("expect"), f"test expects to end at {kind} {name}, which is not defined"


def _kind(target: object) -> str:
    return type(target).__name__.lower()


@rule("unknown-member", Level.ERROR, whole=True)
def unknown_member(loaded: Loaded) -> Iterator[Finding]:
    """A queue member is not the number of a phone."""
    phones = {p.number for p in loaded.config.phones}
    for queue in loaded.config.queues:
        for index, member in enumerate(queue.members):
            if member not in phones:
                yield (
                    queue.item_at("members", index),
                    f"queue {queue.number} member {member} is not a phone",
                )


@rule("unknown-playlist", Level.ERROR, whole=True)
def unknown_playlist(loaded: Loaded) -> Iterator[Finding]:
    """A queue's `playlist` or `transfer.playlist` names no playlist."""
    config = loaded.config
    known = config.playlist_by_id
    for queue in config.queues:
        if queue.playlist is not None and queue.playlist not in known:
            yield (
                queue.at("playlist"),
                f"queue {queue.number} plays '{queue.playlist}', which is not a playlist id",
            )
    playlist = config.transfer.playlist
    if playlist is not None and playlist not in known:
        yield (
            config.transfer.at("playlist"),
            f"transfer plays '{playlist}', which is not a playlist id",
        )


@rule("unknown-audio", Level.ERROR, whole=True)
def unknown_audio(loaded: Loaded) -> Iterator[Finding]:
    """A menu's or a playlist item's `audio` names no audio recording id."""
    config = loaded.config
    prompts = [(f"menu {m.number}", m.prompt) for m in config.menus if m.prompt]
    prompts += [(f"playlist {p.id}", item) for p in config.playlists for item in p.items]
    for owner, prompt in prompts:
        if prompt.kind == "audio" and prompt.value not in config.audio_by_id:
            yield prompt.where, f"{owner} plays audio '{prompt.value}', which is not an audio id"


@rule("unknown-trunk", Level.ERROR, whole=True)
def unknown_trunk(loaded: Loaded) -> Iterator[Finding]:
    """A test expects a call to end on a trunk (`ends: trunk NAME`) that is not defined."""
    config = loaded.config
    for test in config.tests:
        kind, _, name = (test.ends or "").partition(" ")
        if kind == "trunk" and name not in config.trunk_by_name:
            yield test.at("expect"), f"test expects to end on trunk '{name}', which is not defined"


@rule("missing-audio-file", Level.ERROR)
def missing_audio_file(loaded: Loaded) -> Iterator[Finding]:
    """
    An audio recording's `file` does not exist or is not a file.

    The path is relative to the YAML file that names it.
    """
    for audio in loaded.config.audio:
        if not os.path.isfile(audio.file):
            yield audio.at("file"), f"audio '{audio.id}': file {audio.file} does not exist"
