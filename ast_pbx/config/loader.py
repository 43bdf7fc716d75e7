"""Load a configuration: find its files, parse, expand, validate, merge, compile.

The result carries every problem found on the way, never raises for bad input:
`check` prints them, the commands that need a valid config refuse it.
"""

from __future__ import annotations

import errno
import gc
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ast_pbx.config.compile import compile_config
from ast_pbx.config.configuration import Config
from ast_pbx.config.envexpand import expand_tree
from ast_pbx.config.problems import Level, Problem, Where, error
from ast_pbx.config.schema import validate
from ast_pbx.config.yamlread import LMap, LSeq, ParsedFile, parse_bytes
from ast_pbx.errors import UsageError

LIST_SECTIONS = (
    "phones",
    "trunks",
    "audio",
    "playlists",
    "menus",
    "queues",
    "rules",
    "users",
    "tests",
)
MAP_SECTIONS = ("system", "dialer", "transfer", "directory")
YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_SIZE = 16 * 2**20  # a config file this big is a mistake, not a call center


@dataclass
class Loaded:
    """A compiled config (always, however broken) and the problems found loading it."""

    config: Config
    files: tuple[str, ...]
    problems: list[Problem] = field(default_factory=list)
    # What was written, expanded, for checks that need more than the compiled model:
    # each file, the list sections' items in order, and the mapping sections.
    parsed: tuple[ParsedFile, ...] = ()
    lists: dict[str, list[Any]] = field(default_factory=dict)
    maps: dict[str, LMap] = field(default_factory=dict)
    # The place of every value that came from ${VAR}: (expanded, as written).
    expansions: dict[Where, tuple[str, str]] = field(default_factory=dict)

    def expansions_in(self, file: str) -> dict[str, str]:
        """The values of `file` that came from ${VAR}: as expanded → as written."""
        return self._expansions_by_file.get(file, {})

    @cached_property
    def _expansions_by_file(self) -> dict[str, dict[str, str]]:
        by_file: dict[str, dict[str, str]] = {}
        for where, (expanded, written) in self.expansions.items():
            by_file.setdefault(where.file, {}).setdefault(expanded, written)
        return by_file

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level is Level.ERROR]


def config_files(path: str) -> list[str]:
    """The YAML files of a config: the file itself, or every *.yaml/*.yml below a directory
    in sorted path order. Hidden files and directories (.git, .pre-commit-config.yaml) are
    not part of a config. (`load` also reports the directories that could not be listed.)"""
    return find_config_files(path)[0]


def find_config_files(path: str) -> tuple[list[str], list[Problem]]:
    """`config_files`, and a file-unreadable problem for each directory below `path` (or
    `path` itself) that could not be listed: its files are missing from the config."""
    if os.path.isfile(path):
        return [path], []
    if not os.path.isdir(path):
        raise UsageError(f"{path}: no such file or directory")
    found: list[tuple[tuple[str, ...], str]] = []
    problems: list[Problem] = []

    def unlisted(exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        where = Where(str(exc.filename) if exc.filename is not None else path)
        problems.append(error(where, "file-unreadable", f"cannot list this directory: {reason}"))

    for root, dirs, files in os.walk(path, onerror=unlisted):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = os.path.relpath(root, path)
        parts = () if rel_root == "." else tuple(rel_root.split(os.sep))
        found.extend(
            ((*parts, name), os.path.join(root, name))
            for name in files
            if name.endswith(YAML_SUFFIXES) and not name.startswith(".")
        )
    if not found and not problems:
        raise UsageError(f"{path}: no *.yaml or *.yml files in this directory")
    return [full for _, full in sorted(found)], sorted(problems, key=Problem.sort_key)


def read_file(path: str) -> ParsedFile:
    try:
        raw = _read_regular(path)
    except OSError as exc:
        return ParsedFile(
            path, None, [error(Where(path), "file-unreadable", exc.strerror or str(exc))]
        )
    return parse_bytes(raw, path)


def load(path: str, env: Mapping[str, str] | None = None, *, need_env: bool = False) -> Loaded:
    """Load the config at `path` (a directory or one file).

    `need_env` makes an unset ${VAR} an error, for commands that would use its value.
    """
    files, unlisted = find_config_files(path)
    loaded = load_files(files, os.environ if env is None else env, need_env=need_env)
    loaded.problems[:0] = unlisted
    return loaded


def _read_regular(path: str) -> bytes:
    """A regular file's bytes: a FIFO would hang the reader and /dev/zero never end."""
    with open(path, "rb", opener=_open_nonblocking) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise OSError(errno.EFBIG, f"larger than {MAX_FILE_SIZE // 2**20} MiB")
        return handle.read()


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading allocates hundreds of thousands of small objects and frees none of them:
    the cyclic garbage collector would run again and again for nothing (a third of the
    time of a 10,000-phone config). Nothing made here forms cycles worth collecting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What was loaded lives as long as the config: keep it out of later collections
        # too, or the first one after loading scans it all.
        gc.freeze()
        if was_enabled:
            gc.enable()


def load_files(files: Iterable[str], env: Mapping[str, str], *, need_env: bool = False) -> Loaded:
    with _collector_paused():
        return _load_files(files, env, need_env=need_env)


def _load_files(files: Iterable[str], env: Mapping[str, str], *, need_env: bool) -> Loaded:
    problems: list[Problem] = []
    parsed: list[ParsedFile] = []
    expansions: dict[Where, tuple[str, str]] = {}
    unset_level = Level.ERROR if need_env else Level.WARNING
    for path in files:
        result = read_file(path)
        problems.extend(result.problems)
        if result.data is not None:
            problems.extend(expand_tree(result.data, env, unset_level, expansions))
            problems.extend(validate(result.data, path))
        parsed.append(result)
    lists, maps, merge_problems = merge(parsed)
    problems.extend(merge_problems)
    names = tuple(p.path for p in parsed)
    config = compile_config(lists, maps, names)
    return Loaded(config, names, problems, tuple(parsed), lists, maps, expansions)


def merge(
    parsed: Iterable[ParsedFile],
) -> tuple[dict[str, list[Any]], dict[str, LMap], list[Problem]]:
    """List sections concatenated in file order; a mapping section may appear only once."""
    lists: dict[str, list[Any]] = {name: [] for name in LIST_SECTIONS}
    maps: dict[str, LMap] = {}
    first_at: dict[str, Where] = {}
    problems: list[Problem] = []
    for result in parsed:
        if not isinstance(result.data, LMap):
            continue
        for name, value in result.data.items():
            if name in LIST_SECTIONS and isinstance(value, LSeq):
                lists[name].extend(value)
            elif name in MAP_SECTIONS and isinstance(value, LMap):
                where = result.data.key_at[name]
                if name in maps:
                    problems.append(
                        error(
                            where,
                            "duplicate-section",
                            f"section '{name}' appears again; first given at {first_at[name]}",
                        )
                    )
                    continue
                maps[name], first_at[name] = value, where
    return lists, maps, problems
