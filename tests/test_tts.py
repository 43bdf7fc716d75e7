"""TTS with the real programs: espeak-ng, festival + festvox-ru and sox (.ci/setup installs them).

festival takes about 0.7 s a call, so the suite makes few festival sentences.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest

from ast_pbx.config.system import Tts
from ast_pbx.errors import UsageError
from ast_pbx.tts import (
    EspeakEngine,
    FestivalEngine,
    TtsCache,
    TtsEngine,
    TtsError,
    asterisk_media,
    ensure_async,
    festival_text,
    make_engine,
)

SENTENCE = "Здравствуйте. Для консультации нажмите два."


def sox_info(path: Path) -> tuple[int, int, int, float]:
    """(rate, channels, bits, seconds) as sox reports them."""

    def ask(flag: str) -> str:
        return subprocess.run(
            ["sox", "--i", flag, str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()

    return int(ask("-r")), int(ask("-c")), int(ask("-b")), float(ask("-D"))


class Counting:
    """Wraps an engine and counts its syntheses; `delay` makes concurrent requests overlap."""

    def __init__(self, inner: TtsEngine, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        self.inner.synthesize(text, voice, out_wav)


class Tone:
    """An engine without a program: a short 16 kHz silence, to test what sox does."""

    name = "tone"

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        with wave.open(str(out_wav), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(b"\0\0\0\0" * 8000)


class Mute:
    """An engine whose program 'succeeds' without writing sound, like festival does."""

    name = "mute"

    def synthesize(self, text: str, voice: str, out_wav: Path) -> None:
        pass


@pytest.mark.parametrize("engine", ["espeak", "festival"])
def test_a_sentence_becomes_an_8k_wav_made_once(tmp_path: Path, engine: str) -> None:
    counting = Counting(make_engine(Tts(engine=engine)))
    cache = TtsCache(tmp_path, counting, "ru")
    path = cache.ensure(SENTENCE)
    rate, channels, bits, seconds = sox_info(path)
    assert (rate, channels, bits) == (8000, 1, 16)
    assert seconds > 0.3
    made = path.stat().st_mtime_ns

    assert cache.ensure(SENTENCE) == path
    assert counting.calls == 1
    assert path.stat().st_mtime_ns == made
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [path.name]


def test_paths_depend_on_engine_voice_and_text(tmp_path: Path) -> None:
    espeak = TtsCache(tmp_path, EspeakEngine(), "ru")
    paths = {
        espeak.path_for(SENTENCE),
        espeak.path_for("Нажмите один."),
        TtsCache(tmp_path, EspeakEngine(), "en").path_for(SENTENCE),
        TtsCache(tmp_path, FestivalEngine(), "ru").path_for(SENTENCE),
    }
    assert len(paths) == 4
    path = espeak.path_for(SENTENCE)
    assert path == TtsCache(tmp_path, EspeakEngine(), "ru").path_for(SENTENCE)
    assert path.parent == tmp_path / path.stem[:2]
    assert len(path.stem) == 64 and path.suffix == ".wav"


def test_asterisk_gets_the_path_without_extension() -> None:
    assert asterisk_media(Path("/var/lib/astpbx/tts-cache/ab/abc.wav")) == (
        "sound:/var/lib/astpbx/tts-cache/ab/abc"
    )


def test_concurrent_requests_share_one_synthesis(tmp_path: Path) -> None:
    counting = Counting(EspeakEngine(), delay=0.2)
    cache = TtsCache(tmp_path, counting, "ru")

    async def fifty() -> list[Path]:
        return await asyncio.gather(*(ensure_async(cache, SENTENCE) for _ in range(50)))

    paths = asyncio.run(fifty())
    assert counting.calls == 1
    assert set(paths) == {cache.path_for(SENTENCE)}
    assert paths[0].exists()
    assert cache.in_flight == {}


def test_a_caller_that_leaves_does_not_cancel_the_synthesis(tmp_path: Path) -> None:
    counting = Counting(EspeakEngine(), delay=0.2)
    cache = TtsCache(tmp_path, counting, "ru")

    async def one_leaves() -> Path:
        leaving = asyncio.ensure_future(ensure_async(cache, SENTENCE))
        staying = asyncio.ensure_future(ensure_async(cache, SENTENCE))
        await asyncio.sleep(0.05)
        leaving.cancel()
        return await staying

    assert asyncio.run(one_leaves()).exists()
    assert counting.calls == 1


def test_a_failed_synthesis_is_retried_by_the_next_request(tmp_path: Path) -> None:
    cache = TtsCache(tmp_path, Mute(), "ru")
    with pytest.raises(TtsError, match="mute wrote no sound"):
        asyncio.run(ensure_async(cache, SENTENCE))
    assert cache.in_flight == {}
    assert list(tmp_path.rglob("*.wav")) == []  # no temp file left behind


def test_festival_says_text_with_typography(tmp_path: Path) -> None:
    # Each of «, —, № and the emoji alone makes festvox-ru drop the whole text.
    cache = TtsCache(tmp_path, FestivalEngine(), "ru")
    path = cache.ensure("Дело № 5 — «готово» 😀. Спасибо!")
    assert sox_info(path)[3] > 0.5


def test_festival_text_keeps_what_the_russian_voice_reads() -> None:
    assert festival_text(SENTENCE) == SENTENCE
    assert festival_text("«Ёлка» — это №1…") == "Ёлка, это номер 1."
    assert festival_text("10:00, café; a.b ☎ !") == "10 00, cafe; a b"
    assert festival_text("+7 918 123-45-67 # +") == "+7 918 123-45-67 #"
    assert festival_text("«»") == ""


def test_festival_without_the_voice_says_which_package(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="no voice 'xx_missing'"):
        FestivalEngine().synthesize("привет", "xx_missing", tmp_path / "out.wav")


def test_festival_voice_names_cannot_inject_scheme(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="voice name"):
        FestivalEngine().synthesize("привет", "ru) (quit", tmp_path / "out.wav")


def test_festival_refuses_an_empty_text(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="nothing to say"):
        FestivalEngine().synthesize("« »", "ru", tmp_path / "out.wav")


def test_espeak_failure_carries_its_stderr(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match=r"espeak-ng failed \(exit 1\).*voice does not exist"):
        EspeakEngine().synthesize("привет", "nonexistent", tmp_path / "out.wav")


def test_sox_converts_any_wav_to_8k_mono(tmp_path: Path) -> None:
    path = TtsCache(tmp_path, Tone(), "x").ensure("silence")
    assert sox_info(path) == (8000, 1, 16, 0.5)
    assert path.stat().st_mode & 0o777 == 0o644  # Asterisk runs as another user


@pytest.mark.parametrize(
    ("engine", "package"), [("espeak", "apt-get install espeak-ng"), ("festival", "festvox-ru")]
)
def test_a_missing_program_names_its_package(
    monkeypatch: pytest.MonkeyPatch, engine: str, package: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _program: None)
    with pytest.raises(UsageError, match=package):
        make_engine(Tts(engine=engine))


def test_missing_sox_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="sox is not installed: apt-get install sox"):
        TtsCache(tmp_path, Tone(), "x").ensure("silence")


def test_yandex_and_unknown_engines_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="tts engine yandex is not implemented yet"):
        make_engine(Tts(engine="yandex"))
    with pytest.raises(UsageError, match="unknown tts engine 'sapi'"):
        make_engine(Tts(engine="sapi"))
