"""Text to speech for Asterisk, cached on disk by a hash of engine, voice and text.

A `TtsEngine` turns text into a wav of whatever format its program writes;
`TtsCache` converts that once with sox into what Asterisk plays best (8 kHz mono
16-bit PCM) and keeps it under `<tts-cache>/<hash[:2]>/<hash>.wav`. Files appear
by atomic rename, so a reader (Asterisk, another call) never sees half a file and
two syntheses of the same text at once are harmless. `ensure_async` is the call
the engine makes from its event loop: one synthesis per text however many calls
ask for it at the same moment.

The engines are the programs Debian ships: espeak-ng (fast, robotic) and festival
with festvox-ru (slower, natural). The Yandex cloud voice is not implemented yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path
from typing import Protocol

from ast_pbx.config.system import Tts
from ast_pbx.errors import AstPbxError, UsageError

# The Debian packages that provide each program, for the "please install" message.
PACKAGES = {
    "espeak-ng": "espeak-ng",
    "text2wave": "festival festvox-ru",
    "sox": "sox",
}
# The festvox-ru voice (Debian's only Russian festival voice) behind the name "ru".
FESTIVAL_VOICES = {"ru": "msu_ru_nsh_clunits"}
WAV_HEADER = 44  # bytes; a wav no longer than its header holds no sound
PROGRAM_TIMEOUT = 120.0  # seconds; festival reads a long text in about 1 s per sentence


class TtsError(AstPbxError):
    """A speech program failed or wrote no sound; carries the end of its stderr."""


class TtsEngine(Protocol):
    """Something that speaks text into a wav file (any rate, any channels)."""

    @property
    def name(self) -> str: ...

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        """Write `text` spoken with `voice` to `out_wav`; blocking. TtsError on failure."""
        ...


class EspeakEngine:
    """espeak-ng: about 15 ms a sentence; voices are espeak names such as "ru"."""

    name = "espeak"

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        # The text goes on stdin: as an argument, a text starting with "-" would be an option.
        argv = ["espeak-ng", "-v", voice, "--stdin", "-w", str(out_wav)]
        run_program(argv, text.encode("utf-8", errors="replace"))
        require_sound(out_wav, "espeak-ng", b"")


class FestivalEngine:
    """festival's text2wave: about 1 s a sentence; "ru" is the festvox-ru voice."""

    name = "festival"

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        argv = ["text2wave", "-eval", f"(voice_{festival_voice(voice)})", "-o", str(out_wav)]
        # festvox-ru 0.5 (Debian) reads UTF-8 (`(coding utf-8)`); KOI8-R input only gives
        # "LTS_Ruleset russian_downcase: no rule matches". text2wave exits 0 even when it
        # fails, so the only sign of failure is a missing or empty output file.
        spoken = festival_text(text).encode("utf-8", errors="replace")
        if not spoken:  # festival fails on an empty text with a Scheme backtrace
            raise TtsError(f"festival: nothing to say in {text!r}")
        stderr = run_program(argv, spoken)
        require_sound(out_wav, "text2wave", stderr, _festival_hint(stderr, voice))


def festival_voice(voice: str) -> str:
    """The festival voice behind `voice`; the name ends up inside a Scheme expression."""
    name = FESTIVAL_VOICES.get(voice, voice)
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise UsageError(f"festival voice {voice!r}: a voice name is letters, digits and _")
    return name


def _festival_hint(stderr: bytes, voice: str) -> str:
    if b"unbound variable" in stderr and b"voice_" in stderr:
        package = "festvox-ru" if voice == "ru" else "the package of that voice"
        return f"festival has no voice {voice!r}: install {package}"
    return ""


# festvox-ru's letter-to-sound rules know Cyrillic, ASCII letters and digits only: one
# character outside them (« », —, №, an emoji, even "." inside a word) makes festival drop
# the whole text and write nothing. So typography is mapped to what it can say and any
# other stray character becomes a space.
_TYPOGRAPHY = str.maketrans(
    {
        "«": " ",
        "»": " ",
        "“": " ",
        "”": " ",
        "„": " ",
        '"': " ",
        "‘": "'",
        "’": "'",
        "−": "-",
        "‐": "-",
        "…": ".",
        "№": " номер ",
    }
)
_LETTERS = "0-9A-Za-zА-Яа-яЁё"
_DASH = re.compile(r"\s*[—–]\s*")
_STRAY = re.compile(rf"[^{_LETTERS}\s'#+.,!?;:-]")
_PLUS_ALONE = re.compile(rf"\+(?![{_LETTERS}])")  # "+" marks stress; alone it says nothing
_PUNCT_INSIDE = re.compile(r"[.,!?;:]+(?=[^\s.,!?;:])")
_PUNCT_LEADING = re.compile(rf"(?<![{_LETTERS}])[.,!?;:]+")
_SPACES = re.compile(r"\s+")


def festival_text(text: str) -> str:
    """`text` reduced to what festvox-ru can read: punctuation only at the end of a word."""
    text = unicodedata.normalize("NFC", text).translate(_TYPOGRAPHY)
    text = _DASH.sub(", ", text)
    text = _STRAY.sub(_fold, text)
    text = _PLUS_ALONE.sub(" ", text)
    text = _PUNCT_INSIDE.sub(" ", text)
    text = _PUNCT_LEADING.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _fold(match: re.Match[str]) -> str:
    """An accented Latin letter without its accent (é → e); anything else a space."""
    base = unicodedata.normalize("NFKD", match.group())
    return "".join(c for c in base if c.isascii() and c.isalnum()) or " "


def require_program(program: str) -> None:
    """UsageError naming the Debian package when `program` is not on PATH."""
    if shutil.which(program) is None:
        raise UsageError(_missing(program))


def _missing(program: str) -> str:
    package = PACKAGES.get(program, program)
    return f"{program} is not installed: apt-get install {package}"


def run_program(argv: list[str], stdin: bytes = b"") -> bytes:
    """Run a speech or sound program; its stderr, or TtsError with its tail."""
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, timeout=PROGRAM_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise UsageError(_missing(argv[0])) from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{argv[0]} took longer than {PROGRAM_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise TtsError(f"{argv[0]} failed (exit {done.returncode}): {stderr_tail(done.stderr)}")
    return done.stderr


def require_sound(wav: Path, program: str, stderr: bytes, hint: str = "") -> None:
    """TtsError when `program` exited fine but `wav` holds no sound."""
    if not wav.exists() or wav.stat().st_size <= WAV_HEADER:
        detail = hint or stderr_tail(stderr) or "no message"
        raise TtsError(f"{program} wrote no sound: {detail}")


def stderr_tail(stderr: bytes, lines: int = 5) -> str:
    return " | ".join(stderr.decode("utf-8", errors="replace").strip().splitlines()[-lines:])


def make_engine(tts: Tts) -> TtsEngine:
    """The engine `system.tts` names; UsageError when it is unknown or not installed."""
    if tts.engine == "espeak":
        require_program("espeak-ng")
        return EspeakEngine()
    if tts.engine == "festival":
        require_program("text2wave")
        return FestivalEngine()
    if tts.engine == "yandex":
        raise UsageError(
            "tts engine yandex is not implemented yet: use festival or espeak in system.tts"
        )
    raise UsageError(f"unknown tts engine {tts.engine!r}: use festival or espeak")


def asterisk_media(path: Path) -> str:
    """The media URI Asterisk plays `path` by: it adds the extension itself."""
    return "sound:" + str(path.with_suffix(""))


class TtsCache:
    """Spoken texts as 8 kHz wav files, made once per engine, voice and text."""

    def __init__(self, directory: Path, engine: TtsEngine, voice: str) -> None:
        self.directory = directory
        self.engine = engine
        self.voice = voice
        # ensure_async's syntheses under way, by target path; only touched from the loop.
        self.in_flight: dict[Path, asyncio.Future[Path]] = {}

    def path_for(self, text: str) -> Path:
        # NUL separators: ("ab", "c") and ("a", "bc") must not hash alike.
        key = "\0".join((self.engine.name, self.voice, text)).encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(key).hexdigest()
        return self.directory / digest[:2] / f"{digest}.wav"

    def ensure(self, text: str) -> Path:
        """The file for `text`, synthesized and converted now unless it exists; blocking."""
        path = self.path_for(text)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = _temp_beside(path, ".raw.wav")
        ready = _temp_beside(path, ".8k.wav")
        try:
            self.engine.synthesize(text, self.voice, raw)
            require_sound(raw, self.engine.name, b"")  # engines are pluggable: trust no one
            convert_for_asterisk(raw, ready)
            ready.chmod(0o644)  # mkstemp made it 0600; Asterisk runs as another user
            ready.replace(path)
        finally:
            raw.unlink(missing_ok=True)
            ready.unlink(missing_ok=True)
        return path


def _temp_beside(path: Path, suffix: str) -> Path:
    """A new empty file in `path`'s directory, so that the final rename is atomic."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=suffix)
    os.close(handle)
    return Path(name)


def convert_for_asterisk(src: Path, dst: Path) -> None:
    """`src` (any wav) as 8000 Hz mono 16-bit signed PCM wav in `dst`, with sox."""
    argv = ["sox", str(src), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(dst)]
    stderr = run_program(argv)
    require_sound(dst, "sox", stderr)


async def ensure_async(cache: TtsCache, text: str) -> Path:
    """`cache.ensure(text)` in a thread; concurrent requests for one text share one synthesis."""
    path = cache.path_for(text)
    if path.exists():  # the usual case once the prompts are made: no thread hop
        return path
    pending = cache.in_flight.get(path)
    if pending is None:
        pending = asyncio.ensure_future(asyncio.to_thread(cache.ensure, text))
        cache.in_flight[path] = pending
        pending.add_done_callback(lambda done: _finished(cache, path, done))
    # shield: a caller that hangs up cancels its wait, not the synthesis the others await.
    return await asyncio.shield(pending)


def _finished(cache: TtsCache, path: Path, done: asyncio.Future[Path]) -> None:
    cache.in_flight.pop(path, None)
    if not done.cancelled():
        done.exception()  # retrieved: no "never retrieved" warning when every waiter left
