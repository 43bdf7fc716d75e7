"""Recordings converted with the real ffmpeg (.ci/setup installs it)."""

from __future__ import annotations

import random
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from ast_pbx.audio import AudioError, convert_all, convert_recording, pending
from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.config.model import Audio
from ast_pbx.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mfc"
ROXETTE = EXAMPLE / "audio" / "roxette.mp3"


def sox_info(path: Path) -> tuple[int, int, int, float]:
    """(rate, channels, bits, seconds) as sox reports them."""

    def ask(flag: str) -> str:
        return subprocess.run(
            ["sox", "--i", flag, str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()

    return int(ask("-r")), int(ask("-c")), int(ask("-b")), float(ask("-D"))


def corrupt_mp3(directory: Path) -> Path:
    path = directory / "broken.mp3"
    path.write_bytes(random.Random(7).randbytes(5000))
    return path


def test_an_mp3_becomes_an_8k_mono_wav_once(tmp_path: Path) -> None:
    target = convert_recording(ROXETTE, tmp_path)
    rate, channels, bits, seconds = sox_info(target)
    assert (rate, channels, bits) == (8000, 1, 16)
    assert 5.0 < seconds < 5.5
    assert target.parent == tmp_path and len(target.stem) == 64
    assert target.stat().st_mode & 0o777 == 0o644  # Asterisk runs as another user
    assert target.read_bytes()[36:40] == b"data"  # a plain header: no LIST chunk of tags
    made = target.stat().st_mtime_ns

    assert convert_recording(ROXETTE, tmp_path) == target
    assert target.stat().st_mtime_ns == made
    assert list(tmp_path.iterdir()) == [target]


def test_a_wav_is_converted_too(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    with wave.open(str(src), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(b"\1\0\1\0" * 44100)
    assert sox_info(convert_recording(src, tmp_path / "audio")) == (8000, 1, 16, 1.0)


def test_a_corrupt_mp3_is_an_audio_error(tmp_path: Path) -> None:
    broken = corrupt_mp3(tmp_path)
    with pytest.raises(AudioError, match=r"broken\.mp3: ffmpeg cannot convert it: .+"):
        convert_recording(broken, tmp_path / "audio")
    assert list((tmp_path / "audio").iterdir()) == []  # no temp file left behind


def test_a_missing_file_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot read the recording"):
        convert_recording(tmp_path / "nope.mp3", tmp_path)


def test_missing_ffmpeg_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _program: None)
    with pytest.raises(UsageError, match="apt-get install ffmpeg"):
        convert_recording(ROXETTE, tmp_path)


def test_convert_all_reports_converted_and_reused(tmp_path: Path) -> None:
    config = load(str(EXAMPLE), {}).config
    assert pending(config, tmp_path) == ("roxette",)
    first = convert_all(config, tmp_path)
    assert first.converted == ("roxette",)
    assert first.reused == ()
    assert sox_info(first.paths["roxette"])[0] == 8000

    again = convert_all(config, tmp_path)
    assert again.paths == first.paths
    assert (again.converted, again.reused) == ((), ("roxette",))
    assert pending(config, tmp_path) == ()


def test_convert_all_names_every_failed_id(tmp_path: Path) -> None:
    broken = corrupt_mp3(tmp_path)
    config = Config(
        audio=(
            Audio(id="bad", file=str(broken)),
            Audio(id="good", file=str(ROXETTE)),
            Audio(id="gone", file=str(tmp_path / "gone.mp3")),
        )
    )
    with pytest.raises(AudioError) as raised:
        convert_all(config, tmp_path / "audio")
    lines = str(raised.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["audio bad", "audio gone"]
