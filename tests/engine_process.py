"""`astpbx run` as an administrator runs it: a process of its own, to kill -9 or SIGTERM
with calls up, and to start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class EngineProcess:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0  # where in the log this run's lines start

    def start(self, *, leading: bool = True, timeout: float = 30) -> None:
        """Start `astpbx run`; with `leading`, wait until it is in charge of the calls
        (connected to ARI and done adopting)."""
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ast_pbx", "run", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
            )
        if leading:
            self.wait_for("in charge of", timeout)

    def lines(self) -> str:
        """What this run logged so far."""
        with self.log.open("rb") as source:
            source.seek(self._offset)
            return source.read().decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> float:
        """Seconds until this run logged `text`; fails if it dies or takes too long."""
        started = time.monotonic()
        while text not in self.lines():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the engine exited ({self.process.returncode}):\n{self.lines()}"
                )
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no {text!r} in {timeout} s:\n{self.lines()[-4000:]}")
            time.sleep(0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 30) -> int:
        self._signal(signal.SIGTERM, timeout)
        assert self.process is not None
        return self.process.returncode

    def _signal(self, signum: int, timeout: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
