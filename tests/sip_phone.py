"""A minimal SIP phone over UDP for tests: it registers with Asterisk and stays reachable.

    with SipPhone("2001", "secret-password", sandbox.sip) as phone:
        phone.register()  # the PJSIP endpoint 2001 becomes "online" in ARI
        ...
    # leaving the block unregisters: "offline"

The phone owns one UDP socket on 127.0.0.1 (a free port) and a daemon thread that reads
it. The thread answers what Asterisk asks of a registered phone: OPTIONS (Asterisk
qualifies contacts every `qualify_frequency` seconds; an unanswered OPTIONS makes the
endpoint unreachable) with 200 OK, INVITE with 486 Busy Here; ACK is ignored. Responses
to REGISTER go to the caller of `register()`/`unregister()`, which does the digest
authentication (RFC 2617 / RFC 3261 22.4: MD5, or SHA-256 when that is all the challenge
offers; qop=auth when offered) and retransmits over UDP (timer E of RFC 3261 17.1.2.2).

No media, no dialogs, no automatic re-registration: register with an `expires` longer
than the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from types import TracebackType

USER_AGENT = "astpbx-tests"
T1 = 0.5  # RFC 3261 timers: the first retransmission interval…
T2 = 4.0  # …and its cap for non-INVITE requests
MAX_DATAGRAM = 65535

# RFC 3261 7.3.3: compact header names.
COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
REASONS = {
    200: "OK",
    486: "Busy Here",
    501: "Not Implemented",
}
# Methods answered with 200 OK besides OPTIONS: harmless to accept.
ACCEPTED = frozenset({"OPTIONS", "BYE", "CANCEL", "NOTIFY"})
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY"
HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class SipError(Exception):
    """A REGISTER failed: rejected (the message holds the status line) or unanswered."""


@dataclass
class SipMessage:
    """A parsed SIP request or response (headers by lower-case full name, in order)."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        """The status code of a response."""
        return int(self.start.split(" ", 2)[1])

    @property
    def method(self) -> str:
        """The method of a request."""
        return self.start.split(" ", 1)[0]

    def all(self, name: str) -> list[str]:
        """Every value of a header, in order (comma-separated Via values are not split)."""
        return [value for key, value in self.headers if key == name]

    def get(self, name: str, default: str = "") -> str:
        values = self.all(name)
        return values[0] if values else default

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("cseq").partition(" ")
        return int(number or 0), method.strip().upper()


def parse_message(data: bytes) -> SipMessage:
    """A SIP message from a datagram; ValueError when it is not one."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    start = lines[0].strip()
    if not (start.startswith("SIP/2.0 ") or start.endswith(" SIP/2.0")):
        raise ValueError(f"not a SIP message: {start!r}")
    message = SipMessage(start, body=body)
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and message.headers:  # folded continuation line
            name, value = message.headers[-1]
            message.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip().lower()
        message.headers.append((COMPACT.get(name, name), value.strip()))
    return message


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """('Digest', {'realm': …, 'nonce': …, …}) from a WWW-Authenticate value."""
    scheme, _, rest = value.strip().partition(" ")
    params = {
        match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
        for match in re.finditer(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest)
    }
    return scheme, params


def choose_challenge(values: list[str]) -> dict[str, str]:
    """The Digest challenge to answer: MD5 when offered, else SHA-256."""
    offered: dict[str, dict[str, str]] = {}
    for value in values:
        scheme, params = parse_challenge(value)
        algorithm = params.get("algorithm", "MD5").upper()
        if scheme.lower() == "digest" and algorithm in HASHES:
            offered.setdefault(algorithm, params)
    for algorithm in HASHES:
        if algorithm in offered:
            return offered[algorithm]
    raise SipError(f"no supported digest challenge in {values!r}")


def digest_authorization(
    challenge: dict[str, str], method: str, uri: str, username: str, password: str
) -> str:
    """The Authorization value answering `challenge` (RFC 2617 3.2.2)."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    hash_ = HASHES[algorithm]

    def h(text: str) -> str:
        return hash_(text.encode()).hexdigest()

    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    qops = [item.strip().lower() for item in challenge.get("qop", "").split(",")]
    fields = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
    ]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    fields.append(f"algorithm={challenge.get('algorithm', 'MD5')}")
    if "opaque" in challenge:
        fields.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(fields)


def _tag() -> str:
    return secrets.token_hex(6)


class SipPhone:
    """A SIP user agent that registers `number` with the registrar at `server` (HOST:PORT)."""

    def __init__(self, number: str, password: str, server: str) -> None:
        host, _, port = server.rpartition(":")
        self.number = number
        self.password = password
        self.server = (host.strip("[]"), int(port))
        self.domain = host
        self.registered = False
        self.options_answered = 0  # OPTIONS requests answered with 200 OK
        self.invites_rejected = 0  # INVITE requests answered with 486 Busy Here
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]
        self.contact = f"<sip:{number}@127.0.0.1:{self.port}>"
        self.call_id = f"{secrets.token_hex(12)}@127.0.0.1"
        self.from_tag = _tag()
        self.cseq = 0
        self._auth_header = "Authorization"
        self._responses: queue.Queue[SipMessage] = queue.Queue()
        self._to_tags: OrderedDict[str, str] = OrderedDict()  # INVITE branch → our To tag
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sip-phone-{number}", daemon=True)
        self._thread.start()

    # --- the caller's side -------------------------------------------------------------

    def register(self, expires: int = 600, timeout: float = 5) -> None:
        """REGISTER the contact for `expires` seconds; SipError unless the answer is 200."""
        with self._lock:
            self._register(self.contact, expires, timeout)
            self.registered = True

    def unregister(self, timeout: float = 5) -> None:
        """REGISTER with Contact: * and Expires: 0: remove every contact of the AOR."""
        with self._lock:
            self._register("*", 0, timeout)
            self.registered = False

    def close(self) -> None:
        """Unregister if registered (failures are ignored), stop the thread, close the socket."""
        if self._stop.is_set():
            return
        if self.registered:
            with contextlib.suppress(SipError, OSError):
                self.unregister()
        self._stop.set()
        self._thread.join(2)
        self.socket.close()

    def __enter__(self) -> SipPhone:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _register(self, contact: str, expires: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        authorization: str | None = None
        last = "no response"
        for _attempt in range(4):  # unauthenticated, authenticated, 423-corrected, spare
            self.cseq += 1
            request = self._register_request(contact, expires, authorization)
            response = self._transaction(request, self.cseq, deadline, last)
            last = response.start
            if response.status == 200:
                return
            if response.status in (401, 407) and authorization is None:
                header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
                challenge = choose_challenge(response.all(header))
                authorization = digest_authorization(
                    challenge, "REGISTER", self._registrar_uri, self.number, self.password
                )
                self._auth_header = (
                    "Authorization" if response.status == 401 else "Proxy-Authorization"
                )
                continue
            if response.status == 423 and expires and response.get("min-expires").isdigit():
                expires = int(response.get("min-expires"))
                authorization = None  # a new request: a new challenge, a fresh nonce count
                continue
            raise SipError(f"REGISTER {self.number}@{self.domain} failed: {last}")
        raise SipError(f"REGISTER {self.number}@{self.domain} failed: {last}")

    @property
    def _registrar_uri(self) -> str:
        return f"sip:{self.domain}:{self.server[1]}"

    def _register_request(self, contact: str, expires: int, authorization: str | None) -> bytes:
        headers = [
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(10)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.number}@{self.domain}>;tag={self.from_tag}",
            f"To: <sip:{self.number}@{self.domain}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: {contact}",
            f"Expires: {expires}",
            f"Allow: {ALLOW}",
            f"User-Agent: {USER_AGENT}",
        ]
        if authorization:
            headers.append(f"{self._auth_header}: {authorization}")
        headers.append("Content-Length: 0")
        return _encode(f"REGISTER {self._registrar_uri} SIP/2.0", headers)

    def _transaction(self, request: bytes, cseq: int, deadline: float, last: str) -> SipMessage:
        """Send `request` (retransmitted per timer E) until its final response arrives."""
        interval = T1
        send_at = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise SipError(
                    f"REGISTER {self.number}@{self.domain}: no final response in time "
                    f"(last status: {last})"
                )
            if now >= send_at:
                self.socket.sendto(request, self.server)
                send_at = now + interval
                interval = min(interval * 2, T2)
            try:
                response = self._responses.get(timeout=min(send_at, deadline) - now)
            except queue.Empty:
                continue
            if response.get("call-id") != self.call_id or response.cseq != (cseq, "REGISTER"):
                continue  # a late answer to an earlier request
            if response.status >= 200:
                return response
            last = response.start  # provisional: keep waiting, retransmit at T2 (17.1.2.2)
            interval = T2

    # --- the thread: what Asterisk sends -------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.socket.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set() or self.socket.fileno() == -1:
                    return  # closed
                continue  # e.g. ECONNREFUSED reported by an ICMP port unreachable
            if not data.strip():
                continue  # a keep-alive (CRLF)
            try:
                message = parse_message(data)
            except ValueError:
                continue
            if message.is_response:
                self._responses.put(message)
            else:
                self._answer(message, source)

    def _answer(self, request: SipMessage, source: tuple[str, int]) -> None:
        method = request.method.upper()
        if method == "ACK":
            return
        if method == "INVITE":
            self.invites_rejected += 1
            status = 486
        elif method in ACCEPTED:
            status = 200
        else:
            status = 501
        if method == "OPTIONS":
            self.options_answered += 1  # before sending: Asterisk may act on it at once
        with contextlib.suppress(OSError):
            self.socket.sendto(self._response(request, status), source)

    def _response(self, request: SipMessage, status: int) -> bytes:
        """A response copying Via, From, To (with our tag), Call-ID and CSeq (RFC 3261 8.2.6)."""
        to = request.get("to")
        if ";tag=" not in to.replace(" ", "").lower():
            to = f"{to};tag={self._to_tag(request)}"
        headers = [f"Via: {via}" for via in request.all("via")]
        headers += [
            f"From: {request.get('from')}",
            f"To: {to}",
            f"Call-ID: {request.get('call-id')}",
            f"CSeq: {request.get('cseq')}",
        ]
        if request.method.upper() == "OPTIONS" and status == 200:
            headers += [f"Contact: {self.contact}", f"Allow: {ALLOW}", "Accept: application/sdp"]
        headers += [f"Server: {USER_AGENT}", "Content-Length: 0"]
        return _encode(f"SIP/2.0 {status} {REASONS[status]}", headers)

    def _to_tag(self, request: SipMessage) -> str:
        """One To tag per transaction (top Via branch), so retransmissions get the same."""
        branch = re.search(r";\s*branch=([^;,\s]+)", request.get("via"))
        if branch is None:
            return _tag()
        key = branch.group(1)
        if key not in self._to_tags:
            self._to_tags[key] = _tag()
            while len(self._to_tags) > 64:
                self._to_tags.popitem(last=False)
        return self._to_tags[key]


def _encode(start: str, headers: list[str]) -> bytes:
    return ("\r\n".join([start, *headers]) + "\r\n\r\n").encode()
