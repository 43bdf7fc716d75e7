"""A loaded config with what the engine derives from it, swapped atomically on reload."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

from ast_pbx.config.configuration import Config
from ast_pbx.lint.linter import load_for_use


def config_digest(files: tuple[str, ...]) -> str:
    """The version of a config: a hash of its files' bytes, in load order."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ConfigVersion:
    config: Config
    version: str
    tz: tzinfo
    audio: dict[str, Path] = field(default_factory=dict)  # audio id → converted wav


def prepare(path: str, convert_audio: Callable[[Config, Path], dict[str, Path]]) -> ConfigVersion:
    """Load, check and get ready the config at `path` (blocking): ConfigInvalid carries
    the problems of a config with errors; unset ${VAR} is an error here."""
    loaded = load_for_use(path, need_env=True)
    config = loaded.config
    audio_dir = Path(config.system.paths.dir("audio"))
    audio = convert_audio(config, audio_dir) if config.audio else {}
    return ConfigVersion(config, config_digest(loaded.files), config.system.zone(), audio)
