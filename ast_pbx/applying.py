"""`astpbx plan` and `astpbx apply`: what would change, and making it so.

The shell around ast_pbx.asterisk_files: it reads the generated files on disk and
`<paths.data>/applied.json` (what the last successful apply did), writes files
atomically, converts audio, reloads Asterisk modules over ARI and records the result.

Order of `apply`: audio, Asterisk files, reloads, applied.json last. applied.json is
only written when every reload worked, so a reload that failed (Asterisk down) is tried
again by the next apply even though the files on disk are already up to date.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ast_pbx import audio
from ast_pbx.asterisk_files import (
    FILES,
    Change,
    diff_sections,
    modules_to_reload,
    render,
    sections_digest,
)
from ast_pbx.config.configuration import Config
from ast_pbx.config.model import Regex
from ast_pbx.config.system import Ari
from ast_pbx.errors import EXIT_PROBLEMS, AstPbxError
from ast_pbx.files import write_atomically

APPLIED_FILE = "applied.json"
# Sections of the config the engine reads, by applied.json key, and their singular names.
ITEM_KINDS = {
    "phones": "phone",
    "trunks": "trunk",
    "menus": "menu",
    "queues": "queue",
    "rules": "rule",
    "playlists": "playlist",
    "audio": "audio",
    "users": "user",
}
_POSITION_FIELDS = frozenset({"where", "fields", "lists"})
RELOAD_TIMEOUT = 30.0  # seconds; res_pjsip resolves every trunk host while it reloads


class ApplyError(AstPbxError):
    """A file could not be read or written."""

    exit_code = EXIT_PROBLEMS


class ReloadFailed(AstPbxError):
    """The files are written but Asterisk did not reload them."""

    exit_code = EXIT_PROBLEMS


class AsteriskUnreachable(ReloadFailed):
    """No answer from ARI at all (Asterisk down, wrong URL)."""


# --- what the engine reads: item digests ---------------------------------------------


def config_version(config: Config) -> str:
    """sha256 of the config files' bytes, in load order."""
    digest = hashlib.sha256()
    for path in config.files:
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def engine_items(
    config: Config, audio_content: Mapping[str, str | None]
) -> dict[str, dict[str, str]]:
    """A short digest of every item by kind and key (applied.json `items`).

    `audio_content` gives each recording's content hash by id, so that replacing a
    recording's file under the same name counts as a change.
    """
    items: dict[str, dict[str, str]] = {kind: {} for kind in ITEM_KINDS}
    for phone in config.phones:
        items["phones"][phone.number] = item_digest(phone)
    for trunk in config.trunks:
        items["trunks"][trunk.name] = item_digest(trunk)
    for menu in config.menus:
        items["menus"][menu.number] = item_digest(menu)
    for queue in config.queues:
        items["queues"][queue.number] = item_digest(queue)
    for key, rule in _rule_keys(config):
        items["rules"][key] = item_digest(rule)
    for playlist in config.playlists:
        items["playlists"][playlist.id] = item_digest(playlist)
    for recording in config.audio:
        items["audio"][recording.id] = item_digest(recording, audio_content.get(recording.id))
    for user in config.users:
        items["users"][user.login] = item_digest(user)
    return items


def _rule_keys(config: Config) -> Iterator[tuple[str, Any]]:
    """Rules have no id: the number they override, `#2`, `#3`… for further rules of it."""
    seen: dict[str, int] = {}
    for rule in config.rules:
        seen[rule.number] = seen.get(rule.number, 0) + 1
        count = seen[rule.number]
        yield (rule.number if count == 1 else f"{rule.number}#{count}"), rule


def item_digest(item: object, *extra: object) -> str:
    """12 hex digits of sha256 over the item's content (positions in the YAML left out,
    so moving an item between files or lines is no change)."""
    text = json.dumps([plain(item), *map(plain, extra)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def plain(value: Any) -> Any:
    """The value as JSON data, stable across runs (sets sorted, regexes as written)."""
    if isinstance(value, Regex):
        return value.source
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in fields(value)
            if f.name not in _POSITION_FIELDS
        }
    if isinstance(value, frozenset | set):
        return sorted((plain(v) for v in value), key=json.dumps)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    scalar = value is None or isinstance(value, str | int | float | bool)
    return value if scalar else str(value)  # str: datetimes and the like


def diff_items(
    old: Mapping[str, Mapping[str, str]] | None, new: Mapping[str, Mapping[str, str]]
) -> list[Change]:
    """`+ phone 1001`, `~ queue 92000`, `- menu 95000` against the last applied items."""
    changes: list[Change] = []
    for kind, singular in ITEM_KINDS.items():
        before, after = (old or {}).get(kind), new.get(kind, {})
        if not isinstance(before, Mapping):  # not applied yet, or a damaged applied.json
            before = {}
        for key, digest in after.items():
            if key not in before:
                changes.append(Change("+", f"{singular} {key}"))
            elif before[key] != digest:
                changes.append(Change("~", f"{singular} {key}"))
        changes.extend(Change("-", f"{singular} {key}") for key in before if key not in after)
    return changes


# --- the plan -----------------------------------------------------------------------


@dataclass(frozen=True)
class FilePlan:
    """One generated file: what is on disk (None: nothing), what it will be, how they differ."""

    name: str
    path: str
    current: str | None
    text: str
    changes: tuple[Change, ...]

    @property
    def needs_write(self) -> bool:
        return self.current != self.text


@dataclass(frozen=True)
class Plan:
    """Everything `apply` would do; `lines()` says it, `record()` is the new applied.json."""

    source: str
    version: str
    config_dir: str
    applied_path: str
    audio_dir: str
    files: tuple[FilePlan, ...]
    items: dict[str, dict[str, str]]
    item_changes: tuple[Change, ...]
    audio: tuple[Change, ...]  # recordings not converted yet
    reloads: tuple[str, ...]
    previous_version: str | None

    @property
    def changes(self) -> tuple[Change, ...]:
        in_files = (c for f in self.files for c in f.changes)
        return (*in_files, *self.item_changes, *self.audio)

    def counts(self) -> tuple[int, int, int]:
        ops = [c.op for c in self.changes]
        return ops.count("+"), ops.count("~"), ops.count("-")

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.reloads)

    def lines(self) -> Iterator[str]:
        """The +/~/- list, grouped: Asterisk files, engine items, audio, reloads."""
        for plan in self.files:
            if plan.changes:
                yield f"{plan.path}:"
                for change in plan.changes:
                    yield from change.render()
        if self.item_changes:
            yield f"engine (against {self.applied_path}):"
            for change in self.item_changes:
                yield from change.render()
        if self.audio:
            yield f"audio to convert into {self.audio_dir}:"
            for change in self.audio:
                yield from change.render()
        if self.reloads:
            yield f"Asterisk modules to reload: {', '.join(self.reloads)}"

    def summary(self, *, applied: bool = False) -> str:
        if not self.has_changes:
            if applied and self.previous_version != self.version:
                # Only comments or formatting of the YAML changed: nothing to reload.
                return f"No changes; recorded version {self.version[:12]}."
            return "No changes."
        added, changed, removed = self.counts()
        if applied:
            return f"Applied: {added} added, {changed} changed, {removed} removed."
        return f"Plan: {added} to add, {changed} to change, {removed} to remove."

    def record(self, now: datetime) -> dict[str, Any]:
        """The applied.json this plan leaves behind once applied."""
        return {
            "version": self.version,
            "applied_at": now.isoformat(timespec="seconds"),
            "config": self.source,
            "items": self.items,
            # Beyond the engine's contract: what Asterisk was last made to reload, so that
            # a failed or skipped reload is noticed (see modules_to_reload).
            "asterisk": {f.name: sections_digest(f.text) for f in self.files},
        }


def make_plan(config: Config, source: str) -> Plan:
    """Compare the config with the files on disk and the last applied.json; no writes."""
    source = os.path.abspath(source)
    version = config_version(config)
    rendered = render(config, source, version)
    config_dir = config.system.asterisk_config_dir
    on_disk = {name: read_text(os.path.join(config_dir, name)) for name in FILES}
    applied_path = os.path.join(config.system.paths.data, APPLIED_FILE)
    previous = read_applied(applied_path)
    files = tuple(
        FilePlan(
            name,
            os.path.join(config_dir, name),
            on_disk[name],
            text,
            tuple(diff_sections(on_disk[name], text)),
        )
        for name, text in rendered.items()
    )
    audio_dir = config.system.paths.dir("audio")
    items = engine_items(config, audio_contents(config, audio_dir))
    return Plan(
        source,
        version,
        config_dir,
        applied_path,
        audio_dir,
        files,
        items,
        tuple(diff_items(_section(previous, "items"), items)),
        tuple(pending_audio(config, audio_dir)),
        modules_to_reload(rendered, on_disk, _section(previous, "asterisk") or {}),
        previous.get("version") if previous else None,
    )


def _section(applied: Mapping[str, Any] | None, key: str) -> Any:
    """applied.json[key] when it is a mapping; anything else counts as nothing applied."""
    value = (applied or {}).get(key)
    return value if isinstance(value, Mapping) else None


def read_text(path: str) -> str | None:
    """The file's text, None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ApplyError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def read_applied(path: str) -> dict[str, Any] | None:
    """The last applied.json; None when there is none (or it is unreadable: then everything
    is applied again, which is safe)."""
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- applying -----------------------------------------------------------------------


Say = Callable[[str], None]


def apply_plan(
    plan: Plan, config: Config, say: Say = lambda _: None, *, now: datetime | None = None
) -> None:
    """Do what the plan says, telling `say` each step as it is done.

    Raises ReloadFailed after writing the files when Asterisk could not reload them
    (applied.json is then left as it was, so the next apply reloads again).
    """
    # Audio first: it is what most likely fails (a broken file), and Asterisk's files do
    # not depend on it, so a failure leaves everything as it was.
    for line in convert_audio(config, plan.audio_dir):
        say(line)
    for file in plan.files:
        if file.needs_write:
            write_atomic(file.path, file.text)
            say(f"wrote {file.path}")
    failures = _reload_all(config.system.ari, plan.reloads, say)
    if failures:
        raise ReloadFailed(
            "files written; reload failed: "
            + "; ".join(failures)
            + ". Asterisk keeps its previous configuration until `astpbx apply` is run again"
        )
    if plan.has_changes or plan.previous_version != plan.version:
        record = plan.record(now or datetime.now(UTC))
        write_atomic(plan.applied_path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        say(f"recorded {plan.applied_path}")


def _reload_all(ari: Ari, modules: tuple[str, ...], say: Say) -> list[str]:
    """Reload each module; a message per failure. When Asterisk cannot be reached at all,
    the modules left are named once instead of failing one by one."""
    failures: list[str] = []
    for index, module in enumerate(modules):
        try:
            reload_module(ari, module)
        except AsteriskUnreachable as exc:
            return [*failures, f"{exc}; not reloaded: {', '.join(modules[index:])}"]
        except ReloadFailed as exc:
            failures.append(str(exc))
        else:
            say(f"reloaded {module}")
    return failures


def write_atomic(path: str, text: str) -> None:
    """Write a generated file so that Asterisk (or the engine) never reads half of it."""
    try:
        write_atomically(path, text, make_dirs=True)
    except OSError as exc:
        raise ApplyError(f"cannot write {path}: {exc.strerror or exc}") from exc


def reload_module(ari: Ari, module: str, timeout: float = RELOAD_TIMEOUT) -> None:
    """`PUT /ari/asterisk/modules/MODULE`: Asterisk reloads it (204), or ReloadFailed."""
    url = f"{ari.url.rstrip('/')}/ari/asterisk/modules/{urllib.parse.quote(module)}"
    token = base64.b64encode(f"{ari.username}:{ari.password}".encode()).decode("ascii")
    request = urllib.request.Request(url, method="PUT", headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ReloadFailed(f"{module}: Asterisk answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AsteriskUnreachable(f"cannot reach Asterisk at {ari.url} ({reason})") from exc
    if status != 204:
        raise ReloadFailed(f"{module}: Asterisk answered {status}, expected 204")


# --- audio ----------------------------------------------------------------------------


def audio_contents(config: Config, audio_dir: str) -> dict[str, str | None]:
    """The converted file name (its content hash) of each recording by id, so that
    replacing a recording's file under the same name is a change; None when unreadable
    (`check` reports a missing file, `apply` says why)."""
    contents: dict[str, str | None] = {}
    for item in config.audio:
        try:
            contents[item.id] = audio.target_for(Path(item.file), Path(audio_dir)).name
        except audio.AudioError:
            contents[item.id] = None
    return contents


def pending_audio(config: Config, audio_dir: str) -> Iterator[Change]:
    """`+ ID: FILE` for each recording not converted yet."""
    waiting = set(audio.pending(config, Path(audio_dir)))
    for item in config.audio:
        if item.id in waiting:
            yield Change("+", f"{item.id}: {item.file}")
            waiting.discard(item.id)  # two entries with one id: `check` reports it


def convert_audio(config: Config, audio_dir: str) -> Iterator[str]:
    """Convert what is not converted yet; a line per conversion. A recording that cannot
    be converted stops apply before anything else is written."""
    try:
        done = audio.convert_all(config, Path(audio_dir))
    except audio.AudioError as exc:
        raise ApplyError(f"audio not converted, nothing applied:\n{exc}") from exc
    for audio_id in done.converted:
        yield f"converted audio {audio_id} into {done.paths[audio_id]}"
