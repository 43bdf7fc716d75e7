"""Real softphones for tests: pjsua2 (PJSIP's own user agent) in a subprocess.

    with Softphones() as phones:
        b = phones.add("b", answer="auto", record_dir=tmp_path)
        phones.add("a")
        n = phones.call("a", b.uri)
        phones.wait_state("a", n, "CONFIRMED")
        phones.dtmf("a", "1*#")

pjsua2's Endpoint is a process-wide singleton with threads of its own, so it runs in
`python -m tests.softphone_agent` (its docstring has the protocol: JSON lines on stdin
and stdout). This class starts it, sends commands and waits for their answers, and
collects the events it reports (incoming calls, call states, DTMF, registrations).
A command that fails raises SoftphoneError; so does an agent that dies, with the tail of
its stderr.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

ROOT = Path(__file__).resolve().parents[1]
Event = dict[str, Any]
AnswerMode = Literal["auto", "busy", "never", "manual"]
DtmfMethod = Literal["rfc2833", "info", "inband"]
STDERR_TAIL = 40


class SoftphoneError(RuntimeError):
    """A command the agent refused or did not answer, or an agent that died."""


@dataclass(frozen=True)
class Phone:
    name: str
    user: str
    contact: str  # "127.0.0.1:PORT"
    registration: int | None  # the registrar's final code, when there is a registrar

    @property
    def port(self) -> int:
        return int(self.contact.rsplit(":", 1)[1])

    @property
    def uri(self) -> str:
        """The phone's direct URI, to call it without a registrar."""
        return f"sip:{self.user}@{self.contact}"


@dataclass(frozen=True)
class Dtmf:
    digit: str
    method: str  # "rfc2833" or "info"


@dataclass(frozen=True)
class CallInfo:
    call: int  # numbered per phone from 1
    direction: str  # "in" or "out"
    state: str  # CALLING, INCOMING, EARLY, CONNECTING, CONFIRMED, DISCONNECTED
    code: int  # the last SIP status code
    reason: str
    remote: str
    duration: float  # seconds since answered (until disconnected)
    digits: str  # DTMF digits received, in order
    dtmf: tuple[Dtmf, ...]
    recording: Path | None
    recording_done: bool  # the WAV file is closed and complete (see wait_recording)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallInfo:
        recording = data.get("recording")
        return cls(
            call=int(data["call"]),
            direction=str(data["direction"]),
            state=str(data["state"]),
            code=int(data["code"]),
            reason=str(data["reason"]),
            remote=str(data["remote"]),
            duration=float(data["duration"]),
            digits=str(data["digits"]),
            dtmf=tuple(Dtmf(str(d["digit"]), str(d["method"])) for d in data["dtmf"]),
            recording=Path(recording) if recording else None,
            recording_done=bool(data["recording_done"]),
        )


class Softphones:
    """The agent subprocess and its phones; a context manager."""

    def __init__(self, *, log: Path | None = None, timeout: float = 10.0) -> None:
        self.log = log
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[Event] = []
        self._stray: list[str] = []
        self._eof = False
        self._returncode: int | None = None
        self.stderr_text = ""  # all the agent wrote on stderr, once closed

    # the process ---------------------------------------------------------------------------

    def __enter__(self) -> Softphones:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._proc is not None:
            raise SoftphoneError("the softphone agent is already started")
        command = [sys.executable, "-m", "tests.softphone_agent"]
        if self.log is not None:
            command += ["--log", str(self.log)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name="softphone-agent", daemon=True)
        self._reader.start()
        self.wait_event(lambda e: e["event"] == "ready", self.timeout, what="the agent to start")

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and not self._eof:
            with contextlib.suppress(SoftphoneError, OSError):
                self.command("quit")
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=self.timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        self._returncode = proc.returncode
        if self._stderr is not None:
            self.stderr_text = self.stderr_tail(lines=0)
            self._stderr.close()
        self._proc = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The agent's exit code: None while it runs (or before it started)."""
        return self._returncode if self._proc is None else self._proc.poll()

    def stderr_tail(self, lines: int = STDERR_TAIL) -> str:
        """The last lines the agent wrote on stderr (pjsip's startup lines, tracebacks);
        all of them with lines=0."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.seek(0, os.SEEK_END)
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            with self._cond:
                if not isinstance(msg, dict):
                    self._stray.append(line.rstrip("\n"))
                elif "event" in msg:
                    self._events.append(msg)
                elif isinstance(msg.get("id"), int):
                    self._answers[msg["id"]] = msg
                else:
                    self._stray.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _failure(self, what: str) -> SoftphoneError:
        proc = self._proc
        code = None if proc is None else proc.poll()
        if self._eof or code is not None:
            if proc is not None and code is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = proc.wait(timeout=2)
            head = f"the softphone agent exited (code {code}) while waiting for {what}"
        else:
            head = f"timed out waiting for {what}"
        parts = [head]
        if self._stray:
            parts.append("stray output:\n" + "\n".join(self._stray[-10:]))
        tail = self.stderr_tail()
        if tail:
            parts.append("agent stderr (tail):\n" + tail)
        return SoftphoneError("\n".join(parts))

    # commands ------------------------------------------------------------------------------

    def command(self, cmd: str, *, wait: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one command and return its answer; SoftphoneError when it fails.

        The answer is awaited `wait` seconds: by default the instance's timeout plus the
        command's own "timeout" field (register waits that long for the registrar).
        """
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise SoftphoneError("the softphone agent is not started")
        if wait is None:
            wait = self.timeout + float(fields.get("timeout", 0))
        what = f"the answer to {cmd} {fields}"
        with self._send_lock:
            msg_id = next(self._ids)
            line = json.dumps({"id": msg_id, "cmd": cmd, **fields})
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except OSError as exc:
                raise self._failure(what) from exc
        deadline = time.monotonic() + wait
        with self._cond:
            while msg_id not in self._answers:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise self._failure(what)
                self._cond.wait(left)
            answer = self._answers.pop(msg_id)
        if not answer.get("ok"):
            raise SoftphoneError(f"{cmd} {fields}: {answer.get('error')}")
        return answer

    def add(
        self,
        name: str,
        *,
        user: str | None = None,
        password: str = "",
        registrar: str | None = None,
        port: int = 0,
        expires: int = 300,
        answer: AnswerMode = "auto",
        answer_after: float = 0.0,
        record_dir: Path | None = None,
        timeout: float = 10.0,
    ) -> Phone:
        """A phone on a UDP port of its own on 127.0.0.1 (port 0: any free one).

        With a registrar ("HOST:PORT"), it registers at once and the answer waits for the
        registrar's final code (`Phone.registration`; not raised on when it is not 2xx).
        """
        fields: dict[str, Any] = {
            "name": name,
            "user": user or name,
            "password": password,
            "registrar": registrar,
            "port": port,
            "expires": expires,
            "answer": answer,
            "answer_after": answer_after,
            "timeout": timeout,
        }
        if record_dir is not None:
            fields["record_dir"] = str(record_dir)
        result = self.command("phone", **fields)
        registration = result.get("registration")
        return Phone(
            name=name,
            user=user or name,
            contact=str(result["contact"]),
            registration=None if registration is None else int(registration),
        )

    def register(self, name: str, expires: int | None = None, timeout: float = 10.0) -> int:
        """REGISTER again; the registrar's final status code."""
        fields: dict[str, Any] = {"name": name, "timeout": timeout}
        if expires is not None:
            fields["expires"] = expires
        return int(self.command("register", **fields)["code"])

    def unregister(self, name: str, timeout: float = 10.0) -> int:
        return int(self.command("unregister", name=name, timeout=timeout)["code"])

    def call(self, name: str, uri: str) -> int:
        """Call a SIP URI from a phone; the call's number on that phone."""
        return int(self.command("call", name=name, uri=uri)["call"])

    def answer(self, name: str, call: int | None = None, code: int = 200) -> list[CallInfo]:
        return self._calls(self.command("answer", **_fields(name, call, code=code)))

    def hangup(self, name: str, call: int | None = None, code: int = 0) -> list[CallInfo]:
        return self._calls(self.command("hangup", **_fields(name, call, code=code)))

    def dtmf(
        self,
        name: str,
        digits: str,
        method: DtmfMethod = "rfc2833",
        call: int | None = None,
        duration: int | None = None,
    ) -> list[CallInfo]:
        """Send DTMF digits on a phone's answered calls (duration in ms)."""
        fields = _fields(name, call, digits=digits, method=method)
        if duration is not None:
            fields["duration"] = duration
        return self._calls(self.command("dtmf", **fields))

    def play(
        self, name: str, wav: Path, call: int | None = None, loop: bool = False
    ) -> list[CallInfo]:
        """Play a WAV file into a phone's calls (a "play_done" event when it has ended)."""
        fields = _fields(name, call, wav=str(wav), loop=loop)
        return self._calls(self.command("play", **fields))

    def calls(self, name: str) -> list[CallInfo]:
        """All calls a phone has had, gone ones too, in order."""
        return self._calls(self.command("calls", name=name))

    def call_info(self, name: str, call: int) -> CallInfo:
        for info in self.calls(name):
            if info.call == call:
                return info
        raise SoftphoneError(f"phone {name} has no call {call}")

    @staticmethod
    def _calls(answer: dict[str, Any]) -> list[CallInfo]:
        return [CallInfo.from_json(item) for item in answer["calls"]]

    # events --------------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def mark(self) -> int:
        """How many events have arrived: pass as `since` to wait only for later ones."""
        with self._cond:
            return len(self._events)

    def wait_event(
        self,
        predicate: Callable[[Event], bool],
        timeout: float = 10.0,
        *,
        since: int = 0,
        what: str = "an event",
    ) -> Event:
        """The first event (from index `since` on) for which predicate holds."""
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise self._failure(what)
                self._cond.wait(left)

    def wait_state(
        self, name: str, call: int, state: str, timeout: float = 10.0, *, since: int = 0
    ) -> Event:
        """The call_state event of a phone's call reaching a state."""

        def match(event: Event) -> bool:
            return bool(
                event["event"] == "call_state"
                and event["phone"] == name
                and event["call"] == call
                and event["state"] == state
            )

        return self.wait_event(match, timeout, since=since, what=f"{name} call {call} {state}")

    def wait_incoming(self, name: str, timeout: float = 10.0, *, since: int = 0) -> int:
        """The number of the next call that rings on a phone."""
        event = self.wait_event(
            lambda e: e["event"] == "incoming" and e["phone"] == name,
            timeout,
            since=since,
            what=f"an incoming call on {name}",
        )
        return int(event["call"])

    def wait_recording(self, name: str, call: int, timeout: float = 10.0) -> Path:
        """The WAV file of a phone's call, once the agent has closed it (after the call)."""
        event = self.wait_event(
            lambda e: e["event"] == "recorded" and e["phone"] == name and e["call"] == call,
            timeout,
            what=f"the recording of {name} call {call}",
        )
        if not event["complete"]:
            raise SoftphoneError(f"the recording {event['path']} was not closed properly")
        return Path(event["path"])

    def wait_digits(self, name: str, call: int, count: int, timeout: float = 10.0) -> CallInfo:
        """A phone's call once it has received at least `count` DTMF digits."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.call_info(name, call)
            if len(info.digits) >= count:
                return info
            if time.monotonic() > deadline:
                raise SoftphoneError(
                    f"{name} call {call} received {info.digits!r}, not {count} digits"
                )
            time.sleep(0.05)


def _fields(name: str, call: int | None, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, **fields}
    if call is not None:
        result["call"] = call
    return result
