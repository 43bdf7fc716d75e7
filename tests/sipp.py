"""SIPp (Debian's sip-tester) as the third-party peer of SIP tests.

`Caller` is a citizen calling in through a trunk: SIPp sends the INVITE from the
trunk's address, presses the keys of an input written as for `astpbx simulate`
(`"w2 1 w1 1 9 * 0 3 #"`) in one DTMF mode — RFC 4733 events or inband tones
(pcaps of `tests.rtp`), or SIP INFO requests — then either hangs up or waits for the
engine to hang up. The SDP points Asterisk's audio at an `RtpSink`, so a test can
check what the caller heard.

Each scenario is generated for its call; the runs are sequential per local port.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ast_pbx.core.simulator import Press, Wait, parse_input
from tests.rtp import Heard, RtpSink, dtmf_pcap
from tests.sandbox_fixture import free_port

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
KEY_GAP_MS = 300  # between two keys: an RFC 4733 key lasts 160 ms + its end packets


def _headers(cseq: int, method: str, caller: str) -> str:
    return textwrap.dedent(f"""\
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
        To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} {method}
        Contact: <sip:{caller}@[local_ip]:[local_port]>
        Max-Forwards: 70
        User-Agent: SIPp (astpbx tests)""")


def _request(method: str, cseq: int, caller: str, body: str = "", kind: str = "") -> str:
    content = f"Content-Type: {kind}\n" if kind else ""
    text = (
        f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"{_headers(cseq, method, caller)}\n{content}Content-Length: [len]\n\n{body}"
    )
    retrans = ' retrans="500"' if method != "ACK" else ""
    return f"<send{retrans}><![CDATA[\n{text}\n]]></send>"


SDP = """\
v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {port} RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""

OK_TO_BYE = """<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""


def sipp_command(scenario: Path, port: int, calls: int, errors: Path) -> list[str]:
    """SIPp running `scenario` `calls` times from 127.0.0.1:`port`, with RTP and control
    ports of its own (a second SIPp on the default control port exits 254), its errors
    written to `errors`; add the remote address and options."""
    return [
        SIPP,
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mp",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-m",
        str(calls),
        "-trace_err",
        "-error_file",
        str(errors),
        "-nostdin",
    ]


@dataclass(frozen=True)
class CallResult:
    ok: bool  # SIPp's verdict: every message as the scenario expects
    output: str  # SIPp's error log and output, for assertion messages
    heard: Heard


class Caller:
    """One SIPp user agent calling through the trunk from 127.0.0.1:`port`."""

    def __init__(self, target: str, port: int, workdir: Path, caller: str = "+79001112233"):
        self.target = target  # HOST:PORT of Asterisk's PJSIP transport
        self.port = port
        self.workdir = workdir
        self.caller = caller
        workdir.mkdir(parents=True, exist_ok=True)

    def scenario(self, input_text: str, dtmf: str, ends: str, rtp_port: int) -> str:
        """The XML of one call. `ends`: "remote" waits for the engine's BYE, "local"
        hangs up after the input."""
        steps = [
            _request("INVITE", 1, self.caller, SDP.format(port=rtp_port), "application/sdp"),
            '<recv response="100" optional="true"/>',
            '<recv response="180" optional="true"/>',
            '<recv response="183" optional="true"/>',
            '<recv response="200" rtd="true"/>',
            _request("ACK", 1, self.caller),
        ]
        cseq, presses = 1, 0
        for event in parse_input(input_text):
            if isinstance(event, Wait):
                steps.append(f'<pause milliseconds="{round(event.seconds * 1000)}"/>')
                continue
            steps.extend(self._key(event, dtmf, cseq + 1, presses))
            cseq += dtmf == "info"
            presses += 1
        if ends == "local":
            steps += [_request("BYE", cseq + 1, self.caller), '<recv response="200"/>']
        else:
            steps += ['<recv request="BYE"/>', OK_TO_BYE]
        body = "\n".join(steps)
        return f'<?xml version="1.0"?>\n<scenario name="caller">\n{body}\n</scenario>\n'

    def _key(self, press: Press, dtmf: str, cseq: int, presses: int) -> list[str]:
        if dtmf == "info":
            signal = f"Signal={press.key}\nDuration=160\n"
            return [
                _request("INFO", cseq, self.caller, signal, "application/dtmf-relay"),
                '<recv response="200"/>',
                f'<pause milliseconds="{KEY_GAP_MS}"/>',
            ]
        pcap = dtmf_pcap(self.workdir, press.key, dtmf, presses)
        return [
            f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>',
            f'<pause milliseconds="{KEY_GAP_MS + (300 if dtmf == "inband" else 0)}"/>',
        ]

    def call(
        self,
        number: str,
        input_text: str = "",
        *,
        dtmf: str = "rfc4733",
        ends: str = "remote",
        timeout: float = 90,
        calls: int = 1,
        rate: int = 1,
    ) -> CallResult:
        """`calls` callers, `rate` a second, each with the same input."""
        with RtpSink() as sink:
            path = self.workdir / f"call-{number}-{free_port()}.xml"
            path.write_text(self.scenario(input_text, dtmf, ends, sink.port), encoding="utf-8")
            errors = path.with_suffix(".errors.log")
            command = [
                *sipp_command(path, self.port, calls, errors),
                *(["-r", str(rate), "-rp", "1000"] if calls > 1 else []),
                self.target,
                "-s",
                number,
                "-timeout",
                f"{round(timeout)}s",
                "-timeout_error",
            ]
            run = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout + 30, check=False
            )
        log = errors.read_text(errors="replace") if errors.exists() else ""
        return CallResult(
            run.returncode == 0, f"{log}\n{run.stdout[-2000:]}{run.stderr}", sink.heard
        )


# --- SIPp as the far end of a trunk ---------------------------------------------------

RESPONSE = """<send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
{extra}Content-Length: [len]
{body}
]]></send>"""


def _response(status: str, body: str = "", extra: str = "") -> str:
    return RESPONSE.format(status=status, extra=extra, body=f"\n{body}" if body else "")


def _uas_invite(number: str, challenge: tuple[str, str] | None) -> list[str]:
    """Receive the INVITE (checking that it calls `number`), with digest authentication
    first when `challenge` (user, password) is given."""
    # The INVITE's CSeq number is kept for the 487 that ends it after a CANCEL.
    check = (
        f'<recv request="INVITE"><action><ereg regexp="^INVITE sip:{re_escape(number)}@" '
        'search_in="msg" check_it="true" assign_to="uri"/>'
        '<ereg regexp="([0-9]+)" search_in="hdr" header="CSeq:" assign_to="cseq_all,cseq"/>'
        "</action></recv>"
        '<Reference variables="uri,cseq_all,cseq"/>'  # SIPp refuses variables never read
    )
    if challenge is None:
        return [check]
    user, password = challenge
    return [
        check,
        _response(
            "401 Unauthorized",
            extra='WWW-Authenticate: Digest realm="provider", nonce="[call_id]", algorithm=MD5\n',
        ),
        '<recv request="ACK"/>',
        '<recv request="INVITE"><action>'
        f'<verifyauth assign_to="authorized" username="{user}" password="{password}"/>'
        "</action></recv>",
        '<nop test="authorized" next="authorized"/>',
        _response("403 Forbidden"),
        '<recv request="ACK" next="end"/>',
        '<label id="authorized"/>',
    ]


def re_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "+*.?()[]{}|^$\\" else c for c in text)


def uas_scenario(
    number: str, final: int | None, rtp_port: int, challenge: tuple[str, str] | None = None
) -> str:
    """The far end of an outbound call: rings, then answers (200, and waits for the
    engine's BYE), refuses with `final`, or (None) rings until the caller gives up."""
    steps = [*_uas_invite(number, challenge), _response("100 Trying"), _response("180 Ringing")]
    if final == 200:
        sdp = SDP.format(port=rtp_port)
        steps += [
            _response("200 OK", sdp, "Content-Type: application/sdp\n"),
            '<recv request="ACK"/>',
            '<recv request="BYE"/>',
            OK_TO_BYE,
        ]
    elif final is None:
        # 200 for the CANCEL, then 487 for the INVITE: its own CSeq, not the CANCEL's.
        terminated = _response("487 Request Terminated").replace(
            "[last_CSeq:]", "CSeq: [$cseq] INVITE"
        )
        steps += ['<recv request="CANCEL"/>', OK_TO_BYE, terminated, '<recv request="ACK"/>']
    else:
        steps += [_response(f"{final} {REASON_PHRASES[final]}"), '<recv request="ACK"/>']
    steps.append('<label id="end"/>')
    return (
        '<?xml version="1.0"?>\n<scenario name="far end">\n' + "\n".join(steps) + "\n</scenario>\n"
    )


REASON_PHRASES = {
    200: "OK",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    503: "Service Unavailable",
}


def registrar_scenario(user: str, password: str, registrations: int = 1) -> str:
    """A provider's registrar: challenges each REGISTER, then answers 200 to one whose
    digest is right (403 otherwise)."""
    steps = []
    for n in range(registrations):
        steps += [
            '<recv request="REGISTER"/>',
            _response(
                "401 Unauthorized",
                extra='WWW-Authenticate: Digest realm="provider", nonce="[call_id]", '
                "algorithm=MD5\n",
            ),
            '<recv request="REGISTER"><action>'
            f'<verifyauth assign_to="ok{n}" username="{user}" password="{password}"/>'
            "</action></recv>",
            f'<nop test="ok{n}" next="good{n}"/>',
            _response("403 Forbidden", extra=""),
            '<nop next="end"/>',
            f'<label id="good{n}"/>',
            _response("200 OK", extra="Expires: 3600\n[last_Contact:]\n"),
        ]
    steps.append('<label id="end"/>')
    return (
        '<?xml version="1.0"?>\n<scenario name="registrar">\n'
        + "\n".join(steps)
        + "\n</scenario>\n"
    )


class FarEnd:
    """SIPp in the background as the far end of a trunk on 127.0.0.1:`port` (a UAS):
    start it, let the engine call, then `result()` says whether every message came as
    the scenario expects."""

    def __init__(self, port: int, workdir: Path, name: str) -> None:
        self.port = port
        self.workdir = workdir
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[str] | None = None
        self.sink: RtpSink | None = None

    def start(self, scenario: str, calls: int = 1, sink: RtpSink | None = None) -> None:
        path = self.workdir / f"{self.name}.xml"
        path.write_text(scenario, encoding="utf-8")
        self.sink = sink
        self.errors = path.with_suffix(".errors.log")
        self.messages = path.with_suffix(".messages.log")
        self.process = subprocess.Popen(
            [
                *sipp_command(path, self.port, calls, self.errors),
                "-trace_msg",
                "-message_file",
                str(self.messages),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self, timeout: float = 60) -> tuple[bool, str]:
        """(every call as expected, SIPp's errors and messages) once SIPp exits."""
        assert self.process is not None
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            output = "SIPp did not finish in time\n" + output
        log = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return self.process.returncode == 0, f"{log}\n{output[-1500:]}"

    def received(self) -> str:
        """Every SIP message SIPp sent and received, as its message trace has them."""
        return self.messages.read_text(errors="replace") if self.messages.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
