"""Uploaded recordings (the `audio` section) as files Asterisk plays: 8 kHz mono 16-bit wav.

Each recording is converted once with ffmpeg (sox in Debian may lack mp3) and
stored by the hash of its bytes as `<audio>/<sha256>.wav`: a re-run of
`astpbx apply` converts only what changed, and two ids naming the same file share
one conversion. Files appear by atomic rename, so Asterisk never plays half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ast_pbx.config.configuration import Config
from ast_pbx.errors import AstPbxError, UsageError

WAV_HEADER = 44  # bytes; ffmpeg with -bitexact writes exactly this header and no LIST chunk
FFMPEG_TIMEOUT = 300.0  # seconds; an hour of mp3 converts in a few seconds


class AudioError(AstPbxError):
    """A recording could not be read or converted; carries the end of ffmpeg's stderr."""


@dataclass(frozen=True)
class Converted:
    """What `convert_all` did: each audio id's converted file; which were made this time."""

    paths: dict[str, Path]
    converted: tuple[str, ...]
    reused: tuple[str, ...]


def target_for(src: Path, audio_dir: Path) -> Path:
    """Where the converted `src` lives: named by the hash of its bytes."""
    try:
        with src.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise AudioError(f"{src}: cannot read the recording: {exc.strerror}") from None
    return audio_dir / f"{digest}.wav"


def convert_recording(src: Path, audio_dir: Path) -> Path:
    """`src` (mp3, wav, anything ffmpeg reads) as an 8 kHz mono wav; converted once."""
    target = target_for(src, audio_dir)
    if not target.exists():
        _convert(src, target)
    return target


def convert_all(config: Config, audio_dir: Path) -> Converted:
    """Every recording of `config`; AudioError listing every one that failed."""
    paths: dict[str, Path] = {}
    converted: list[str] = []
    failed: list[str] = []
    for audio in config.audio:
        try:
            target = target_for(Path(audio.file), audio_dir)
            if not target.exists():
                _convert(Path(audio.file), target)
                converted.append(audio.id)
        except AudioError as exc:  # go on: the administrator fixes every file in one go
            failed.append(f"audio {audio.id}: {exc}")
            continue
        paths[audio.id] = target
    if failed:
        raise AudioError("\n".join(failed))
    reused = tuple(audio_id for audio_id in paths if audio_id not in converted)
    return Converted(paths, tuple(converted), reused)


def pending(config: Config, audio_dir: Path) -> tuple[str, ...]:
    """The audio ids `convert_all` would convert now (for a plan); unreadable files count."""
    waiting: list[str] = []
    for audio in config.audio:
        try:
            if not target_for(Path(audio.file), audio_dir).exists():
                waiting.append(audio.id)
        except AudioError:  # convert_all will say why
            waiting.append(audio.id)
    return tuple(waiting)


def _convert(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem[:16]}.", suffix=".wav"
    )
    os.close(handle)
    temp = Path(name)
    try:
        _ffmpeg(src, temp)
        temp.chmod(0o644)  # mkstemp made it 0600; Asterisk runs as another user
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)


def _ffmpeg(src: Path, out: Path) -> None:
    if shutil.which("ffmpeg") is None:
        raise UsageError("ffmpeg is not installed: apt-get install ffmpeg")
    # -vn: an mp3's cover picture is a video stream; -map_metadata -1 and bitexact keep the
    # header a plain 44-byte one (no LIST chunk with tags or the encoder's name).
    argv = [
        "ffmpeg", "-nostdin", "-y", "-hide_banner", "-loglevel", "error",
        "-i", str(src), "-vn", "-map_metadata", "-1", "-fflags", "+bitexact",
        "-flags:a", "+bitexact", "-ac", "1", "-ar", "8000", "-sample_fmt", "s16",
        str(out),
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{src}: ffmpeg took longer than {FFMPEG_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise AudioError(f"{src}: ffmpeg cannot convert it: {_tail(done.stderr)}")
    if out.stat().st_size <= WAV_HEADER:
        raise AudioError(f"{src}: holds no sound ffmpeg can read: {_tail(done.stderr)}")


def _tail(stderr: bytes, lines: int = 5) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return " | ".join(text.splitlines()[-lines:]) or "no message"
